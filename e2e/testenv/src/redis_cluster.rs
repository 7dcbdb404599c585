//! A real Redis Cluster for tests: six `redis-server --cluster-enabled yes`
//! on free loopback ports (three masters, one replica each), under the same
//! lifeline watchdog as [`RedisServer`](crate::RedisServer), so none
//! outlives the test process.
//!
//! ```text
//!  RedisCluster::start ─▶ 6 × redis-server --cluster-enabled yes --cluster-node-timeout 1000
//!        │                  (port P, bus port B: both reserved free; no persistence)
//!        ├─ CLUSTER ADDSLOTSRANGE   node 0: 0-5460, node 1: 5461-10922, node 2: 10923-16383
//!        ├─ CLUSTER MEET            node 0 meets the others
//!        ├─ CLUSTER REPLICATE       node 3 → 0, 4 → 1, 5 → 2
//!        └─ wait: cluster_state:ok on every node, same masters everywhere, replicas in sync
//!
//!  helpers: seeds()  master_of(slot)  kill_and_await_promotion(node)
//!           begin_migration(slot, to) → migrate_keys(n) → finish()   (ASK while half-way, MOVED after)
//! ```
//!
//! The cluster is driven with `redis-cli` (next to `redis-server`, else on
//! `PATH`, Debian package `redis-tools`): the harness needs no Redis client
//! library of its own. A short node timeout (1 s) makes a failover take
//! about two seconds, so fault tests stay short.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::Supervised;
use crate::redis::{free_port, locate, spawn_server};

/// Masters, each with one replica.
const MASTERS: usize = 3;

/// `cluster-node-timeout`: how long a master may be unreachable before its
/// replica takes over (plus a few hundred ms of election).
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long forming the cluster, a failover or a slot move may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts whose reserved ports were taken meanwhile are retried.
const START_ATTEMPTS: u32 = 3;

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// A six-node Redis Cluster started for a test; stopped when dropped.
pub struct RedisCluster {
    binary: PathBuf,
    cli: PathBuf,
    /// One folder per node; removed on drop.
    root: PathBuf,
    nodes: Vec<Node>,
}

struct Node {
    port: u16,
    bus_port: u16,
    /// Its cluster node id (`CLUSTER MYID`).
    id: String,
    server: Option<Supervised>,
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("seeds", &self.seeds())
            .field(
                "running",
                &self
                    .nodes
                    .iter()
                    .map(|n| n.server.is_some())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A slot on its way from one master to another: keys move in steps, and
/// meanwhile the source answers `ASK` for the keys it no longer holds.
#[derive(Clone, Debug)]
pub struct SlotMigration {
    /// The slot.
    pub slot: u16,
    /// The node index of the master giving it.
    pub from: usize,
    /// The node index of the master taking it.
    pub to: usize,
}

impl RedisCluster {
    /// Starts six nodes, forms the cluster and waits until every node
    /// reports `cluster_state:ok` and every replica is in sync.
    pub async fn start() -> Result<Self, Error> {
        let binary = locate()?;
        let cli = locate_cli(&binary)?;
        let root = tempfile::Builder::new()
            .prefix("agentauth-redis-cluster-")
            .tempdir()
            .map_err(|source| Error::Io {
                action: "create a temporary folder in",
                path: std::env::temp_dir(),
                source,
            })?
            // From here on `Drop` removes it.
            .keep();
        let mut cluster = Self {
            binary,
            cli,
            root,
            nodes: Vec::new(),
        };
        let mut taken = HashSet::new();
        for index in 0..2 * MASTERS {
            let node = cluster.spawn_node(index, &mut taken).await?;
            cluster.nodes.push(node);
        }
        cluster.form().await?;
        Ok(cluster)
    }

    /// The URL of every node, comma-separated: the seed list of
    /// `RedisConfig { cluster: true, .. }`.
    pub fn seeds(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `redis://127.0.0.1:<port>/` of node `index` (0–2 start as masters,
    /// 3–5 as their replicas).
    pub fn url(&self, index: usize) -> String {
        let port = self.nodes.get(index).map_or(0, |n| n.port);
        format!("redis://127.0.0.1:{port}/")
    }

    /// The number of nodes (6).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always `false`: a cluster has nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether node `index` is running.
    pub fn is_running(&self, index: usize) -> bool {
        self.nodes.get(index).is_some_and(|n| n.server.is_some())
    }

    /// The hash slot of `key`: CRC16 (XMODEM) of its hash tag (the part
    /// between the first `{` and the next `}`, if not empty), else of the
    /// whole key, modulo 16384.
    pub fn slot_of(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
            let rest = bytes.get(open + 1..)?;
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| rest.get(..close)).flatten()
        });
        crc16(tagged.unwrap_or(bytes)) % SLOTS
    }

    /// The node index of the master serving `slot`, as a live node sees it.
    pub fn master_of(&self, slot: u16) -> Result<usize, Error> {
        let action = format!("find the master of slot {slot}");
        let view = self.topology(&action)?;
        view.iter()
            .find(|n| n.is_master() && n.serves(slot))
            .and_then(|n| self.index_of_port(n.port))
            .ok_or_else(|| cluster_error(&action, "no live master serves it"))
    }

    /// The node index of a replica of the master `master`.
    pub fn replica_of(&self, master: usize) -> Result<usize, Error> {
        let action = format!("find a replica of node {master}");
        let id = self.node(master, &action)?.id.clone();
        let view = self.topology(&action)?;
        view.iter()
            .find(|n| n.master_id == id && !n.failed())
            .and_then(|n| self.index_of_port(n.port))
            .ok_or_else(|| cluster_error(&action, "it has none"))
    }

    /// Kills node `index` with SIGKILL, like a crash. Does nothing if it is
    /// not running.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut server) = self.nodes.get_mut(index).and_then(|n| n.server.take()) {
            server.stop();
        }
    }

    /// Kills the master `index` and waits until a replica serves its slots
    /// and every live node reports `cluster_state:ok`; returns the new
    /// master's index and how long that took after the kill.
    pub async fn kill_and_await_promotion(
        &mut self,
        index: usize,
    ) -> Result<(usize, Duration), Error> {
        let action = format!("fail over master {index}");
        let view = self.topology(&action)?;
        let port = self.node(index, &action)?.port;
        let Some(slot) = view
            .iter()
            .find(|n| n.port == port && n.is_master())
            .and_then(|n| n.slots.first().map(|range| range.0))
        else {
            return Err(cluster_error(&action, "it is not a master with slots"));
        };
        // Timed from the kill itself (the server dies within milliseconds);
        // the watchdog's clean-up is waited for off the async runtime, so
        // that the test's own traffic keeps flowing meanwhile.
        let killed = Instant::now();
        if let Some(server) = self.nodes.get_mut(index).and_then(|n| n.server.take()) {
            let stopped = tokio::task::spawn_blocking(move || drop(server)).await;
            if let Err(e) = stopped {
                return Err(cluster_error(
                    &action,
                    format!("stopping the node failed: {e}"),
                ));
            }
        }
        let promoted = self
            .wait_until(&action, || {
                let master = self.master_of(slot).ok().filter(|&m| m != index);
                Ok(master.filter(|_| self.all_ok()))
            })
            .await?;
        Ok((promoted, killed.elapsed()))
    }

    /// Starts moving `slot` to the master `to`: the target imports it, the
    /// source migrates it. Until [`RedisCluster::finish`], keys not yet
    /// moved are served by the source, moved ones by the target (after
    /// `ASK`).
    pub fn begin_migration(&self, slot: u16, to: usize) -> Result<SlotMigration, Error> {
        let action = format!("begin migrating slot {slot} to node {to}");
        let from = self.master_of(slot)?;
        if from == to {
            return Err(cluster_error(&action, "the node already serves it"));
        }
        let from_id = self.node(from, &action)?.id.clone();
        let to_id = self.node(to, &action)?.id.clone();
        self.cli_ok(
            to,
            &action,
            &[
                "CLUSTER",
                "SETSLOT",
                &slot.to_string(),
                "IMPORTING",
                &from_id,
            ],
        )?;
        self.cli_ok(
            from,
            &action,
            &["CLUSTER", "SETSLOT", &slot.to_string(), "MIGRATING", &to_id],
        )?;
        Ok(SlotMigration { slot, from, to })
    }

    /// Moves up to `count` keys of a migrating slot to its target; returns
    /// how many moved.
    pub fn migrate_keys(&self, migration: &SlotMigration, count: usize) -> Result<usize, Error> {
        let action = format!("migrate keys of slot {}", migration.slot);
        let listed = self.cli(
            migration.from,
            &action,
            &[
                "CLUSTER",
                "GETKEYSINSLOT",
                &migration.slot.to_string(),
                &count.to_string(),
            ],
        )?;
        let keys: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let to_port = self.node(migration.to, &action)?.port.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
        args.extend(keys.iter().copied());
        self.cli_ok(migration.from, &action, &args)?;
        Ok(keys.len())
    }

    /// Moves the rest of the slot's keys and gives the slot to the target
    /// on every master (the source then answers `MOVED`).
    pub fn finish(&self, migration: &SlotMigration) -> Result<(), Error> {
        let action = format!("finish migrating slot {}", migration.slot);
        while self.migrate_keys(migration, 100)? > 0 {}
        let to_id = self.node(migration.to, &action)?.id.clone();
        let slot = migration.slot.to_string();
        // The target first, then the source (DOCS: cluster-tutorial, resharding).
        self.cli_ok(
            migration.to,
            &action,
            &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id],
        )?;
        self.cli_ok(
            migration.from,
            &action,
            &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id],
        )?;
        let view = self.topology(&action)?;
        for node in view.iter().filter(|n| n.is_master()) {
            if let Some(index) = self.index_of_port(node.port)
                && index != migration.to
                && index != migration.from
            {
                self.cli_ok(
                    index,
                    &action,
                    &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id],
                )?;
            }
        }
        Ok(())
    }

    /// Moves `slot` to the master `to`, keys and all.
    pub fn migrate_slot(&self, slot: u16, to: usize) -> Result<(), Error> {
        let migration = self.begin_migration(slot, to)?;
        self.finish(&migration)
    }

    /// `redis-cli` against node `index`: its raw output, or an error for an
    /// error reply.
    pub fn cli(&self, index: usize, action: &str, args: &[&str]) -> Result<String, Error> {
        let port = self.node(index, action)?.port;
        let output = Command::new(&self.cli)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .map_err(|source| Error::Spawn {
                process: "redis-cli",
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let first = stdout.lines().next().unwrap_or_default();
        let error_reply = [
            "ERR",
            "MOVED",
            "ASK",
            "CLUSTERDOWN",
            "IOERR",
            "BUSYKEY",
            "TRYAGAIN",
            "NOAUTH",
            "READONLY",
            "LOADING",
        ]
        .iter()
        .any(|code| first.starts_with(&format!("{code} ")));
        if !output.status.success() || error_reply || first.starts_with("Could not connect") {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(cluster_error(
                action,
                format!("redis-cli -p {port} {}: {stdout}{stderr}", args.join(" ")),
            ));
        }
        Ok(stdout)
    }

    fn cli_ok(&self, index: usize, action: &str, args: &[&str]) -> Result<(), Error> {
        self.cli(index, action, args).map(drop)
    }

    fn node(&self, index: usize, action: &str) -> Result<&Node, Error> {
        self.nodes
            .get(index)
            .ok_or_else(|| cluster_error(action, format!("there is no node {index}")))
    }

    fn index_of_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port == port)
    }

    /// `CLUSTER NODES` of the first live node that answers.
    fn topology(&self, action: &str) -> Result<Vec<NodeView>, Error> {
        let mut last = cluster_error(action, "no node is running");
        for index in (0..self.nodes.len()).filter(|&i| self.is_running(i)) {
            match self.cli(index, action, &["CLUSTER", "NODES"]) {
                Ok(text) => return Ok(text.lines().filter_map(NodeView::parse).collect()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Whether every live node reports `cluster_state:ok`.
    fn all_ok(&self) -> bool {
        (0..self.nodes.len())
            .filter(|&i| self.is_running(i))
            .all(|i| {
                self.cli(i, "read CLUSTER INFO", &["CLUSTER", "INFO"])
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            })
    }

    /// Polls `check` every 20 ms until it answers `Some`, at most [`STEP_TIMEOUT`].
    async fn wait_until<T>(
        &self,
        action: &str,
        mut check: impl FnMut() -> Result<Option<T>, Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        loop {
            let last = match check() {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => "not yet".to_owned(),
                Err(e) => e.to_string(),
            };
            if started.elapsed() > STEP_TIMEOUT {
                return Err(cluster_error(
                    action,
                    format!("not done after {STEP_TIMEOUT:?} ({last})"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Assigns slots, introduces the nodes, attaches the replicas, and waits
    /// until the cluster is whole.
    async fn form(&mut self) -> Result<(), Error> {
        let action = "form the cluster";
        for index in 0..self.nodes.len() {
            let id = self.cli(index, action, &["CLUSTER", "MYID"])?;
            if let Some(node) = self.nodes.get_mut(index) {
                node.id = id.trim().to_owned();
            }
        }
        let per_master = SLOTS / MASTERS as u16;
        for master in 0..MASTERS {
            let first = per_master * master as u16;
            let last = if master + 1 == MASTERS {
                SLOTS - 1
            } else {
                first + per_master - 1
            };
            self.cli_ok(
                master,
                action,
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &first.to_string(),
                    &last.to_string(),
                ],
            )?;
        }
        for index in 1..self.nodes.len() {
            let (port, bus_port) = {
                let node = self.node(index, action)?;
                (node.port.to_string(), node.bus_port.to_string())
            };
            self.cli_ok(
                0,
                action,
                &["CLUSTER", "MEET", "127.0.0.1", &port, &bus_port],
            )?;
        }
        let count = self.nodes.len();
        self.wait_until(action, || {
            let known = (0..count).all(|i| {
                self.cli(i, action, &["CLUSTER", "NODES"])
                    .is_ok_and(|text| {
                        let views: Vec<NodeView> =
                            text.lines().filter_map(NodeView::parse).collect();
                        views.len() == count && views.iter().all(|v| !v.flags.contains("handshake"))
                    })
            });
            Ok(known.then_some(()))
        })
        .await?;
        for replica in MASTERS..count {
            let master_id = self.node(replica - MASTERS, action)?.id.clone();
            self.cli_ok(replica, action, &["CLUSTER", "REPLICATE", &master_id])?;
        }
        self.wait_until(action, || {
            let synced = (MASTERS..count).all(|i| {
                self.cli(i, action, &["INFO", "replication"])
                    .is_ok_and(|info| info.contains("master_link_status:up"))
            });
            let agreed = (0..count).all(|i| {
                self.cli(i, action, &["CLUSTER", "NODES"])
                    .is_ok_and(|text| {
                        let views: Vec<NodeView> =
                            text.lines().filter_map(NodeView::parse).collect();
                        views
                            .iter()
                            .filter(|v| v.is_master() && !v.slots.is_empty())
                            .count()
                            == MASTERS
                            && views.iter().filter(|v| v.flags.contains("slave")).count()
                                == count - MASTERS
                    })
            });
            Ok((synced && agreed && self.all_ok()).then_some(()))
        })
        .await
    }

    /// Starts node `index` on two fresh free ports (client and bus), not
    /// in `taken`, and waits until it answers.
    async fn spawn_node(&self, index: usize, taken: &mut HashSet<u16>) -> Result<Node, Error> {
        let mut attempt = 1;
        loop {
            let port = fresh_port(taken)?;
            let bus_port = fresh_port(taken)?;
            let dir = self.root.join(format!("node-{index}"));
            std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                action: "create the folder",
                path: dir.clone(),
                source,
            })?;
            match self.spawn_server(&dir, port, bus_port).await {
                Err(Error::Exited { log_tail, .. })
                    if attempt < START_ATTEMPTS
                        && log_tail.to_lowercase().contains("address already in use") =>
                {
                    tracing::info!(
                        attempt,
                        "a reserved port was taken meanwhile; starting again"
                    );
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(server) => {
                    return Ok(Node {
                        port,
                        bus_port,
                        id: String::new(),
                        server: Some(server),
                    });
                }
            }
        }
    }

    async fn spawn_server(
        &self,
        dir: &Path,
        port: u16,
        bus_port: u16,
    ) -> Result<Supervised, Error> {
        let bus_port = bus_port.to_string();
        let nodes_conf = dir.join("nodes.conf").display().to_string();
        let node_timeout = NODE_TIMEOUT.as_millis().to_string();
        let cluster = [
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &bus_port,
            "--cluster-config-file",
            &nodes_conf,
            "--cluster-node-timeout",
            &node_timeout,
            // A replica of a killed master is promoted however stale it is.
            "--cluster-replica-validity-factor",
            "0",
        ];
        spawn_server(&self.binary, port, dir, &cluster).await
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One line of `CLUSTER NODES`:
/// `<id> <ip:port@bus> <flags> <master-id|-> <ping> <pong> <epoch> <link> <slots…>`.
struct NodeView {
    port: u16,
    flags: String,
    master_id: String,
    /// Served slot ranges, inclusive; migrating/importing marks skipped.
    slots: Vec<(u16, u16)>,
}

impl NodeView {
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let address = fields.get(1)?;
        let host_port = address.split('@').next()?;
        let port = host_port.rsplit(':').next()?.parse().ok()?;
        let slots = fields
            .get(8..)
            .unwrap_or_default()
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|n| (n, n)),
            })
            .collect();
        Some(Self {
            port,
            flags: (*fields.get(2)?).to_owned(),
            master_id: (*fields.get(3)?).to_owned(),
            slots,
        })
    }

    fn failed(&self) -> bool {
        self.flags.contains("fail") || self.flags.contains("noaddr")
    }

    fn is_master(&self) -> bool {
        self.flags.split(',').any(|f| f == "master") && !self.failed()
    }

    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

/// A free port not yet handed out to this cluster.
fn fresh_port(taken: &mut HashSet<u16>) -> Result<u16, Error> {
    loop {
        let port = free_port()?;
        if taken.insert(port) {
            return Ok(port);
        }
    }
}

/// `redis-cli` next to `redis-server`, else on `PATH`.
fn locate_cli(server: &Path) -> Result<PathBuf, Error> {
    let sibling = server.with_file_name("redis-cli");
    if sibling.is_file() {
        return Ok(sibling);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-cli"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| Error::Spawn {
            process: "redis-cli",
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no redis-cli next to redis-server or on PATH: install the Debian package redis-tools",
            ),
        })
}

fn cluster_error(action: &str, message: impl Into<String>) -> Error {
    Error::RedisCluster {
        action: action.to_owned(),
        message: message.into(),
    }
}

/// CRC16/XMODEM (polynomial 0x1021, initial 0), the key hash of Redis Cluster.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::RedisCluster;

    #[test]
    fn slots_follow_the_hash_tag() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(RedisCluster::slot_of("123456789"), 0x31C3);
        assert_eq!(RedisCluster::slot_of("foo"), 12_182);
        assert_eq!(
            RedisCluster::slot_of("agentauth:{abc}:state"),
            RedisCluster::slot_of("abc")
        );
        assert_eq!(
            RedisCluster::slot_of("{}foo"),
            RedisCluster::slot_of("{}foo")
        );
        assert_ne!(RedisCluster::slot_of("{}foo"), RedisCluster::slot_of("foo"));
    }
}
