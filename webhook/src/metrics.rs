//! Prometheus metrics of the webhook (DESIGN §12), prefix `agentauth_`.
//!
//! Labels are bounded: `resource` is one of the validated resources (or
//! `other`), `verdict` is `allowed` or `denied`, `reason` is `ok` or a
//! stable code.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Every metric the webhook exports.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Admission reviews by resource, verdict and reason.
    pub admissions: IntCounterVec,
    /// Time to decide one review, by resource (including the apiserver
    /// reads it needed).
    pub latency: HistogramVec,
    /// Reviews of the mutating endpoint by verdict and reason (`patched`,
    /// `unchanged`, or a stable code).
    pub mutations: IntCounterVec,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let admissions = IntCounterVec::new(
            Opts::new(
                "agentauth_admissions_total",
                "Admission reviews by resource, verdict (allowed, denied) and reason code",
            ),
            &["resource", "verdict", "reason"],
        )?;
        registry.register(Box::new(admissions.clone()))?;
        // 100 µs to ~5 s: a pure check is sub-millisecond, one with apiserver
        // reads a few milliseconds; the apiserver gives up at 5 s.
        let buckets = prometheus::exponential_buckets(0.0001, 2.5, 13)?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "agentauth_admission_duration_seconds",
                "Time to decide one admission review, by resource",
            )
            .buckets(buckets),
            &["resource"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        let mutations = IntCounterVec::new(
            Opts::new(
                "agentauth_admission_mutations_total",
                "Reviews of the mutating endpoint (the Agent's creator) by verdict and reason",
            ),
            &["verdict", "reason"],
        )?;
        registry.register(Box::new(mutations.clone()))?;
        Ok(Metrics {
            registry,
            admissions,
            latency,
            mutations,
        })
    }

    /// Counts one decision.
    pub fn record(&self, resource: &str, reason: Option<&str>, seconds: f64) {
        let (verdict, reason) = match reason {
            None => ("allowed", "ok"),
            Some(code) => ("denied", code),
        };
        self.admissions
            .with_label_values(&[resource, verdict, reason])
            .inc();
        self.latency.with_label_values(&[resource]).observe(seconds);
    }

    /// Counts one answer of the mutating endpoint: denied with `code`, or
    /// allowed with or without a patch.
    pub fn record_mutation(&self, code: Option<&str>, patched: bool) {
        let labels = match (code, patched) {
            (Some(code), _) => ["denied", code],
            (None, true) => ["allowed", "patched"],
            (None, false) => ["allowed", "unchanged"],
        };
        self.mutations.with_label_values(&labels).inc();
    }

    /// The text exposition format for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
