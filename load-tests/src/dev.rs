//! The system under test: a real `agentauth dev` process on free loopback
//! ports with its own state folder, as `cli/tests/support` starts it.
//!
//! ```text
//!  agentauth dev --local --base-port 0 --state-dir <dir> --stop-on-stdin-eof
//!    stdout ─▶ <dir>/dev.log  (until "agentauth dev: ready")
//!    <dir>/run/endpoints.json ─▶ Endpoints     <dir>/run/<service>.pid ─▶ pids()
//!  stop(): SIGINT, wait; dropping the stdin pipe also stops it (lifeline)
//! ```
//!
//! The `agentauth` binary must be built with the `dev` feature. It is found
//! by [`locate_agentauth`]: `$AGENTAUTH_BIN`, else `agentauth` beside this
//! program in the same target folder (`target/<profile>/agentauth`, which a
//! `cargo test --workspace --all-features` or a
//! `cargo build -p agentauth-cli --features dev` puts there).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::LoadError;

/// The line `agentauth dev` prints once every service is ready.
const READY_LINE: &str = "agentauth dev: ready";

/// How long startup may take (a cold control plane start included).
const START_LIMIT: Duration = Duration::from_secs(240);

/// Where the services of the running system listen (`run/endpoints.json`).
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The operator's base URL (agent API, approval API, /metrics).
    pub operator: String,
    /// The WebAuthn origin of the approval API.
    pub approval_origin: String,
    /// Every verifier's base URL, by name.
    pub verifiers: Vec<(String, String)>,
    /// The archiver's base URL, when it runs.
    pub archiver: Option<String>,
    /// Where the archiver seals the audit stream.
    pub archive_dir: Option<PathBuf>,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The example provider's audience.
    pub provider_audience: String,
}

impl Endpoints {
    fn read(state: &Path) -> Result<Self, LoadError> {
        let path = state.join("run").join("endpoints.json");
        let text = std::fs::read(&path).map_err(|e| LoadError::io("read", &path, e))?;
        let v: Value = serde_json::from_slice(&text)
            .map_err(|e| LoadError::Dev(format!("{}: {e}", path.display())))?;
        let text_of = |key: &str| {
            v[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| LoadError::Dev(format!("{}: no {key}", path.display())))
        };
        let verifiers: Vec<(String, String)> = serde_json::from_value(v["verifiers"].clone())
            .map_err(|e| LoadError::Dev(format!("{}: verifiers: {e}", path.display())))?;
        Ok(Endpoints {
            operator: text_of("operator")?,
            approval_origin: text_of("approval_origin")?,
            verifiers,
            archiver: v["archiver"].as_str().map(str::to_owned),
            archive_dir: v["archive_dir"].as_str().map(PathBuf::from),
            kubeconfig: PathBuf::from(text_of("kubeconfig")?),
            provider_audience: text_of("provider_audience")?,
        })
    }
}

/// A running `agentauth dev`.
pub struct Dev {
    child: Child,
    /// The `agentauth` binary it runs.
    pub binary: PathBuf,
    /// Its state folder.
    pub state: PathBuf,
    /// Its endpoints.
    pub endpoints: Endpoints,
}

/// The `agentauth` binary with the `dev` feature: `$AGENTAUTH_BIN`, else the
/// one in this program's target folder.
pub fn locate_agentauth() -> Result<PathBuf, LoadError> {
    if let Some(path) = std::env::var_os("AGENTAUTH_BIN") {
        return check_dev_binary(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| LoadError::Dev(e.to_string()))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| LoadError::Dev("this program has no folder".into()))?;
    // Test executables live in target/<profile>/deps.
    if dir.ends_with("deps")
        && let Some(parent) = dir.parent()
    {
        dir = parent;
    }
    check_dev_binary(dir.join("agentauth"))
}

/// `path`, if it is an `agentauth` that has `agentauth dev`.
pub fn check_dev_binary(path: PathBuf) -> Result<PathBuf, LoadError> {
    let has_dev = Command::new(&path)
        .args(["dev", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_dev {
        Ok(path)
    } else {
        Err(LoadError::Dev(format!(
            "{} is missing or has no `agentauth dev`: build it with \
             `cargo build -p agentauth-cli --features dev` (add --release for the full profiles), \
             or name one in AGENTAUTH_BIN",
            path.display()
        )))
    }
}

impl Dev {
    /// Starts `binary dev` with `state` as its state folder and waits until
    /// it is ready.
    pub fn start(binary: &Path, state: &Path) -> Result<Dev, LoadError> {
        std::fs::create_dir_all(state).map_err(|e| LoadError::io("create", state, e))?;
        let log_path = state.join("dev.log");
        let mut log =
            std::fs::File::create(&log_path).map_err(|e| LoadError::io("create", &log_path, e))?;
        let mut child = Command::new(binary)
            .args([
                "dev",
                "--local",
                "--stop-on-stdin-eof",
                "--base-port",
                "0",
                "--state-dir",
            ])
            .arg(state)
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| LoadError::Dev(format!("cannot start {}: {e}", binary.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| LoadError::Dev("no stdout".into()))?;
        let (ready_tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if line.starts_with(READY_LINE) {
                    let _ = ready_tx.send(());
                }
            }
        });
        let started = Instant::now();
        let mut dev = Dev {
            child,
            binary: binary.to_owned(),
            state: state.to_owned(),
            endpoints: Endpoints {
                operator: String::new(),
                approval_origin: String::new(),
                verifiers: Vec::new(),
                archiver: None,
                archive_dir: None,
                kubeconfig: PathBuf::new(),
                provider_audience: String::new(),
            },
        };
        loop {
            match ready.recv_timeout(Duration::from_millis(500)) {
                Ok(()) => break,
                Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed() < START_LIMIT => {
                    if let Ok(Some(status)) = dev.child.try_wait() {
                        return Err(LoadError::Dev(format!(
                            "exited ({status}) before it was ready; see {}",
                            log_path.display()
                        )));
                    }
                }
                Err(_) => {
                    return Err(LoadError::Dev(format!(
                        "not ready after {:?}; see {}",
                        started.elapsed(),
                        log_path.display()
                    )));
                }
            }
        }
        dev.endpoints = Endpoints::read(state)?;
        Ok(dev)
    }

    /// The PIDs it recorded for its services, by name (`operator`,
    /// `verifier-a`, …).
    pub fn pids(&self) -> Vec<(String, u32)> {
        pids(&self.state)
    }

    /// The root's public JWK the archive verifies against.
    pub fn root_jwk(&self) -> PathBuf {
        self.state.join("run").join("root.jwk")
    }

    /// Runs `agentauth ARGS…` (e.g. `dev approve …`, `audit verify …`)
    /// against this run; returns success and the output.
    pub fn command(&self, args: &[&str]) -> Result<(bool, String), LoadError> {
        let output = Command::new(&self.binary)
            .args(args)
            .env("AGENTAUTH_DEV_STATE_DIR", &self.state)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| LoadError::Dev(format!("agentauth {}: {e}", args.join(" "))))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok((output.status.success(), text))
    }

    /// SIGINT (as Ctrl-C), then waits up to 60 s for everything to stop.
    pub fn stop(mut self) -> Result<(), LoadError> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let stopping = Instant::now();
        while stopping.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return if status.success() {
                    Ok(())
                } else {
                    Err(LoadError::Dev(format!("stopped with {status}")))
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        Err(LoadError::Dev("did not stop within 60 s; killed".into()))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // A run abandoned on an error path: closing stdin (the lifeline)
        // stops it; reap it so no zombie stays.
        drop(self.child.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The PIDs a dev run with state folder `state` recorded, by service name.
pub fn pids(state: &Path) -> Vec<(String, u32)> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir(state.join("run")) else {
        return pids;
    };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.extension().is_none_or(|e| e != "pid") {
            continue;
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(pid) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            pids.push((name, pid));
        }
    }
    pids.sort();
    pids
}
