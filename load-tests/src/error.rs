//! What can stop a load run before it measures anything.

/// Why a load run could not be set up or carried out (threshold failures
/// are results, not errors: see [`crate::thresholds`]).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `agentauth dev` did not start, or its files could not be read.
    #[error("agentauth dev: {0}")]
    Dev(String),
    /// Creating the agents, envelopes or grants failed.
    #[error("failed to set up the fixtures: {0}")]
    Fixtures(String),
    /// The load tool refused its configuration or failed.
    #[error("goose: {0}")]
    Goose(String),
    /// A file could not be read or written.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl LoadError {
    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        LoadError::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}
