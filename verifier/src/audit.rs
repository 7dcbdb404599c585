//! The verifier's audit producer (DESIGN §8): one hash chain per process,
//! one event per decision, written off the latency path.
//!
//! ```text
//!  decisions ──try_send(draft)──▶ bounded channel ──▶ writer task: resume chain (once),
//!     │ full: drop, count              (--audit-queue)     take up to 256 drafts, link them,
//!     ▼                                                    append_audit_batch (one round trip),
//!  agentauth_audit_dropped_total + a warning               retry with backoff until written,
//!                                                          then linger 2 ms (batches form)
//! ```
//!
//! Unlike the operator, which waits when its queue is full, a verifier must
//! never slow a request for its audit trail: under back-pressure (the state
//! is down or slower than the decision rate) new events are dropped before
//! they are linked, so the chain itself has no gap, and every loss is
//! counted in `agentauth_audit_dropped_total` and logged (a warning per
//! burst, at most one every 10 s, with the running total). Nothing is
//! dropped silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use agentauth_core::audit::{AuditEvent, Chain, Draft};
use agentauth_state::SharedState;
use tokio::sync::{mpsc, oneshot};

use crate::Clock;
use crate::metrics::Metrics;

/// Drafts linked and written per round trip, at most.
const BATCH: usize = 256;

/// How long the writer waits after a write before it takes the next batch.
const LINGER: Duration = Duration::from_millis(2);

/// Least time between two warnings about dropped events, in ms.
const DROP_WARNING_INTERVAL_MS: i64 = 10_000;

enum Message {
    Event(Draft, i64),
    Flush(oneshot::Sender<()>),
}

/// Records audit events for one producer without ever waiting.
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
    /// `capacity`, are dropped and counted).
    pub fn start(
        producer: String,
        state: Arc<dyn SharedState>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        capacity: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(write_loop(producer, rx, state, metrics.clone()));
        AuditSink {
            tx,
            clock,
            metrics,
            last_warning_ms: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// Queues one event stamped now; never waits.
    pub fn record(&self, draft: Draft) {
        let now = self.clock.now_ms();
        if self.tx.try_send(Message::Event(draft, now)).is_err() {
            self.metrics.audit_dropped.inc();
            let last = self.last_warning_ms.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= DROP_WARNING_INTERVAL_MS
                && self
                    .last_warning_ms
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    dropped_total = self.metrics.audit_dropped.get(),
                    "the audit queue is full; verification events are being dropped \
                     (agentauth_audit_dropped_total)"
                );
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

async fn write_loop(
    producer: String,
    mut rx: mpsc::Receiver<Message>,
    state: Arc<dyn SharedState>,
    metrics: Metrics,
) {
    let mut chain = resume(&producer, state.as_ref()).await;
    let mut messages = Vec::with_capacity(BATCH);
    let mut events: Vec<AuditEvent> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while rx.recv_many(&mut messages, BATCH).await > 0 {
        for message in messages.drain(..) {
            match message {
                Message::Event(draft, at_ms) => match chain.append(draft, at_ms) {
                    Ok(event) => events.push(event),
                    // Only an unrepresentable time gets here; nothing to retry.
                    Err(error) => tracing::error!(%error, "audit event could not be linked"),
                },
                Message::Flush(done) => waiting.push(done),
            }
        }
        let mut backoff = Duration::from_millis(50);
        while !events.is_empty() {
            match state.append_audit_batch(&events).await {
                Ok(()) => events.clear(),
                Err(error) => {
                    metrics.audit_write_failures.inc();
                    tracing::warn!(%error, events = events.len(), "audit write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        // Let events gather: while the writer sleeps no sender wakes it, so
        // under load it costs one wake-up per interval, not one per decision.
        tokio::time::sleep(LINGER).await;
    }
}

/// The producer's chain, resumed after its last written event; retries
/// until the state answers.
async fn resume(producer: &str, state: &dyn SharedState) -> Chain {
    let mut backoff = Duration::from_millis(100);
    loop {
        match state.last_audit_event(producer).await {
            Ok(Some(last)) => return Chain::resume(&last),
            Ok(None) => return Chain::new(producer),
            Err(error) => {
                tracing::warn!(%error, producer, "cannot resume the audit chain yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
