//! Server processes that cannot outlive the test process.
//!
//! Rust never drops statics, and a killed test process runs no destructors
//! at all, so the shared control plane cannot rely on `Drop`.
//! Each server is therefore started through a small `sh` watchdog whose stdin
//! is a pipe held open by the test process (the *lifeline*):
//!
//! ```text
//!  test process ──lifeline pipe──▶ sh (watchdog) ──spawns──▶ etcd / kube-apiserver
//!        │ exits, panics, is killed,       │ read hits EOF
//!        │ or drops the Supervised         ▼
//!        └──────────────────────▶ SIGKILL the server, rm -rf its folder
//! ```
//!
//! The kernel closes the pipe however the test process ends, so the server is
//! always stopped; no `unsafe` (`prctl(PR_SET_PDEATHSIG)`) is needed. The
//! watchdog's own exit status is the server's, so an early crash is visible
//! through [`Supervised::check_running`].

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// `sh -c WATCHDOG sh DIR PROGRAM ARGS...`: runs PROGRAM until the lifeline
/// (stdin) closes, then kills it and removes DIR (the server's work folder)
/// and, once empty, DIR's parent.
///
/// SIGKILL, not SIGTERM: the data is thrown away, and a graceful apiserver
/// shutdown takes a second or more (longer when etcd is going down with it).
/// Fd 3 carries the lifeline to the background watcher (POSIX gives
/// background jobs /dev/null as stdin); the server itself gets neither. When
/// the server exits on its own the folder is kept, so its log can still be
/// read; the `.stopping` marker tells the two cases apart. The shell exits
/// only after the server, the watcher and the cleanup are done, so waiting
/// for it is waiting for all of them.
const WATCHDOG: &str = r#"
dir=$1; shift
exec 3<&0 </dev/null
"$@" 3<&- &
pid=$!
{
  read -r _ <&3
  : > "$dir/.stopping"
  kill -KILL "$pid"
} 2>/dev/null &
watcher=$!
wait "$pid"
status=$?
kill "$watcher" 2>/dev/null
wait "$watcher"
if [ -e "$dir/.stopping" ]; then
  rm -rf "$dir"
  rmdir "${dir%/*}" 2>/dev/null
fi
exit "$status"
"#;

/// Log lines carried by a start error: enough for the failure and its context.
const LOG_TAIL_LINES: usize = 40;

/// How long [`Supervised::stop`] waits for the watchdog to kill the server and clean up.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A server process under a lifeline watchdog; stopped on drop.
#[derive(Debug)]
pub(crate) struct Supervised {
    name: &'static str,
    watchdog: Child,
    lifeline: Option<ChildStdin>,
    log: PathBuf,
}

impl Supervised {
    /// Spawns `program args...` with stdout and stderr written to `log`.
    /// `dir`, the server's own work folder, is removed once the lifeline has
    /// stopped the server, even when the test process is gone by then.
    pub(crate) fn spawn(
        name: &'static str,
        program: &Path,
        args: &[OsString],
        log: PathBuf,
        dir: &Path,
    ) -> Result<Self, Error> {
        let io_error = |action, source| Error::Io {
            action,
            path: log.clone(),
            source,
        };
        let stdout = File::create(&log).map_err(|e| io_error("create the log file", e))?;
        let stderr = stdout
            .try_clone()
            .map_err(|e| io_error("reopen the log file", e))?;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(dir)
            .arg(program)
            .args(args)
            // Own process group: Ctrl-C in a terminal reaches the test process,
            // whose exit cuts the lifeline, but not the watchdog, which must
            // survive to clean up.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| Error::Spawn {
                process: name,
                source,
            })?;
        let lifeline = watchdog.stdin.take();
        Ok(Self {
            name,
            watchdog,
            lifeline,
            log,
        })
    }

    /// The last `lines` lines of the server's log (empty if it cannot be read).
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// `Err(Exited)` if the server has already exited.
    pub(crate) fn check_running(&mut self) -> Result<(), Error> {
        match self.exited() {
            Some(status) => Err(Error::Exited {
                process: self.name,
                status,
                log_tail: self.log_tail(LOG_TAIL_LINES),
            }),
            None => Ok(()),
        }
    }

    /// The error for a server that did not become ready in time.
    pub(crate) fn not_ready(&self, waited: Duration, last_error: String) -> Error {
        Error::NotReady {
            process: self.name,
            waited,
            last_error,
            log_tail: self.log_tail(LOG_TAIL_LINES),
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        // An error here means the watchdog can no longer be observed; treat it as running
        // and let the readiness timeout report the problem with the log.
        self.watchdog.try_wait().ok().flatten()
    }

    /// Cuts the lifeline and waits for the server to stop.
    pub(crate) fn stop(&mut self) {
        drop(self.lifeline.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.exited().is_none() {
            if Instant::now() >= deadline {
                tracing::warn!(
                    process = self.name,
                    "watchdog did not stop in time; killing it"
                );
                let _ = self.watchdog.kill();
                let _ = self.watchdog.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a text file (empty if it cannot be read).
fn tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
