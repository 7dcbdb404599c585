//! The one error type of the harness: a variant per step that can fail, each
//! saying which file or process to look at.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why the harness could not start, reach or prepare a control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// helm could not be built or run, or refused the chart (its message says why).
    #[error("{0}")]
    Helm(String),

    /// `KUBEBUILDER_ASSETS` (or the folder `setup.sh` printed) lacks a binary.
    #[error(
        "no executable {binary} in {folder} (set KUBEBUILDER_ASSETS or run e2e/control-plane/setup.sh)"
    )]
    MissingBinary {
        /// The folder that was searched.
        folder: PathBuf,
        /// `etcd` or `kube-apiserver`.
        binary: &'static str,
    },

    /// `e2e/control-plane/setup.sh` could not be run or failed.
    #[error("e2e/control-plane/setup.sh failed ({status}); its progress is on stderr above")]
    SetupScript {
        /// How the script ended, or why it could not start.
        status: String,
    },

    /// A file or folder of the harness could not be written or read.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What was being done, as a verb phrase ("write the token file").
        action: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// No free loopback port could be reserved.
    #[error("failed to reserve a free port on 127.0.0.1")]
    NoFreePort(#[source] std::io::Error),

    /// The CA, the serving certificate or the service-account key could not be generated.
    #[error("failed to generate the control plane's certificates")]
    Certificate(#[from] rcgen::Error),

    /// A server process could not be spawned.
    #[error("failed to spawn {process}")]
    Spawn {
        /// `etcd` or `kube-apiserver`.
        process: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A server process exited while the harness was waiting for it.
    #[error("{process} exited early ({status}); the end of its log:\n{log_tail}")]
    Exited {
        /// `etcd` or `kube-apiserver`.
        process: &'static str,
        /// How it ended.
        status: ExitStatus,
        /// The last lines of its log (the file goes with the failed control plane).
        log_tail: String,
    },

    /// A server did not become ready in time.
    #[error("{process} not ready after {waited:?} ({last_error}); the end of its log:\n{log_tail}")]
    NotReady {
        /// `etcd` or `kube-apiserver`.
        process: &'static str,
        /// How long the harness waited.
        waited: Duration,
        /// The last probe failure.
        last_error: String,
        /// The last lines of its log (the file goes with the failed control plane).
        log_tail: String,
    },

    /// The kubeconfig (written by the harness or named by `AGENTAUTH_TEST_KUBECONFIG`) is unusable.
    #[error("failed to load the kubeconfig {}", path.display())]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// A `kube::Client` could not be built from the stored configuration.
    #[error("failed to build a kube client")]
    Client(#[source] kube::Error),

    /// An apiserver request failed.
    #[error("failed to {action}")]
    Api {
        /// What was being done ("create namespace test-abc12").
        action: String,
        /// The underlying error.
        #[source]
        source: kube::Error,
    },

    /// An apiserver request succeeded but its answer lacked something the harness needs.
    #[error("unexpected answer to {action}: {message}")]
    UnexpectedResponse {
        /// What was being done.
        action: String,
        /// What was missing or wrong.
        message: String,
    },

    /// A CRD file is not valid YAML for a CustomResourceDefinition.
    #[error("failed to parse {origin} as CustomResourceDefinition YAML: {message}")]
    CrdYaml {
        /// The file, or `inline YAML`.
        origin: String,
        /// What was wrong with it.
        message: String,
    },

    /// Watching a CRD for its `Established` condition failed.
    #[error("failed to watch CustomResourceDefinition {name}")]
    CrdWatch {
        /// The CRD's name (`plural.group`).
        name: String,
        /// The underlying error.
        #[source]
        source: kube::runtime::wait::Error,
    },

    /// A CRD did not report `Established` in time.
    #[error("CustomResourceDefinition {name} not Established after {waited:?}")]
    CrdNotEstablished {
        /// The CRD's name (`plural.group`).
        name: String,
        /// How long the harness waited.
        waited: Duration,
    },

    /// The shared control plane failed to start in an earlier call; the message is that failure.
    #[error("the shared control plane failed to start: {0}")]
    SharedStartFailed(String),

    /// The simulator needs a control plane this harness started (not `AGENTAUTH_TEST_KUBECONFIG`).
    #[error(
        "the simulated cluster needs a local control plane: its controller-manager signs with the apiserver's service-account key"
    )]
    SimulatorNeedsLocalControlPlane,

    /// `e2e/control-plane/setup-simulator.sh` could not be run or failed.
    #[error(
        "e2e/control-plane/setup-simulator.sh failed ({status}); its progress is on stderr above"
    )]
    SimulatorSetupScript {
        /// How the script ended, or why it could not start.
        status: String,
    },

    /// `AGENTAUTH_SIMULATOR_BIN` (or the folder `setup-simulator.sh` printed) lacks a file.
    #[error(
        "no {file} in {folder} (set AGENTAUTH_SIMULATOR_BIN or run e2e/control-plane/setup-simulator.sh)"
    )]
    MissingSimulatorFile {
        /// The folder that was searched.
        folder: PathBuf,
        /// `kube-controller-manager`, `kube-scheduler`, `kwok` or `kwok-stages.yaml`.
        file: &'static str,
    },

    /// Simulated Nodes did not become Ready and schedulable in time.
    #[error(
        "simulated nodes {nodes:?} not Ready and untainted after {waited:?}; the end of the logs:\n{log_tails}"
    )]
    SimulatedNodesNotReady {
        /// How long the harness waited.
        waited: Duration,
        /// The Nodes still waited for.
        nodes: Vec<String>,
        /// The last lines of the controller-manager's, the scheduler's and kwok's logs.
        log_tails: String,
    },

    /// A step on the test Redis Cluster failed or timed out: forming it,
    /// reading its topology, migrating a slot, waiting for a failover.
    #[error("redis cluster: failed to {action}: {message}")]
    RedisCluster {
        /// What was being done ("form the cluster", "migrate slot 42").
        action: String,
        /// What went wrong (redis-cli's answer, or what was waited for).
        message: String,
    },
}

/// Formats an error with its whole `source()` chain, for messages that outlive the error.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Some errors (kube's among them) already print their source; say it once.
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
