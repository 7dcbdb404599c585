//! Why `agentauth dev` could not start or stopped: one variant per failing
//! step, each naming what to do about it.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A failed step of the dev run.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// A file or folder could not be read or written.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A fixed port is in use.
    #[error(
        "port {port} for the {service} is in use (another `agentauth dev`?); stop it, \
         or choose other ports with --base-port (0 picks free ones)"
    )]
    PortTaken {
        /// The service that needs the port.
        service: &'static str,
        /// The port.
        port: u16,
    },
    /// No free port could be found.
    #[error("no free loopback port: {0}")]
    NoFreePort(std::io::Error),
    /// The local control plane did not start.
    #[error("the local control plane (etcd + kube-apiserver) did not start: {0}")]
    ControlPlane(agentauth_testenv::Error),
    /// A kubeconfig could not be read or written.
    #[error("kubeconfig {}: {message}", path.display())]
    Kubeconfig {
        /// The kubeconfig.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An apiserver request failed.
    #[error("failed to {step}: {source}")]
    Kube {
        /// The step.
        step: &'static str,
        /// The apiserver's answer.
        source: kube::Error,
    },
    /// A CRD did not become `Established`.
    #[error("the CRD {0} did not become Established within 30 s")]
    NotEstablished(String),
    /// An example could not be applied.
    #[error("example {path} (built into this binary): {message}")]
    Example {
        /// The example file, relative to the repository root.
        path: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The root key could not be loaded or created.
    #[error("the root key: {0}")]
    RootKey(String),
    /// A service process could not be started.
    #[error("cannot start the {service}: {source}")]
    Spawn {
        /// The service.
        service: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A service exited while starting.
    #[error("the {service} exited during start ({status}); its last lines:\n{tail}")]
    ServiceExited {
        /// The service.
        service: &'static str,
        /// Its exit status.
        status: String,
        /// Its last output lines.
        tail: String,
    },
    /// A service did not become ready in time.
    #[error(
        "the {service} did not become ready within {}s (last: {last}); its last lines:\n{tail}",
        waited.as_secs()
    )]
    NotReady {
        /// The service.
        service: &'static str,
        /// How long it was waited for.
        waited: Duration,
        /// The last probe's failure.
        last: String,
        /// Its last output lines.
        tail: String,
    },
    /// The apiserver did not start calling the webhook.
    #[error("the apiserver did not call the registered webhook within 30 s (last: {0})")]
    WebhookNotInForce(String),
    /// A walk-through command failed.
    #[error("{0}")]
    Walkthrough(String),
    /// An HTTP client could not be built.
    #[error("cannot build an HTTP client: {0}")]
    HttpClient(String),
}

impl DevError {
    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        DevError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
