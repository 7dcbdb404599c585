//! Idempotent audit appends (DESIGN §8) and the one write loop that both
//! producers (the operator and the verifier) use.
//!
//! ```text
//!  producer's writer task ── ChainWriter::write(drafts) ── link once ──▶ SharedState::append_audit_batch
//!        ▲                          │                                     (Redis: one Lua script, atomic)
//!        │                          ├─ Ok {written, skipped}  ─────────▶ done; skipped = a retry's duplicates
//!        │                          ├─ State (timeout, down)  ─────────▶ retry the SAME events, backoff
//!        └── counts (AppendObserver)└─ Conflict (gap, fork)   ─────────▶ loud error; resume from the store, re-link
//! ```
//!
//! An append names its producer's place in the chain: event `seq` goes in
//! only when it is exactly the stored `last.seq + 1` and its `prev` is the
//! stored last hash. An event at or below the stored end whose hash matches
//! the one stored at its `seq` is *already written* and skipped — that is
//! what makes a retry safe when a client timed out after the server had
//! applied the write. Anything else (a gap, a different event at a written
//! place, a `prev` that does not link) is a [`Conflict`] and nothing of the
//! batch is written.
//!
//! The stored hashes by `seq` cover the last [`SEEN_WINDOW`] events of a
//! producer; a retry re-sends at most one batch ([`MAX_BATCH`]), far inside it.

use std::time::Duration;

use agentauth_core::audit::{AuditEvent, Chain, Draft, GENESIS};

use crate::{SharedState, StateError};

/// How many of a producer's newest `(seq, hash)` pairs the state keeps to
/// recognise a retried event. Four batches: a retry only ever re-sends the
/// batch that timed out.
pub const SEEN_WINDOW: u64 = 1024;

/// Most events one append call writes; larger slices are written in pieces
/// of this size, in order.
pub const MAX_BATCH: usize = 256;

/// What an append did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditAppend {
    /// Events newly written to the stream.
    pub written: usize,
    /// Events that were already written (a retry's duplicates), skipped.
    pub skipped: usize,
}

impl std::ops::Add for AuditAppend {
    type Output = AuditAppend;

    /// Sums two outcomes (of the pieces of one batch).
    fn add(self, other: AuditAppend) -> AuditAppend {
        AuditAppend {
            written: self.written + other.written,
            skipped: self.skipped + other.skipped,
        }
    }
}

/// How a batch disagrees with the stored chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictKind {
    /// The event is past the stored end plus one: events before it are missing.
    Gap,
    /// The event does not link to the stored end, or another event already
    /// holds its place.
    Fork,
    /// The event is older than the stored window, so it cannot be confirmed.
    BeyondWindow,
}

impl ConflictKind {
    /// The metric label: `gap`, `fork`, `beyond_window`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConflictKind::Gap => "gap",
            ConflictKind::Fork => "fork",
            ConflictKind::BeyondWindow => "beyond_window",
        }
    }
}

/// A batch that would break the stored chain; nothing of it was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit event {producer} #{seq} conflicts with the stored chain ({}): {message}", kind.as_str())]
pub struct Conflict {
    /// The producer whose chain it is.
    pub producer: String,
    /// The first event that does not fit.
    pub seq: u64,
    /// How it does not fit.
    pub kind: ConflictKind,
    /// A sentence for a person.
    pub message: String,
}

/// Why an append wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The state could not answer; the write may or may not have been
    /// applied, so retry the same events.
    #[error(transparent)]
    State(#[from] StateError),
    /// The batch does not fit the stored chain; retrying it cannot help.
    #[error(transparent)]
    Conflict(#[from] Conflict),
}

/// Checks a batch of one producer against its stored end, `head` (the
/// stored last `(seq, hash)`, `None` for an empty chain), with `stored_hash`
/// answering the hash stored at an older `seq` (within [`SEEN_WINDOW`]).
/// Returns how many leading events are already written; the rest are new
/// and link. The in-process state uses it; `lua/audit_append.lua` is the
/// same algorithm inside Redis.
pub fn check_batch(
    head: Option<(u64, &str)>,
    stored_hash: impl Fn(u64) -> Option<String>,
    events: &[AuditEvent],
) -> Result<usize, Conflict> {
    let (mut next, mut last) = match head {
        Some((seq, hash)) => (seq.saturating_add(1), hash.to_owned()),
        None => (0, GENESIS.to_owned()),
    };
    let head_seq = head.map(|(seq, _)| seq);
    let mut skipped = 0;
    for (i, event) in events.iter().enumerate() {
        let conflict = |kind, message: String| Conflict {
            producer: event.producer.clone(),
            seq: event.seq,
            kind,
            message,
        };
        if event.seq < next {
            if i > skipped {
                return Err(conflict(
                    ConflictKind::Fork,
                    "the batch repeats a place it has just written".into(),
                ));
            }
            let stored = if Some(event.seq) == head_seq {
                Some(last.clone())
            } else {
                stored_hash(event.seq)
            };
            match stored {
                Some(hash) if hash == event.hash => skipped += 1,
                Some(_) => {
                    return Err(conflict(
                        ConflictKind::Fork,
                        "another event is already stored at this place".into(),
                    ));
                }
                None => {
                    return Err(conflict(
                        ConflictKind::BeyondWindow,
                        format!("older than the stored window of {SEEN_WINDOW} events"),
                    ));
                }
            }
        } else if event.seq > next {
            return Err(conflict(
                ConflictKind::Gap,
                format!("the stored chain ends before #{next}"),
            ));
        } else if event.prev != last {
            return Err(conflict(
                ConflictKind::Fork,
                "it does not link to the stored last event".into(),
            ));
        } else {
            next = next.saturating_add(1);
            last = event.hash.clone();
        }
    }
    Ok(skipped)
}

/// The one producer of a batch; a batch that mixes producers is refused
/// whole (each chain is checked against its own stored end).
pub(crate) fn producer_of(events: &[AuditEvent]) -> Result<Option<&str>, Conflict> {
    let Some(first) = events.first() else {
        return Ok(None);
    };
    match events.iter().find(|e| e.producer != first.producer) {
        Some(other) => Err(Conflict {
            producer: other.producer.clone(),
            seq: other.seq,
            kind: ConflictKind::Fork,
            message: format!(
                "one batch mixes producers {} and {}",
                first.producer, other.producer
            ),
        }),
        None => Ok(Some(first.producer.as_str())),
    }
}

/// What a producer counts about its writes (each has its own metrics).
pub trait AppendObserver: Send + Sync {
    /// A write of `events` failed and will be retried with the same events.
    fn retried(&self, error: &StateError, events: &[AuditEvent]);
    /// The state reported `events` as already written (a retry's duplicates).
    fn skipped(&self, events: usize);
    /// The batch conflicts with the stored chain (logged as an error too).
    fn conflict(&self, conflict: &Conflict);
    /// A draft could not be linked (an unrepresentable time): it is lost.
    fn unlinkable(&self, kind: &str, error: &agentauth_core::Error);
}

/// A producer's end of its chain, held by its writer task: it links drafts
/// once and writes them until the state has them.
#[derive(Debug)]
pub struct ChainWriter {
    producer: String,
    chain: Chain,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl ChainWriter {
    /// Resumes `producer`'s chain after its last stored event, or at the
    /// genesis; one attempt.
    pub async fn open(producer: &str, state: &dyn SharedState) -> Result<Self, StateError> {
        let chain = match state.last_audit_event(producer).await? {
            Some(last) => Chain::resume(&last),
            None => Chain::new(producer),
        };
        Ok(ChainWriter {
            producer: producer.to_owned(),
            chain,
        })
    }

    /// [`ChainWriter::open`], retried with backoff until the state answers.
    pub async fn resume(producer: &str, state: &dyn SharedState) -> Self {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match Self::open(producer, state).await {
                Ok(writer) => return writer,
                Err(error) => {
                    tracing::warn!(%error, producer, "cannot resume the audit chain yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The sequence number the next event gets.
    pub fn next_seq(&self) -> u64 {
        self.chain.next_seq()
    }

    /// Links `drafts` (each with its time, ms since the epoch) and writes
    /// them, retrying until the state has every one. A retry re-sends the
    /// same linked events, so a write the state applied before its answer
    /// was lost is skipped, not duplicated. On a [`Conflict`] (the stored
    /// chain moved: another process under the same producer name, or a
    /// store that lost writes) the chain resumes from the store, as a
    /// restart would, and the drafts are linked again there: loud, never
    /// lost, never a gap in the store.
    pub async fn write(
        &mut self,
        state: &dyn SharedState,
        drafts: &[(Draft, i64)],
        observer: &dyn AppendObserver,
    ) {
        let mut events = self.link(drafts, observer);
        let mut backoff = FIRST_BACKOFF;
        while !events.is_empty() {
            match state.append_audit_batch(&events).await {
                Ok(done) => {
                    if done.skipped > 0 {
                        observer.skipped(done.skipped);
                    }
                    return;
                }
                Err(AppendError::State(error)) => {
                    observer.retried(&error, &events);
                    tracing::warn!(%error, events = events.len(), "audit write failed; retrying");
                }
                Err(AppendError::Conflict(conflict)) => {
                    observer.conflict(&conflict);
                    tracing::error!(
                        %conflict,
                        "audit chain conflict: another writer uses this producer name, or the \
                         store lost events; resuming from the stored chain"
                    );
                    *self = Self::resume(&self.producer, state).await;
                    events = self.link(drafts, observer);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn link(&mut self, drafts: &[(Draft, i64)], observer: &dyn AppendObserver) -> Vec<AuditEvent> {
        let mut events = Vec::with_capacity(drafts.len());
        for (draft, at_ms) in drafts {
            match self.chain.append(draft.clone(), *at_ms) {
                Ok(event) => events.push(event),
                // Only an unrepresentable time gets here; nothing to retry.
                Err(error) => {
                    observer.unlinkable(&draft.kind, &error);
                    tracing::error!(kind = draft.kind, %error, "audit event could not be linked");
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn chain(n: usize) -> Vec<AuditEvent> {
        let mut chain = Chain::new("p");
        (0..n)
            .map(|i| {
                let draft = Draft {
                    kind: format!("k{i}"),
                    ..Draft::default()
                };
                chain.append(draft, 1_700_000_000_000).unwrap()
            })
            .collect()
    }

    fn stored(events: &[AuditEvent]) -> impl Fn(u64) -> Option<String> + '_ {
        |seq| events.iter().find(|e| e.seq == seq).map(|e| e.hash.clone())
    }

    #[test]
    fn batches_are_written_skipped_or_refused() {
        let all = chain(6);
        let head = |i: usize| Some((all[i].seq, all[i].hash.as_str()));
        // Fresh chain, in order.
        assert_eq!(check_batch(None, stored(&[]), &all[..3]), Ok(0));
        // A retry of a written batch: all skipped; a retry overlapping the end.
        assert_eq!(check_batch(head(2), stored(&all[..3]), &all[..3]), Ok(3));
        assert_eq!(check_batch(head(2), stored(&all[..3]), &all[1..5]), Ok(2));
        // A gap, a fork by content, a fork by link.
        let gap = check_batch(head(2), stored(&all[..3]), &all[4..]).unwrap_err();
        assert_eq!((gap.kind, gap.seq), (ConflictKind::Gap, 4));
        let mut other = all[1].clone();
        other.hash = "f".repeat(64);
        let fork = check_batch(head(2), stored(&all[..3]), &[other]).unwrap_err();
        assert_eq!(fork.kind, ConflictKind::Fork);
        let mut unlinked = all[3].clone();
        unlinked.prev = "e".repeat(64);
        let fork = check_batch(head(2), stored(&all[..3]), &[unlinked]).unwrap_err();
        assert_eq!(fork.kind, ConflictKind::Fork);
        // Written, then repeated inside one batch.
        let repeat = [all[3].clone(), all[2].clone()];
        let fork = check_batch(head(2), stored(&all[..3]), &repeat).unwrap_err();
        assert_eq!(fork.kind, ConflictKind::Fork);
        // Older than the window.
        let old = check_batch(head(2), |_| None, &all[..1]).unwrap_err();
        assert_eq!(old.kind, ConflictKind::BeyondWindow);
    }
}
