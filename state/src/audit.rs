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
//!
//! **Once-only events.** A retry of the same linked events is idempotent by
//! `seq`, but two processes (an operator leader killed after its write, and
//! the next leader that plans the same grant transition) link two different
//! events. Such an event carries a *mark* (`transition:<uid>:<kind>`):
//! [`ChainWriter::write_once`] drops a draft whose mark is set before it
//! links it (so the chain stays contiguous), and the append sets the mark
//! atomically with the event and refuses a batch whose new event's mark
//! appeared meanwhile ([`AppendError::Marked`]); the writer then resumes
//! from the store, checks again and re-links.

use std::time::Duration;

use agentauth_core::audit::{AuditEvent, Chain, Draft, GENESIS};

use crate::{SharedState, StateError};

pub mod sink;

/// How many of a producer's newest `(seq, hash)` pairs the state keeps to
/// recognise a retried event. Four batches: a retry only ever re-sends the
/// batch that timed out.
pub const SEEN_WINDOW: u64 = 1024;

/// Most events one append call writes; larger slices are written in pieces
/// of this size, in order.
pub const MAX_BATCH: usize = 256;

/// How long a once-only mark lives: far longer than a process takes to
/// restart and re-plan what it was writing (the transition's status, once
/// written, stops it being planned again at all).
pub const MARK_TTL_MS: u64 = 7 * 86_400_000;

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
    /// A new event's once-only mark is already set (another writer recorded
    /// it since it was checked); nothing of the batch was written.
    #[error("audit event #{seq} is once-only and already written ({mark})")]
    Marked {
        /// The refused event's place in its producer's chain.
        seq: u64,
        /// Its mark.
        mark: String,
    },
}

/// Checks the marks of the new events of a batch (those after the first
/// `skipped`, see [`check_batch`]): none may be set (`is_set`) nor repeat
/// within the batch. The in-process state uses it; `audit_append.lua` does
/// the same inside Redis.
pub fn check_marks(
    events: &[AuditEvent],
    marks: &[Option<String>],
    skipped: usize,
    is_set: impl Fn(&str) -> bool,
) -> Result<(), AppendError> {
    let mut seen = std::collections::HashSet::new();
    for (event, mark) in events.iter().zip(marks).skip(skipped) {
        if let Some(mark) = mark
            && (is_set(mark) || !seen.insert(mark.as_str()))
        {
            return Err(AppendError::Marked {
                seq: event.seq,
                mark: mark.clone(),
            });
        }
    }
    Ok(())
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
        // Without marks nothing can be refused as marked.
        let _ = self.write_marked(state, drafts, &[], observer).await;
    }

    /// [`ChainWriter::write`] for drafts that may be once-only: `marks[i]`
    /// (`None`, or past the end: an ordinary event) names `drafts[i]`'s
    /// mark. A draft whose mark is already set is not linked nor written;
    /// the others are written with their marks (see
    /// [`SharedState::append_audit_marked`]). Returns, per draft, whether
    /// this call wrote it (`false`: its mark was set, it is recorded
    /// already). At most [`MAX_BATCH`] drafts: a refusal must mean that
    /// nothing of them was written.
    pub async fn write_once(
        &mut self,
        state: &dyn SharedState,
        drafts: &[(Draft, i64)],
        marks: &[Option<String>],
        observer: &dyn AppendObserver,
    ) -> Vec<bool> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let wanted = self.unmarked(state, drafts, marks).await;
            let (kept, kept_marks): (Vec<_>, Vec<_>) = drafts
                .iter()
                .zip(marks.iter().map(Some).chain(std::iter::repeat(None)))
                .zip(&wanted)
                .filter(|(_, keep)| **keep)
                .map(|((draft, mark), _)| (draft.clone(), mark.cloned().flatten()))
                .unzip();
            match self.write_marked(state, &kept, &kept_marks, observer).await {
                Ok(()) => return wanted,
                Err((seq, mark)) => {
                    tracing::warn!(
                        seq,
                        mark,
                        "a once-only audit event was written by another process meanwhile; \
                         resuming from the stored chain"
                    );
                    *self = Self::resume(&self.producer, state).await;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Which drafts to write: every one whose mark is unset and not held by
    /// an earlier draft; asked until the state answers.
    async fn unmarked(
        &self,
        state: &dyn SharedState,
        drafts: &[(Draft, i64)],
        marks: &[Option<String>],
    ) -> Vec<bool> {
        let asked: Vec<String> = marks.iter().flatten().cloned().collect();
        let mut backoff = FIRST_BACKOFF;
        let set = loop {
            if asked.is_empty() {
                break Vec::new();
            }
            match state.audit_marks(&asked).await {
                Ok(set) if set.len() == asked.len() => break set,
                Ok(_) => tracing::warn!("the state answered a different number of audit marks"),
                Err(error) => tracing::warn!(%error, "cannot read audit marks yet; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        let mut set = set.into_iter();
        let mut seen = std::collections::HashSet::new();
        (0..drafts.len())
            .map(|i| match marks.get(i).and_then(Option::as_ref) {
                Some(mark) => !set.next().unwrap_or(true) && seen.insert(mark.as_str()),
                None => true,
            })
            .collect()
    }

    /// Links `drafts` and writes them with `marks` until the state has
    /// them; `Err((seq, mark))` when a mark was set by another writer
    /// (nothing written, the chain must resume from the store).
    async fn write_marked(
        &mut self,
        state: &dyn SharedState,
        drafts: &[(Draft, i64)],
        marks: &[Option<String>],
        observer: &dyn AppendObserver,
    ) -> Result<(), (u64, String)> {
        let (mut events, mut linked_marks) = self.link_marked(drafts, marks, observer);
        let mut backoff = FIRST_BACKOFF;
        while !events.is_empty() {
            match state.append_audit_marked(&events, &linked_marks).await {
                Ok(done) => {
                    if done.skipped > 0 {
                        observer.skipped(done.skipped);
                    }
                    return Ok(());
                }
                Err(AppendError::Marked { seq, mark }) => return Err((seq, mark)),
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
                    (events, linked_marks) = self.link_marked(drafts, marks, observer);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Ok(())
    }

    fn link_marked(
        &mut self,
        drafts: &[(Draft, i64)],
        marks: &[Option<String>],
        observer: &dyn AppendObserver,
    ) -> (Vec<AuditEvent>, Vec<Option<String>>) {
        let mut events = Vec::with_capacity(drafts.len());
        let mut linked_marks = Vec::with_capacity(marks.len());
        for (i, (draft, at_ms)) in drafts.iter().enumerate() {
            match self.chain.append(draft.clone(), *at_ms) {
                Ok(event) => {
                    events.push(event);
                    linked_marks.push(marks.get(i).cloned().flatten());
                }
                // Only an unrepresentable time gets here; nothing to retry.
                Err(error) => {
                    observer.unlinkable(&draft.kind, &error);
                    tracing::error!(kind = draft.kind, %error, "audit event could not be linked");
                }
            }
        }
        (events, linked_marks)
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
