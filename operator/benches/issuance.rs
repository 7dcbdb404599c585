//! Token issuance under load: `POST /v1/token` with fresh DPoP proofs.
//!
//! ```text
//!  pre-made proofs (one per request) ──▶ K keep-alive HTTP/1.1 connections ──▶ router on 127.0.0.1
//!                                                        (hyper client)          │ caches filled by hand
//!                                                                                │ InProcessState, audit
//!                                                                                ▼ KeyHierarchy (local root)
//! ```
//!
//! No apiserver: the informer caches are reflector stores filled by hand
//! with an Agent, an approved CapabilityGrant and its BehavioralEnvelope,
//! which is all the token path reads. Everything else is the real path:
//! proof verification, replay claim in the in-process state, revocation
//! check, envelope digest, signing, the `token_issued` audit event (chained
//! by the writer task), metrics.
//!
//! Two modes, both signing locally: `direct` (the root key signs every
//! token) and `certified` (the default: an in-memory issuing key certified
//! by the root). A KMS root in certified mode signs tokens the same way —
//! the KMS only certifies the issuing key at each rotation — so the
//! certified figure stands for a KMS deployment too.
//!
//! ```text
//!  cargo bench -p agentauth-operator --bench issuance
//!  ISSUANCE_REQUESTS=20000 ISSUANCE_CONNECTIONS=16 ISSUANCE_RATE=2000 cargo bench ...
//! ```
//!
//! Without `ISSUANCE_RATE` each connection sends its next request as soon
//! as the last one is answered (closed loop: the most the server does).
//! With it, request `i` is due at `start + i / rate` (open loop), and its
//! latency counts from when it was due if the connection was still busy
//! then, so a server falling behind shows in the percentiles instead of
//! slowing the client down (no coordinated omission).
//!
//! Client and server share this machine's cores, so the client's work
//! (hyper, one proof per request already made) is subtracted from the
//! server's capacity.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentauth_core::dpop::{self, Window};
use agentauth_core::es256::SigningKey;
use agentauth_core::keycert::{RootKey, TrustedKeys};
use agentauth_core::token::{self, Expectations};
use agentauth_operator::api::{ApiState, router};
use agentauth_operator::audit::AuditSink;
use agentauth_operator::clock::{Clock, SystemClock};
use agentauth_operator::context::{Context, RelyingParty};
use agentauth_operator::metrics::Metrics;
use agentauth_signer::{HierarchyConfig, KeyHierarchy, LocalSigner, Signer};
use agentauth_state::{InProcessState, SharedState};
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

#[path = "issuance/fixtures.rs"]
mod fixtures;

const NAMESPACE: &str = "bench";
const SERVICE_PROVIDER: &str = "https://shop.example.com";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let requests = env("ISSUANCE_REQUESTS", 20_000);
    let warmup = env("ISSUANCE_WARMUP", 2_000);
    let connections = env("ISSUANCE_CONNECTIONS", 16);
    let rate = env("ISSUANCE_RATE", 0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let load = match rate {
        0 => "as fast as answered".to_owned(),
        r => format!("offered at {r}/s"),
    };
    println!(
        "token issuance: {requests} requests ({load}) after {warmup} warm-up, {connections} \
         connections, {threads} runtime threads shared by client and server\n"
    );
    println!("| mode | tokens/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    for direct in [true, false] {
        let load = Load { connections, rate };
        let stats = runtime.block_on(run(direct, requests, warmup, load));
        let mode = if direct {
            "direct (local root signs)"
        } else {
            "certified issuing key"
        };
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
        println!(
            "| {mode} | {:.0} | {} | {} | {} | {} | {} | {} |",
            stats.throughput,
            ms(stats.p(0.50)),
            ms(stats.p(0.90)),
            ms(stats.p(0.99)),
            ms(stats.p(0.999)),
            ms(stats.p(1.0)),
            stats.errors
        );
    }
}

/// How the requests are sent.
#[derive(Clone, Copy)]
struct Load {
    connections: usize,
    /// Requests per second offered; 0 for as fast as answered.
    rate: usize,
}

struct Stats {
    throughput: f64,
    /// Sorted.
    latencies: Vec<Duration>,
    errors: usize,
}

impl Stats {
    fn p(&self, q: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        let i = ((last as f64) * q).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

/// Serves the API for one mode and fires `requests` token requests at it.
async fn run(direct: bool, requests: usize, warmup: usize, load: Load) -> Stats {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let agent_key = SigningKey::generate();
    let (caches, _writers) = fixtures::caches(&agent_key);
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let metrics = Metrics::new().unwrap();
    let audit = AuditSink::start(
        "operator/bench",
        state.clone(),
        clock.clone(),
        metrics.clone(),
    )
    .await
    .unwrap();
    let client_config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let ctx = Arc::new(Context {
        // Never called: the token path reads only the caches.
        client: kube::Client::try_from(client_config).unwrap(),
        caches,
        state,
        audit,
        metrics,
        clock: clock.clone(),
        relying_party: RelyingParty {
            id: "localhost".into(),
            origins: vec![],
        },
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let root: Arc<dyn Signer> = Arc::new(LocalSigner::generate().unwrap());
    let keys = if direct {
        KeyHierarchy::direct(root.clone())
    } else {
        let config = HierarchyConfig::new(base.clone());
        KeyHierarchy::certified(root.clone(), config, clock.now_secs())
            .await
            .unwrap()
    };
    let keys = Arc::new(keys);
    let app = router(ApiState {
        ctx: ctx.clone(),
        keys: keys.clone(),
        public_url: base.clone(),
        dpop_window: Window::default(),
        default_token_ttl_secs: 300,
        dpop_nonce: None,
    });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let url = format!("{base}/v1/token");
    let one = Load {
        connections: 1,
        rate: 0,
    };
    let first = fire(addr, &url, proofs(&agent_key, &url, 1).await, one).await;
    check(&first.1, &keys, root.as_ref(), &base, clock.now_secs());
    fire(addr, &url, proofs(&agent_key, &url, warmup).await, load).await;
    let (stats, _) = fire(addr, &url, proofs(&agent_key, &url, requests).await, load).await;
    ctx.audit.flush().await;
    server.abort();
    stats
}

/// `n` fresh proofs for `POST url`, made on both cores.
async fn proofs(key: &SigningKey, url: &str, n: usize) -> Arc<Vec<String>> {
    let halves = [n / 2, n - n / 2].map(|count| {
        let (key, url) = (key.clone(), url.to_owned());
        tokio::task::spawn_blocking(move || {
            let now = jiff::Timestamp::now().as_second();
            let request = dpop::Request {
                method: "POST",
                url: &url,
                access_token: None,
                nonce: None,
            };
            (0..count)
                .map(|_| dpop::create(&key, &request, now, &dpop::new_jti()).unwrap())
                .collect::<Vec<_>>()
        })
    });
    let mut all = Vec::with_capacity(n);
    for half in halves {
        all.extend(half.await.unwrap());
    }
    Arc::new(all)
}

/// Sends one request per proof as `load` says; returns the stats and the
/// last response body.
async fn fire(addr: SocketAddr, url: &str, proofs: Arc<Vec<String>>, load: Load) -> (Stats, Bytes) {
    let next = Arc::new(AtomicUsize::new(0));
    let body = Bytes::from(format!(r#"{{"grant": "{NAMESPACE}/g"}}"#));
    let schedule = Schedule {
        start: tokio::time::Instant::now(),
        interval: (load.rate > 0).then(|| Duration::from_secs_f64(1.0 / load.rate as f64)),
    };
    let tasks: Vec<_> = (0..load.connections.max(1))
        .map(|_| {
            let (proofs, next, body, url) =
                (proofs.clone(), next.clone(), body.clone(), url.to_owned());
            tokio::spawn(
                async move { connection(addr, &url, &proofs, &next, body, schedule).await },
            )
        })
        .collect();
    let (mut latencies, mut errors, mut last) = (Vec::with_capacity(proofs.len()), 0, Bytes::new());
    for task in tasks {
        let (l, e, b) = task.await.unwrap();
        latencies.extend(l);
        errors += e;
        if !b.is_empty() {
            last = b;
        }
    }
    let elapsed = schedule.start.elapsed();
    latencies.sort_unstable();
    let throughput = latencies.len() as f64 / elapsed.as_secs_f64();
    let stats = Stats {
        throughput,
        latencies,
        errors,
    };
    (stats, last)
}

/// When each request is due.
#[derive(Clone, Copy)]
struct Schedule {
    start: tokio::time::Instant,
    /// `None`: as soon as the connection is free.
    interval: Option<Duration>,
}

impl Schedule {
    /// Waits until request `i` is due; returns the instant its latency
    /// counts from: when it was due if the connection was late, else when
    /// the timer woke (its granularity is the client's, not the server's).
    async fn wait(&self, i: usize) -> Instant {
        let Some(interval) = self.interval else {
            return Instant::now();
        };
        let due = self.start + interval.mul_f64(i as f64);
        let now = tokio::time::Instant::now();
        if now >= due {
            return Instant::now() - (now - due);
        }
        tokio::time::sleep_until(due).await;
        Instant::now()
    }
}

/// One keep-alive connection taking proofs until none are left.
async fn connection(
    addr: SocketAddr,
    url: &str,
    proofs: &[String],
    next: &AtomicUsize,
    body: Bytes,
    schedule: Schedule,
) -> (Vec<Duration>, usize, Bytes) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let (mut latencies, mut errors, mut last) = (Vec::new(), 0, Bytes::new());
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(proof) = proofs.get(i) else { break };
        let request = hyper::Request::post(url)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .header("dpop", proof.as_str())
            .body(Full::new(body.clone()))
            .unwrap();
        let started = schedule.wait(i).await;
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        let ok = response.status() == 200;
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        latencies.push(started.elapsed());
        if ok {
            last = bytes;
        } else {
            errors += 1;
            if errors == 1 {
                eprintln!("refused: {}", String::from_utf8_lossy(&bytes));
            }
        }
    }
    (latencies, errors, last)
}

/// The token in `response` verifies through the JWKS and the pinned root.
fn check(response: &[u8], keys: &KeyHierarchy, root: &dyn Signer, issuer: &str, now: i64) {
    let body: serde_json::Value = serde_json::from_slice(response).expect("a token response");
    let token = body["access_token"].as_str().expect("an access token");
    let root = RootKey::from_jwk(root.public_jwk()).unwrap();
    let trusted = TrustedKeys::from_jwks(&keys.jwks(now), &root, issuer, now);
    let expect = Expectations {
        issuer: issuer.into(),
        audience: SERVICE_PROVIDER.into(),
        leeway_secs: 0,
    };
    let signed = token::verify(token, &trusted.at(now), &expect, now).expect("a valid token");
    assert_eq!(signed.claims.exp - signed.claims.iat, 300);
    assert!(signed.claims.env.is_some());
}
