//! The one audit producer (DESIGN §8) of both the operator and the verifier:
//! a bounded queue in front of a writer task that owns the producer's chain.
//!
//! ```text
//!  callers ──record(draft)──▶ bounded channel ──▶ writer task: take ≤ MAX_BATCH, ChainWriter::write
//!     │ queue full: the policy decides      (idempotent by seq; retried until written),
//!     │   Wait: back-pressure               then linger (batches form)
//!     │   Drop: drop, count, warn per burst
//! ```
//!
//! The writer task owns the chain, so sequence numbers and `prev` links
//! follow the order events were recorded, and every batch goes through the
//! one write loop ([`ChainWriter`]). The two producers differ only in what
//! a full queue does to [`AuditSink::record`], which is the type parameter:
//!
//! - [`WaitWhenFull`] (the operator): `record` waits — back-pressure rather
//!   than loss, the operator's requests being rare next to the verifier's
//!   decisions. It also offers [`AuditSink::record_once`] for grant
//!   transitions.
//! - [`DropWhenFull`] (the verifier): `record` never waits; a full queue
//!   drops the event before it is linked (so the chain has no gap), counts
//!   it and warns at most once every 10 s. [`AuditSink::record_allow`]
//!   waits a bounded time instead and refuses when the queue stays full.
//!
//! What each counts goes to its own metrics through a [`SinkObserver`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use agentauth_core::audit::Draft;
use agentauth_core::{Error, ErrorCode};
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{mpsc, oneshot};

use super::{AppendObserver, ChainWriter, MAX_BATCH};
use crate::{SharedState, StateError};

/// The current time in ms since the epoch (each producer has its own clock).
pub type Now = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Least time between two warnings about dropped events, in ms.
const DROP_WARNING_INTERVAL_MS: i64 = 10_000;

/// How long [`AuditSink::record_once`] waits for its record: a few of the
/// state's 1 s write timeouts with the writer's retry backoff between them.
/// Past it the caller fails (a reconcile retries); the queued record is
/// still written when the state answers, and its mark makes the retry
/// write no second one.
pub const RECORD_ONCE_WAIT: Duration = Duration::from_secs(5);

/// Policy: [`AuditSink::record`] waits for room in a full queue.
#[derive(Clone, Copy, Debug)]
pub struct WaitWhenFull;

/// Policy: [`AuditSink::record`] drops (and counts) an event that finds
/// the queue full.
#[derive(Clone, Copy, Debug)]
pub struct DropWhenFull;

/// Why an event was lost before it was linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// The queue was full ([`DropWhenFull`]).
    QueueFull,
    /// The writer task has stopped (the process is shutting down).
    WriterStopped,
}

/// What a producer counts about its sink, besides its writes.
pub trait SinkObserver: AppendObserver + 'static {
    /// Events waiting in the queue, after a batch was taken.
    fn queue_depth(&self, depth: i64);
    /// One event was written, `lag_seconds` after it was recorded.
    fn written(&self, lag_seconds: f64);
    /// One event was lost; returns how many were lost for `why` so far
    /// (for the warning), or 0 when not counted apart.
    fn dropped(&self, why: Dropped) -> u64;
    /// An allow was refused because its event could not be queued.
    fn allow_refused(&self);
}

/// The writer's settings.
#[derive(Clone, Copy, Debug)]
pub struct SinkOptions {
    /// Events the queue holds before the policy applies (at least 1).
    pub capacity: usize,
    /// How long the writer waits after a write before it takes the next
    /// batch: while it sleeps no sender wakes it, so under load it costs
    /// one wake-up per interval, not one per event. Zero for none.
    pub linger: Duration,
}

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

/// Records audit events for one producer; `P` is what a full queue does
/// to [`AuditSink::record`] ([`WaitWhenFull`] or [`DropWhenFull`]).
pub struct AuditSink<P> {
    tx: mpsc::Sender<Message>,
    now: Now,
    observer: Arc<dyn SinkObserver>,
    last_warning_ms: Arc<AtomicI64>,
    policy: PhantomData<P>,
}

impl<P> Clone for AuditSink<P> {
    fn clone(&self) -> Self {
        AuditSink {
            tx: self.tx.clone(),
            now: self.now.clone(),
            observer: self.observer.clone(),
            last_warning_ms: self.last_warning_ms.clone(),
            policy: PhantomData,
        }
    }
}

impl<P> std::fmt::Debug for AuditSink<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink").finish_non_exhaustive()
    }
}

impl<P> AuditSink<P> {
    /// Starts the writer of `writer`'s chain (a future, so that the chain
    /// may resume inside the task).
    fn spawn(
        writer: impl Future<Output = ChainWriter> + Send + 'static,
        state: Arc<dyn SharedState>,
        now: Now,
        observer: Arc<dyn SinkObserver>,
        options: SinkOptions,
    ) -> Self {
        let (tx, rx) = mpsc::channel(options.capacity.max(1));
        tokio::spawn(write_loop(
            writer,
            rx,
            state,
            now.clone(),
            observer.clone(),
            options.linger,
        ));
        AuditSink {
            tx,
            now,
            observer,
            last_warning_ms: Arc::new(AtomicI64::new(i64::MIN)),
            policy: PhantomData,
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

impl AuditSink<WaitWhenFull> {
    /// Resumes `producer`'s chain from the shared state (one attempt: an
    /// error means the state did not answer) and starts its writer.
    pub async fn open(
        producer: &str,
        state: Arc<dyn SharedState>,
        now: Now,
        observer: Arc<dyn SinkObserver>,
        options: SinkOptions,
    ) -> Result<Self, StateError> {
        let writer = ChainWriter::open(producer, state.as_ref()).await?;
        Ok(Self::spawn(
            std::future::ready(writer),
            state,
            now,
            observer,
            options,
        ))
    }

    /// Queues one event stamped now, waiting for room in a full queue.
    pub async fn record(&self, draft: Draft) {
        let now = (self.now)();
        if self.tx.send(Message::Event(draft, now)).await.is_err() {
            self.observer.dropped(Dropped::WriterStopped);
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
        let now = (self.now)();
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
}

impl AuditSink<DropWhenFull> {
    /// Starts the writer of `producer`'s chain. The chain resumes after the
    /// producer's last written event once the state answers; until then
    /// events queue (and past the capacity, are dropped and counted).
    pub fn start(
        producer: String,
        state: Arc<dyn SharedState>,
        now: Now,
        observer: Arc<dyn SinkObserver>,
        options: SinkOptions,
    ) -> Self {
        let resuming = state.clone();
        let writer = async move { ChainWriter::resume(&producer, resuming.as_ref()).await };
        Self::spawn(writer, state, now, observer, options)
    }

    /// Queues the record of a denial stamped now; never waits. When the
    /// queue is full it is dropped and counted.
    pub fn record(&self, draft: Draft) {
        let now = (self.now)();
        if self.tx.try_send(Message::Event(draft, now)).is_err() {
            let dropped_total = self.observer.dropped(Dropped::QueueFull);
            let last = self.last_warning_ms.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= DROP_WARNING_INTERVAL_MS
                && self
                    .last_warning_ms
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    dropped_total,
                    "the audit queue is full; denial events are being dropped \
                     (agentauth_audit_dropped_total) and allows refused"
                );
            }
        }
    }

    /// Queues the record of an allow stamped now, waiting at most `wait`
    /// for room. `Err` (code `audit_unavailable`) means it could not be
    /// queued: the caller must not allow the request.
    pub async fn record_allow(&self, draft: Draft, wait: Duration) -> Result<(), Error> {
        let now = (self.now)();
        match self.tx.send_timeout(Message::Event(draft, now), wait).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => {
                self.observer.allow_refused();
                Err(Error::new(
                    ErrorCode::AuditUnavailable,
                    format!(
                        "the audit trail did not take this decision within {wait:?}, so the \
                         request is refused rather than allowed unrecorded; retry later"
                    ),
                ))
            }
            Err(SendTimeoutError::Closed(_)) => {
                self.observer.allow_refused();
                Err(Error::new(
                    ErrorCode::AuditUnavailable,
                    "the audit writer has stopped; the request is refused",
                ))
            }
        }
    }
}

async fn write_loop(
    writer: impl Future<Output = ChainWriter>,
    mut rx: mpsc::Receiver<Message>,
    state: Arc<dyn SharedState>,
    now: Now,
    observer: Arc<dyn SinkObserver>,
    linger: Duration,
) {
    let mut writer = writer.await;
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
        observer.queue_depth(i64::try_from(rx.len()).unwrap_or(i64::MAX));
        if marks.is_empty() {
            writer
                .write(state.as_ref(), &drafts, observer.as_ref())
                .await;
        } else {
            let written = writer
                .write_once(state.as_ref(), &drafts, &marks, observer.as_ref())
                .await;
            for (i, done) in confirm.drain(..) {
                let _ = done.send(written.get(i).copied().unwrap_or(false));
            }
            marks.clear();
        }
        let now = now();
        for (_, recorded_at) in &drafts {
            let lag_ms = now.saturating_sub(*recorded_at).max(0);
            observer.written(lag_ms as f64 / 1000.0);
        }
        drafts.clear();
        // Every event queued before the flush is written now.
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        if !linger.is_zero() {
            tokio::time::sleep(linger).await;
        }
    }
}
