//! The archiver's Prometheus metrics, served on `/metrics`.

use agentauth_core::audit::BreakKind;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Stages whose failures are counted in `agentauth_archiver_errors_total`.
pub const STAGES: [&str; 6] = ["read", "heartbeat", "sign", "store", "ack", "trim"];

/// Every metric of the archiver.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Records sealed.
    pub records: IntCounter,
    /// Segments sealed.
    pub segments: IntCounter,
    /// Failures by stage (a failed stage is retried; nothing is acknowledged).
    pub errors: IntCounterVec,
    /// Records whose producer chain was broken when read, by kind.
    pub chain_breaks: IntCounterVec,
    /// Producers whose heartbeat named records the stream no longer held.
    pub truncations: IntCounter,
    /// Stream entries that hold no readable event (acknowledged, not sealed).
    pub invalid_entries: IntCounter,
    /// Entries delivered again after a restart that were sealed already.
    pub redelivered: IntCounter,
    /// Age of the oldest entry read and not yet sealed, seconds (0 when none).
    pub lag_seconds: prometheus::Gauge,
    /// Entries not yet delivered to the archiver plus those delivered and
    /// not yet acknowledged.
    pub backlog: IntGauge,
    /// Time to seal one segment: root, signature, durable write.
    pub seal_duration: Histogram,
    /// 1 while this process holds the archiver lease.
    pub is_leader: IntGauge,
}

impl Metrics {
    /// Registers every metric in a fresh registry; every known label set
    /// starts at zero, so an `increase()` alert sees the first event.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let Records {
            records,
            segments,
            chain_breaks,
            truncations,
            invalid_entries,
            redelivered,
        } = Records::register(&registry)?;
        let Health {
            errors,
            lag_seconds,
            backlog,
            seal_duration,
            is_leader,
        } = Health::register(&registry)?;
        Ok(Metrics {
            records,
            segments,
            errors,
            chain_breaks,
            truncations,
            invalid_entries,
            redelivered,
            lag_seconds,
            backlog,
            seal_duration,
            is_leader,
            registry,
        })
    }

    /// The text exposition format for `/metrics`.
    pub fn render(&self) -> String {
        agentauth_service::metrics::render(&self.registry)
    }
}

/// Registers `metric` in `registry` and hands it back.
fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    register(registry, IntCounter::new(name, help)?)
}

fn counters(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
) -> Result<IntCounterVec, prometheus::Error> {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), &[label])?,
    )
}

/// What the archiver read from the stream and sealed.
struct Records {
    records: IntCounter,
    segments: IntCounter,
    chain_breaks: IntCounterVec,
    truncations: IntCounter,
    invalid_entries: IntCounter,
    redelivered: IntCounter,
}

impl Records {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let chain_breaks = counters(
            registry,
            "agentauth_archiver_chain_breaks_total",
            "Records read whose producer chain was broken, by kind",
            "kind",
        )?;
        for kind in BreakKind::ALL {
            chain_breaks.with_label_values(&[kind.as_str()]);
        }
        Ok(Records {
            records: counter(
                registry,
                "agentauth_archiver_records_total",
                "Audit records sealed",
            )?,
            segments: counter(
                registry,
                "agentauth_archiver_segments_total",
                "Segments sealed",
            )?,
            chain_breaks,
            truncations: counter(
                registry,
                "agentauth_archiver_truncations_total",
                "Producers whose heartbeat named records the stream no longer held (a cut tail)",
            )?,
            invalid_entries: counter(
                registry,
                "agentauth_archiver_invalid_entries_total",
                "Audit stream entries holding no readable event",
            )?,
            redelivered: counter(
                registry,
                "agentauth_archiver_redelivered_total",
                "Entries delivered again after a restart that were already sealed",
            )?,
        })
    }
}

/// Whether the archiver keeps up: failures, lag, backlog, sealing time and
/// leadership.
struct Health {
    errors: IntCounterVec,
    lag_seconds: prometheus::Gauge,
    backlog: IntGauge,
    seal_duration: Histogram,
    is_leader: IntGauge,
}

impl Health {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let errors = counters(
            registry,
            "agentauth_archiver_errors_total",
            "Archiver failures by stage (retried; nothing acknowledged)",
            "stage",
        )?;
        for stage in STAGES {
            errors.with_label_values(&[stage]);
        }
        Ok(Health {
            errors,
            lag_seconds: register(
                registry,
                prometheus::Gauge::new(
                    "agentauth_archiver_lag_seconds",
                    "Age of the oldest audit entry read and not yet sealed (0 when none)",
                )?,
            )?,
            backlog: register(
                registry,
                IntGauge::new(
                    "agentauth_archiver_backlog_entries",
                    "Audit stream entries not yet delivered to the archiver or not yet acknowledged",
                )?,
            )?,
            // 1 ms to ~16 s: a local key and a directory take milliseconds; a KMS
            // signature and an S3 PUT take tens to hundreds.
            seal_duration: register(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "agentauth_archiver_seal_duration_seconds",
                        "Time to seal one segment: Merkle root, checkpoint signature, durable write",
                    )
                    .buckets(prometheus::exponential_buckets(0.001, 2.0, 15)?),
                )?,
            )?,
            is_leader: register(
                registry,
                IntGauge::new(
                    "agentauth_archiver_is_leader",
                    "1 while this process holds the archiver lease",
                )?,
            )?,
        })
    }
}
