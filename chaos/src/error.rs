//! The one error type of the chaos harness: which step failed and why.

/// A step of starting or driving the system failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or process operation failed.
    #[error("failed to {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The test environment (control plane, Redis, proxy) failed.
    #[error("test environment: {0}")]
    Testenv(#[from] agentauth_testenv::Error),
    /// A Kubernetes call failed.
    #[error("failed to {step}: {source}")]
    Kube {
        /// What was being done.
        step: &'static str,
        /// The cause.
        source: kube::Error,
    },
    /// The agent SDK refused or failed.
    #[error("agent SDK, {step}: {message}")]
    Sdk {
        /// What was being done.
        step: &'static str,
        /// The SDK's message and code.
        message: String,
    },
    /// The software passkey (approval API) failed.
    #[error("approver, {step}: {message}")]
    Approver {
        /// What was being done.
        step: &'static str,
        /// The cause.
        message: String,
    },
    /// A service did not become ready, or something else did not happen in time.
    #[error("{what} did not happen within {seconds}s{detail}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        seconds: u64,
        /// The relevant log tail, if any.
        detail: String,
    },
    /// Anything else, with its message.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An I/O error while doing `action`.
    pub fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            action: action.into(),
            source,
        }
    }

    /// The SDK's error during `step`.
    pub fn sdk(step: &'static str, error: &agentauth::Error) -> Self {
        Error::Sdk {
            step,
            message: format!("{} ({})", error.message(), error.code_str()),
        }
    }
}
