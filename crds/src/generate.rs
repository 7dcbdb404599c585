//! The CRD manifests, generated from the types: what `agentauth crds print`
//! prints and what `crds/generated/` holds (one file per CRD, kept in sync by
//! the `generated_in_sync` test).

use std::io;
use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{Agent, Approver, BehavioralEnvelope, CapabilityGrant};

/// The first line of every generated file.
pub const HEADER: &str = "# Generated from crds/src by `cargo run -p agentauth-cli -- crds write crds/generated`. Do not edit.\n";

/// Why the manifests could not be produced or written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A CRD did not serialize to YAML.
    #[error("failed to serialize the {name} CRD to YAML: {source}")]
    Serialize {
        /// The CRD's name.
        name: String,
        /// The serializer's error.
        source: serde_saphyr::SerializeError,
    },
    /// A file could not be written.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
}

/// Every AgentAuth CRD, in a fixed order.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        Agent::crd(),
        BehavioralEnvelope::crd(),
        CapabilityGrant::crd(),
        Approver::crd(),
    ]
}

/// The file name of a CRD's manifest: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// One CRD as a YAML document (without the header).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, GenerateError> {
    serde_saphyr::to_string(crd).map_err(|source| GenerateError::Serialize {
        name: crd.metadata.name.clone().unwrap_or_default(),
        source,
    })
}

/// Every CRD as one multi-document YAML stream, for `kubectl apply -f -`.
pub fn crds_yaml() -> Result<String, GenerateError> {
    let mut out = String::from(HEADER);
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&crd_yaml(&crd)?);
    }
    Ok(out)
}

/// The generated files: (file name, contents), one per CRD.
pub fn generated_files() -> Result<Vec<(String, String)>, GenerateError> {
    all_crds()
        .iter()
        .map(|crd| Ok((file_name(crd), format!("{HEADER}{}", crd_yaml(crd)?))))
        .collect()
}

/// Writes [`generated_files`] into `dir` (created if missing); returns the
/// names written.
pub fn write_dir(dir: &Path) -> Result<Vec<String>, GenerateError> {
    let write_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| GenerateError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    let mut written = Vec::new();
    for (name, contents) in generated_files()? {
        let path = dir.join(&name);
        std::fs::write(&path, contents).map_err(write_error(&path))?;
        written.push(name);
    }
    Ok(written)
}
