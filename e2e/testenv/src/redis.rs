//! A real Redis for tests: `redis-server` on a free loopback port, without
//! persistence, in a temporary folder, under the same lifeline watchdog as
//! etcd and the apiserver (see `process.rs`), so it never outlives the test
//! process.
//!
//! ```text
//!  RedisServer::start ─▶ reserve a port ─▶ redis-server --port P --save "" --appendonly no
//!        │                                  (wait for PONG)
//!        ├─ kill()     SIGKILL, like a crash: clients see the connection drop
//!        ├─ restart()  a fresh, empty server on the same port and URL
//!        └─ drop       stopped, folder removed
//! ```
//!
//! Each test starts its own server (a few milliseconds), so tests share no
//! keys and a fault test kills only its own. The binary is `redis-server` on
//! `PATH` (Debian package `redis-server`; `./test.sh` installs it), or the
//! file named by `AGENTAUTH_REDIS_SERVER`.

use std::ffi::OsString;
use std::fmt;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::Supervised;

/// Names the `redis-server` binary to use instead of the one on `PATH`.
pub const REDIS_SERVER_ENV: &str = "AGENTAUTH_REDIS_SERVER";

/// How long redis-server may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts on a port another process took between reservation and bind are retried.
const START_ATTEMPTS: u32 = 3;

/// A `redis-server` started for a test; stopped when dropped.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    /// Holds one folder per run; removed on drop.
    root: PathBuf,
    runs: u32,
    server: Option<Supervised>,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("url", &self.url())
            .field("running", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisServer {
    /// Starts an empty Redis on a free loopback port and waits until it answers.
    pub async fn start() -> Result<Self, Error> {
        let binary = locate()?;
        let mut attempt = 1;
        loop {
            let root = tempfile::Builder::new()
                .prefix("agentauth-redis-")
                .tempdir()
                .map_err(|source| Error::Io {
                    action: "create a temporary folder in",
                    path: std::env::temp_dir(),
                    source,
                })?
                // From here on `Drop` removes it.
                .keep();
            let mut server = Self {
                binary: binary.clone(),
                port: free_port()?,
                root,
                runs: 0,
                server: None,
            };
            match server.spawn().await {
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
                Ok(()) => return Ok(server),
            }
        }
    }

    /// `redis://127.0.0.1:<port>/`; the same across restarts.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server with SIGKILL, like a crash (its data is gone).
    /// Waits until it is dead; does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
    }

    /// Starts an empty server again on the same port (killing the running
    /// one first), and waits until it answers.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        self.spawn().await
    }

    /// Whether a server is running (it may still have crashed since).
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// The last `lines` lines of the running (or last) server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.server
            .as_ref()
            .map(|s| s.log_tail(lines))
            .unwrap_or_default()
    }

    async fn spawn(&mut self) -> Result<(), Error> {
        self.runs += 1;
        // A folder per run: the watchdog removes a run's folder when it kills it.
        let dir = self.root.join(format!("run-{}", self.runs));
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            action: "create the folder",
            path: dir.clone(),
            source,
        })?;
        self.server = Some(spawn_server(&self.binary, self.port, &dir, &[]).await?);
        Ok(())
    }
}

/// Starts `binary` on `port` with its data (none kept) and log in `dir`,
/// with `extra` flags (a cluster node's), and waits until it answers PING.
pub(crate) async fn spawn_server(
    binary: &Path,
    port: u16,
    dir: &Path,
    extra: &[&str],
) -> Result<Supervised, Error> {
    let port_text = port.to_string();
    let dir_text = dir.display().to_string();
    let common = [
        "--port",
        &port_text,
        "--bind",
        "127.0.0.1",
        // Test data is thrown away: no snapshots, no append-only file.
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir_text,
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ];
    let args: Vec<OsString> = common.iter().chain(extra).map(OsString::from).collect();
    let mut server = Supervised::spawn("redis-server", binary, &args, dir.join("redis.log"), dir)?;
    wait_for_pong(&mut server, port).await?;
    Ok(server)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `AGENTAUTH_REDIS_SERVER`, else `redis-server` on `PATH`.
pub(crate) fn locate() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(REDIS_SERVER_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| Error::Spawn {
            process: "redis-server",
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no redis-server on PATH: install the Debian package redis-server \
                     (./test.sh does) or set {REDIS_SERVER_ENV}"
                ),
            ),
        })
}

pub(crate) fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(Error::NoFreePort)?;
    Ok(listener.local_addr().map_err(Error::NoFreePort)?.port())
}

/// Waits until the server answers `PING` with `PONG` (not just accepts
/// connections: a loading server answers `-LOADING`).
pub(crate) async fn wait_for_pong(server: &mut Supervised, port: u16) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        server.check_running()?;
        let last_error = match ping(port).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if started.elapsed() > READY_TIMEOUT {
            return Err(server.not_ready(started.elapsed(), last_error));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn ping(port: u16) -> Result<(), String> {
    // readable/try_read rather than AsyncReadExt: the workspace's tokio has no `io-util`.
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let request = b"PING\r\n";
        let mut sent = 0;
        while sent < request.len() {
            stream.writable().await?;
            match stream.try_write(&request[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        let mut reply = [0_u8; 64];
        let n = loop {
            stream.readable().await?;
            match stream.try_read(&mut reply) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        };
        std::io::Result::Ok(String::from_utf8_lossy(&reply[..n]).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(1), exchange).await {
        Ok(Ok(reply)) if reply.starts_with("+PONG") => Ok(()),
        Ok(Ok(reply)) => Err(format!("PING answered {:?}", reply.trim_end())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("PING not answered within 1s".to_owned()),
    }
}
