//! The operator's audit producer (DESIGN §8): one hash chain per pod,
//! written to the shared state's audit stream off the request path.
//!
//! ```text
//!  handlers ──record(draft)──▶ bounded channel ──▶ writer task: link into chain ──▶ SharedState stream
//! ```
//!
//! The writer task owns the chain, so sequence numbers and `prev` links follow
//! the order events were recorded. Events are taken in batches and written
//! through the state crate's one write loop ([`ChainWriter`], the same as
//! the verifier's): a batch is linked once and re-sent unchanged until the
//! state has it, and the state appends idempotently by `seq`, so a write
//! Redis applied before its answer was lost is skipped on the retry, never
//! written twice (`agentauth_audit_duplicates_skipped_total`); retries are
//! counted in `agentauth_audit_write_retries_total` and, per event kind, in
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
use agentauth_state::audit::{AppendObserver, Conflict, MAX_BATCH};
use agentauth_state::{ChainWriter, SharedState, StateError};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::metrics::Metrics;

/// Events waiting to be written before `record` starts to wait.
const QUEUE: usize = 4096;

/// How long [`AuditSink::record_once`] waits for its record: a few of the
/// state's 1 s write timeouts with the writer's retry backoff between them.
/// Past it the caller fails (a reconcile retries); the queued record is
/// still written when the state answers, and its mark makes the retry
/// write no second one.
pub const RECORD_ONCE_WAIT: Duration = Duration::from_secs(5);

enum Message {
    Event(Draft, i64),
    Once(Draft, i64, String, oneshot::Sender<bool>),
    Flush(oneshot::Sender<()>),
}

/// Why [`AuditSink::record_once`] cannot say that its record is written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The record was not confirmed within [`RECORD_ONCE_WAIT`] (the state
    /// is down or slow); it may still be written later.
    #[error("the audit record {mark} was not written within {RECORD_ONCE_WAIT:?}")]
    TimedOut {
        /// The record's once-only mark.
        mark: String,
    },
    /// The writer task has stopped (the process is shutting down).
    #[error("the audit writer has stopped; {mark} not recorded")]
    Stopped {
        /// The record's once-only mark.
        mark: String,
    },
}

/// Records audit events for one producer.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Message>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl AuditSink {
    /// Resumes `producer`'s chain from the shared state and starts its writer.
    pub async fn start(
        producer: &str,
        state: Arc<dyn SharedState>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Result<Self, StateError> {
        let writer = ChainWriter::open(producer, state.as_ref()).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(
            writer,
            rx,
            state,
            clock.clone(),
            metrics.clone(),
        ));
        Ok(AuditSink { tx, clock, metrics })
    }

    /// Queues one event, stamped with the current time.
    pub async fn record(&self, draft: Draft) {
        let now = self.clock.now_ms();
        if self.tx.send(Message::Event(draft, now)).await.is_err() {
            self.metrics
                .audit_dropped
                .with_label_values(&["writer_stopped"])
                .inc();
            tracing::error!("the audit writer has stopped; event not recorded");
        }
    }

    /// Records an event at most once under `mark` (e.g.
    /// `transition:<uid>:grant.approved`) across every process sharing the
    /// state, and waits until it is written: `Ok(true)` when this call wrote
    /// it, `Ok(false)` when it was written already (by this process or
    /// another, e.g. a leader that died before it could commit what the
    /// record describes). An error means it cannot be confirmed within
    /// [`RECORD_ONCE_WAIT`]; do not commit what it describes.
    pub async fn record_once(&self, draft: Draft, mark: String) -> Result<bool, RecordError> {
        let now = self.clock.now_ms();
        let (done, wait) = oneshot::channel();
        let queued = Message::Once(draft, now, mark.clone(), done);
        let written = async {
            self.tx.send(queued).await.ok()?;
            wait.await.ok()
        };
        match tokio::time::timeout(RECORD_ONCE_WAIT, written).await {
            Ok(Some(written)) => Ok(written),
            Ok(None) => Err(RecordError::Stopped { mark }),
            Err(_) => Err(RecordError::TimedOut { mark }),
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

/// Counts what the shared write loop reports, in the operator's metrics.
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

async fn write_loop(
    mut writer: ChainWriter,
    mut rx: mpsc::Receiver<Message>,
    state: Arc<dyn SharedState>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
) {
    let observer = Counted(metrics.clone());
    let mut messages = Vec::with_capacity(MAX_BATCH);
    let mut drafts = Vec::with_capacity(MAX_BATCH);
    let mut marks: Vec<Option<String>> = Vec::new();
    let mut confirm: Vec<(usize, oneshot::Sender<bool>)> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while rx.recv_many(&mut messages, MAX_BATCH).await > 0 {
        for message in messages.drain(..) {
            match message {
                Message::Event(draft, at_ms) => drafts.push((draft, at_ms)),
                Message::Once(draft, at_ms, mark, done) => {
                    marks.resize(drafts.len(), None);
                    marks.push(Some(mark));
                    confirm.push((drafts.len(), done));
                    drafts.push((draft, at_ms));
                }
                Message::Flush(done) => waiting.push(done),
            }
        }
        metrics.audit_queue_depth.set(queued(&rx));
        let written = writer
            .write_once(state.as_ref(), &drafts, &marks, &observer)
            .await;
        for (i, done) in confirm.drain(..) {
            let _ = done.send(written.get(i).copied().unwrap_or(false));
        }
        marks.clear();
        let now = clock.now_ms();
        for (_, recorded_at) in &drafts {
            let lag_ms = now.saturating_sub(*recorded_at).max(0);
            metrics.audit_append_lag.observe(lag_ms as f64 / 1000.0);
        }
        drafts.clear();
        // Every event queued before the flush is written now.
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Messages waiting in the channel, for `agentauth_audit_queue_depth`.
fn queued(rx: &mpsc::Receiver<Message>) -> i64 {
    i64::try_from(rx.len()).unwrap_or(i64::MAX)
}
