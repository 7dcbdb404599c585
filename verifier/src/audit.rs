//! The verifier's audit producer (DESIGN §8): one hash chain per process,
//! one event per decision, written off the latency path.
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
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use agentauth_core::audit::{AuditEvent, Draft};
use agentauth_core::{Error, ErrorCode};
use agentauth_state::audit::{AppendObserver, Conflict, MAX_BATCH};
use agentauth_state::{ChainWriter, SharedState, StateError};
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{mpsc, oneshot};

use crate::Clock;
use crate::metrics::Metrics;

/// Longest an allow waits for room in a full queue before the request is
/// refused with `audit_unavailable`. Twice the state's hot-path timeout
/// (50 ms): long enough to ride out one slow write, short enough that a
/// caller sees a prompt refusal rather than a hung request.
pub const ALLOW_WAIT: Duration = Duration::from_millis(100);

/// How long the writer waits after a write before it takes the next batch.
const LINGER: Duration = Duration::from_millis(2);

/// Least time between two warnings about dropped events, in ms.
const DROP_WARNING_INTERVAL_MS: i64 = 10_000;

enum Message {
    Event(Draft, i64),
    Flush(oneshot::Sender<()>),
}

/// Records audit events for one producer.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Message>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    last_warning_ms: Arc<AtomicI64>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink").finish_non_exhaustive()
    }
}

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
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(write_loop(
            producer,
            rx,
            state,
            clock.clone(),
            metrics.clone(),
        ));
        AuditSink {
            tx,
            clock,
            metrics,
            last_warning_ms: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// Queues the record of a denial stamped now; never waits. When the
    /// queue is full it is dropped and counted.
    pub fn record(&self, draft: Draft) {
        let now = self.clock.now_ms();
        if self.tx.try_send(Message::Event(draft, now)).is_err() {
            self.metrics.audit_dropped_queue_full.inc();
            let last = self.last_warning_ms.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= DROP_WARNING_INTERVAL_MS
                && self
                    .last_warning_ms
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    dropped_total = self.metrics.audit_dropped_queue_full.get(),
                    "the audit queue is full; denial events are being dropped \
                     (agentauth_audit_dropped_total) and allows refused"
                );
            }
        }
    }

    /// Queues the record of an allow stamped now, waiting at most
    /// [`ALLOW_WAIT`] for room. `Err` (code `audit_unavailable`) means it
    /// could not be queued: the caller must not allow the request.
    pub async fn record_allow(&self, draft: Draft) -> Result<(), Error> {
        let now = self.clock.now_ms();
        match self
            .tx
            .send_timeout(Message::Event(draft, now), ALLOW_WAIT)
            .await
        {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => {
                self.metrics.audit_allows_refused.inc();
                Err(Error::new(
                    ErrorCode::AuditUnavailable,
                    format!(
                        "the audit trail did not take this decision within {ALLOW_WAIT:?}, so the \
                         request is refused rather than allowed unrecorded; retry later"
                    ),
                ))
            }
            Err(SendTimeoutError::Closed(_)) => {
                self.metrics.audit_allows_refused.inc();
                Err(Error::new(
                    ErrorCode::AuditUnavailable,
                    "the audit writer has stopped; the request is refused",
                ))
            }
        }
    }

    /// Waits until every event recorded so far is written (shutdown, tests).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Counts what the shared write loop reports, in the verifier's metrics.
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

async fn write_loop(
    producer: String,
    mut rx: mpsc::Receiver<Message>,
    state: Arc<dyn SharedState>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
) {
    let observer = Counted(metrics.clone());
    let mut writer = ChainWriter::resume(&producer, state.as_ref()).await;
    let mut messages = Vec::with_capacity(MAX_BATCH);
    let mut drafts = Vec::with_capacity(MAX_BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while rx.recv_many(&mut messages, MAX_BATCH).await > 0 {
        for message in messages.drain(..) {
            match message {
                Message::Event(draft, at_ms) => drafts.push((draft, at_ms)),
                Message::Flush(done) => waiting.push(done),
            }
        }
        metrics
            .audit_queue_depth
            .set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
        writer.write(state.as_ref(), &drafts, &observer).await;
        let now = clock.now_ms();
        for (_, recorded_at) in &drafts {
            let lag_ms = now.saturating_sub(*recorded_at).max(0);
            metrics.audit_append_lag.observe(lag_ms as f64 / 1000.0);
        }
        drafts.clear();
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        // Let events gather: while the writer sleeps no sender wakes it, so
        // under load it costs one wake-up per interval, not one per decision.
        tokio::time::sleep(LINGER).await;
    }
}
