//! Shared by the integration tests: the example manifests, read into JSON
//! documents and into the typed resources.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant, Invalid};
use serde_json::Value;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every Kubernetes manifest (`*.yaml` with an `apiVersion`) under
/// `examples/`, sorted. Other YAML there is configuration of an example
/// (the MCP example's tool map).
pub fn example_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![repo_root().join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") && is_manifest(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn is_manifest(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().any(|l| l.starts_with("apiVersion:"))
}

/// The YAML documents of a file, as JSON.
pub fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One resource of any AgentAuth kind.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "test fixtures, a handful at a time; boxing would only add noise"
)]
pub enum Resource {
    Agent(Agent),
    Envelope(BehavioralEnvelope),
    Grant(CapabilityGrant),
    Approver(Approver),
}

impl Resource {
    /// Reads a document by its `kind`; the typed value serializes back to
    /// the same document (so no field was misspelled or dropped).
    pub fn parse(doc: &Value) -> Result<Resource, String> {
        fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(
            doc: &Value,
        ) -> Result<T, String> {
            let t: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
            let back = serde_json::to_value(&t).map_err(|e| e.to_string())?;
            if !written_back(doc, &back) {
                return Err(format!(
                    "loses or changes a field:\n  read  {doc}\n  wrote {back}"
                ));
            }
            Ok(t)
        }
        match doc["kind"].as_str() {
            Some("Agent") => typed(doc).map(Resource::Agent),
            Some("BehavioralEnvelope") => typed(doc).map(Resource::Envelope),
            Some("CapabilityGrant") => typed(doc).map(Resource::Grant),
            Some("Approver") => typed(doc).map(Resource::Approver),
            other => Err(format!("unknown kind {other:?}")),
        }
    }

    /// The spec's `validate()`.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            Resource::Agent(r) => r.spec.validate(),
            Resource::Envelope(r) => r.spec.validate(),
            Resource::Grant(r) => r.spec.validate(),
            Resource::Approver(r) => r.spec.validate(),
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        let meta = match self {
            Resource::Agent(r) => &r.metadata,
            Resource::Envelope(r) => &r.metadata,
            Resource::Grant(r) => &r.metadata,
            Resource::Approver(r) => &r.metadata,
        };
        meta.name.as_deref().unwrap_or("")
    }
}

/// Whether `back` (a typed value serialized again) still says everything
/// `doc` said: same scalars, same list lengths, every key kept. `back` may
/// add defaults (a rate limit's `burst: 1`).
pub fn written_back(doc: &Value, back: &Value) -> bool {
    match (doc, back) {
        (Value::Object(d), Value::Object(b)) => d
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|bv| written_back(v, bv))),
        (Value::Array(d), Value::Array(b)) => {
            d.len() == b.len() && d.iter().zip(b).all(|(d, b)| written_back(d, b))
        }
        (d, b) => d == b,
    }
}
