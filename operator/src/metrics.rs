//! Prometheus metrics of the operator (DESIGN §12), prefix `agentauth_`.

use agentauth_service::metrics::Register;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Registry,
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
        let r = Register(&registry);
        let Requests {
            token_requests,
            api_requests,
            api_latency,
            approval_api,
        } = Requests::register(&r)?;
        let Controllers {
            reconcile_errors,
            reconciles,
            grants,
            reconcile_backlog,
            is_leader,
        } = Controllers::register(&r)?;
        let Signer {
            signer_latency,
            signer_errors,
        } = Signer::register(&r)?;
        let Audit {
            audit_failures,
            audit_write_retries,
            audit_duplicates_skipped,
            audit_conflicts,
            audit_dropped,
            audit_queue_depth,
            audit_append_lag,
        } = Audit::register(&r)?;
        let metrics = Metrics {
            registry,
            reconcile_errors,
            reconciles,
            token_requests,
            api_requests,
            api_latency,
            signer_latency,
            audit_failures,
            audit_write_retries,
            audit_duplicates_skipped,
            audit_conflicts,
            audit_dropped,
            is_leader,
            approval_api,
            signer_errors,
            grants,
            reconcile_backlog,
            audit_queue_depth,
            audit_append_lag,
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
        agentauth_service::metrics::render(&self.registry)
    }
}

/// 50 µs to 5 s: token issuance is sub-millisecond with an issuing key and
/// tens of milliseconds when a KMS signs directly.
fn latency_buckets() -> Result<Vec<f64>, prometheus::Error> {
    prometheus::exponential_buckets(0.00005, 2.5, 14)
}

/// The agent API, token issuance and the approval API.
struct Requests {
    token_requests: IntCounterVec,
    api_requests: IntCounterVec,
    api_latency: HistogramVec,
    approval_api: IntCounterVec,
}

impl Requests {
    fn register(r: &Register<'_>) -> Result<Self, prometheus::Error> {
        Ok(Requests {
            token_requests: r.counter_vec(
                "agentauth_token_requests_total",
                "Token requests by outcome (issued or a stable reason code)",
                &["outcome"],
            )?,
            api_requests: r.counter_vec(
                "agentauth_api_requests_total",
                "Agent API requests by route and HTTP status",
                &["route", "status"],
            )?,
            api_latency: r.histogram_vec(
                "agentauth_api_request_duration_seconds",
                "Agent API latency by route",
                &["route"],
                latency_buckets()?,
            )?,
            approval_api: r.counter_vec(
                "agentauth_approval_api_outcomes_total",
                "Approval API answers by route and outcome (ok or a stable refusal code)",
                &["route", "outcome"],
            )?,
        })
    }
}

/// The controllers, their backlog and leadership.
struct Controllers {
    reconcile_errors: IntCounterVec,
    reconciles: IntCounterVec,
    grants: IntGaugeVec,
    reconcile_backlog: IntGaugeVec,
    is_leader: IntGauge,
}

impl Controllers {
    fn register(r: &Register<'_>) -> Result<Self, prometheus::Error> {
        Ok(Controllers {
            reconcile_errors: r.counter_vec(
                "agentauth_reconcile_errors_total",
                "Reconcile failures by controller and error",
                &["controller", "error"],
            )?,
            reconciles: r.counter_vec(
                "agentauth_reconciles_total",
                "Reconciles by controller",
                &["controller"],
            )?,
            grants: r.gauge_vec(
                "agentauth_grants",
                "CapabilityGrants per phase in this replica's cache",
                &["phase"],
            )?,
            reconcile_backlog: r.gauge_vec(
                "agentauth_reconcile_backlog",
                "Objects whose status.observedGeneration trails metadata.generation, by controller",
                &["controller"],
            )?,
            is_leader: r.add(IntGauge::new(
                "agentauth_operator_is_leader",
                "1 while this replica leads",
            )?)?,
        })
    }
}

/// The token signer (an issuing key, or the KMS root).
struct Signer {
    signer_latency: HistogramVec,
    signer_errors: IntCounterVec,
}

impl Signer {
    fn register(r: &Register<'_>) -> Result<Self, prometheus::Error> {
        Ok(Signer {
            signer_latency: r.histogram_vec(
                "agentauth_signer_duration_seconds",
                "Signing latency by key kind",
                &["key"],
                latency_buckets()?,
            )?,
            signer_errors: r.counter_vec(
                "agentauth_signer_errors_total",
                "Signing failures by key kind (issuing, root)",
                &["key"],
            )?,
        })
    }
}

/// The audit queue and writer.
struct Audit {
    audit_failures: IntCounterVec,
    audit_write_retries: IntCounter,
    audit_duplicates_skipped: IntCounter,
    audit_conflicts: IntCounterVec,
    audit_dropped: IntCounterVec,
    audit_queue_depth: IntGauge,
    audit_append_lag: Histogram,
}

impl Audit {
    fn register(r: &Register<'_>) -> Result<Self, prometheus::Error> {
        Ok(Audit {
            audit_failures: r.counter_vec(
                "agentauth_audit_write_failures_total",
                "Audit events that could not be written",
                &["kind"],
            )?,
            audit_write_retries: r.counter(
                "agentauth_audit_write_retries_total",
                "Audit batch writes retried with the same events",
            )?,
            audit_duplicates_skipped: r.counter(
                "agentauth_audit_duplicates_skipped_total",
                "Audit events already written (a retry after a lost answer), skipped",
            )?,
            audit_conflicts: r.counter_vec(
                "agentauth_audit_conflicts_total",
                "Audit appends refused as a gap or fork of the stored chain, by kind",
                &["kind"],
            )?,
            audit_dropped: r.counter_vec(
                "agentauth_audit_dropped_total",
                "Audit events lost, by reason",
                &["reason"],
            )?,
            audit_queue_depth: r.add(IntGauge::new(
                "agentauth_audit_queue_depth",
                "Audit events recorded and not yet taken by the writer",
            )?)?,
            // 1 ms to ~65 s: a healthy write takes milliseconds; a Redis outage
            // holds events (retried) for as long as it lasts.
            audit_append_lag: r.add(Histogram::with_opts(
                HistogramOpts::new(
                    "agentauth_audit_append_lag_seconds",
                    "Time from an audit event being recorded to being durably written",
                )
                .buckets(prometheus::exponential_buckets(0.001, 4.0, 9)?),
            )?)?,
        })
    }
}
