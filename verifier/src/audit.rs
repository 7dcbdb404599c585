//! The verifier's audit producer (DESIGN §8): one hash chain per process,
//! one event per decision, written off the latency path by the state crate's
//! one sink ([`agentauth_state::audit::sink`], the same as the operator's),
//! with the policy [`DropWhenFull`].
//!
//! ```text
//!  allow ──send, wait ≤ ALLOW_WAIT──┐                     writer task: resume chain (once),
//!     │ still full: refuse the       ├─▶ bounded channel ──▶ take up to 256 drafts, ChainWriter::write
//!     │ request, audit_unavailable   │   (--audit-queue)     (idempotent by seq; retried until written),
//!  deny ──try_send──────────────────┘                       then linger 2 ms (batches form)
//!     │ full: drop, count (agentauth_audit_dropped_total{reason="queue_full"})
//! ```
//!
//! **Allows are never lost silently.** When the queue is full (the state is
//! down, or slower than the decision rate), an allow waits for a free slot
//! at most [`ALLOW_WAIT`]; if none frees up, [`AuditSink::record_allow`]
//! refuses and the verifier answers the request with the denial
//! `audit_unavailable` instead (counted in
//! `agentauth_audit_allows_refused_total`). Failing closed was chosen over
//! spilling to a local file: a verifier pod's disk is ephemeral (a spill
//! dies with the pod, exactly when it matters), a second store would need
//! its own ordering against the chain and its own drain and loss
//! accounting, and a verifier whose Redis is that slow already denies with
//! `state_unavailable` (DESIGN §7) — the audit trail follows the same rule.
//! The request had already been counted against its rate and amount limits,
//! which errs towards refusal.
//!
//! **Denials may be dropped** under back-pressure, never waiting, and every
//! one is counted. They are dropped before they are linked, so the chain
//! itself has no gap; a warning is logged per burst (at most one every
//! 10 s, with the running total).
//!
//! **Writes are idempotent**: a batch is linked once and re-sent unchanged
//! until the state has it, so a write that Redis applied before its answer
//! was lost is skipped on the retry, not written twice
//! ([`agentauth_state::audit`]; counted in
//! `agentauth_audit_duplicates_skipped_total`, retries in
//! `agentauth_audit_write_retries_total`). A queued event is lost only when
//! the process dies before writing it (the flush at shutdown waits 5 s).

use std::sync::Arc;
use std::time::Duration;

use agentauth_core::Error;
use agentauth_core::audit::{AuditEvent, Draft};
use agentauth_state::audit::sink::{self, DropWhenFull, Dropped, SinkObserver, SinkOptions};
use agentauth_state::audit::{AppendObserver, Conflict};
use agentauth_state::{SharedState, StateError};

use crate::Clock;
use crate::metrics::Metrics;

/// Longest an allow waits for room in a full queue before the request is
/// refused with `audit_unavailable`. Twice the state's hot-path timeout
/// (50 ms): long enough to ride out one slow write, short enough that a
/// caller sees a prompt refusal rather than a hung request.
pub const ALLOW_WAIT: Duration = Duration::from_millis(100);

/// How long the writer waits after a write before it takes the next batch.
const LINGER: Duration = Duration::from_millis(2);

/// Records audit events for one producer.
#[derive(Clone, Debug)]
pub struct AuditSink(sink::AuditSink<DropWhenFull>);

impl AuditSink {
    /// Starts the writer of `producer`'s chain with a queue of `capacity`
    /// events. The chain resumes after the producer's last written event
    /// once the state answers; until then events queue (and past
    /// `capacity`, denials are dropped and counted, allows refused).
    pub fn start(
        producer: String,
        state: Arc<dyn SharedState>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        capacity: usize,
    ) -> Self {
        let options = SinkOptions {
            capacity,
            linger: LINGER,
        };
        let now = Arc::new(move || clock.now_ms());
        AuditSink(sink::AuditSink::start(
            producer,
            state,
            now,
            Arc::new(Counted(metrics)),
            options,
        ))
    }

    /// Queues the record of a denial stamped now; never waits. When the
    /// queue is full it is dropped and counted.
    pub fn record(&self, draft: Draft) {
        self.0.record(draft);
    }

    /// Queues the record of an allow stamped now, waiting at most
    /// [`ALLOW_WAIT`] for room. `Err` (code `audit_unavailable`) means it
    /// could not be queued: the caller must not allow the request.
    pub async fn record_allow(&self, draft: Draft) -> Result<(), Error> {
        self.0.record_allow(draft, ALLOW_WAIT).await
    }

    /// Waits until every event recorded so far is written (shutdown, tests).
    pub async fn flush(&self) {
        self.0.flush().await;
    }
}

/// Counts what the shared sink reports, in the verifier's metrics.
struct Counted(Metrics);

impl AppendObserver for Counted {
    fn retried(&self, _: &StateError, _: &[AuditEvent]) {
        self.0.audit_write_failures.inc();
        self.0.audit_write_retries.inc();
    }
    fn skipped(&self, events: usize) {
        self.0.audit_duplicates_skipped.inc_by(events as u64);
    }
    fn conflict(&self, conflict: &Conflict) {
        self.0
            .audit_conflicts
            .with_label_values(&[conflict.kind.as_str()])
            .inc();
    }
    fn unlinkable(&self, _: &str, _: &agentauth_core::Error) {
        self.0.audit_dropped_unlinkable.inc();
    }
}

impl SinkObserver for Counted {
    fn queue_depth(&self, depth: i64) {
        self.0.audit_queue_depth.set(depth);
    }
    fn written(&self, lag_seconds: f64) {
        self.0.audit_append_lag.observe(lag_seconds);
    }
    // Only `record` drops, and counts any refused `try_send` as queue_full.
    fn dropped(&self, _: Dropped) -> u64 {
        self.0.audit_dropped_queue_full.inc();
        self.0.audit_dropped_queue_full.get()
    }
    fn allow_refused(&self) {
        self.0.audit_allows_refused.inc();
    }
}
