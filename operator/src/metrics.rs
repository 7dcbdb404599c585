//! Prometheus metrics of the operator (DESIGN §12), prefix `agentauth_`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// The `controller` label values, one per controller.
pub const CONTROLLERS: [&str; 4] = ["agent", "envelope", "approver", "grant"];

/// The `error` label values of `agentauth_reconcile_errors_total` (see
/// `controllers::Error::label`).
pub const RECONCILE_ERRORS: [&str; 6] = [
    "status_write_failed",
    "conflict",
    "state_unavailable",
    "finalizer_failed",
    "caches_not_synced",
    "incomplete_object",
];

/// The `key` label values of the signer metrics.
pub const SIGNING_KEYS: [&str; 2] = ["issuing", "root"];

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
    /// Approval API answers by route and outcome (`ok` or a stable refusal code).
    pub approval_api: IntCounterVec,
    /// Signing failures by key kind (`issuing`, `root`: the KMS).
    pub signer_errors: IntCounterVec,
    /// Grants per phase in this replica's informer cache (set at each scrape).
    pub grants: IntGaugeVec,
    /// Objects per controller whose status trails their spec
    /// (`status.observedGeneration < metadata.generation`): work waiting for
    /// a reconcile, the operator's queue depth (set at each scrape).
    pub reconcile_backlog: IntGaugeVec,
    /// Audit events recorded and not yet taken by the writer.
    pub audit_queue_depth: IntGauge,
    /// Time from an audit event being recorded to being durably written.
    pub audit_append_lag: Histogram,
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
        let gauges =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
                let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };
        let is_leader =
            IntGauge::new("agentauth_operator_is_leader", "1 while this replica leads")?;
        registry.register(Box::new(is_leader.clone()))?;
        let audit_queue_depth = IntGauge::new(
            "agentauth_audit_queue_depth",
            "Audit events recorded and not yet taken by the writer",
        )?;
        registry.register(Box::new(audit_queue_depth.clone()))?;
        // 1 ms to ~65 s: a healthy write takes milliseconds; a Redis outage
        // holds events (retried) for as long as it lasts.
        let audit_append_lag = Histogram::with_opts(
            HistogramOpts::new(
                "agentauth_audit_append_lag_seconds",
                "Time from an audit event being recorded to being durably written",
            )
            .buckets(prometheus::exponential_buckets(0.001, 4.0, 9)?),
        )?;
        registry.register(Box::new(audit_append_lag.clone()))?;
        let metrics = Metrics {
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
                "Approval API answers by route and outcome (ok or a stable refusal code)",
                &["route", "outcome"],
            )?,
            signer_errors: counter(
                "agentauth_signer_errors_total",
                "Signing failures by key kind (issuing, root)",
                &["key"],
            )?,
            grants: gauges(
                "agentauth_grants",
                "CapabilityGrants per phase in this replica's cache",
                &["phase"],
            )?,
            reconcile_backlog: gauges(
                "agentauth_reconcile_backlog",
                "Objects whose status.observedGeneration trails metadata.generation, by controller",
                &["controller"],
            )?,
            audit_queue_depth,
            audit_append_lag,
            is_leader,
            registry,
        };
        metrics.touch_known_labels();
        Ok(metrics)
    }

    /// Creates every series whose labels are known in advance at zero, so a
    /// dashboard or alert sees `0`, not "no data", before the first event.
    fn touch_known_labels(&self) {
        for controller in CONTROLLERS {
            self.reconciles.with_label_values(&[controller]);
            self.reconcile_backlog.with_label_values(&[controller]);
            for error in RECONCILE_ERRORS {
                self.reconcile_errors
                    .with_label_values(&[controller, error]);
            }
        }
        for key in SIGNING_KEYS {
            self.signer_errors.with_label_values(&[key]);
            self.signer_latency.with_label_values(&[key]);
        }
        for reason in ["writer_stopped", "unlinkable"] {
            self.audit_dropped.with_label_values(&[reason]);
        }
        for kind in ["gap", "fork", "beyond_window"] {
            self.audit_conflicts.with_label_values(&[kind]);
        }
        for kind in agentauth_core::audit::kinds::OPERATOR {
            self.audit_failures.with_label_values(&[kind]);
        }
        self.token_requests.with_label_values(&["issued"]);
    }

    /// Counts one signature by the `key` kind: its latency, and whether it failed.
    pub fn signed(&self, key: &str, seconds: f64, ok: bool) {
        self.signer_latency
            .with_label_values(&[key])
            .observe(seconds);
        if !ok {
            self.signer_errors.with_label_values(&[key]).inc();
        }
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
