//! A kubelet-less cluster on top of a local [`ControlPlane`]: the real
//! kube-controller-manager and kube-scheduler (the apiserver's release), and
//! kwok playing the kubelets of fake Nodes, so that Deployments, DaemonSets
//! and PodDisruptionBudgets reconcile as in a cluster while no container runs.
//!
//! ```text
//!  AGENTAUTH_SIMULATOR_BIN ─┐
//!  or setup-simulator.sh ───┴▶ kube-controller-manager   Deployment ─▶ ReplicaSet ─▶ Pod
//!                              kube-scheduler            Pod ─▶ spec.nodeName (affinity, hostPort, resources)
//!                              kwok (stages from kwok)   Node ─▶ Ready + Lease; Pod ─▶ Running/Ready, pod IP
//!                                    │
//!  Simulator::start(cp, 3) ──────────┴─▶ Nodes kwok-node-{0,1,2} (annotation kwok.x-k8s.io/node=fake)
//!                                        waited for: Ready, not-ready taint gone
//! ```
//!
//! Each process runs under the same lifeline watchdog as etcd and the
//! apiserver (see `process.rs`), binds 127.0.0.1 on a free port and stops
//! when the [`Simulator`] is dropped or the test process ends. kwok manages
//! only Nodes annotated `kwok.x-k8s.io/node: fake` and uses kwok's own
//! default stages (node-initialize, node-heartbeat-with-lease, pod-ready,
//! pod-complete, pod-delete), copied next to the binaries by the setup script.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};

use crate::process::Supervised;
use crate::readiness::wait_for_port;
use crate::{ControlPlane, Error};

/// Names a folder holding `kube-controller-manager`, `kube-scheduler`, `kwok`
/// and `kwok-stages.yaml`; without it `e2e/control-plane/setup-simulator.sh`
/// builds them (minutes on the first run, instant afterwards).
pub const SIMULATOR_BIN_ENV: &str = "AGENTAUTH_SIMULATOR_BIN";

/// The annotation kwok selects the Nodes it plays the kubelet of by, and its value.
pub const FAKE_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

/// The label on every simulated Node (kwok's own convention, `type=kwok`).
pub const FAKE_NODE_LABEL: (&str, &str) = ("type", "kwok");

/// The taint the apiserver puts on a new Node and the node lifecycle
/// controller removes once the Node reports Ready.
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

/// How long a server may take to open its port.
const PORT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the Nodes may take to become Ready and untainted: kwok marks them
/// Ready at once, and the node lifecycle controller looks every 5 s.
const NODES_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts on a port another process took between reservation and bind are retried.
const START_ATTEMPTS: u32 = 3;

/// Log lines carried by a failure message.
const LOG_TAIL_LINES: usize = 40;

/// What each simulated Node offers the scheduler: a small real node, so
/// resource requests count, with room for every pod of a chart install.
const NODE_CPU: &str = "4";
const NODE_MEMORY: &str = "16Gi";
const NODE_PODS: &str = "110";

/// The binaries and the kwok stage file of a simulator.
#[derive(Debug, Clone)]
struct Binaries {
    controller_manager: PathBuf,
    scheduler: PathBuf,
    kwok: PathBuf,
    kwok_stages: PathBuf,
}

/// kube-controller-manager, kube-scheduler and kwok running against a local
/// [`ControlPlane`], with simulated Nodes; all stopped when dropped.
pub struct Simulator {
    root: PathBuf,
    nodes: Vec<String>,
    // Stopped in this order on drop: the kubelets first, then what feeds them.
    kwok: Supervised,
    scheduler: Supervised,
    controller_manager: Supervised,
    started_in: Duration,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("root", &self.root)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.kwok.stop();
        self.scheduler.stop();
        self.controller_manager.stop();
        // The watchdogs remove their folders too; this makes it synchronous.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Simulator {
    /// Starts kube-controller-manager, kube-scheduler and kwok against `cp`,
    /// creates `nodes` simulated Nodes (`kwok-node-0`, ...) and waits until
    /// every one is Ready and schedulable.
    ///
    /// `cp` must be local ([`ControlPlane::start`] without
    /// `AGENTAUTH_TEST_KUBECONFIG`): the controller-manager signs
    /// service-account tokens with the apiserver's key, read from its folder.
    /// A failure carries the tail of the failing process's log.
    pub async fn start(cp: &ControlPlane, nodes: usize) -> Result<Self, Error> {
        if !cp.is_local() {
            return Err(Error::SimulatorNeedsLocalControlPlane);
        }
        let binaries = locate().await?;
        let root_dir = tempfile::Builder::new()
            .prefix("agentauth-simulator-")
            .tempdir()
            .map_err(|source| Error::Io {
                action: "create a temporary folder in",
                path: std::env::temp_dir(),
                source,
            })?;
        let root = root_dir.path().to_path_buf();
        let spawned = Instant::now();
        let kubeconfig = cp.kubeconfig_path().to_path_buf();
        // The apiserver's folder (see control_plane.rs): its CA and the
        // private key it signs service-account tokens with.
        let api_dir = kubeconfig
            .parent()
            .map_or_else(PathBuf::new, Path::to_path_buf);

        let controller_manager = start_server("kube-controller-manager", &root, |dir, port| {
            let args = controller_manager_args(&kubeconfig, &api_dir, dir, port);
            (binaries.controller_manager.clone(), args)
        })
        .await?;
        let scheduler = start_server("kube-scheduler", &root, |dir, port| {
            (
                binaries.scheduler.clone(),
                scheduler_args(&kubeconfig, dir, port),
            )
        })
        .await?;
        let kwok = start_server("kwok", &root, |dir, port| {
            (
                PathBuf::from("env"),
                kwok_args(&binaries, &kubeconfig, dir, port),
            )
        })
        .await?;

        let mut simulator = Self {
            // From here on `Drop` stops the processes and removes the folder.
            root: root_dir.keep(),
            nodes: (0..nodes).map(|i| format!("kwok-node-{i}")).collect(),
            kwok,
            scheduler,
            controller_manager,
            started_in: Duration::ZERO,
        };
        simulator.create_nodes(cp).await?;
        simulator.wait_for_nodes(cp).await?;
        simulator.started_in = spawned.elapsed();
        tracing::info!(started_in = ?simulator.started_in, nodes, "simulated cluster ready");
        Ok(simulator)
    }

    /// The names of the simulated Nodes.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Time from spawning the controller-manager to every Node being Ready.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The last `lines` lines of each process's log, headed by its name, for
    /// printing when a test fails.
    pub fn log_tails(&self, lines: usize) -> String {
        [
            ("kube-controller-manager", &self.controller_manager),
            ("kube-scheduler", &self.scheduler),
            ("kwok", &self.kwok),
        ]
        .iter()
        .map(|(name, process)| format!("--- {name} ---\n{}", process.log_tail(lines)))
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// Creates the Nodes, capacity included: like a kubelet registering, a
    /// create may set `status`, and kwok keeps the capacity it finds there.
    async fn create_nodes(&self, cp: &ControlPlane) -> Result<(), Error> {
        let api: Api<Node> = Api::all(cp.client()?);
        for name in &self.nodes {
            api.create(&PostParams::default(), &fake_node(name))
                .await
                .map_err(|source| Error::Api {
                    action: format!("create the simulated node {name}"),
                    source,
                })?;
        }
        Ok(())
    }

    /// Waits until every Node is Ready (kwok) and no longer carries the
    /// not-ready taint (the controller-manager's node lifecycle controller).
    async fn wait_for_nodes(&mut self, cp: &ControlPlane) -> Result<(), Error> {
        let api: Api<Node> = Api::all(cp.client()?);
        let selector = format!("{}={}", FAKE_NODE_LABEL.0, FAKE_NODE_LABEL.1);
        let started = Instant::now();
        loop {
            self.controller_manager.check_running()?;
            self.scheduler.check_running()?;
            self.kwok.check_running()?;
            let listed = api
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|source| Error::Api {
                    action: "list the simulated nodes".to_owned(),
                    source,
                })?;
            let waiting: Vec<String> = self
                .nodes
                .iter()
                .filter(|name| {
                    !listed
                        .items
                        .iter()
                        .any(|n| n.metadata.name.as_ref() == Some(name) && schedulable(n))
                })
                .cloned()
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if started.elapsed() > NODES_TIMEOUT {
                return Err(Error::SimulatedNodesNotReady {
                    waited: started.elapsed(),
                    nodes: waiting,
                    log_tails: self.log_tails(LOG_TAIL_LINES),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A Node for kwok to play: annotated for it, labelled like a kubelet would.
fn fake_node(name: &str) -> Node {
    let quantities = BTreeMap::from([
        ("cpu".to_owned(), Quantity(NODE_CPU.to_owned())),
        ("memory".to_owned(), Quantity(NODE_MEMORY.to_owned())),
        ("pods".to_owned(), Quantity(NODE_PODS.to_owned())),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            annotations: Some(BTreeMap::from([(
                FAKE_NODE_ANNOTATION.0.to_owned(),
                FAKE_NODE_ANNOTATION.1.to_owned(),
            )])),
            labels: Some(BTreeMap::from([
                (FAKE_NODE_LABEL.0.to_owned(), FAKE_NODE_LABEL.1.to_owned()),
                ("kubernetes.io/hostname".to_owned(), name.to_owned()),
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
                ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            allocatable: Some(quantities.clone()),
            capacity: Some(quantities),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

/// Ready, and without the not-ready taint that keeps pods off.
fn schedulable(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|taints| taints.iter().any(|t| t.key == NOT_READY_TAINT));
    ready && !tainted
}

/// Spawns one server on a free loopback port in its own folder under `root`
/// and waits for the port; `command(dir, port)` gives the program and its
/// arguments. A port taken between reservation and bind means a new attempt.
async fn start_server(
    name: &'static str,
    root: &Path,
    command: impl Fn(&Path, u16) -> (PathBuf, Vec<String>),
) -> Result<Supervised, Error> {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        action: "create the folder",
        path: dir.clone(),
        source,
    })?;
    let mut attempt = 1;
    loop {
        let port = free_port()?;
        let (program, args) = command(&dir, port);
        let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
        let mut process =
            Supervised::spawn(name, &program, &args, dir.join(format!("{name}.log")), &dir)?;
        match wait_for_port(&mut process, port, PORT_TIMEOUT).await {
            Err(Error::Exited { log_tail, .. })
                if attempt < START_ATTEMPTS && log_tail.contains("address already in use") =>
            {
                tracing::info!(
                    process = name,
                    attempt,
                    "port taken meanwhile; starting again"
                );
                attempt += 1;
            }
            Err(error) => return Err(error),
            Ok(()) => return Ok(process),
        }
    }
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(Error::NoFreePort)?;
    Ok(listener.local_addr().map_err(Error::NoFreePort)?.port())
}

/// The simulator's binaries: `$AGENTAUTH_SIMULATOR_BIN`, else the folder
/// `setup-simulator.sh` prints (building them on its first run).
async fn locate() -> Result<Binaries, Error> {
    let folder = match std::env::var_os(SIMULATOR_BIN_ENV) {
        Some(folder) if !folder.is_empty() => PathBuf::from(folder),
        _ => tokio::task::spawn_blocking(run_setup_script)
            .await
            .map_err(|e| Error::SimulatorSetupScript {
                status: format!("the task running it failed: {e}"),
            })??,
    };
    Ok(Binaries {
        controller_manager: file_in(&folder, "kube-controller-manager")?,
        scheduler: file_in(&folder, "kube-scheduler")?,
        kwok: file_in(&folder, "kwok")?,
        kwok_stages: file_in(&folder, "kwok-stages.yaml")?,
    })
}

fn file_in(folder: &Path, file: &'static str) -> Result<PathBuf, Error> {
    let path = folder.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingSimulatorFile {
            folder: folder.to_path_buf(),
            file,
        })
    }
}

/// Runs `setup-simulator.sh`, letting its progress through to stderr (a first
/// build takes minutes and should say so), and returns the folder it prints.
fn run_setup_script() -> Result<PathBuf, Error> {
    let script = crate::repo_root().join("e2e/control-plane/setup-simulator.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::SimulatorSetupScript {
            status: format!("could not run {}: {e}", script.display()),
        })?;
    if !output.status.success() {
        return Err(Error::SimulatorSetupScript {
            status: output.status.to_string(),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().rev().find(|line| !line.trim().is_empty()) {
        Some(folder) => Ok(PathBuf::from(folder.trim())),
        None => Err(Error::SimulatorSetupScript {
            status: "it printed no folder".to_owned(),
        }),
    }
}

/// kube-controller-manager's flags: every controller, no leader election,
/// signing service-account tokens with the apiserver's key (in `api_dir`).
fn controller_manager_args(
    kubeconfig: &Path,
    api_dir: &Path,
    dir: &Path,
    port: u16,
) -> Vec<String> {
    // No --authentication/authorization-kubeconfig: only the health
    // endpoints (always open) are needed, and the delegated
    // authentication would poll for a request-header CA this
    // apiserver does not have, logging an error every few seconds.
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!(
            "--service-account-private-key-file={}",
            api_dir.join("service-account.key").display()
        ),
        format!("--root-ca-file={}", api_dir.join("ca.crt").display()),
        "--controllers=*".to_owned(),
        "--leader-elect=false".to_owned(),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", dir.display()),
    ]
}

/// kube-scheduler's flags.
fn scheduler_args(kubeconfig: &Path, dir: &Path, port: u16) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".to_owned(),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", dir.display()),
    ]
}

/// `env`'s arguments that run kwok on the simulated Nodes only.
fn kwok_args(binaries: &Binaries, kubeconfig: &Path, dir: &Path, port: u16) -> Vec<String> {
    // `env HOME=...`: kwok also loads ~/.kwok/kwok.yaml when it exists;
    // a developer's own kwok settings must not change the test.
    vec![
        format!("HOME={}", dir.display()),
        binaries.kwok.display().to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--config={}", binaries.kwok_stages.display()),
        "--manage-all-nodes=false".to_owned(),
        format!(
            "--manage-nodes-with-annotation-selector={}={}",
            FAKE_NODE_ANNOTATION.0, FAKE_NODE_ANNOTATION.1
        ),
        // Heartbeats through Leases in kube-node-lease, renewed every
        // 10 s (like a kubelet; kwokctl's setting too). kwok's default
        // is none, and then the node lifecycle controller marks every
        // Node NotReady 40 s in, and with them every Pod.
        "--node-lease-duration-seconds=40".to_owned(),
        format!("--server-address=127.0.0.1:{port}"),
        // Away from the apiserver's service range (10.0.0.0/24).
        "--cidr=10.244.0.0/16".to_owned(),
    ]
}
