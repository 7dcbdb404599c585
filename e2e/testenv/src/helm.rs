//! Helm, for the chart tests: the `helm` binary (built once from Go modules,
//! like the control plane) and the chart rendered into objects.
//!
//! `AGENTAUTH_HELM` names a helm binary to use; otherwise
//! `scripts/go-tool.sh` builds `helm.sh/helm/v4` into the cache folder and
//! prints its path (`./test.sh` does this before the tests, so a test never
//! waits for the build on a warm machine).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, repo_root};

/// Environment variable naming the helm binary to use.
pub const HELM_ENV: &str = "AGENTAUTH_HELM";
/// The helm release the tests build when none is given.
pub const HELM_VERSION: &str = "v4.3.2";

/// `charts/agentauth/`.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts").join("agentauth")
}

/// The helm binary: `$AGENTAUTH_HELM`, or the one `scripts/go-tool.sh` builds.
pub fn helm_binary() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(HELM_ENV) {
        return Ok(PathBuf::from(path));
    }
    let output = Command::new("bash")
        .arg(repo_root().join("scripts").join("go-tool.sh"))
        .args([
            "helm",
            "helm.sh/helm/v4",
            HELM_VERSION,
            "helm.sh/helm/v4/cmd/helm",
        ])
        .arg("-ldflags=-s -w")
        .output()
        .map_err(|e| Error::Helm(format!("cannot run scripts/go-tool.sh: {e}")))?;
    if !output.status.success() {
        return Err(Error::Helm(format!(
            "scripts/go-tool.sh could not build helm ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    ))
}

/// What one `helm` call printed.
#[derive(Debug)]
pub struct HelmOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `helm ARGS` with its config, cache and data folders in `home`, so a
/// test neither reads nor writes the user's helm settings.
pub fn helm(home: &Path, args: &[&str]) -> Result<HelmOutput, Error> {
    let output = Command::new(helm_binary()?)
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .map_err(|e| Error::Helm(format!("cannot run helm: {e}")))?;
    Ok(HelmOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// `helm template RELEASE charts/agentauth -n NAMESPACE -f VALUES... EXTRA...`,
/// parsed into one JSON object per rendered manifest (empty documents dropped).
pub fn render_chart(
    home: &Path,
    release: &str,
    namespace: &str,
    values: &[PathBuf],
    extra: &[&str],
) -> Result<Vec<serde_json::Value>, Error> {
    let chart = chart_dir();
    let chart = chart.to_string_lossy();
    let mut args = vec!["template", release, &chart, "--namespace", namespace];
    let values: Vec<String> = values
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    for file in &values {
        args.extend(["--values", file.as_str()]);
    }
    args.extend(extra);
    let output = helm(home, &args)?;
    if !output.success {
        return Err(Error::Helm(format!(
            "helm {} failed: {}",
            args.join(" "),
            output.stderr
        )));
    }
    parse_manifests(&output.stdout)
}

/// Splits a multi-document YAML stream into its non-empty documents.
pub fn parse_manifests(yaml: &str) -> Result<Vec<serde_json::Value>, Error> {
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml)
        .map_err(|e| Error::Helm(format!("helm printed YAML that does not parse: {e}")))?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// Server-side applies one rendered manifest with `params` (e.g.
/// `PatchParams::apply(manager).dry_run()`), finding its resource through
/// `discovery`; `Err` carries the apiserver's reason.
pub async fn apply_manifest(
    client: &kube::Client,
    discovery: &kube::discovery::Discovery,
    object: &serde_json::Value,
    params: &kube::api::PatchParams,
) -> Result<(), String> {
    use kube::api::{Api, DynamicObject, Patch};
    use kube::discovery::Scope;
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = discovery
        .resolve_gvk(&gvk)
        .ok_or_else(|| format!("the apiserver does not serve {gvk:?}"))?;
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => {
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .ok_or("a namespaced object without metadata.namespace")?;
            Api::namespaced_with(client.clone(), namespace, &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    api.patch(name, params, &Patch::Apply(object))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
