//! What `helm lint` and `helm template` make of the chart: the documented
//! values files pass, the defaults alone are refused with what is missing,
//! and the rendered workloads are hardened, highly available and node-local
//! as the chart documents.

use std::process::Command;

use agentauth_testenv::helm::{chart_dir, helm, render_chart};
use agentauth_testenv::repo_root;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::support::{
    RELEASE_NAMESPACE, find, kind, name, of_kind, render, values_file, values_files,
};

#[test]
fn the_chart_ships_exactly_the_generated_crds() {
    let list = |dir: std::path::PathBuf| {
        let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p.file_name().unwrap().to_string_lossy().into_owned(), text)
            })
            .collect();
        files.sort();
        files
    };
    let generated = list(repo_root().join("crds").join("generated"));
    let shipped = list(chart_dir().join("crds"));
    assert_eq!(
        generated.iter().map(|f| &f.0).collect::<Vec<_>>(),
        shipped.iter().map(|f| &f.0).collect::<Vec<_>>(),
        "charts/agentauth/crds must hold the files of crds/generated: \
         cp crds/generated/*.yaml charts/agentauth/crds/"
    );
    for ((file, want), (_, got)) in generated.iter().zip(&shipped) {
        assert!(
            want == got,
            "charts/agentauth/crds/{file} differs from crds/generated/{file}: \
             cp crds/generated/*.yaml charts/agentauth/crds/"
        );
    }
}

#[test]
fn helm_lint_accepts_every_documented_values_file() {
    let home = tempfile::tempdir().unwrap();
    let chart = chart_dir();
    for values in values_files() {
        let out = helm(
            home.path(),
            &[
                "lint",
                "--strict",
                &chart.to_string_lossy(),
                "--values",
                &values.to_string_lossy(),
            ],
        )
        .unwrap();
        assert!(
            out.success,
            "helm lint --strict -f {}:\n{}{}",
            values.display(),
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn the_defaults_alone_are_refused_naming_each_required_value() {
    let home = tempfile::tempdir().unwrap();
    let err = render_chart(home.path(), "agentauth", RELEASE_NAMESPACE, &[], &[])
        .expect_err("the chart must not render without the values a real install needs");
    let message = err.to_string();
    for required in [
        "/publicUrl",
        "/approvals/rpId",
        "/redis/url",
        "/rootKey/publicJwk",
        "/verifier/audiences",
        "/signer/local/existingSecret",
    ] {
        assert!(
            message.contains(required),
            "the refusal should name {required}:\n{message}"
        );
    }
}

/// Values that would be unsafe or meaningless are refused by the schema,
/// not rendered into a broken install.
#[test]
fn bad_values_are_refused_by_the_schema() {
    let minimal = values_file("minimal-values.yaml");
    let cases: [(&str, &str); 13] = [
        // A password in a URL would sit in a ConfigMap-like plain value.
        ("redis.url=redis://:hunter2@redis:6379", "/redis/url"),
        // Several nodes are a cluster's seeds, and only that.
        (r"redis.url=redis://a:6379\,redis://b:6379", "/redis/url"),
        (
            r"redis.cluster=true,redis.url=redis://a:6379\,",
            "/redis/url",
        ),
        ("signer.kind=azure-key-vault", "/signer/kind"),
        // Each KMS names the key it signs with.
        ("signer.kind=gcp-kms", "/signer/gcpKms/keyVersion"),
        (
            "signer.kind=gcp-kms,signer.gcpKms.keyVersion=projects/p/cryptoKeys/root",
            "/signer/gcpKms/keyVersion",
        ),
        // Vault: Kubernetes auth as a role, never a token in the values.
        (
            "signer.kind=vault-transit,signer.vaultTransit.address=https://vault:8200,\
             signer.vaultTransit.key=root",
            "/signer/vaultTransit/role",
        ),
        (
            "signer.kind=vault-transit,signer.vaultTransit.role=agentauth,\
             signer.vaultTransit.key=root",
            "/signer/vaultTransit/address",
        ),
        ("archiver.store.kind=s3", "/archiver/store/s3/bucket"),
        ("tokens.ttl=5 minutes", "/tokens/ttl"),
        ("verifier.exposure=nodePort", "/verifier/exposure"),
        ("operator.replicas=0", "/operator/replicas"),
        (
            "webhook.tls.selfSigned.validityDays=7300",
            "/webhook/tls/selfSigned/validityDays",
        ),
    ];
    let home = tempfile::tempdir().unwrap();
    for (set, field) in cases {
        let err = render_chart(
            home.path(),
            "agentauth",
            RELEASE_NAMESPACE,
            std::slice::from_ref(&minimal),
            &["--set", set],
        )
        .expect_err(set);
        assert!(
            err.to_string().contains(field),
            "--set {set} should be refused at {field}: {err}"
        );
    }
}

/// Every pod of every documented combination runs as non-root, on a
/// read-only root filesystem, without privilege escalation or capabilities,
/// under the RuntimeDefault seccomp profile, with resource requests and a
/// memory limit.
#[test]
fn every_workload_runs_hardened() {
    for values in values_files() {
        let objects = render(&values, RELEASE_NAMESPACE);
        let workloads: Vec<&Value> = objects
            .iter()
            .filter(|o| matches!(kind(o), "Deployment" | "DaemonSet"))
            .collect();
        let mut names: Vec<&str> = workloads.iter().map(|w| name(w)).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "agentauth-archiver",
                "agentauth-operator",
                "agentauth-verifier",
                "agentauth-webhook"
            ],
            "{}",
            values.display()
        );
        for workload in workloads {
            let what = format!(
                "{} {} ({})",
                kind(workload),
                name(workload),
                values.display()
            );
            let pod = &workload["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{what}"
            );
            for container in pod["containers"].as_array().unwrap() {
                let sc = &container["securityContext"];
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{what}"
                );
                assert!(
                    container["resources"]["requests"]["cpu"].is_string(),
                    "{what}"
                );
                assert!(
                    container["resources"]["requests"]["memory"].is_string(),
                    "{what}"
                );
                assert!(
                    container["resources"]["limits"]["memory"].is_string(),
                    "{what}"
                );
                let image = container["image"].as_str().unwrap();
                assert!(
                    !image.ends_with(":latest") && image.contains(':'),
                    "{what}: image {image} must be pinned"
                );
            }
        }

        // The archiver like the others: a /tmp of its own on the read-only
        // root, and probes on the port it serves /healthz on.
        let archiver = find(&objects, "Deployment", "agentauth-archiver");
        let pod = &archiver["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(container["args"][0], "archiver", "{}", values.display());
        assert!(
            volume(pod, "tmp")["emptyDir"].is_object() && mount(pod, "tmp")["mountPath"] == "/tmp",
            "{}: the archiver's /tmp",
            values.display()
        );
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(
                container[probe]["httpGet"],
                serde_json::json!({"path": "/healthz", "port": "http"}),
                "{}: {probe}",
                values.display()
            );
        }
        assert_eq!(container["ports"][0]["containerPort"], 8090);
        assert_eq!(env(archiver, "AGENTAUTH_LISTEN"), "0.0.0.0:8090");
    }
}

/// The container's env var `name` (its literal value), panicking when unset.
fn env<'a>(workload: &'a Value, wanted: &str) -> &'a str {
    env_opt(workload, wanted).unwrap_or_else(|| panic!("{} sets no {wanted}", name(workload)))
}

/// The container's env var `name` (its literal value), if set.
fn env_opt<'a>(workload: &'a Value, wanted: &str) -> Option<&'a str> {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == wanted)
        .map(|e| e["value"].as_str().unwrap_or_default())
}

/// The pod's volume `wanted`.
fn volume<'a>(pod: &'a Value, wanted: &str) -> &'a Value {
    pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == wanted)
        .unwrap_or_else(|| panic!("no volume {wanted}"))
}

/// The first container's mount of volume `wanted`.
fn mount<'a>(pod: &'a Value, wanted: &str) -> &'a Value {
    pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == wanted)
        .unwrap_or_else(|| panic!("no mount of {wanted}"))
}

/// `redis.cluster` reaches every Redis client (operator, verifiers,
/// archiver) as `AGENTAUTH_REDIS_CLUSTER`, with the seed list as the URL;
/// without it the variable is not set (one server).
#[test]
fn redis_cluster_reaches_every_redis_client() {
    let minimal = values_file("minimal-values.yaml");
    let workloads = [
        ("Deployment", "agentauth-operator"),
        ("DaemonSet", "agentauth-verifier"),
        ("Deployment", "agentauth-archiver"),
    ];
    let plain = render(&minimal, RELEASE_NAMESPACE);
    for (workload_kind, workload) in workloads {
        let object = find(&plain, workload_kind, workload);
        assert_eq!(
            env_opt(object, "AGENTAUTH_REDIS_CLUSTER"),
            None,
            "{workload}"
        );
    }
    let home = tempfile::tempdir().unwrap();
    let seeds = "redis://redis-0.redis:6379,redis://redis-1.redis:6379";
    let clustered = render_chart(
        home.path(),
        "agentauth",
        RELEASE_NAMESPACE,
        std::slice::from_ref(&minimal),
        &[
            "--set",
            &format!("redis.cluster=true,redis.url={}", seeds.replace(',', "\\,")),
        ],
    )
    .unwrap();
    for (workload_kind, workload) in workloads {
        let object = find(&clustered, workload_kind, workload);
        assert_eq!(env(object, "AGENTAUTH_REDIS_CLUSTER"), "true", "{workload}");
        assert_eq!(env(object, "AGENTAUTH_REDIS_URL"), seeds, "{workload}");
    }
}

#[test]
fn the_operator_runs_two_replicas_spread_and_protected() {
    let objects = render(&values_file("minimal-values.yaml"), RELEASE_NAMESPACE);
    let operator = find(&objects, "Deployment", "agentauth-operator");
    assert_eq!(operator["spec"]["replicas"], 2);
    let anti = &operator["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
    assert_eq!(
        anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let pdb = find(&objects, "PodDisruptionBudget", "agentauth-operator");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        operator["spec"]["selector"]["matchLabels"]
    );
    let env = &operator["spec"]["template"]["spec"]["containers"][0]["env"];
    let lease = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "AGENTAUTH_LEASE_NAME")
        .expect("the Lease name is set");
    assert_eq!(lease["value"], "agentauth-operator");
}

#[test]
fn the_verifier_is_a_daemonset_reached_on_its_own_node() {
    let objects = render(&values_file("minimal-values.yaml"), RELEASE_NAMESPACE);
    let verifier = find(&objects, "DaemonSet", "agentauth-verifier");
    let pod = &verifier["spec"]["template"]["spec"];
    assert_eq!(
        pod["automountServiceAccountToken"], false,
        "it never calls the apiserver"
    );
    let service = find(&objects, "Service", "agentauth-verifier");
    assert_eq!(service["spec"]["internalTrafficPolicy"], "Local");

    let objects = render(&values_file("hostport-values.yaml"), RELEASE_NAMESPACE);
    let verifier = find(&objects, "DaemonSet", "agentauth-verifier");
    let port = &verifier["spec"]["template"]["spec"]["containers"][0]["ports"][0];
    assert_eq!(port["hostPort"], 18081);
    let service = find(&objects, "Service", "agentauth-verifier");
    assert_eq!(
        service["spec"]["clusterIP"], "None",
        "only a headless Service for scraping"
    );
}

/// Key material is mounted read-only with mode 0400 (group-readable through
/// fsGroup only), never passed in the environment.
#[test]
fn key_secrets_are_mounted_read_only_with_mode_0400() {
    let hostport = render(&values_file("hostport-values.yaml"), RELEASE_NAMESPACE);
    let gcp = render(&values_file("gcp-kms-values.yaml"), RELEASE_NAMESPACE);
    for (objects, workload_kind, workload, volume_name) in [
        (&hostport, "Deployment", "agentauth-operator", "root-key"),
        (&hostport, "Deployment", "agentauth-operator", "dpop-nonce"),
        (&hostport, "DaemonSet", "agentauth-verifier", "dpop-nonce"),
        (&hostport, "Deployment", "agentauth-webhook", "tls"),
        // The archiver signs checkpoints with the same root key.
        (&hostport, "Deployment", "agentauth-archiver", "root-key"),
        (&gcp, "Deployment", "agentauth-archiver", "s3-credentials"),
    ] {
        let what = format!("{workload}/{volume_name}");
        let pod = &find(objects, workload_kind, workload)["spec"]["template"]["spec"];
        assert_eq!(
            volume(pod, volume_name)["secret"]["defaultMode"],
            0o400,
            "{what}"
        );
        assert_eq!(mount(pod, volume_name)["readOnly"], true, "{what}");
        assert_eq!(pod["securityContext"]["fsGroup"], 65532, "{workload}");
    }
    // The operator's and the archiver's key mounts are the same (one helper).
    let pod = |workload: &str| &find(&hostport, "Deployment", workload)["spec"]["template"]["spec"];
    assert_eq!(
        volume(pod("agentauth-operator"), "root-key"),
        volume(pod("agentauth-archiver"), "root-key")
    );
    assert_eq!(
        mount(pod("agentauth-operator"), "root-key"),
        mount(pod("agentauth-archiver"), "root-key")
    );
    for workload in ["agentauth-operator", "agentauth-archiver"] {
        let all_env = find(&hostport, "Deployment", workload)["spec"]["template"]["spec"]
            ["containers"][0]["env"]
            .to_string();
        assert!(
            all_env.contains("secretKeyRef") && all_env.contains("AGENTAUTH_REDIS_PASSWORD"),
            "{workload}: the Redis password comes from its Secret"
        );
    }
}

/// Without cert-manager the chart generates a CA and a serving certificate:
/// the certificate must verify against the CA the apiserver is given, name
/// the webhook Service, and expire after the documented validity.
#[test]
fn the_generated_webhook_certificate_is_valid_for_the_service() {
    let objects = render(&values_file("minimal-values.yaml"), RELEASE_NAMESPACE);
    let secret = find(&objects, "Secret", "agentauth-webhook-tls");
    let dir = tempfile::tempdir().unwrap();
    let decode = |key: &str| {
        let pem = STANDARD
            .decode(secret["data"][key].as_str().unwrap())
            .unwrap();
        let path = dir.path().join(key);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let ca = decode("ca.crt");
    let crt = decode("tls.crt");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let verified = openssl(&[
        "verify",
        "-CAfile",
        &ca.to_string_lossy(),
        &crt.to_string_lossy(),
    ]);
    assert!(verified.contains(": OK"), "{verified}");
    let text = openssl(&[
        "x509",
        "-in",
        &crt.to_string_lossy(),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(
        text.contains("DNS:agentauth-webhook.agentauth-system.svc"),
        "the certificate must name the Service: {text}"
    );
    // Valid for 365 days: still valid in 364, expired in 366.
    openssl(&[
        "x509",
        "-in",
        &crt.to_string_lossy(),
        "-noout",
        "-checkend",
        &(364 * 86_400).to_string(),
    ]);
    let late = Command::new("openssl")
        .args([
            "x509",
            "-in",
            &crt.to_string_lossy(),
            "-noout",
            "-checkend",
            &(366 * 86_400).to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        !late.status.success(),
        "the certificate must expire within 366 days"
    );

    let ca_b64 = secret["data"]["ca.crt"].as_str().unwrap();
    for configuration in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let webhook = &find(&objects, configuration, "agentauth-webhook")["webhooks"][0];
        assert_eq!(
            webhook["clientConfig"]["caBundle"], ca_b64,
            "{configuration}"
        );
        assert_eq!(
            webhook["failurePolicy"], "Fail",
            "{configuration} fails closed"
        );
    }
}

#[test]
fn with_cert_manager_the_ca_is_injected_not_generated() {
    let objects = render(&values_file("monitoring-values.yaml"), RELEASE_NAMESPACE);
    assert!(
        of_kind(&objects, "Secret").is_empty(),
        "cert-manager writes the Secret"
    );
    let certificate = find(&objects, "Certificate", "agentauth-webhook");
    assert_eq!(certificate["spec"]["secretName"], "agentauth-webhook-tls");
    assert_eq!(
        certificate["spec"]["issuerRef"]["name"],
        "agentauth-webhook"
    );
    find(&objects, "Issuer", "agentauth-webhook");
    for configuration in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let object = find(&objects, configuration, "agentauth-webhook");
        assert_eq!(
            object["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "agentauth-system/agentauth-webhook"
        );
        assert!(object["webhooks"][0]["clientConfig"]["caBundle"].is_null());
    }

    let objects = render(
        &values_file("cert-manager-issuer-values.yaml"),
        RELEASE_NAMESPACE,
    );
    assert!(
        of_kind(&objects, "Issuer").is_empty(),
        "the cluster's own issuer is used"
    );
    let certificate = find(&objects, "Certificate", "agentauth-webhook");
    assert_eq!(certificate["spec"]["issuerRef"]["kind"], "ClusterIssuer");
    assert!(of_kind(&objects, "NetworkPolicy").is_empty());
}

/// The chart's admission rules are the ones `agentauth dev` and the webhook
/// tests register (webhook/src/registration.rs): a drift would leave a
/// cluster install checking less than the tests do.
#[test]
fn the_admission_rules_are_those_the_webhook_is_tested_with() {
    use agentauth_webhook::registration::{
        Registration, mutating_webhook_configuration, validating_webhook_configuration,
    };
    let objects = render(&values_file("minimal-values.yaml"), RELEASE_NAMESPACE);
    let tested = Registration {
        name: "agentauth-webhook".into(),
        url: "https://127.0.0.1:1/validate".into(),
        ca_bundle_pem: String::new(),
        namespace_selector: None,
    };
    let compare = |rendered: &Value, tested: Value| {
        for field in [
            "rules",
            "failurePolicy",
            "sideEffects",
            "timeoutSeconds",
            "matchPolicy",
            "name",
        ] {
            assert_eq!(
                rendered["webhooks"][0][field], tested["webhooks"][0][field],
                "{field}"
            );
        }
    };
    compare(
        find(
            &objects,
            "ValidatingWebhookConfiguration",
            "agentauth-webhook",
        ),
        serde_json::to_value(validating_webhook_configuration(&tested)).unwrap(),
    );
    compare(
        find(
            &objects,
            "MutatingWebhookConfiguration",
            "agentauth-webhook",
        ),
        serde_json::to_value(mutating_webhook_configuration(&tested)).unwrap(),
    );
}

#[test]
fn the_prometheus_rule_is_the_plain_rules_file() {
    let objects = render(&values_file("monitoring-values.yaml"), RELEASE_NAMESPACE);
    let rule = find(&objects, "PrometheusRule", "agentauth");
    let file =
        std::fs::read_to_string(chart_dir().join("files").join("prometheus-rules.yaml")).unwrap();
    let plain: Value = agentauth_testenv::helm::parse_manifests(&file)
        .unwrap()
        .remove(0);
    assert_eq!(rule["spec"]["groups"], plain["groups"]);
    assert_eq!(of_kind(&objects, "ServiceMonitor").len(), 4);
    // The archiver's is found by its Service, so its job is that Service's name.
    let monitor = find(&objects, "ServiceMonitor", "agentauth-archiver");
    let service = find(&objects, "Service", "agentauth-archiver");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"]
    );
    for (label, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&service["metadata"]["labels"][label], value, "{label}");
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(service["spec"]["ports"][0]["name"], "http");
    assert_eq!(service["spec"]["ports"][0]["port"], 8090);
}

/// The archive on a ReadWriteOnce claim runs one archiver, replaced rather
/// than rolled (two pods would wait on one volume); in S3 it runs two,
/// spread and protected by a budget, with no claim.
#[test]
fn the_archiver_runs_one_replica_on_a_claim_and_two_on_s3() {
    let objects = render(&values_file("minimal-values.yaml"), RELEASE_NAMESPACE);
    let archiver = find(&objects, "Deployment", "agentauth-archiver");
    assert_eq!(archiver["spec"]["replicas"], 1);
    assert_eq!(archiver["spec"]["strategy"]["type"], "Recreate");
    let claim = find(&objects, "PersistentVolumeClaim", "agentauth-archiver");
    assert_eq!(
        claim["spec"]["accessModes"],
        serde_json::json!(["ReadWriteOnce"])
    );
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "10Gi");
    assert!(
        claim["spec"]["storageClassName"].is_null(),
        "the cluster's default class"
    );
    assert_eq!(
        claim["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
        "uninstalling must not delete the audit evidence"
    );
    let pod = &archiver["spec"]["template"]["spec"];
    assert_eq!(
        volume(pod, "archive")["persistentVolumeClaim"]["claimName"],
        "agentauth-archiver"
    );
    assert_eq!(
        mount(pod, "archive")["mountPath"],
        env(archiver, "AGENTAUTH_ARCHIVE_DIR")
    );
    assert_eq!(env_opt(archiver, "AGENTAUTH_ARCHIVE_S3_BUCKET"), None);
    assert!(
        of_kind(&objects, "PodDisruptionBudget")
            .iter()
            .all(|p| name(p) != "agentauth-archiver"),
        "a budget for one replica would block every drain"
    );

    let objects = render(&values_file("gcp-kms-values.yaml"), RELEASE_NAMESPACE);
    let archiver = find(&objects, "Deployment", "agentauth-archiver");
    assert_eq!(archiver["spec"]["replicas"], 2);
    assert!(
        archiver["spec"]["strategy"].is_null(),
        "rolling: a new replica waits for the lease"
    );
    assert!(of_kind(&objects, "PersistentVolumeClaim").is_empty());
    let pod = &archiver["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["persistentVolumeClaim"].is_null())
    );
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            ["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(
        env(archiver, "AGENTAUTH_ARCHIVE_S3_BUCKET"),
        "acme-agentauth-audit"
    );
    assert_eq!(
        env(archiver, "AGENTAUTH_ARCHIVE_S3_PREFIX"),
        "prod/agentauth/audit/"
    );
    assert_eq!(env(archiver, "AGENTAUTH_ARCHIVE_S3_REGION"), "eu-west-1");
    assert_eq!(
        env(archiver, "AWS_SHARED_CREDENTIALS_FILE"),
        format!(
            "{}/credentials",
            mount(pod, "s3-credentials")["mountPath"].as_str().unwrap()
        )
    );
    assert_eq!(env_opt(archiver, "AGENTAUTH_ARCHIVE_DIR"), None);
    let budget = find(&objects, "PodDisruptionBudget", "agentauth-archiver");
    assert_eq!(budget["spec"]["minAvailable"], 1);
    assert_eq!(
        budget["spec"]["selector"]["matchLabels"],
        archiver["spec"]["selector"]["matchLabels"]
    );

    // Off: nothing of the archiver is rendered.
    let home = tempfile::tempdir().unwrap();
    let objects = render_chart(
        home.path(),
        "agentauth",
        RELEASE_NAMESPACE,
        &[values_file("minimal-values.yaml")],
        &["--set", "archiver.enabled=false"],
    )
    .unwrap();
    let left: Vec<String> = objects
        .iter()
        .filter(|o| name(o).contains("archiver"))
        .map(|o| format!("{} {}", kind(o), name(o)))
        .collect();
    assert!(
        left.is_empty(),
        "archiver.enabled=false still renders {left:?}"
    );
}

/// Each root-key signer sets the flags signer/src/select.rs reads, the same
/// in the operator and the archiver (they share the helper), and its
/// cloud identity on both ServiceAccounts.
#[test]
fn each_signer_renders_its_flags_in_the_operator_and_the_archiver() {
    let gcp = render(&values_file("gcp-kms-values.yaml"), RELEASE_NAMESPACE);
    let vault = render(&values_file("vault-transit-values.yaml"), RELEASE_NAMESPACE);
    let aws = render(&values_file("aws-kms-values.yaml"), RELEASE_NAMESPACE);
    for workload in ["agentauth-operator", "agentauth-archiver"] {
        let deployment = find(&gcp, "Deployment", workload);
        assert_eq!(env(deployment, "AGENTAUTH_SIGNER"), "gcp-kms", "{workload}");
        assert_eq!(
            env(deployment, "AGENTAUTH_GCP_KMS_KEY_VERSION"),
            "projects/acme-security/locations/europe-west1/keyRings/agentauth/cryptoKeys/root/cryptoKeyVersions/1",
            "{workload}"
        );
        assert_eq!(
            env_opt(deployment, "AGENTAUTH_ROOT_KEY_FILE"),
            None,
            "{workload}"
        );
        let account = find(&gcp, "ServiceAccount", workload);
        assert_eq!(
            account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"],
            "agentauth-signer@acme-security.iam.gserviceaccount.com",
            "{workload}: GKE Workload Identity"
        );

        let deployment = find(&vault, "Deployment", workload);
        for (var, value) in [
            ("AGENTAUTH_SIGNER", "vault-transit"),
            ("VAULT_ADDR", "https://vault.vault.svc:8200"),
            ("AGENTAUTH_VAULT_KEY", "agentauth-root"),
            ("AGENTAUTH_VAULT_TRANSIT_MOUNT", "transit"),
            ("AGENTAUTH_VAULT_ROLE", "agentauth"),
            ("VAULT_CACERT", "/var/run/agentauth/vault-ca/ca.crt"),
        ] {
            assert_eq!(env(deployment, var), value, "{workload}: {var}");
        }
        assert_eq!(env_opt(deployment, "VAULT_TOKEN"), None, "{workload}");
        assert_eq!(env_opt(deployment, "VAULT_NAMESPACE"), None, "{workload}");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(volume(pod, "vault-ca")["secret"]["secretName"], "vault-ca");
        assert_eq!(mount(pod, "vault-ca")["readOnly"], true, "{workload}");
        assert_eq!(
            mount(pod, "vault-ca")["mountPath"],
            "/var/run/agentauth/vault-ca",
            "{workload}"
        );

        let deployment = find(&aws, "Deployment", workload);
        assert_eq!(env(deployment, "AGENTAUTH_SIGNER"), "aws-kms", "{workload}");
        assert_eq!(
            env(deployment, "AGENTAUTH_KMS_REGION"),
            "eu-west-1",
            "{workload}"
        );
        assert_eq!(
            find(&aws, "ServiceAccount", workload)["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
            "arn:aws:iam::111122223333:role/agentauth-operator",
            "{workload}: the KMS key's IRSA role (no bucket role given)"
        );
    }
    // The operator's signing-mode flags are its own, not the archiver's.
    assert_eq!(
        env_opt(
            find(&aws, "Deployment", "agentauth-archiver"),
            "AGENTAUTH_SIGNING_MODE"
        ),
        None
    );

    // Egress: the KMS port, or Vault's, from both; GKE's metadata server for gcp-kms.
    let egress_ports = |objects: &[Value], policy: &str| -> Vec<i64> {
        let mut ports: Vec<i64> = find(objects, "NetworkPolicy", policy)["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rule| rule["ports"].as_array().unwrap().iter())
            .map(|p| p["port"].as_i64().unwrap())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    };
    assert_eq!(egress_ports(&vault, "agentauth-archiver"), [53, 6379, 8200]);
    assert!(egress_ports(&vault, "agentauth-operator").contains(&8200));
    assert_eq!(
        egress_ports(&gcp, "agentauth-archiver"),
        [53, 80, 443, 988, 6379]
    );
    assert!(egress_ports(&gcp, "agentauth-operator").contains(&988));
    let minimal = render(&values_file("minimal-values.yaml"), RELEASE_NAMESPACE);
    assert_eq!(
        egress_ports(&minimal, "agentauth-archiver"),
        [53, 6379],
        "a local key and a volume: DNS and Redis only, no apiserver"
    );
}
