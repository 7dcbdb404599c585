//! The operator's audit producer (DESIGN §8): one hash chain per pod,
//! written to the shared state's audit stream off the request path.
//!
//! ```text
//!  handlers ──record(draft)──▶ bounded channel ──▶ writer task: link into chain ──▶ SharedState stream
//! ```
//!
//! The writer task owns the chain, so sequence numbers and `prev` links follow
//! the order events were recorded. A failed write is retried with backoff
//! until it succeeds (counted in `agentauth_audit_write_failures_total`); it
//! is never dropped and the chain never skips it. When the channel is full,
//! `record` waits: back-pressure rather than loss. On start the chain resumes
//! after the producer's last written event, so a restarted operator neither
//! forks nor repeats its chain.

use std::sync::Arc;
use std::time::Duration;

use agentauth_core::audit::{Chain, Draft};
use agentauth_state::{SharedState, StateError};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::metrics::Metrics;

/// Events waiting to be written before `record` starts to wait.
const QUEUE: usize = 4096;

enum Message {
    Event(Draft, i64),
    Flush(oneshot::Sender<()>),
}

/// Records audit events for one producer.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Message>,
    clock: Arc<dyn Clock>,
}

impl AuditSink {
    /// Resumes `producer`'s chain from the shared state and starts its writer.
    pub async fn start(
        producer: &str,
        state: Arc<dyn SharedState>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Result<Self, StateError> {
        let chain = match state.last_audit_event(producer).await? {
            Some(last) => Chain::resume(&last),
            None => Chain::new(producer),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(chain, rx, state, metrics));
        Ok(AuditSink { tx, clock })
    }

    /// Queues one event, stamped with the current time.
    pub async fn record(&self, draft: Draft) {
        let now = self.clock.now_ms();
        if self.tx.send(Message::Event(draft, now)).await.is_err() {
            tracing::error!("the audit writer has stopped; event not recorded");
        }
    }

    /// Waits until every event recorded so far is written (for shutdown and tests).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_loop(
    mut chain: Chain,
    mut rx: mpsc::Receiver<Message>,
    state: Arc<dyn SharedState>,
    metrics: Metrics,
) {
    while let Some(message) = rx.recv().await {
        let (draft, at_ms) = match message {
            Message::Event(draft, at_ms) => (draft, at_ms),
            Message::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let kind = draft.kind.clone();
        let event = match chain.append(draft, at_ms) {
            Ok(event) => event,
            Err(e) => {
                // Only an unrepresentable timestamp gets here; nothing to retry.
                metrics.audit_failures.with_label_values(&[&kind]).inc();
                tracing::error!(kind, error = %e, "audit event could not be linked");
                continue;
            }
        };
        let mut backoff = Duration::from_millis(50);
        while let Err(e) = state.append_audit(&event).await {
            metrics.audit_failures.with_label_values(&[&kind]).inc();
            tracing::warn!(kind, seq = event.seq, error = %e, "audit write failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
