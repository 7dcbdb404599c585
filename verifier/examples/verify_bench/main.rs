//! Load benchmark of the verifier (issue 5), loopback only, bounded in count
//! and time. Run from the repository root:
//!
//! ```sh
//! cargo run --release -p agentauth-verifier --example verify_bench
//! ```
//!
//! ```text
//!  this process ── starts ──▶ redis-server (loopback)
//!     │ keys, JWKS, grants ──▶ Redis
//!     ├─ spawns itself: `serve-verifier` (agentauth_verifier::server::run) ─┐
//!     ├─ spawns itself: `serve-naive` (jsonwebtoken + a Redis call per check)┤ separate processes,
//!     │                                                                      │ so VmRSS is the server's
//!     ├─ ceiling: raw ES256 verifications/s on every core, servers idle     │
//!     └─ load: pre-made requests, one fresh DPoP proof each, over N keep-alive
//!              HTTP/1.1 connections (hyper client, one thread) ─────────────┘
//! ```
//!
//! Phases: warm (each token verified once before measuring), cold (a new
//! token per request), naive baseline (the warm inputs), each round beside
//! the CPU of one ES256 verification on one thread; then latency at few
//! connections and an open-loop run at 10,000 requests/s offered. Prints a
//! Markdown report on stdout. With `VERIFY_BENCH_PERF=<file>`, `perf record`
//! profiles the verifier over the first warm run.
//!
//! With `VERIFY_BENCH_ARCHIVER=<path of an agentauth binary>`, the audit
//! archiver runs beside the verifier and its throughput and lag under this
//! load are reported too (`archiver.rs`); with `VERIFY_BENCH_ARCHIVER_LATE=1`
//! as well, it starts after the load and drains what the whole run wrote.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod archiver;
mod fixtures;
mod load;
mod naive;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentauth_testenv::RedisServer;

/// The allocator the `agentauth` binary runs with, so the servers measured
/// here allocate as the shipped verifier does (both of them: ours and the
/// naive baseline).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 3;
const WARM_REQUESTS: usize = 30_000;
const COLD_REQUESTS: usize = 12_000;
const NAIVE_REQUESTS: usize = 12_000;
const PHASE_LIMIT: Duration = Duration::from_secs(20);
const CONNECTIONS: usize = 32;
/// The connections of the latency runs: load well below saturation.
const FEW: usize = 4;
/// The open-loop run: requests/s offered, for how long, over how many connections.
const OPEN_LOOP_RATE: f64 = 10_000.0;
const OPEN_LOOP_SECONDS: usize = 3;
const OPEN_LOOP_CONNECTIONS: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve-verifier") => fixtures::serve_verifier(&args[2..]),
        Some("serve-naive") => naive::serve(&args[2..]),
        _ => orchestrate(),
    }
}

fn orchestrate() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let redis = RedisServer::start().await.unwrap();
        let fx = fixtures::Fixture::new(&redis.url()).await;
        let verifier_port = free_port();
        let naive_port = free_port();
        let exe = std::env::current_exe().unwrap();
        let dir = fx.dir.path().display().to_string();
        let mut verifier = spawn(&exe, "serve-verifier", &dir, &redis.url(), verifier_port);
        // VERIFY_BENCH_PERF=<file>: `perf record` of the verifier over the
        // first round's warm run only (the profile of one warm verification).
        let perf_out = std::env::var("VERIFY_BENCH_PERF").ok();
        let mut naive = spawn(&exe, "serve-naive", &dir, &redis.url(), naive_port);
        wait_ready(verifier_port).await;
        wait_ready(naive_port).await;
        // VERIFY_BENCH_ARCHIVER_LATE=1: the archiver starts only after the
        // load, so it drains a stream the whole run filled (its capacity).
        let archiver_exe = std::env::var_os("VERIFY_BENCH_ARCHIVER");
        let late = std::env::var_os("VERIFY_BENCH_ARCHIVER_LATE").is_some();
        let start_archiver = || {
            archiver_exe.as_ref().map(|exe| {
                archiver::start(Path::new(exe), fx.dir.path(), &redis.url(), free_port())
            })
        };
        let archiver = if late { None } else { start_archiver() };

        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rss = Arc::new(RssWatch::new(verifier.id()));
        let watcher = rss.clone().spawn();
        let pids = [std::process::id(), verifier.id(), naive.id()];
        let measure = async |port: u16, bodies, connections: usize| {
            let before = (pids.map(cpu_seconds), fx.redis_cpu().await);
            let mut outcome = load::run(port, bodies, connections, PHASE_LIMIT).await;
            let after = (pids.map(cpu_seconds), fx.redis_cpu().await);
            let per_request = |b: f64, a: f64| (a - b) * 1e6 / outcome.requests as f64;
            outcome.cpu_us = [
                per_request(before.0[0], after.0[0]),
                per_request(before.0[1], after.0[1]) + per_request(before.0[2], after.0[2]),
                per_request(before.1, after.1),
            ];
            outcome
        };
        // Warm means: each of these 64 tokens was verified once before.
        let tokens = fx.tokens(64).await;
        let warm_up = fx.requests(&tokens, tokens.len());
        load::run(verifier_port, warm_up, CONNECTIONS, PHASE_LIMIT).await;

        // Rounds of ceiling, warm, cold, naive within seconds of each other:
        // the machine is shared, so only side-by-side ratios are meaningful.
        let mut rounds = Vec::new();
        for round in 0..ROUNDS {
            let ceiling = fixtures::es256_ceiling(cores, Duration::from_secs(2));
            let es256_us = fixtures::es256_cpu_us(Duration::from_secs(1));
            let perf = perf_out
                .as_ref()
                .filter(|_| round == 0)
                .map(|out| start_perf(out, verifier.id()));
            let warm = measure(
                verifier_port,
                fx.requests(&tokens, WARM_REQUESTS),
                CONNECTIONS,
            )
            .await;
            if let Some(perf) = perf {
                stop_perf(perf);
            }
            let fresh = fx.tokens(COLD_REQUESTS).await;
            let cold = measure(
                verifier_port,
                fx.requests(&fresh, COLD_REQUESTS),
                CONNECTIONS,
            )
            .await;
            let naive_run = measure(
                naive_port,
                fx.requests(&tokens, NAIVE_REQUESTS),
                CONNECTIONS,
            )
            .await;
            rounds.push(Round {
                ceiling,
                es256_us,
                runs: [warm, cold, naive_run],
            });
        }
        let rss_load = rss.take_max();
        // Latency well below saturation: few connections.
        let warm_few = measure(verifier_port, fx.requests(&tokens, WARM_REQUESTS / 3), FEW).await;
        let fresh = fx.tokens(COLD_REQUESTS / 2).await;
        let cold_few = measure(verifier_port, fx.requests(&fresh, COLD_REQUESTS / 2), FEW).await;
        // Open loop at the target rate: latency from each request's due time.
        let open = fx.requests(&tokens, OPEN_LOOP_RATE as usize * OPEN_LOOP_SECONDS);
        let open =
            load::open_loop(verifier_port, open, OPEN_LOOP_RATE, OPEN_LOOP_CONNECTIONS).await;
        let rss_after = rss.take_max();
        let naive_rss = RssWatch::new(naive.id()).read();
        rss.stop.store(true, Ordering::SeqCst);
        let _ = watcher.join();
        let rss = [rss_load.max(rss_after), naive_rss];
        println!(
            "{}",
            report(cores, &rounds, [&warm_few, &cold_few], &open, rss)
        );
        if let Some(archiver) = if late { start_archiver() } else { archiver } {
            println!("{}", archiver.finish());
        }
        let _ = verifier.kill();
        let _ = naive.kill();
        let _ = verifier.wait();
        let _ = naive.wait();
    });
}

fn row(name: &str, o: &load::Outcome) -> String {
    format!(
        "| {name} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.0}, {:.0}, {:.0} |\n",
        o.requests,
        o.allowed,
        o.throughput(),
        o.percentile_ms(50.0),
        o.percentile_ms(99.0),
        o.percentile_ms(99.9),
        o.cpu_us[0],
        o.cpu_us[1],
        o.cpu_us[2],
    )
}

/// One round, its runs within seconds of each other.
struct Round {
    /// ES256 verifications/s on every core, servers idle.
    ceiling: f64,
    /// CPU µs of one ES256 verification on one thread.
    es256_us: f64,
    /// Warm, cold and naive outcomes.
    runs: [load::Outcome; 3],
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The Markdown report.
fn report(
    cores: usize,
    rounds: &[Round],
    few: [&load::Outcome; 2],
    open: &load::Outcome,
    rss: [u64; 2],
) -> String {
    let mut out = format!(
        "cores: {cores}; the load generator, both servers and Redis share them\n\n\
         | run | requests | allowed | throughput /s | p50 ms | p99 ms | p99.9 ms | CPU µs/request: client, server, Redis |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    for (i, round) in rounds.iter().enumerate() {
        let r = i + 1;
        let [warm, cold, naive] = &round.runs;
        out.push_str(&format!(
            "| round {r}: ceiling {:.0} ES256/s; one ES256 {:.1} µs CPU | | | | | | | |\n",
            round.ceiling, round.es256_us
        ));
        out.push_str(&row(
            &format!("{r}: verifier, warm, {CONNECTIONS} conn."),
            warm,
        ));
        out.push_str(&row(
            &format!("{r}: verifier, cold, {CONNECTIONS} conn."),
            cold,
        ));
        out.push_str(&row(
            &format!("{r}: naive baseline, {CONNECTIONS} conn."),
            naive,
        ));
    }
    out.push_str(&row(&format!("verifier, warm, {FEW} conn."), few[0]));
    out.push_str(&row(&format!("verifier, cold, {FEW} conn."), few[1]));
    out.push_str(&row(
        &format!(
            "verifier, warm, open loop {OPEN_LOOP_RATE:.0}/s offered, {OPEN_LOOP_CONNECTIONS} conn."
        ),
        open,
    ));
    let median_of = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let server = |o: &load::Outcome| o.cpu_us[1];
    out.push_str(&format!(
        "\nmedians over {} rounds: warm {:.0}/s, cold {:.0}/s, naive {:.0}/s, ceiling {:.0}/s; \
         warm / naive {:.2}x; cold / naive {:.2}x\n\
         server CPU per request, medians: warm {:.1} µs = {:.2}x one ES256 ({:.1} µs); \
         cold {:.1} µs; naive {:.1} µs = {:.2}x the warm verifier's\n\
         open loop at {OPEN_LOOP_RATE:.0}/s: achieved {:.0}/s, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms\n\
         VmRSS max: verifier {:.1} MiB; naive {:.1} MiB\n",
        rounds.len(),
        median_of(&|r| r.runs[0].throughput()),
        median_of(&|r| r.runs[1].throughput()),
        median_of(&|r| r.runs[2].throughput()),
        median_of(&|r| r.ceiling),
        median_of(&|r| r.runs[0].throughput() / r.runs[2].throughput()),
        median_of(&|r| r.runs[1].throughput() / r.runs[2].throughput()),
        median_of(&|r| server(&r.runs[0])),
        median_of(&|r| server(&r.runs[0]) / r.es256_us),
        median_of(&|r| r.es256_us),
        median_of(&|r| server(&r.runs[1])),
        median_of(&|r| server(&r.runs[2])),
        median_of(&|r| server(&r.runs[2]) / server(&r.runs[0])),
        open.throughput(),
        open.percentile_ms(50.0),
        open.percentile_ms(99.0),
        open.percentile_ms(99.9),
        rss[0] as f64 / 1024.0,
        rss[1] as f64 / 1024.0,
    ));
    out
}

fn start_perf(out: &str, pid: u32) -> Child {
    Command::new("perf")
        .args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "1999",
            "-g",
            "-o",
            out,
            "-p",
        ])
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// perf writes its data on SIGINT.
fn stop_perf(mut perf: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status();
    let _ = perf.wait();
}

fn spawn(exe: &PathBuf, mode: &str, dir: &str, redis: &str, port: u16) -> Child {
    Command::new(exe)
        .args([mode, dir, redis, &port.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// CPU time (user + system) a process has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if load::get(port, "/readyz").await == Some(200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server on port {port} never became ready");
}

/// The largest VmRSS of a process seen since the last `take_max`, in KiB.
struct RssWatch {
    pid: u32,
    max: AtomicU64,
    stop: AtomicBool,
}

impl RssWatch {
    fn new(pid: u32) -> Self {
        RssWatch {
            pid,
            max: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    fn read(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    }

    fn take_max(&self) -> u64 {
        self.max
            .swap(self.read(), Ordering::SeqCst)
            .max(self.read())
    }

    fn spawn(self: Arc<Self>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            while !self.stop.load(Ordering::SeqCst) {
                self.max.fetch_max(self.read(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    }
}
