//! Prometheus metrics of the verifier (DESIGN §12), prefix `agentauth_`.
//!
//! The per-request counters are resolved once at start (one per reason
//! code), so recording a decision is an atomic add, not a label lookup.
//! Hit ratios are `hit / (hit + miss)` of `agentauth_verifier_cache_total`.

use std::collections::HashMap;

use agentauth_core::ErrorCode;
use agentauth_service::metrics::Register;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

/// The `op` label values of `agentauth_state_errors_total`.
pub const STATE_OPS: [&str; 2] = ["get_grant", "consume"];

/// A cache whose hits and misses are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheKind {
    /// Verified tokens (by SHA-256 of the token).
    Token,
    /// Grant states.
    Grant,
}

/// Every metric the verifier exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    allowed: IntCounter,
    denied: HashMap<ErrorCode, IntCounter>,
    invalid: HashMap<ErrorCode, IntCounter>,
    decisions: IntCounterVec,
    /// Time from request received to answer ready, every endpoint that decides.
    pub latency: Histogram,
    cache: [[IntCounter; 2]; 2],
    /// Shared-state calls that failed or timed out, by operation.
    pub state_errors: IntCounterVec,
    /// Denial events dropped because the audit queue was full (each burst
    /// is logged): `agentauth_audit_dropped_total{reason="queue_full"}`.
    pub audit_dropped_queue_full: IntCounter,
    /// Events lost because they could not be linked (an unrepresentable
    /// time): `agentauth_audit_dropped_total{reason="unlinkable"}`.
    pub audit_dropped_unlinkable: IntCounter,
    /// Allows refused with `audit_unavailable` because the audit queue
    /// stayed full.
    pub audit_allows_refused: IntCounter,
    /// Audit batch writes that failed (each is retried).
    pub audit_write_failures: IntCounter,
    /// Audit batch writes retried with the same, already linked events.
    pub audit_write_retries: IntCounter,
    /// Events the state reported as already written on a retry, skipped.
    pub audit_duplicates_skipped: IntCounter,
    /// Appends refused as a gap or fork of the stored chain, by kind.
    pub audit_conflicts: IntCounterVec,
    /// JWKS fetches by result (`ok`, `error`, `throttled`).
    pub jwks_refreshes: IntCounterVec,
    /// Keys of the last JWKS that the pinned root vouches for.
    pub trusted_keys: IntGauge,
    /// Times the whole grant cache was dropped (lost subscription, lag).
    pub grant_cache_flushes: IntCounter,
    /// Newest revocation state seen, ms since the epoch.
    pub revocation_watermark_ms: IntGauge,
    /// Verified tokens held.
    pub token_cache_entries: IntGauge,
    /// Time from a revocation (the operator's clock) to this verifier
    /// applying it: the propagation the design bounds at 1 s.
    pub revocation_lag: Histogram,
    /// Audit events recorded and not yet taken by the writer.
    pub audit_queue_depth: IntGauge,
    /// Time from an audit event being recorded to being durably written.
    pub audit_append_lag: Histogram,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = Register(&registry);
        let Requests {
            allowed,
            denied,
            invalid,
            decisions,
            latency,
        } = Requests::register(&r)?;
        let Caches {
            cache,
            jwks_refreshes,
            trusted_keys,
            grant_cache_flushes,
            revocation_watermark_ms,
            token_cache_entries,
            revocation_lag,
        } = Caches::register(&r)?;
        let Audit {
            audit_dropped_queue_full,
            audit_dropped_unlinkable,
            audit_allows_refused,
            audit_write_failures,
            audit_write_retries,
            audit_duplicates_skipped,
            audit_conflicts,
            audit_queue_depth,
            audit_append_lag,
        } = Audit::register(&r)?;
        let state_errors = state_errors(&r)?;
        Ok(Metrics {
            registry,
            allowed,
            denied,
            invalid,
            decisions,
            latency,
            cache,
            state_errors,
            audit_dropped_queue_full,
            audit_dropped_unlinkable,
            audit_allows_refused,
            audit_write_failures,
            audit_write_retries,
            audit_duplicates_skipped,
            audit_conflicts,
            jwks_refreshes,
            trusted_keys,
            grant_cache_flushes,
            revocation_watermark_ms,
            token_cache_entries,
            revocation_lag,
            audit_queue_depth,
            audit_append_lag,
        })
    }

    /// Counts an allow.
    pub fn allowed(&self) {
        self.allowed.inc();
    }

    /// Counts a denial with `code`.
    pub fn denied(&self, code: ErrorCode) {
        match self.denied.get(&code) {
            Some(counter) => counter.inc(),
            None => self
                .decisions
                .with_label_values(&["deny", code.as_str()])
                .inc(),
        }
    }

    /// Counts a request refused as unreadable (HTTP 400) with `code`.
    pub fn invalid(&self, code: ErrorCode) {
        match self.invalid.get(&code) {
            Some(counter) => counter.inc(),
            None => self
                .decisions
                .with_label_values(&["invalid", code.as_str()])
                .inc(),
        }
    }

    /// Counts a cache lookup.
    pub fn cache(&self, kind: CacheKind, hit: bool) {
        let [hits, misses] = match kind {
            CacheKind::Token => &self.cache[0],
            CacheKind::Grant => &self.cache[1],
        };
        if hit { hits.inc() } else { misses.inc() }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        agentauth_service::metrics::render(&self.registry)
    }
}

/// The verification answers and their latency.
struct Requests {
    allowed: IntCounter,
    denied: HashMap<ErrorCode, IntCounter>,
    invalid: HashMap<ErrorCode, IntCounter>,
    decisions: IntCounterVec,
    latency: Histogram,
}

impl Requests {
    fn register(r: &Register<'_>) -> Result<Self, prometheus::Error> {
        let decisions = r.counter_vec(
            "agentauth_verifications_total",
            "Verification answers by decision (allow, deny, invalid) and reason code",
            &["decision", "reason"],
        )?;
        let by_code =
            |decision: &str| -> Result<HashMap<ErrorCode, IntCounter>, prometheus::Error> {
                ErrorCode::ALL
                    .iter()
                    .map(|&code| {
                        Ok((
                            code,
                            decisions.get_metric_with_label_values(&[decision, code.as_str()])?,
                        ))
                    })
                    .collect()
            };
        // 25 µs to ~1.6 s: a warm verification is well under a millisecond,
        // the state timeout is tens of milliseconds.
        let latency = r.histogram(
            "agentauth_verification_duration_seconds",
            "Time to answer a verification request",
            prometheus::exponential_buckets(0.000025, 2.0, 17)?,
        )?;
        Ok(Requests {
            allowed: decisions.get_metric_with_label_values(&["allow", "allowed"])?,
            denied: by_code("deny")?,
            invalid: by_code("invalid")?,
            decisions,
            latency,
        })
    }
}

/// The token and grant caches, the trusted keys and revocation propagation.
struct Caches {
    cache: [[IntCounter; 2]; 2],
    jwks_refreshes: IntCounterVec,
    trusted_keys: IntGauge,
    grant_cache_flushes: IntCounter,
    revocation_watermark_ms: IntGauge,
    token_cache_entries: IntGauge,
    revocation_lag: Histogram,
}

impl Caches {
    fn register(r: &Register<'_>) -> Result<Self, prometheus::Error> {
        let cache = r.counter_vec(
            "agentauth_verifier_cache_total",
            "Cache lookups by cache (token, grant) and result (hit, miss)",
            &["cache", "result"],
        )?;
        let pair = |name: &str| -> Result<[IntCounter; 2], prometheus::Error> {
            Ok([
                cache.get_metric_with_label_values(&[name, "hit"])?,
                cache.get_metric_with_label_values(&[name, "miss"])?,
            ])
        };
        Ok(Caches {
            cache: [pair("token")?, pair("grant")?],
            jwks_refreshes: r.counter_vec(
                "agentauth_jwks_refreshes_total",
                "JWKS fetches by result",
                &["result"],
            )?,
            trusted_keys: r.gauge(
                "agentauth_verifier_trusted_keys",
                "Token-signing keys the pinned root vouches for",
            )?,
            grant_cache_flushes: r.counter(
                "agentauth_verifier_grant_cache_flushes_total",
                "Times every cached grant was dropped (lost subscription or lag)",
            )?,
            revocation_watermark_ms: r.gauge(
                "agentauth_verifier_revocation_watermark_ms",
                "Newest revocation state seen, milliseconds since the epoch",
            )?,
            token_cache_entries: r.gauge(
                "agentauth_verifier_token_cache_entries",
                "Verified tokens held in the cache",
            )?,
            // 1 ms to ~16 s: pub/sub delivers in milliseconds; the design's bound is 1 s.
            revocation_lag: r.histogram(
                "agentauth_verifier_revocation_lag_seconds",
                "Time from a revocation to this verifier applying it",
                prometheus::exponential_buckets(0.001, 2.0, 15)?,
            )?,
        })
    }
}

/// Shared-state calls that failed, every known operation starting at zero.
fn state_errors(r: &Register<'_>) -> Result<IntCounterVec, prometheus::Error> {
    let op_errors = r.counter_vec(
        "agentauth_state_errors_total",
        "Shared-state (Redis) calls that failed or timed out, by operation",
        &["op"],
    )?;
    for op in STATE_OPS {
        op_errors.with_label_values(&[op]);
    }
    Ok(op_errors)
}

/// The audit queue and writer.
struct Audit {
    audit_dropped_queue_full: IntCounter,
    audit_dropped_unlinkable: IntCounter,
    audit_allows_refused: IntCounter,
    audit_write_failures: IntCounter,
    audit_write_retries: IntCounter,
    audit_duplicates_skipped: IntCounter,
    audit_conflicts: IntCounterVec,
    audit_queue_depth: IntGauge,
    audit_append_lag: Histogram,
}

impl Audit {
    fn register(r: &Register<'_>) -> Result<Self, prometheus::Error> {
        let audit_dropped = r.counter_vec(
            "agentauth_audit_dropped_total",
            "Audit events lost, by reason: queue_full (denials only), unlinkable",
            &["reason"],
        )?;
        let audit_conflicts = r.counter_vec(
            "agentauth_audit_conflicts_total",
            "Audit appends refused as a gap or fork of the stored chain, by kind",
            &["kind"],
        )?;
        for kind in ["gap", "fork", "beyond_window"] {
            audit_conflicts.with_label_values(&[kind]);
        }
        Ok(Audit {
            audit_dropped_queue_full: audit_dropped
                .get_metric_with_label_values(&["queue_full"])?,
            audit_dropped_unlinkable: audit_dropped
                .get_metric_with_label_values(&["unlinkable"])?,
            audit_allows_refused: r.counter(
                "agentauth_audit_allows_refused_total",
                "Allows refused with audit_unavailable because the audit queue stayed full",
            )?,
            audit_write_failures: r.counter(
                "agentauth_audit_write_failures_total",
                "Audit batch writes that failed (and were retried)",
            )?,
            audit_write_retries: r.counter(
                "agentauth_audit_write_retries_total",
                "Audit batch writes retried with the same events",
            )?,
            audit_duplicates_skipped: r.counter(
                "agentauth_audit_duplicates_skipped_total",
                "Audit events already written (a retry after a lost answer), skipped",
            )?,
            audit_conflicts,
            audit_queue_depth: r.gauge(
                "agentauth_audit_queue_depth",
                "Audit events recorded and not yet taken by the writer",
            )?,
            // 1 ms to ~65 s: a healthy write takes milliseconds; an outage holds
            // events (retried) for as long as it lasts.
            audit_append_lag: r.histogram(
                "agentauth_audit_append_lag_seconds",
                "Time from an audit event being recorded to being durably written",
                prometheus::exponential_buckets(0.001, 4.0, 9)?,
            )?,
        })
    }
}
