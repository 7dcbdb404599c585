//! The archiver loop: hold the lease, read the stream through the consumer
//! group, seal, write, acknowledge, trim.
//!
//! ```text
//!  lease ─▶ head from the store ─▶ pending entries (after a restart) ─▶ new entries ──┐
//!     ▲                                                                               │
//!     └── renewed every ttl/3; lost: stop sealing, unacknowledged entries wait ◀──────┤
//!                                                                                     ▼
//!          heartbeats (read first) ─▶ read a page ─▶ Batch::accept ─▶ due? ─▶ seal ─▶ put (durable)
//!                                                                                     │
//!                                                        XACK every id ◀──────────────┘ ─▶ XTRIM sealed ids
//! ```
//!
//! Failures are retried with backoff and counted by stage; nothing is
//! acknowledged before its segment is written. A sealed segment whose write
//! failed is kept and written again as it is (not signed again), so a write
//! that landed but whose answer was lost is recognised byte for byte.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_core::audit::ChainVerifier;
use agentauth_signer::Signer;
use agentauth_state::RedisState;
use agentauth_state::redis::Delivery;

use crate::archive;
use crate::batch::{Accepted, Batch, entry_ms};
use crate::metrics::Metrics;
use crate::seal::{self, Contents, Head, Sealed};
use crate::store::{SegmentStore, StoreError};

/// How the archiver runs.
#[derive(Clone, Debug)]
pub struct ArchiverConfig {
    /// The consumer name in the group. Keep it stable across restarts: the
    /// entries delivered to it and not acknowledged are read again by name.
    pub consumer: String,
    /// This process's lease identity (unique per process).
    pub holder: String,
    /// Seal when a batch holds this many records.
    pub max_records: usize,
    /// Seal a batch this old even if it is small.
    pub max_age: Duration,
    /// Entries per read.
    pub page: usize,
    /// Pause between reads once the stream is read to its end.
    pub poll_interval: Duration,
    /// The lease's time to live; renewed every third of it.
    pub lease_ttl: Duration,
    /// Trim sealed entries from the stream once they are this old (zero:
    /// as soon as their segment is stored).
    pub trim_after: Duration,
}

impl Default for ArchiverConfig {
    /// Segments of up to 10,000 records or 10 s; trim as soon as sealed.
    fn default() -> Self {
        ArchiverConfig {
            consumer: "archiver".into(),
            holder: agentauth_service::identity::default_identity(
                &["POD_NAME", "HOSTNAME"],
                "archiver",
            ),
            max_records: 10_000,
            max_age: Duration::from_secs(10),
            page: 1000,
            poll_interval: Duration::from_millis(200),
            lease_ttl: Duration::from_secs(15),
            trim_after: Duration::ZERO,
        }
    }
}

/// Why the archiver stopped.
#[derive(Debug, thiserror::Error)]
pub enum ArchiverError {
    /// Another writer put a different segment under the name this archiver
    /// was writing: two archivers ran at once, or the store was written by
    /// hand. Continuing would fork the archive.
    #[error(
        "{name} in {store} was written by someone else while this archiver was sealing it; \
         stop every other archiver on this store, then run `agentauth audit verify`"
    )]
    Conflict {
        /// The segment.
        name: String,
        /// The store.
        store: String,
    },
}

/// Seals the audit stream into a store.
pub struct Archiver {
    state: Arc<RedisState>,
    store: Arc<dyn SegmentStore>,
    signer: Arc<dyn Signer>,
    config: ArchiverConfig,
    metrics: Metrics,
}

/// Where reading stands.
enum Cursor {
    /// Re-reading entries delivered before a restart, after this id.
    Pending(String),
    /// Reading new entries.
    New,
}

/// The state of one term as leader.
struct Term {
    head: Head,
    chains: ChainVerifier,
    batch: Batch,
    started: Option<Instant>,
    ready: Option<Sealed>,
    cursor: Cursor,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often `agentauth_archiver_backlog_entries` is read from Redis
/// (besides after every seal).
const BACKLOG_REFRESH: Duration = Duration::from_secs(1);

impl Archiver {
    /// An archiver of `state`'s stream into `store`, signing with `signer`.
    pub fn new(
        state: Arc<RedisState>,
        store: Arc<dyn SegmentStore>,
        signer: Arc<dyn Signer>,
        config: ArchiverConfig,
        metrics: Metrics,
    ) -> Self {
        Archiver {
            state,
            store,
            signer,
            config,
            metrics,
        }
    }

    /// Runs until `shutdown` completes, then seals what it holds (one
    /// attempt) and returns.
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ArchiverError> {
        let mut shutdown = pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = self.acquire() => {}
            }
            self.metrics.is_leader.set(1);
            let finished = self.lead(&mut shutdown).await;
            self.metrics.is_leader.set(0);
            if finished? {
                return Ok(());
            }
            tracing::warn!("the archiver lease was lost; waiting to take it again");
        }
    }

    async fn acquire(&self) {
        let ttl = millis(self.config.lease_ttl);
        loop {
            match self
                .state
                .audit_archiver_lease(&self.config.holder, ttl)
                .await
            {
                Ok(true) => return,
                Ok(false) => tracing::debug!("another archiver holds the lease"),
                Err(error) => tracing::warn!(%error, "cannot take the archiver lease yet"),
            }
            tokio::time::sleep(self.config.lease_ttl / 3).await;
        }
    }

    /// Archives while the lease is held: `Ok(true)` on shutdown, `Ok(false)`
    /// when the lease is lost.
    async fn lead(
        &self,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<bool, ArchiverError> {
        let Some(mut term) = self.open_term(shutdown).await else {
            return Ok(true);
        };
        let mut renewed = Instant::now();
        let mut backoff = self.config.poll_interval;
        let mut backlog_read: Option<Instant> = None;
        loop {
            // Also while nothing seals (a failing store, a slow signer), so
            // the backlog gauge shows the pile-up rather than its last value.
            if backlog_read.is_none_or(|at| at.elapsed() >= BACKLOG_REFRESH) {
                self.refresh_backlog().await;
                backlog_read = Some(Instant::now());
            }
            if renewed.elapsed() >= self.config.lease_ttl / 3 {
                match self
                    .state
                    .audit_archiver_lease(&self.config.holder, millis(self.config.lease_ttl))
                    .await
                {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => return Ok(false),
                    // Keep going until the lease would have expired.
                    Err(error) if renewed.elapsed() < self.config.lease_ttl => {
                        tracing::warn!(%error, "cannot renew the archiver lease");
                    }
                    Err(_) => return Ok(false),
                }
            }
            let caught_up = match self.read(&mut term).await {
                Ok(caught_up) => caught_up,
                Err(()) => {
                    if sleep_or_shutdown(backoff, shutdown).await {
                        self.final_seal(&mut term).await?;
                        return Ok(true);
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            self.update_lag(&term);
            if self.due(&term, caught_up) {
                match self.seal_and_write(&mut term).await {
                    Ok(()) => backoff = self.config.poll_interval,
                    Err(SealFailure::Retry) => {
                        if sleep_or_shutdown(backoff, shutdown).await {
                            return Ok(true);
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                    Err(SealFailure::Fatal(e)) => return Err(e),
                }
            }
            if caught_up && sleep_or_shutdown(self.config.poll_interval, shutdown).await {
                self.final_seal(&mut term).await?;
                return Ok(true);
            }
        }
    }

    /// The head from the store and the consumer group, retried until they
    /// answer; `None` on shutdown.
    async fn open_term(
        &self,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Option<Term> {
        let mut backoff = self.config.poll_interval;
        loop {
            match self.try_open_term().await {
                Ok(term) => return Some(term),
                Err(message) => tracing::warn!(%message, "the archiver cannot start yet; retrying"),
            }
            if sleep_or_shutdown(backoff, shutdown).await {
                return None;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn try_open_term(&self) -> Result<Term, String> {
        let head = archive::head(self.store.as_ref()).await.map_err(|e| {
            self.metrics.errors.with_label_values(&["store"]).inc();
            e.to_string()
        })?;
        self.state.audit_group_create().await.map_err(|e| {
            self.metrics.errors.with_label_values(&["read"]).inc();
            e.to_string()
        })?;
        let mut chains = ChainVerifier::new();
        for (producer, mark) in &head.producers {
            if let (Some(seq), Some(hash)) = (mark.last_seq, &mark.last_hash) {
                chains.resume_at(producer, seq, hash);
            }
        }
        tracing::info!(
            segment = head.segment,
            store = self.store.describe(),
            "archiver resuming after the archive's newest checkpoint"
        );
        Ok(Term {
            batch: Batch::after(&head),
            head,
            chains,
            started: None,
            ready: None,
            cursor: Cursor::Pending("0".into()),
        })
    }

    /// Reads one page into the batch; `Ok(true)` when the stream was read to
    /// its end.
    async fn read(&self, term: &mut Term) -> Result<bool, ()> {
        let reading_new = matches!(term.cursor, Cursor::New);
        // Heartbeats first: everything they name was in the stream before
        // the read that follows.
        let heartbeats = if reading_new {
            match self.state.audit_heartbeats().await {
                Ok(beats) => Some(beats),
                Err(error) => {
                    self.metrics.errors.with_label_values(&["heartbeat"]).inc();
                    tracing::warn!(%error, "cannot read the audit heartbeats");
                    None
                }
            }
        } else {
            None
        };
        let delivery = match &term.cursor {
            Cursor::Pending(after) => Delivery::PendingAfter(after.clone()),
            Cursor::New => Delivery::New,
        };
        // A segment holds at most max_records records.
        let room = self
            .config
            .max_records
            .saturating_sub(term.batch.lines.len())
            .clamp(1, self.config.page.max(1));
        let entries = self
            .state
            .audit_group_read(&self.config.consumer, &delivery, room)
            .await
            .map_err(|error| {
                self.metrics.errors.with_label_values(&["read"]).inc();
                tracing::warn!(%error, "cannot read the audit stream");
            })?;
        let count = entries.len();
        if let Cursor::Pending(after) = &mut term.cursor {
            match entries.last() {
                Some(last) => *after = last.id.clone(),
                None => term.cursor = Cursor::New,
            }
        }
        if count > 0 && term.started.is_none() {
            term.started = Some(Instant::now());
        }
        for entry in entries {
            let id = entry.id.clone();
            match term.batch.accept(entry, &term.head, &mut term.chains) {
                Accepted::Record => {}
                Accepted::AlreadySealed => self.metrics.redelivered.inc(),
                Accepted::Invalid(why) => {
                    self.metrics.invalid_entries.inc();
                    tracing::error!(entry = id, why, "an audit stream entry holds no event");
                }
                Accepted::Broken(b) => {
                    self.metrics
                        .chain_breaks
                        .with_label_values(&[b.kind.as_str()])
                        .inc();
                    tracing::error!(entry = id, problem = b.message, "audit chain broken");
                }
            }
        }
        let caught_up = reading_new && count < room;
        if caught_up && let Some(beats) = heartbeats {
            let before = term.batch.truncations.len();
            let found = term.batch.note_heartbeats(&beats);
            self.metrics.truncations.inc_by(found as u64);
            for cut in &term.batch.truncations[before..] {
                tracing::error!(
                    producer = cut.producer,
                    last_seq = ?cut.last_seq,
                    heartbeat_seq = cut.heartbeat_seq,
                    "the audit stream lost the tail of a producer's chain: its heartbeat names \
                     records that are not in the stream"
                );
            }
        }
        Ok(caught_up)
    }

    fn update_lag(&self, term: &Term) {
        let lag = match term.batch.oldest_ms {
            Some(oldest) if !term.batch.lines.is_empty() => {
                (now_ms() - oldest).max(0) as f64 / 1000.0
            }
            _ => 0.0,
        };
        self.metrics.lag_seconds.set(lag);
    }

    fn due(&self, term: &Term, caught_up: bool) -> bool {
        if term.ready.is_some() {
            return true;
        }
        if term.batch.is_idle() {
            return false;
        }
        term.batch.lines.len() >= self.config.max_records
            || term
                .started
                .is_some_and(|t| t.elapsed() >= self.config.max_age)
            || (caught_up && !term.batch.truncations.is_empty())
            // Only entries that need no sealing: acknowledge them now.
            || (term.batch.lines.is_empty() && term.batch.truncations.is_empty())
    }

    async fn final_seal(&self, term: &mut Term) -> Result<(), ArchiverError> {
        if term.ready.is_some() || !term.batch.is_idle() {
            match self.seal_and_write(term).await {
                Ok(()) | Err(SealFailure::Retry) => {}
                Err(SealFailure::Fatal(e)) => return Err(e),
            }
        }
        Ok(())
    }

    async fn seal_and_write(&self, term: &mut Term) -> Result<(), SealFailure> {
        let started = Instant::now();
        let needs_segment = !term.batch.lines.is_empty() || !term.batch.truncations.is_empty();
        if needs_segment || term.ready.is_some() {
            let sealed = match term.ready.take() {
                Some(sealed) => sealed,
                None => self.seal(term).await?,
            };
            match self.store.put(&sealed.name, &sealed.bytes).await {
                Ok(()) => {}
                Err(StoreError::Exists(name)) => {
                    let landed = self.store.get(&name).await.ok();
                    if landed.as_deref() != Some(sealed.bytes.as_slice()) {
                        return Err(SealFailure::Fatal(ArchiverError::Conflict {
                            name,
                            store: self.store.describe(),
                        }));
                    }
                }
                Err(error) => {
                    self.metrics.errors.with_label_values(&["store"]).inc();
                    tracing::warn!(%error, segment = sealed.name, "cannot write the segment; retrying");
                    term.ready = Some(sealed);
                    return Err(SealFailure::Retry);
                }
            }
            self.metrics.records.inc_by(sealed.checkpoint.records);
            self.metrics.segments.inc();
            self.metrics
                .seal_duration
                .observe(started.elapsed().as_secs_f64());
            tracing::info!(
                segment = sealed.name,
                records = sealed.checkpoint.records,
                "sealed"
            );
            term.head = sealed.head;
        }
        let ids = std::mem::take(&mut term.batch.ids);
        let last_id = term.batch.last_id.take();
        term.batch = Batch::after(&term.head);
        term.started = None;
        self.update_lag(term);
        // Sealed now: a failed acknowledgement only means the entries come
        // again after a restart, and are recognised as sealed then.
        if let Err(error) = self.state.audit_group_ack(&ids).await {
            self.metrics.errors.with_label_values(&["ack"]).inc();
            tracing::warn!(%error, "cannot acknowledge sealed entries");
            return Ok(());
        }
        if let Some(through) = self.trim_through(last_id.as_deref())
            && let Err(error) = self.state.audit_trim_through(&through).await
        {
            self.metrics.errors.with_label_values(&["trim"]).inc();
            tracing::warn!(%error, "cannot trim the audit stream");
        }
        self.refresh_backlog().await;
        Ok(())
    }

    async fn seal(&self, term: &Term) -> Result<Sealed, SealFailure> {
        let contents = Contents {
            lines: &term.batch.lines,
            producers: term.batch.producers.clone(),
            // A segment of heartbeats alone read no entry: carry the last one
            // forward, it is what tells redelivered entries from new ones.
            last_entry_id: term
                .batch
                .last_id
                .clone()
                .or_else(|| term.head.last_entry_id.clone()),
            now_ms: now_ms(),
        };
        seal::seal(self.signer.as_ref(), &term.head, contents)
            .await
            .map_err(|error| {
                self.metrics.errors.with_label_values(&["sign"]).inc();
                tracing::warn!(%error, "cannot seal the segment; retrying");
                SealFailure::Retry
            })
    }

    /// The newest entry id to trim through: sealed, and older than
    /// `trim_after`.
    fn trim_through(&self, last_sealed: Option<&str>) -> Option<String> {
        let keep = self.config.trim_after;
        let last = last_sealed?;
        let cutoff = now_ms() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        if entry_ms(last)? < cutoff {
            Some(last.to_owned())
        } else {
            // Everything strictly before the cutoff millisecond.
            Some(format!("{}-{}", cutoff.checked_sub(1)?, u64::MAX))
        }
    }

    async fn refresh_backlog(&self) {
        if let Ok((lag, pending)) = self.state.audit_group_backlog().await {
            self.metrics
                .backlog
                .set(i64::try_from(lag.saturating_add(pending)).unwrap_or(i64::MAX));
        }
    }
}

enum SealFailure {
    Retry,
    Fatal(ArchiverError),
}

async fn sleep_or_shutdown(
    pause: Duration,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> bool {
    tokio::select! {
        () = shutdown.as_mut() => true,
        () = tokio::time::sleep(pause) => false,
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
