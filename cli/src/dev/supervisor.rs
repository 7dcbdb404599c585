//! The child processes of `agentauth dev`: each service is this same binary
//! (or `redis-server`) started under a small `sh` watchdog whose stdin is a
//! pipe only this process holds — the *lifeline*, as in the test harness
//! (`e2e/testenv/src/process.rs`):
//!
//! ```text
//!  agentauth dev ──lifeline──▶ sh (watchdog) ──spawns──▶ agentauth operator …
//!       │  ▲  stdout/stderr lines ◀─────────────────────────────┘
//!       │  └── exit status (the service's own)
//!       └ exits, is killed, or stops the service: the lifeline closes
//!            ─▶ watchdog sends SIGTERM, waits GRACE seconds, then SIGKILL
//! ```
//!
//! So a graceful stop and a crash of `agentauth dev` (even SIGKILL) end the
//! same way: no service survives its parent. Every watchdog runs in its own
//! process group, so Ctrl-C in the terminal reaches only `agentauth dev`,
//! which then stops the services in order. Each service's PID is written to
//! `<run dir>/<name>.pid`, so a test (or a person) can check that none is
//! left.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::{mpsc, watch};

use super::logs::{Style, strip_ansi};

/// `sh -c WATCHDOG sh PIDFILE GRACE PROGRAM ARGS...`: runs PROGRAM, writes
/// its PID to PIDFILE, and when the lifeline (stdin) closes sends it
/// SIGTERM, then SIGKILL after GRACE seconds. Fd 3 carries the lifeline to
/// the background watcher (POSIX gives background jobs /dev/null as stdin);
/// the service gets neither. The shell's exit status is the service's.
const WATCHDOG: &str = r#"
pidfile=$1; grace=$2; shift 2
exec 3<&0 </dev/null
"$@" 3<&- &
pid=$!
echo "$pid" > "$pidfile"
{
  read -r _ <&3
  kill -TERM "$pid"
  i=0
  while kill -0 "$pid" && [ "$i" -lt $((grace * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$pid"
} >/dev/null 2>&1 &
watcher=$!
wait "$pid"
status=$?
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
exit "$status"
"#;

/// Seconds between SIGTERM and SIGKILL when a service is stopped.
pub const GRACE_SECONDS: u32 = 5;

/// Lines of each service's output kept for error messages.
const RECENT_LINES: usize = 30;

/// A service that ended on its own.
#[derive(Debug)]
pub struct Exit {
    /// The service's name.
    pub name: &'static str,
    /// Its exit status, `None` if it could not be observed.
    pub status: Option<ExitStatus>,
}

/// The running services and where their exits are reported.
pub struct Supervisor {
    style: Style,
    run_dir: PathBuf,
    services: Vec<Service>,
    exits_tx: mpsc::UnboundedSender<Exit>,
    exits: mpsc::UnboundedReceiver<Exit>,
}

/// One supervised service.
struct Service {
    name: &'static str,
    lifeline: Option<ChildStdin>,
    status: watch::Receiver<Option<Option<ExitStatus>>>,
    recent: Arc<Mutex<VecDeque<String>>>,
}

/// What a caller needs to watch a service start: its exit and its last lines.
#[derive(Clone)]
pub struct Handle {
    /// The service's name.
    pub name: &'static str,
    status: watch::Receiver<Option<Option<ExitStatus>>>,
    recent: Arc<Mutex<VecDeque<String>>>,
}

impl Handle {
    /// `Some(status)` once the service has exited.
    pub fn exited(&self) -> Option<Option<ExitStatus>> {
        *self.status.borrow()
    }

    /// The service's last output lines, oldest first.
    pub fn recent_lines(&self) -> Vec<String> {
        self.recent
            .lock()
            .map(|lines| lines.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Supervisor {
    /// A supervisor writing PID files into `run_dir` (which must exist).
    pub fn new(style: Style, run_dir: PathBuf) -> Self {
        let (exits_tx, exits) = mpsc::unbounded_channel();
        Supervisor {
            style,
            run_dir,
            services: Vec::new(),
            exits_tx,
            exits,
        }
    }

    /// Starts `program args...` as service `name` with extra environment
    /// `env`, printing its output with the service's prefix.
    pub fn spawn(
        &mut self,
        name: &'static str,
        program: &Path,
        args: &[OsString],
        env: &[(&str, OsString)],
    ) -> std::io::Result<Handle> {
        let pid_file = self.run_dir.join(format!("{name}.pid"));
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(&pid_file)
            .arg(GRACE_SECONDS.to_string())
            .arg(program)
            .args(args)
            // Ctrl-C reaches `agentauth dev` only; it stops the services in order.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !self.style.colour {
            command.env("NO_COLOR", "1");
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn()?;
        let lifeline = child.stdin.take();
        let recent = Arc::new(Mutex::new(VecDeque::with_capacity(RECENT_LINES)));
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward(name, stdout, self.style.clone(), recent.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward(name, stderr, self.style.clone(), recent.clone()));
        }
        let (status_tx, status) = watch::channel(None);
        let exits = self.exits_tx.clone();
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            let _ = status_tx.send(Some(status));
            let _ = exits.send(Exit { name, status });
        });
        let handle = Handle {
            name,
            status: status.clone(),
            recent: recent.clone(),
        };
        self.services.push(Service {
            name,
            lifeline,
            status,
            recent,
        });
        Ok(handle)
    }

    /// The next service that exited (for a running system, always a failure).
    pub async fn next_exit(&mut self) -> Option<Exit> {
        self.exits.recv().await
    }

    /// The last output lines of `name`.
    pub fn recent_lines(&self, name: &str) -> Vec<String> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.recent.lock().map(|l| l.iter().cloned().collect()))
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// Stops the services named in `names` together (all of them when
    /// `names` is empty) and waits until each has exited: SIGTERM, then
    /// SIGKILL after [`GRACE_SECONDS`].
    pub async fn stop(&mut self, names: &[&str]) {
        let chosen = |s: &Service| names.is_empty() || names.contains(&s.name);
        for service in self.services.iter_mut().filter(|s| chosen(s)) {
            drop(service.lifeline.take());
        }
        // Every lifeline is cut first, so the services stop in parallel;
        // waiting for them one after another then takes the longest stop.
        // The watchdog kills a service GRACE seconds after SIGTERM; the extra
        // seconds cover a watchdog that itself hangs.
        let limit = Duration::from_secs(u64::from(GRACE_SECONDS) + 5);
        for service in self.services.iter().filter(|s| chosen(s)) {
            let mut status = service.status.clone();
            let _ = tokio::time::timeout(limit, status.wait_for(Option::is_some)).await;
        }
        self.services.retain(|s| !chosen(s));
    }
}

/// Prints each line of `stream` with the service's prefix and keeps the last few.
async fn forward(
    name: &'static str,
    stream: impl AsyncRead + Unpin,
    style: Style,
    recent: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = if style.colour {
            line
        } else {
            strip_ansi(&line)
        };
        style.print(name, &line);
        if let Ok(mut recent) = recent.lock() {
            if recent.len() == RECENT_LINES {
                recent.pop_front();
            }
            recent.push_back(strip_ansi(&line));
        }
    }
}
