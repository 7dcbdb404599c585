//! A real `agentauth dev` process for tests: started on free ports with its
//! own state folder and the local control plane, read until its ready line,
//! and stopped with SIGINT; plus the walk-through commands run as processes.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const READY_LINE: &str = "agentauth dev: ready";

/// A running `agentauth dev` and the lines it printed.
pub struct Dev {
    /// The process.
    pub child: Child,
    /// Lines printed after the ready line.
    pub lines: mpsc::Receiver<String>,
    /// Lines printed up to and including the ready line.
    pub banner: Vec<String>,
}

pub fn start(state: &Path) -> Dev {
    start_with_env(state, &[])
}

/// [`start`], with extra environment for `agentauth dev` and its services.
pub fn start_with_env(state: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Dev {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentauth"))
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
        .envs(env.iter().copied())
        .env_remove("KUBECONFIG")
        // The pipe is its lifeline: if this test process dies, stdin ends
        // and the run stops rather than outliving the test.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("agentauth dev starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut banner = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(READY_LINE) => {
                banner.push(line);
                break;
            }
            Ok(line) => banner.push(line),
            Err(e) => panic!("no ready line ({e}); exit: {:?}", child.try_wait()),
        }
    }
    Dev {
        child,
        lines,
        banner,
    }
}

impl Dev {
    /// The URL in the banner row labelled `label`.
    pub fn url(&self, label: &str) -> String {
        let prefix = format!("  {label:<11}");
        let row = self
            .banner
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {label} row in the banner"));
        row[prefix.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches("/v1/verify")
            .trim_end_matches("/validate")
            .to_owned()
    }

    /// SIGINT (Ctrl-C), then the exit status.
    pub fn interrupt(self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status();
        assert!(sent.unwrap().success());
        self.wait(Duration::from_secs(30))
    }

    /// The exit status, waiting at most `limit`.
    pub fn wait(mut self, limit: Duration) -> std::process::ExitStatus {
        let stopping = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Drain the rest so the reader thread ends.
                while self.lines.try_recv().is_ok() {}
                println!("stopped in {:?}", stopping.elapsed());
                return status;
            }
            assert!(
                stopping.elapsed() < limit,
                "agentauth dev did not stop within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The PIDs `agentauth dev` recorded for its services.
pub fn recorded_pids(state: &Path) -> Vec<(String, u32)> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(state.join("run")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pid") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let pid = std::fs::read_to_string(&path)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            pids.push((name, pid));
        }
    }
    pids.sort();
    pids
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn assert_all_stopped(pids: &[(String, u32)], apiserver: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for (name, pid) in pids {
        while alive(*pid) {
            assert!(
                Instant::now() < deadline,
                "{name} (pid {pid}) survived agentauth dev"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let port: u16 = apiserver.rsplit(':').next().unwrap().parse().unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the apiserver on {port} survived agentauth dev"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `agentauth dev <args>` as the walk-through does; returns success and stdout.
pub fn walk(state: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_agentauth"))
        .arg("dev")
        .args(args)
        .env("AGENTAUTH_DEV_STATE_DIR", state)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("$ agentauth dev {}\n{stdout}{stderr}", args.join(" "));
    (output.status.success(), stdout)
}

/// The banner's `agentauth audit …` commands, as a shell would split them
/// (`$AGENTAUTH_DEV_STATE_DIR` is `state`), without the leading `agentauth`.
pub fn audit_commands(dev: &Dev, state: &Path) -> Vec<Vec<String>> {
    let state = state.display().to_string();
    dev.banner
        .iter()
        .filter_map(|l| l.split("agentauth audit ").nth(1))
        .map(|c| {
            let line = c.replace("$AGENTAUTH_DEV_STATE_DIR", &state);
            let mut args = vec!["audit".to_owned()];
            args.extend(
                line.split_whitespace()
                    .map(|w| w.trim_matches('"').to_owned()),
            );
            args
        })
        .collect()
}

/// Runs `agentauth ARGS…` (not a dev command); its success and stdout.
pub fn agentauth(args: &[String]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_agentauth"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("$ agentauth {}\n{stdout}{stderr}", args.join(" "));
    (output.status.success(), stdout)
}

/// Runs the walk-through the banner prints, in its order, as a shell would
/// (`"$GRANT"` is the name step 1 printed), and hands each step's number,
/// arguments, success and stdout to `check`.
pub fn walk_through(dev: &Dev, state: &Path, mut check: impl FnMut(usize, &[&str], bool, &str)) {
    let commands: Vec<Vec<String>> = dev
        .banner
        .iter()
        .filter_map(|l| l.split("agentauth dev ").nth(1))
        .map(|c| {
            c.trim_end_matches(')')
                .split_whitespace()
                .map(|w| w.trim_matches('\'').to_owned())
                .collect()
        })
        .collect();
    assert_eq!(commands.len(), 6, "the banner's walk-through: {commands:?}");
    let mut grant = String::new();
    for (step, command) in commands.iter().enumerate() {
        let args: Vec<&str> = command
            .iter()
            .map(|a| {
                if a == "\"$GRANT\"" {
                    grant.as_str()
                } else {
                    a.as_str()
                }
            })
            .collect();
        let (ok, out) = walk(state, &args);
        check(step, &args, ok, &out);
        if step == 1 {
            grant = out.trim().to_owned();
        }
    }
}
