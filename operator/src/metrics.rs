//! Prometheus metrics of the operator (DESIGN §12), prefix `agentauth_`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconcile failures by controller and error.
    pub reconcile_errors: IntCounterVec,
    /// Reconciles by controller.
    pub reconciles: IntCounterVec,
    /// Tokens issued, and refusals by reason code.
    pub token_requests: IntCounterVec,
    /// Agent API requests by route and status.
    pub api_requests: IntCounterVec,
    /// Agent API latency by route.
    pub api_latency: HistogramVec,
    /// Signing latency by key kind (`issuing`, `root`).
    pub signer_latency: HistogramVec,
    /// Audit events whose write failed (and is retried) or that could not
    /// be linked, by event kind (each is also logged).
    pub audit_failures: IntCounterVec,
    /// Audit batch writes retried with the same, already linked events.
    pub audit_write_retries: IntCounter,
    /// Audit events the state reported as already written on a retry, skipped.
    pub audit_duplicates_skipped: IntCounter,
    /// Audit appends refused as a gap or fork of the stored chain, by kind.
    pub audit_conflicts: IntCounterVec,
    /// Audit events lost, by reason (`unlinkable`: an unrepresentable time).
    pub audit_dropped: IntCounterVec,
    /// 1 while this replica holds the leader Lease.
    pub is_leader: IntGauge,
    /// Approval API answers by outcome (`ok` or a stable refusal code).
    pub approval_api: IntCounterVec,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let single = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram =
            |name: &str, help: &str, labels: &[&str]| -> Result<HistogramVec, prometheus::Error> {
                // 50 µs to 5 s: token issuance is sub-millisecond with an issuing
                // key and tens of milliseconds when a KMS signs directly.
                let buckets = prometheus::exponential_buckets(0.00005, 2.5, 14)?;
                let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let is_leader =
            IntGauge::new("agentauth_operator_is_leader", "1 while this replica leads")?;
        registry.register(Box::new(is_leader.clone()))?;
        Ok(Metrics {
            reconcile_errors: counter(
                "agentauth_reconcile_errors_total",
                "Reconcile failures by controller and error",
                &["controller", "error"],
            )?,
            reconciles: counter(
                "agentauth_reconciles_total",
                "Reconciles by controller",
                &["controller"],
            )?,
            token_requests: counter(
                "agentauth_token_requests_total",
                "Token requests by outcome (issued or a stable reason code)",
                &["outcome"],
            )?,
            api_requests: counter(
                "agentauth_api_requests_total",
                "Agent API requests by route and HTTP status",
                &["route", "status"],
            )?,
            api_latency: histogram(
                "agentauth_api_request_duration_seconds",
                "Agent API latency by route",
                &["route"],
            )?,
            signer_latency: histogram(
                "agentauth_signer_duration_seconds",
                "Signing latency by key kind",
                &["key"],
            )?,
            audit_failures: counter(
                "agentauth_audit_write_failures_total",
                "Audit events that could not be written",
                &["kind"],
            )?,
            audit_write_retries: single(
                "agentauth_audit_write_retries_total",
                "Audit batch writes retried with the same events",
            )?,
            audit_duplicates_skipped: single(
                "agentauth_audit_duplicates_skipped_total",
                "Audit events already written (a retry after a lost answer), skipped",
            )?,
            audit_conflicts: counter(
                "agentauth_audit_conflicts_total",
                "Audit appends refused as a gap or fork of the stored chain, by kind",
                &["kind"],
            )?,
            audit_dropped: counter(
                "agentauth_audit_dropped_total",
                "Audit events lost, by reason",
                &["reason"],
            )?,
            approval_api: counter(
                "agentauth_approval_api_outcomes_total",
                "Approval API answers by outcome (ok or a stable refusal code)",
                &["outcome"],
            )?,
            is_leader,
            registry,
        })
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
