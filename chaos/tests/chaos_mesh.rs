//! The Chaos Mesh manifests (`chaos/chaos-mesh/*.yaml`), the same faults as
//! the local experiments for a real cluster, are valid: Chaos Mesh's own
//! CRDs (`ensure_chaos_mesh_crds` in scripts/deps.sh, from the Go module
//! proxy) are installed into the local apiserver, and each manifest is
//! applied as a server-side dry run with strict field validation, so an
//! unknown or misspelt field fails as surely as a schema violation. A
//! manifest with a made-up field proves the strictness is in force.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, ValidationDirective,
};

/// The folder of Chaos Mesh's CRD YAML, from the environment or the installer.
fn chaos_mesh_crds() -> PathBuf {
    if let Some(dir) = std::env::var_os("AGENTAUTH_CHAOS_MESH_CRDS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let root = agentauth_testenv::repo_root();
    let output = Command::new("bash")
        .arg("-c")
        .arg(
            "source scripts/deps.sh >/dev/null && ensure_chaos_mesh_crds >/dev/null \
             && printf %s \"$AGENTAUTH_CHAOS_MESH_CRDS\"",
        )
        .current_dir(&root)
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "ensure_chaos_mesh_crds failed (set AGENTAUTH_CHAOS_MESH_CRDS): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap())
}

fn manifests() -> Vec<(PathBuf, serde_json::Value)> {
    let dir = agentauth_testenv::repo_root()
        .join("chaos")
        .join("chaos-mesh");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let doc: serde_json::Value =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, doc)
        })
        .collect()
}

async fn dry_run(client: &kube::Client, doc: &serde_json::Value) -> Result<(), String> {
    let object: DynamicObject = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let types = object.types.clone().ok_or("no apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(&types).map_err(|e| e.to_string())?;
    // Chaos Mesh names its plurals like its kinds: podchaos, networkchaos, timechaos.
    let plural = gvk.kind.to_lowercase();
    let resource = ApiResource::from_gvk_with_plural(&gvk, &plural);
    let namespace = object.metadata.namespace.clone().ok_or("no namespace")?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
    let params = PatchParams::apply("agentauth-chaos-test")
        .dry_run()
        .validation(ValidationDirective::Strict);
    let name = object.metadata.name.clone().ok_or("no name")?;
    api.patch(&name, &params, &Patch::Apply(&object))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_chaos_mesh_manifest_passes_strict_validation() {
    let crds = chaos_mesh_crds();
    let cp = agentauth_testenv::shared().await;
    let mut installed = 0;
    for kind in [
        "podchaos",
        "networkchaos",
        "timechaos",
        "stresschaos",
        "schedules",
    ] {
        let path = crds.join(format!("chaos-mesh.org_{kind}.yaml"));
        let yaml =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        installed += cp.install_crds_yaml(&yaml).await.unwrap().len();
    }
    assert!(installed >= 5, "{installed} CRDs installed");
    let client = cp.client().unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "agentauth-system"}});
    namespaces
        .patch(
            "agentauth-system",
            &PatchParams::apply("agentauth-chaos-test"),
            &Patch::Apply(&namespace),
        )
        .await
        .unwrap();

    let manifests = manifests();
    assert!(manifests.len() >= 6, "one manifest per experiment");
    let mut refused = Vec::new();
    for (path, doc) in &manifests {
        if let Err(reason) = dry_run(&client, doc).await {
            refused.push(format!("{}: {reason}", name_of(path)));
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
    let kinds: Vec<&str> = manifests
        .iter()
        .filter_map(|(_, d)| d["kind"].as_str())
        .collect();
    for kind in ["PodChaos", "NetworkChaos", "TimeChaos"] {
        assert!(kinds.contains(&kind), "no {kind} among {kinds:?}");
    }

    // Strictness is in force: an unknown field and a wrong enum are refused.
    let (_, sample) = &manifests[0];
    let mut unknown = sample.clone();
    unknown["spec"]["killEverything"] = serde_json::json!(true);
    let error = dry_run(&client, &unknown).await.unwrap_err();
    assert!(error.contains("killEverything"), "{error}");
    let mut wrong = sample.clone();
    wrong["spec"]["mode"] = serde_json::json!("most");
    assert!(
        dry_run(&client, &wrong).await.is_err(),
        "mode: most accepted"
    );
    println!(
        "{} Chaos Mesh manifests accepted (dry run, strict); unknown field refused: {error}",
        manifests.len()
    );
}
