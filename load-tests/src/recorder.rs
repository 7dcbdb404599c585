//! Latencies in microseconds and outcomes of one scenario, shared by all
//! its goose users.
//!
//! goose measures whole milliseconds; targets of a few milliseconds need
//! better, so every transaction times its own request with `Instant` and
//! records it here in an HdrHistogram (3 significant digits, 1 µs – 60 s).
//! Outcomes are counted by name: `allow`, `deny:<reason>` (expected or not,
//! as the scenario declares), `error:<why>`; errors and unexpected denials
//! are also counted per minute, for the soak's "no error growth".

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::LoadError;
use crate::wire::Outcome;

/// The shared record of one scenario.
pub struct Recorder {
    expected_denials: Vec<String>,
    started: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    histogram: Histogram<u64>,
    outcomes: BTreeMap<String, u64>,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Errors and unexpected denials per minute since `started`.
    bad_per_minute: Vec<u64>,
    /// Requests by the second (since `started`) they were sent in.
    per_second: Vec<u64>,
}

/// What a scenario measured.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Requests (or flows) with an outcome.
    pub count: u64,
    /// Requests per second in the steady state: the mean over the whole
    /// seconds between the first and the last second with a send (users
    /// start during the first, stop during the last); from the first send
    /// to the last answer when that leaves fewer than 100 requests (short
    /// or slow runs).
    pub throughput: f64,
    /// Latency percentiles and maximum, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Maximum, µs.
    pub max_us: u64,
    /// Outcomes by name.
    pub outcomes: BTreeMap<String, u64>,
    /// Denials whose reason the scenario does not expect.
    pub unexpected_denials: u64,
    /// Requests without a decision (transport, HTTP status, body).
    pub errors: u64,
    /// Errors and unexpected denials per minute.
    pub bad_per_minute: Vec<u64>,
}

impl Recorder {
    /// A recorder for a scenario whose denials for `expected_denials`
    /// reasons are part of its design.
    pub fn new(expected_denials: &[&str]) -> Result<Self, LoadError> {
        let histogram = Histogram::new_with_bounds(1, 60_000_000, 3)
            .map_err(|e| LoadError::Goose(format!("histogram: {e}")))?;
        Ok(Recorder {
            expected_denials: expected_denials.iter().map(|s| (*s).to_owned()).collect(),
            started: Instant::now(),
            inner: Mutex::new(Inner {
                histogram,
                outcomes: BTreeMap::new(),
                first: None,
                last: None,
                bad_per_minute: Vec::new(),
                per_second: Vec::new(),
            }),
        })
    }

    /// Records one request sent at `sent` that took `latency`.
    pub fn record(&self, sent: Instant, latency: Duration, outcome: &Outcome) {
        let (name, bad) = match outcome {
            Outcome::Allow => ("allow".to_owned(), false),
            Outcome::Deny(reason) => (
                format!("deny:{reason}"),
                !self.expected_denials.iter().any(|r| r == reason),
            ),
            Outcome::Error(why) => (format!("error:{why}"), true),
        };
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.histogram.saturating_record(micros.max(1));
        *inner.outcomes.entry(name).or_default() += 1;
        let done = sent + latency;
        inner.first = Some(inner.first.map_or(sent, |f| f.min(sent)));
        inner.last = Some(inner.last.map_or(done, |l| l.max(done)));
        let second = usize::try_from(sent.saturating_duration_since(self.started).as_secs())
            .unwrap_or(usize::MAX);
        if second < 86_400 {
            if inner.per_second.len() <= second {
                inner.per_second.resize(second + 1, 0);
            }
            inner.per_second[second] += 1;
        }
        if bad {
            let minute = usize::try_from(done.duration_since(self.started).as_secs() / 60)
                .unwrap_or(usize::MAX);
            if inner.bad_per_minute.len() <= minute {
                inner.bad_per_minute.resize(minute + 1, 0);
            }
            inner.bad_per_minute[minute] += 1;
        }
    }

    /// What was recorded so far.
    pub fn summary(&self) -> Summary {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let h = &inner.histogram;
        let count = h.len();
        let window = match (inner.first, inner.last) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let mut unexpected_denials = 0;
        let mut errors = 0;
        for (name, n) in &inner.outcomes {
            if let Some(reason) = name.strip_prefix("deny:") {
                if !self.expected_denials.iter().any(|r| r == reason) {
                    unexpected_denials += n;
                }
            } else if name.starts_with("error:") {
                errors += n;
            }
        }
        let minutes = usize::try_from(self.started.elapsed().as_secs() / 60).unwrap_or(0) + 1;
        let mut bad_per_minute = inner.bad_per_minute.clone();
        bad_per_minute.resize(bad_per_minute.len().max(minutes), 0);
        let busy: Vec<usize> = (0..inner.per_second.len())
            .filter(|s| inner.per_second[*s] > 0)
            .collect();
        let steady = match (busy.first(), busy.last()) {
            (Some(first), Some(last)) if last - first >= 2 => {
                let inside = &inner.per_second[first + 1..*last];
                let sent: u64 = inside.iter().sum();
                // Seconds are too coarse for a few requests a second.
                (sent >= 100).then(|| sent as f64 / inside.len() as f64)
            }
            _ => None,
        };
        Summary {
            count,
            throughput: steady.unwrap_or(if window > 0.0 {
                count as f64 / window
            } else {
                0.0
            }),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            outcomes: inner.outcomes.clone(),
            unexpected_denials,
            errors,
            bad_per_minute,
        }
    }
}

impl Summary {
    /// Milliseconds, three decimals, from µs.
    pub fn ms(us: u64) -> String {
        format!("{:.3}", us as f64 / 1000.0)
    }
}
