//! [`Load`]: a steady stream of verifications, each with a fresh DPoP proof,
//! spread over the verifiers and agents round-robin, every answer recorded
//! with the time its request was sent.
//!
//! ```text
//!  tick every 1/rate ─▶ request i: agent i % agents, verifier i % targets
//!     ─▶ POST <verifier>/v1/verify (2 s timeout) ─▶ Sample {sent, latency, outcome}
//!  mark("redis killed") ─▶ a named instant on the same clock
//! ```
//!
//! Requests run concurrently (at most [`MAX_IN_FLIGHT`]), so a slow answer
//! does not slow the load down: the offered rate stays the same during a
//! fault, as it does for a real service provider.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::system::{Credentials, verify_body};

/// The most requests waiting for an answer at once; beyond it a tick is
/// skipped (and counted).
pub const MAX_IN_FLIGHT: usize = 512;
/// How long one verification may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// One verifier the load goes to.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its name, e.g. `verifier-a`.
    pub name: String,
    /// Its base URL.
    pub url: String,
    /// Seconds added to the `iat` of the proofs sent to it (its clock skew,
    /// mirrored: a verifier whose clock is ahead by s sees proofs s old).
    pub skew_secs: i64,
}

/// What a verification answered.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// `allow: true`.
    Allow,
    /// `allow: false` with this reason.
    Deny(String),
    /// No decision: connection refused, timeout, a non-200 status.
    Error(String),
}

impl Outcome {
    /// `allow`, the deny reason, or `error: …`.
    pub fn label(&self) -> String {
        match self {
            Outcome::Allow => "allow".to_owned(),
            Outcome::Deny(reason) => reason.clone(),
            Outcome::Error(kind) => format!("error: {kind}"),
        }
    }
}

/// One request and its answer.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was sent, from the start of the load.
    pub sent: Duration,
    /// How long the answer took.
    pub latency: Duration,
    /// Which target (index into the targets).
    pub target: usize,
    /// Which agent.
    pub agent: usize,
    /// The answer.
    pub outcome: Outcome,
}

/// Everything a load recorded.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// The targets' names, by index.
    pub targets: Vec<String>,
    /// Every request, in the order answers came.
    pub samples: Vec<Sample>,
    /// Named instants, in order.
    pub marks: Vec<(String, Duration)>,
    /// The offered rate (requests per second).
    pub rate: u32,
    /// Ticks skipped because too many requests were in flight.
    pub skipped: u64,
}

#[derive(Debug)]
struct Shared {
    start: Instant,
    samples: Mutex<Vec<Sample>>,
    marks: Mutex<Vec<(String, Duration)>>,
    targets: Mutex<Vec<Target>>,
    skipped: Mutex<u64>,
}

/// A running load; [`Load::stop`] ends it and returns the [`Record`].
#[derive(Debug)]
pub struct Load {
    shared: Arc<Shared>,
    rate: u32,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Load {
    /// Starts `rate` verifications per second over `targets` as `agents`.
    pub fn start(agents: Vec<Credentials>, targets: Vec<Target>, rate: u32) -> Load {
        let shared = Arc::new(Shared {
            start: Instant::now(),
            samples: Mutex::new(Vec::new()),
            marks: Mutex::new(Vec::new()),
            targets: Mutex::new(targets),
            skipped: Mutex::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(shared.clone(), agents, rate.max(1), stopped));
        Load {
            shared,
            rate,
            stop,
            task,
        }
    }

    /// Records a named instant (e.g. "redis killed") and returns it.
    pub fn mark(&self, label: &str) -> Duration {
        let at = self.shared.start.elapsed();
        if let Ok(mut marks) = self.shared.marks.lock() {
            marks.push((label.to_owned(), at));
        }
        at
    }

    /// The time since the load started.
    pub fn now(&self) -> Duration {
        self.shared.start.elapsed()
    }

    /// Changes the skew of target `index` from now on.
    pub fn set_skew(&self, index: usize, skew_secs: i64) {
        if let Ok(mut targets) = self.shared.targets.lock()
            && let Some(target) = targets.get_mut(index)
        {
            target.skew_secs = skew_secs;
        }
    }

    /// A copy of the samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.shared
            .samples
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Stops sending, waits for the answers in flight (at most the request
    /// timeout) and returns everything recorded.
    pub async fn stop(self) -> Record {
        let _ = self.stop.send(true);
        let Load {
            shared, task, rate, ..
        } = self;
        let _ = task.await;
        let samples = shared.samples.lock().map(|s| s.clone()).unwrap_or_default();
        let marks = shared.marks.lock().map(|m| m.clone()).unwrap_or_default();
        let targets = shared
            .targets
            .lock()
            .map(|t| t.iter().map(|t| t.name.clone()).collect())
            .unwrap_or_default();
        let skipped = shared.skipped.lock().map(|s| *s).unwrap_or_default();
        Record {
            targets,
            samples,
            marks,
            rate,
            skipped,
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    agents: Vec<Credentials>,
    rate: u32,
    mut stopped: watch::Receiver<bool>,
) {
    let Ok(http) = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(64)
        .build()
    else {
        return;
    };
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut i: usize = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => break,
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            if let Ok(mut skipped) = shared.skipped.lock() {
                *skipped += 1;
            }
            continue;
        };
        let target_count = shared.targets.lock().map(|t| t.len()).unwrap_or(0);
        if target_count == 0 || agents.is_empty() {
            continue;
        }
        let (agent, target_index) = (i % agents.len(), i % target_count);
        let Some(target) = shared
            .targets
            .lock()
            .ok()
            .and_then(|t| t.get(target_index).cloned())
        else {
            continue;
        };
        let body = verify_body(
            &agents[agent],
            &format!("catalog/item-{i}"),
            target.skew_secs,
        );
        let (http, shared) = (http.clone(), shared.clone());
        i = i.wrapping_add(1);
        tokio::spawn(async move {
            let sent = shared.start.elapsed();
            let outcome = verify(&http, &target.url, &body).await;
            let sample = Sample {
                sent,
                latency: shared.start.elapsed().saturating_sub(sent),
                target: target_index,
                agent,
                outcome,
            };
            if let Ok(mut samples) = shared.samples.lock() {
                samples.push(sample);
            }
            drop(permit);
        });
    }
    // Wait for the answers in flight.
    let _ = tokio::time::timeout(
        REQUEST_TIMEOUT + Duration::from_secs(1),
        in_flight.acquire_many(u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX)),
    )
    .await;
}

/// One `POST /v1/verify`, classified.
pub async fn verify(http: &reqwest::Client, base: &str, body: &serde_json::Value) -> Outcome {
    let response = match http
        .post(format!("{base}/v1/verify"))
        .json(body)
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) if e.is_timeout() => return Outcome::Error("timeout".to_owned()),
        Err(e) if e.is_connect() => return Outcome::Error("connection refused".to_owned()),
        Err(_) => return Outcome::Error("connection".to_owned()),
    };
    let status = response.status().as_u16();
    if status != 200 {
        return Outcome::Error(format!("HTTP {status}"));
    }
    match response.json::<serde_json::Value>().await {
        Ok(answer) if answer["allow"] == true => Outcome::Allow,
        Ok(answer) => Outcome::Deny(answer["reason"].as_str().unwrap_or("no reason").to_owned()),
        Err(_) => Outcome::Error("unreadable answer".to_owned()),
    }
}
