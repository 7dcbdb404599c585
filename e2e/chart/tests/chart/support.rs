//! What the chart tests share: the documented values files, rendering, and
//! the kinds of rendered objects.

use std::path::{Path, PathBuf};

use agentauth_testenv::helm::{chart_dir, render_chart};
use serde_json::Value;

/// The namespace `helm template` renders into when a test has no other.
pub const RELEASE_NAMESPACE: &str = "agentauth-system";

/// Every documented values file (`charts/agentauth/ci/*-values.yaml`),
/// sorted, so failures name the same file each run.
pub fn values_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("-values.yaml"))
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 7,
        "charts/agentauth/ci should document at least seven combinations, found {files:?}"
    );
    files
}

/// `charts/agentauth/ci/<name>`.
pub fn values_file(name: &str) -> PathBuf {
    chart_dir().join("ci").join(name)
}

/// The chart rendered with `values` as release `agentauth` in `namespace`.
pub fn render(values: &Path, namespace: &str) -> Vec<Value> {
    render_release(values, "agentauth", namespace)
}

/// The chart rendered with `values` as `release` in `namespace`.
pub fn render_release(values: &Path, release: &str, namespace: &str) -> Vec<Value> {
    let home = tempfile::tempdir().unwrap();
    render_chart(
        home.path(),
        release,
        namespace,
        &[values.to_path_buf()],
        &[],
    )
    .unwrap_or_else(|e| panic!("{}: {e}", values.display()))
}

/// `kind` of a rendered object.
pub fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

/// `metadata.name` of a rendered object.
pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// The rendered objects of `kind`.
pub fn of_kind<'a>(objects: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| kind(o) == wanted).collect()
}

/// The one rendered object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], wanted: &str, named: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| kind(o) == wanted && name(o) == named)
        .unwrap_or_else(|| panic!("no {wanted} {named} was rendered"))
}
