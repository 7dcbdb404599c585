{{/* The release's base name: "agentauth" unless the release is named otherwise. */}}
{{- define "agentauth.fullname" -}}
{{- if contains "agentauth" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-agentauth" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "agentauth.operator" -}}{{ include "agentauth.fullname" . }}-operator{{- end -}}
{{- define "agentauth.verifier" -}}{{ include "agentauth.fullname" . }}-verifier{{- end -}}
{{- define "agentauth.webhook" -}}{{ include "agentauth.fullname" . }}-webhook{{- end -}}
{{- define "agentauth.archiver" -}}{{ include "agentauth.fullname" . }}-archiver{{- end -}}

{{/* Labels every object carries. */}}
{{- define "agentauth.labels" -}}
app.kubernetes.io/name: agentauth
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include with (dict "root" . "component" "operator"). */}}
{{- define "agentauth.selector" -}}
app.kubernetes.io/name: agentauth
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "agentauth.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The pod security context every workload runs with. */}}
{{- define "agentauth.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
# Group-owns mounted Secrets, so the 0400 key files are readable (0440) by
# the non-root user and nobody else.
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "agentauth.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The Redis URL, whether it names a cluster's seeds, and the password from its Secret. */}}
{{- define "agentauth.redisEnv" -}}
- name: AGENTAUTH_REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- if .Values.redis.cluster }}
- name: AGENTAUTH_REDIS_CLUSTER
  value: "true"
{{- end }}
{{- if .Values.redis.existingSecret }}
- name: AGENTAUTH_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.passwordKey }}
{{- end }}
{{- end -}}

{{- define "agentauth.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}

{{/* The approval UI's origins: approvals.origins, or the public URL. */}}
{{- define "agentauth.approvalOrigins" -}}
{{- if .Values.approvals.origins -}}
{{ join "," .Values.approvals.origins }}
{{- else -}}
{{ trimSuffix "/" .Values.publicUrl }}
{{- end -}}
{{- end -}}

{{/* The operator's in-cluster base URL (verifiers fetch the JWKS there). */}}
{{- define "agentauth.operatorUrl" -}}
http://{{ include "agentauth.operator" . }}.{{ .Release.Namespace }}.svc:{{ .Values.operator.service.port }}
{{- end -}}

{{/* The username the apiserver gives the operator (the webhook trusts only it with status). */}}
{{- define "agentauth.operatorUsername" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "agentauth.operator" . }}
{{- end -}}

{{/* Egress to DNS, wherever the cluster runs it. */}}
{{- define "agentauth.dnsEgress" -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end -}}


{{/*
The root key, for every process that signs with it (the operator: tokens and
issuing-key certificates; the archiver: checkpoints). One set of flags in the
binary (signer/src/select.rs), so one set of env, mounts and volumes here.
*/}}
{{- define "agentauth.signerEnv" -}}
{{- $s := .Values.signer -}}
- name: AGENTAUTH_SIGNER
  value: {{ $s.kind | quote }}
{{- if eq $s.kind "local" }}
- name: AGENTAUTH_ROOT_KEY_FILE
  value: /var/run/agentauth/root-key/root-key.pem
{{- else if eq $s.kind "aws-kms" }}
- name: AGENTAUTH_KMS_KEY_ID
  value: {{ $s.awsKms.keyId | quote }}
{{- with $s.awsKms.region }}
- name: AGENTAUTH_KMS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with $s.awsKms.endpoint }}
- name: AGENTAUTH_KMS_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- else if eq $s.kind "gcp-kms" }}
- name: AGENTAUTH_GCP_KMS_KEY_VERSION
  value: {{ $s.gcpKms.keyVersion | quote }}
{{- with $s.gcpKms.endpoint }}
- name: AGENTAUTH_GCP_KMS_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- else if eq $s.kind "vault-transit" }}
- name: VAULT_ADDR
  value: {{ $s.vaultTransit.address | quote }}
- name: AGENTAUTH_VAULT_KEY
  value: {{ $s.vaultTransit.key | quote }}
- name: AGENTAUTH_VAULT_TRANSIT_MOUNT
  value: {{ $s.vaultTransit.mount | quote }}
# Kubernetes auth: the pod logs in with its service-account token as this
# role. A Vault token is never taken from the chart's values.
- name: AGENTAUTH_VAULT_ROLE
  value: {{ $s.vaultTransit.role | quote }}
{{- with $s.vaultTransit.namespace }}
- name: VAULT_NAMESPACE
  value: {{ . | quote }}
{{- end }}
{{- if $s.vaultTransit.caBundle.existingSecret }}
- name: VAULT_CACERT
  value: /var/run/agentauth/vault-ca/ca.crt
{{- end }}
{{- end }}
{{- end -}}

{{- define "agentauth.signerVolumeMounts" -}}
{{- if eq .Values.signer.kind "local" }}
- name: root-key
  mountPath: /var/run/agentauth/root-key
  readOnly: true
{{- else if and (eq .Values.signer.kind "vault-transit") .Values.signer.vaultTransit.caBundle.existingSecret }}
- name: vault-ca
  mountPath: /var/run/agentauth/vault-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "agentauth.signerVolumes" -}}
{{- if eq .Values.signer.kind "local" }}
- name: root-key
  secret:
    secretName: {{ .Values.signer.local.existingSecret }}
    defaultMode: 256 # 0400
    items:
      - key: {{ .Values.signer.local.key }}
        path: root-key.pem
{{- else if and (eq .Values.signer.kind "vault-transit") .Values.signer.vaultTransit.caBundle.existingSecret }}
# Public certificates, not key material: readable, still read-only.
- name: vault-ca
  secret:
    secretName: {{ .Values.signer.vaultTransit.caBundle.existingSecret }}
    defaultMode: 292 # 0444
    items:
      - key: {{ .Values.signer.vaultTransit.caBundle.key }}
        path: ca.crt
{{- end }}
{{- end -}}

{{/*
ServiceAccount annotations of a pod that signs with the root key: the
cloud identity the KMS trusts (EKS IRSA, GKE Workload Identity), merged
under the account's own annotations. Include with
(dict "root" . "annotations" <map> "roleArn" <IRSA role or "">).
*/}}
{{- define "agentauth.signerAccountAnnotations" -}}
{{- $s := .root.Values.signer -}}
{{- $annotations := deepCopy (.annotations | default dict) -}}
{{- if .roleArn -}}
{{- $_ := set $annotations "eks.amazonaws.com/role-arn" .roleArn -}}
{{- end -}}
{{- if and (eq $s.kind "gcp-kms") $s.gcpKms.gcpServiceAccount -}}
{{- $_ := set $annotations "iam.gke.io/gcp-service-account" $s.gcpKms.gcpServiceAccount -}}
{{- end -}}
{{- with $annotations -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The port the root key's service is reached on: the KMS port for aws-kms and
gcp-kms, Vault's for vault-transit; empty for a local key.
*/}}
{{- define "agentauth.signerPort" -}}
{{- if has .Values.signer.kind (list "aws-kms" "gcp-kms") -}}
{{ .Values.networkPolicy.kmsPort }}
{{- else if eq .Values.signer.kind "vault-transit" -}}
{{ .Values.networkPolicy.vaultPort }}
{{- end -}}
{{- end -}}

{{/*
For gcp-kms: egress to the GKE metadata server, which hands out Workload
Identity credentials. GKE documents these two addresses as what a
NetworkPolicy must let through: 169.254.169.254:80 with Dataplane V2,
169.254.169.252:988 without.
*/}}
{{- define "agentauth.gkeMetadataEgress" -}}
{{- if eq .Values.signer.kind "gcp-kms" }}
- to:
    - ipBlock: {cidr: 169.254.169.254/32}
  ports:
    - {port: 80, protocol: TCP}
- to:
    - ipBlock: {cidr: 169.254.169.252/32}
  ports:
    - {port: 988, protocol: TCP}
{{- end }}
{{- end -}}
