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
    let cases: [(&str, &str); 6] = [
        // A password in a URL would sit in a ConfigMap-like plain value.
        ("redis.url=redis://:hunter2@redis:6379", "/redis/url"),
        ("signer.kind=gcp-kms", "/signer/kind"),
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
        assert_eq!(
            workloads.len(),
            3,
            "{}: operator, verifier, webhook",
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
    let objects = render(&values_file("hostport-values.yaml"), RELEASE_NAMESPACE);
    for (workload_kind, workload, volume) in [
        ("Deployment", "agentauth-operator", "root-key"),
        ("Deployment", "agentauth-operator", "dpop-nonce"),
        ("DaemonSet", "agentauth-verifier", "dpop-nonce"),
        ("Deployment", "agentauth-webhook", "tls"),
    ] {
        let pod = &find(&objects, workload_kind, workload)["spec"]["template"]["spec"];
        let volume_spec = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == volume)
            .unwrap_or_else(|| panic!("{workload} has no volume {volume}"));
        assert_eq!(
            volume_spec["secret"]["defaultMode"], 0o400,
            "{workload}/{volume}"
        );
        let mount = pod["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume)
            .unwrap();
        assert_eq!(mount["readOnly"], true, "{workload}/{volume}");
        assert_eq!(pod["securityContext"]["fsGroup"], 65532, "{workload}");
    }
    let operator = find(&objects, "Deployment", "agentauth-operator");
    let env = operator["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(
        env.contains("secretKeyRef") && env.contains("AGENTAUTH_REDIS_PASSWORD"),
        "the Redis password comes from its Secret"
    );
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
    assert_eq!(of_kind(&objects, "ServiceMonitor").len(), 3);
}
