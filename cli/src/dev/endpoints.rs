//! Where the services of the running `agentauth dev` listen, written to
//! `<state>/run/endpoints.json` once it is ready, so the walk-through
//! commands (`agentauth dev request …` in another terminal) find them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DevError;

/// The file name inside the run folder.
const FILE: &str = "endpoints.json";

/// The URLs of a running dev system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The operator's base URL (agent API, approval API).
    pub operator: String,
    /// The WebAuthn origin the approval API accepts.
    pub approval_origin: String,
    /// verifier-a's base URL.
    pub verifier: String,
    /// Every verifier's base URL, by name (`verifier-a`, `verifier-b`).
    pub verifiers: Vec<(String, String)>,
    /// The Redis URL of the shared state, when Redis runs.
    pub redis: Option<String>,
    /// The example provider's base URL.
    pub provider: String,
    /// The example provider's audience (service provider id).
    pub provider_audience: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The operator's namespace (enrollment-token Secrets live there).
    pub system_namespace: String,
    /// The audit archiver's base URL (/metrics), when it runs (with Redis).
    #[serde(default)]
    pub archiver: Option<String>,
    /// Where the archiver seals the audit stream.
    #[serde(default)]
    pub archive_dir: Option<PathBuf>,
}

impl Endpoints {
    /// Writes them into `run_dir`.
    pub fn save(&self, run_dir: &Path) -> Result<(), DevError> {
        let path = run_dir.join(FILE);
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| DevError::Walkthrough(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| DevError::io("write", &path, e))
    }

    /// Reads those of the dev run using `state_dir`.
    pub fn load(state_dir: &Path) -> Result<Self, DevError> {
        let path = state_dir.join("run").join(FILE);
        let text = std::fs::read(&path).map_err(|_| {
            DevError::Walkthrough(format!(
                "no running `agentauth dev` uses the state folder {} (no {}); \
                 start one with ./dev.sh, from the repository root",
                state_dir.display(),
                path.display()
            ))
        })?;
        serde_json::from_slice(&text)
            .map_err(|e| DevError::Walkthrough(format!("{}: {e}", path.display())))
    }
}
