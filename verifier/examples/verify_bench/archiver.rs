//! `VERIFY_BENCH_ARCHIVER=<agentauth binary>`: the audit archiver runs
//! beside the verifier on the benchmark's Redis and seals the audit records
//! the load writes (one per verification), so its throughput and lag are
//! measured under the verifier benchmark's load, on the same shared cores.
//!
//! A thread scrapes the archiver's `/metrics` every 100 ms for the largest
//! lag and backlog; after the load, the time to drain the backlog is
//! measured and `agentauth audit verify` checks everything sealed.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The archiver process and its watcher.
pub struct Archiver {
    child: Child,
    port: u16,
    exe: PathBuf,
    dir: PathBuf,
    started: Instant,
    watch: Arc<Watch>,
    watcher: std::thread::JoinHandle<()>,
}

#[derive(Default)]
struct Watch {
    stop: AtomicBool,
    max_lag_ms: AtomicU64,
    max_backlog: AtomicU64,
}

/// What `/metrics` said at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    records: f64,
    segments: f64,
    lag_seconds: f64,
    backlog: f64,
}

fn scrape(port: u16) -> Option<Sample> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Some(Sample {
        records: value("agentauth_archiver_records_total"),
        segments: value("agentauth_archiver_segments_total"),
        lag_seconds: value("agentauth_archiver_lag_seconds"),
        backlog: value("agentauth_archiver_backlog_entries"),
    })
}

/// Starts `agentauth archiver` on `redis` with its default segment limits
/// (10,000 records or 10 s), a fresh local root key, and an archive under `dir`.
pub fn start(exe: &Path, dir: &Path, redis: &str, port: u16) -> Archiver {
    let key = dir.join("archiver-root-key.pem");
    let status = Command::new(exe)
        .args(["root-key", "generate"])
        .arg(&key)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "agentauth root-key generate failed");
    let child = Command::new(exe)
        .args(["archiver", "--redis-url", redis, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--archive-dir")
        .arg(dir.join("archive"))
        .arg("--root-key-file")
        .arg(&key)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while scrape(port).is_none() {
        assert!(Instant::now() < deadline, "the archiver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let watch = Arc::new(Watch::default());
    let watcher = {
        let watch = watch.clone();
        std::thread::spawn(move || {
            while !watch.stop.load(Ordering::SeqCst) {
                if let Some(s) = scrape(port) {
                    let lag_ms = (s.lag_seconds * 1000.0) as u64;
                    watch.max_lag_ms.fetch_max(lag_ms, Ordering::SeqCst);
                    watch
                        .max_backlog
                        .fetch_max(s.backlog as u64, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    Archiver {
        child,
        port,
        exe: exe.to_owned(),
        dir: dir.to_owned(),
        started: Instant::now(),
        watch,
        watcher,
    }
}

impl Archiver {
    /// Waits for the backlog to drain, checks the archive, stops the
    /// archiver, and reports as Markdown.
    pub fn finish(mut self) -> String {
        let load_end = scrape(self.port).unwrap_or_default();
        let under_load = self.started.elapsed();
        let drain_started = Instant::now();
        let deadline = drain_started + Duration::from_secs(180);
        // Whole segments seal as fast as the archiver can; the last, partial
        // one waits for its age limit (10 s), so capacity is measured on the
        // whole ones.
        let pending = load_end.backlog;
        let whole = load_end.records + (pending / 10_000.0).floor() * 10_000.0;
        let mut whole_sealed = None;
        let mut end = load_end;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            if let Some(s) = scrape(self.port) {
                end = s;
                if whole_sealed.is_none() && s.records >= whole {
                    whole_sealed = Some(drain_started.elapsed());
                }
                if s.backlog == 0.0 && s.lag_seconds == 0.0 {
                    break;
                }
            }
        }
        let whole_sealed = whole_sealed.unwrap_or_default();
        let drained = drain_started.elapsed();
        self.watch.stop.store(true, Ordering::SeqCst);
        let _ = self.watcher.join();
        let peak_kib = peak_rss_kib(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();

        let key = self.dir.join("archiver-root-key.pem");
        let jwk = Command::new(&self.exe)
            .args(["root-key", "jwk", "--file"])
            .arg(&key)
            .output()
            .unwrap();
        let jwk_file = self.dir.join("archiver-root.jwk");
        std::fs::write(&jwk_file, &jwk.stdout).unwrap();
        let verify_started = Instant::now();
        let verify = Command::new(&self.exe)
            .args(["audit", "verify", "--archive-dir"])
            .arg(self.dir.join("archive"))
            .arg("--public-key")
            .arg(&jwk_file)
            .output()
            .unwrap();
        let verify_time = verify_started.elapsed();
        let verdict = String::from_utf8_lossy(&verify.stdout).trim().to_owned();

        let max_lag = self.watch.max_lag_ms.load(Ordering::SeqCst) as f64 / 1000.0;
        let max_backlog = self.watch.max_backlog.load(Ordering::SeqCst);
        format!(
            "\n## Audit archiver under this load\n\n\
             `agentauth archiver` (segments of 10,000 records or 10 s, local root key, a \
             directory) on the same Redis and cores.\n\n\
             | what | value |\n|---|---|\n\
             | records sealed while the load ran ({:.0} s) | {:.0} ({:.0} records/s) |\n\
             | records sealed in all / segments | {:.0} / {:.0} |\n\
             | largest lag (oldest record read, not sealed) | {max_lag:.1} s |\n\
             | largest backlog (not delivered + not acknowledged) | {max_backlog} entries |\n\
             | backlog when the load stopped | {:.0} entries |\n\
             | its whole segments ({:.0} records) sealed in | {:.2} s ({:.0} records/s) |\n\
             | all of it sealed (the last segment waits for its 10 s age) | {:.1} s |\n\
             | archiver peak resident memory (VmHWM) | {:.1} MiB |\n\
             | `agentauth audit verify` over the archive ({:.1} s) | {} |\n",
            under_load.as_secs_f64(),
            load_end.records,
            load_end.records / under_load.as_secs_f64(),
            end.records,
            end.segments,
            load_end.backlog,
            whole - load_end.records,
            whole_sealed.as_secs_f64(),
            (whole - load_end.records) / whole_sealed.as_secs_f64().max(0.001),
            drained.as_secs_f64(),
            peak_kib as f64 / 1024.0,
            verify_time.as_secs_f64(),
            verdict,
        )
    }
}

/// The process's peak resident set (VmHWM), KiB; 0 when unreadable.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}
