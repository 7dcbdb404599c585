//! The load generator: pre-made bodies over keep-alive HTTP/1.1
//! connections (hyper's client connection, no pool), closed loop, every
//! latency recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// What one phase measured.
pub struct Outcome {
    pub requests: usize,
    pub allowed: usize,
    pub elapsed: Duration,
    /// CPU µs per request: load generator, server, Redis.
    pub cpu_us: [f64; 3],
    latencies_us: Vec<u32>,
}

impl Outcome {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        f64::from(self.latencies_us[rank]) / 1000.0
    }
}

/// Sends every body once (or until `limit`) over `connections` connections.
pub async fn run(port: u16, bodies: Vec<Bytes>, connections: usize, limit: Duration) -> Outcome {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (bodies, next) = (bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut sender = connect(port).await;
                let mut latencies = Vec::new();
                let mut allowed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= bodies.len() || started.elapsed() > limit {
                        break;
                    }
                    let sent = Instant::now();
                    let (status, body) = post(&mut sender, bodies[i].clone()).await;
                    latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    if body.windows(13).any(|w| w == b"\"allow\":true,") {
                        allowed += 1;
                    } else if allowed == 0 && latencies.len() == 1 {
                        eprintln!("denied: {}", String::from_utf8_lossy(&body));
                    }
                }
                (latencies, allowed)
            })
        })
        .collect();
    collect(tasks, started).await
}

/// Open loop: sends body `i` at `i / rate` seconds from the start, whether or
/// not earlier answers came back, over `connections` connections (body `i` on
/// connection `i mod connections`). A latency runs from the instant the
/// request was due, so a queue in the server (or in a busy connection) is
/// counted, not hidden (no coordinated omission).
pub async fn open_loop(port: u16, bodies: Vec<Bytes>, rate: f64, connections: usize) -> Outcome {
    let bodies = Arc::new(bodies);
    let started = Instant::now() + Duration::from_millis(50);
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let bodies = bodies.clone();
            tokio::spawn(async move {
                let mut sender = connect(port).await;
                let mut latencies = Vec::new();
                let mut allowed = 0;
                for i in (c..bodies.len()).step_by(connections) {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    let (status, body) = post(&mut sender, bodies[i].clone()).await;
                    latencies.push(u32::try_from(due.elapsed().as_micros()).unwrap_or(u32::MAX));
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    allowed += usize::from(body.windows(13).any(|w| w == b"\"allow\":true,"));
                }
                (latencies, allowed)
            })
        })
        .collect();
    collect(tasks, started).await
}

async fn connect(port: u16) -> http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

async fn post(sender: &mut http1::SendRequest<Full<Bytes>>, body: Bytes) -> (u16, Bytes) {
    let request = hyper::Request::post("/v1/verify")
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(Vec<u32>, usize)>>,
    started: Instant,
) -> Outcome {
    let mut latencies_us = Vec::new();
    let mut allowed = 0;
    for task in tasks {
        let (l, a) = task.await.unwrap();
        latencies_us.extend(l);
        allowed += a;
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Outcome {
        requests: latencies_us.len(),
        allowed,
        elapsed,
        cpu_us: [0.0; 3],
        latencies_us,
    }
}

/// The status of `GET path`, or `None` when nothing answers.
pub async fn get(port: u16, path: &str) -> Option<u16> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    Some(response.status().as_u16())
}
