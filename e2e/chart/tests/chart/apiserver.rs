//! Every manifest of every documented values combination, submitted to the
//! real kube-apiserver as a server-side dry run: schema validation of the
//! built-in kinds, of our CRDs and of the cert-manager and Prometheus
//! Operator CRDs the chart can use, defaulting, and admission, without
//! persisting anything.
//!
//! The third-party CRDs are their projects' own files, taken from the Go
//! module proxy (the only place this machine can fetch them from); nothing of
//! theirs is committed here.

use std::path::PathBuf;
use std::process::Command;

use agentauth_testenv::ControlPlane;
use agentauth_testenv::helm::apply_manifest;
use kube::api::PatchParams;
use kube::discovery::Discovery;
use serde_json::Value;

use super::support::{kind, name, render, values_files};

/// `module@version` and the CRD files of it that the chart's objects need.
const THIRD_PARTY_CRDS: [(&str, &[&str]); 2] = [
    (
        "github.com/cert-manager/cert-manager@v1.19.1",
        &[
            "deploy/crds/cert-manager.io_certificates.yaml",
            "deploy/crds/cert-manager.io_issuers.yaml",
        ],
    ),
    (
        "github.com/prometheus-operator/prometheus-operator@v0.87.1",
        &[
            "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
            "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
        ],
    ),
];

/// The folder `go mod download` unpacked `module` into.
fn module_dir(module: &str) -> PathBuf {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("go")
        .args(["mod", "download", "-json", module])
        .current_dir(work.path())
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("go is needed to fetch the third-party CRDs");
    let info: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "go mod download {module}: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    PathBuf::from(
        info["Dir"]
            .as_str()
            .unwrap_or_else(|| panic!("go mod download {module}: {info}")),
    )
}

async fn install_third_party_crds(cp: &ControlPlane) {
    for (module, files) in THIRD_PARTY_CRDS {
        let dir = module_dir(module);
        for file in files {
            let yaml = std::fs::read_to_string(dir.join(file)).unwrap();
            cp.install_crds_yaml(&yaml)
                .await
                .unwrap_or_else(|e| panic!("{module}/{file}: {e}"));
        }
    }
}

#[tokio::test]
async fn every_rendered_manifest_is_accepted_by_the_apiserver() {
    let cp = agentauth_testenv::shared().await;
    cp.install_crds(&agentauth_testenv::generated_crds_dir())
        .await
        .unwrap();
    install_third_party_crds(cp).await;
    let client = cp.client().unwrap();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();

    let dry_run = PatchParams::apply("agentauth-chart-test").dry_run();
    let mut accepted = 0;
    let mut refused = Vec::new();
    for values in values_files() {
        let namespace = cp.test_namespace("chart").await.unwrap();
        let objects = render(&values, &namespace);
        for object in &objects {
            match apply_manifest(&client, &discovery, object, &dry_run).await {
                Ok(()) => accepted += 1,
                Err(reason) => refused.push(format!(
                    "{} {} ({}): {reason}",
                    kind(object),
                    name(object),
                    values.display()
                )),
            }
        }
    }
    assert!(
        refused.is_empty(),
        "the apiserver refused rendered manifests:\n{}",
        refused.join("\n")
    );
    println!("rendered manifests accepted by the apiserver (dry run): {accepted}");
    assert!(
        accepted >= 200,
        "seven combinations render over 200 objects, got {accepted}"
    );
}
