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

{{/* The Redis password from its Secret, for AGENTAUTH_REDIS_PASSWORD. */}}
{{- define "agentauth.redisEnv" -}}
- name: AGENTAUTH_REDIS_URL
  value: {{ .Values.redis.url | quote }}
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
