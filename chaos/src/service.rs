//! One `agentauth` process of the system (an operator or a verifier): started
//! with its flags and a log file, probed for readiness, and stopped the way
//! an experiment says: SIGKILL (a crash, a node loss) or SIGTERM (a rollout).
//!
//! ```text
//!  Service::start ─▶ agentauth <args>  (stdout+stderr ─▶ <dir>/<name>.log)
//!                 └▶ sh lifeline: `read; kill -KILL <pid>`, stdin held by this process
//! ```
//!
//! The lifeline ends the service when the test process dies in any way (a
//! killed test runs no destructors): the kernel closes the pipe and the
//! shell kills the service by its pid.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// A running (or stopped) `agentauth` process.
#[derive(Debug)]
pub struct Service {
    name: String,
    binary: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
    lifeline: Option<Child>,
    starts: u32,
}

impl Service {
    /// Starts `binary args…` as `name` listening on `port`, logging to
    /// `<dir>/<name>.log` (appended to across restarts).
    pub fn start(
        name: &str,
        binary: &Path,
        args: Vec<OsString>,
        env: Vec<(String, OsString)>,
        dir: &Path,
        port: u16,
    ) -> Result<Self, Error> {
        let mut service = Service {
            name: name.to_owned(),
            binary: binary.to_path_buf(),
            args,
            env,
            log: dir.join(format!("{name}.log")),
            port,
            child: None,
            lifeline: None,
            starts: 0,
        };
        service.spawn()?;
        Ok(service)
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::io(format!("open {}", self.log.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Error::io("reopen the log", e))?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| Error::io(format!("start {}", self.name), e))?;
        let lifeline = Command::new("sh")
            .arg("-c")
            .arg(format!("read -r _; kill -KILL {} 2>/dev/null", child.id()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io("start a lifeline shell", e))?;
        self.child = Some(child);
        self.lifeline = Some(lifeline);
        self.starts += 1;
        Ok(())
    }

    /// The service's name, e.g. `verifier-b`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many times it was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether the process runs (it was started and has not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `GET <url>/readyz` answers 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, Error> {
        let started = Instant::now();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| Error::Other(format!("http client: {e}")))?;
        loop {
            if let Ok(response) = http.get(format!("{}/readyz", self.url())).send().await
                && response.status() == 200
            {
                return Ok(started.elapsed());
            }
            if !self.is_running() || started.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: format!("{} ready", self.name),
                    seconds: timeout.as_secs(),
                    detail: format!(":\n{}", self.log_tail(30)),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` (`KILL`, `TERM`) and waits up to `timeout` for the exit.
    /// Returns whether it exited in time.
    pub fn signal(&mut self, signal: &str, timeout: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = None;
        self.cut_lifeline();
        true
    }

    /// SIGKILL, like a crash or a lost node.
    pub fn kill(&mut self) {
        self.signal("KILL", Duration::from_secs(10));
    }

    /// Starts it again with the same flags (stopping it first if it runs).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        self.spawn()
    }

    fn cut_lifeline(&mut self) {
        // The service is gone: end the shell before it could signal a reused pid.
        if let Some(mut lifeline) = self.lifeline.take() {
            let _ = lifeline.kill();
            let _ = lifeline.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
        self.cut_lifeline();
    }
}

/// A free loopback port (another process may take it before use; rare).
pub fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::io("reserve a port", e))?;
    Ok(listener
        .local_addr()
        .map_err(|e| Error::io("reserve a port", e))?
        .port())
}
