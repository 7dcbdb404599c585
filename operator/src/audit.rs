//! The operator's audit producer (DESIGN §8): one hash chain per pod,
//! written to the shared state's audit stream off the request path by the
//! state crate's one sink ([`agentauth_state::audit::sink`], the same as
//! the verifier's), with the policy [`WaitWhenFull`].
//!
//! ```text
//!  handlers ──record(draft)──▶ bounded channel ──▶ writer task: link into chain ──▶ SharedState stream
//! ```
//!
//! A batch is linked once and re-sent unchanged until the state has it,
//! and the state appends idempotently by `seq`, so a write Redis applied
//! before its answer was lost is skipped on the retry, never written twice
//! (`agentauth_audit_duplicates_skipped_total`); retries are counted in
//! `agentauth_audit_write_retries_total` and, per event kind, in
//! `agentauth_audit_write_failures_total`. A gap or fork of the stored chain
//! is logged as an error, counted in `agentauth_audit_conflicts_total`, and
//! the chain resumes from the store. When the channel is full, `record`
//! waits: back-pressure rather than loss (the operator's requests are rare
//! next to the verifier's decisions). On start the chain resumes after the
//! producer's last written event, so a restarted operator neither forks nor
//! repeats its chain.
//!
//! A grant transition is recorded with [`AuditSink::record_once`] instead:
//! the caller waits until its record is in the shared state (or fails), and
//! the record carries a once-only mark, so the next leader that plans the
//! same transition after a crash finds it written and writes none (see
//! `docs/audit.md`, "Grant transitions").

use std::sync::Arc;
use std::time::Duration;

use agentauth_core::audit::{AuditEvent, Draft};
use agentauth_state::audit::sink::{self, Dropped, SinkObserver, SinkOptions, WaitWhenFull};
use agentauth_state::audit::{AppendObserver, Conflict};
use agentauth_state::{SharedState, StateError};

pub use agentauth_state::audit::sink::{RECORD_ONCE_WAIT, RecordError};

use crate::clock::Clock;
use crate::metrics::Metrics;

/// Events waiting to be written before `record` starts to wait.
const QUEUE: usize = 4096;

/// Records audit events for one producer.
#[derive(Clone, Debug)]
pub struct AuditSink(sink::AuditSink<WaitWhenFull>);

impl AuditSink {
    /// Resumes `producer`'s chain from the shared state and starts its writer.
    pub async fn start(
        producer: &str,
        state: Arc<dyn SharedState>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Result<Self, StateError> {
        let options = SinkOptions {
            capacity: QUEUE,
            linger: Duration::ZERO,
        };
        let now = Arc::new(move || clock.now_ms());
        sink::AuditSink::open(producer, state, now, Arc::new(Counted(metrics)), options)
            .await
            .map(AuditSink)
    }

    /// Queues one event, stamped with the current time.
    pub async fn record(&self, draft: Draft) {
        self.0.record(draft).await;
    }

    /// Records an event at most once under `mark` (e.g.
    /// `transition:<uid>:grant.approved`) across every process sharing the
    /// state, and waits until it is written: `Ok(true)` when this call wrote
    /// it, `Ok(false)` when it was written already (by this process or
    /// another, e.g. a leader that died before it could commit what the
    /// record describes). An error means it cannot be confirmed within
    /// [`RECORD_ONCE_WAIT`]; do not commit what it describes.
    pub async fn record_once(&self, draft: Draft, mark: String) -> Result<bool, RecordError> {
        self.0.record_once(draft, mark).await
    }

    /// Waits until every event recorded so far is written (for shutdown and tests).
    pub async fn flush(&self) {
        self.0.flush().await;
    }
}

/// Counts what the shared sink reports, in the operator's metrics.
struct Counted(Metrics);

impl AppendObserver for Counted {
    fn retried(&self, _: &StateError, events: &[AuditEvent]) {
        self.0.audit_write_retries.inc();
        for event in events {
            self.0
                .audit_failures
                .with_label_values(&[&event.kind])
                .inc();
        }
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
    fn unlinkable(&self, kind: &str, _: &agentauth_core::Error) {
        self.0.audit_failures.with_label_values(&[kind]).inc();
        self.0
            .audit_dropped
            .with_label_values(&["unlinkable"])
            .inc();
    }
}

impl SinkObserver for Counted {
    fn queue_depth(&self, depth: i64) {
        self.0.audit_queue_depth.set(depth);
    }
    fn written(&self, lag_seconds: f64) {
        self.0.audit_append_lag.observe(lag_seconds);
    }
    fn dropped(&self, why: Dropped) -> u64 {
        let reason = match why {
            Dropped::QueueFull => "queue_full",
            Dropped::WriterStopped => "writer_stopped",
        };
        let counter = self.0.audit_dropped.with_label_values(&[reason]);
        counter.inc();
        counter.get()
    }
    // The operator's `record` waits; it refuses nothing.
    fn allow_refused(&self) {}
}
