//! `agentauth audit verify`: checks an archive offline and names the first
//! broken thing.
//!
//! ```text
//!  segments 1..n, no gap ─▶ each: decode ─▶ checkpoint signed by a pinned key ─▶ numbered n
//!    ─▶ prev = hash(checkpoint n-1) ─▶ lines canonical, chains unbroken across segments
//!    ─▶ Merkle root = signed root ─▶ record count ─▶ chain heads = the checkpoint's
//!    ─▶ no heartbeat ahead of its producer's sealed chain
//!  end: the head is the expected one (--head), when given
//! ```
//!
//! The chain check runs before the root check, so a record altered in
//! place is named by its line; a record altered with its whole chain
//! rewritten still fails the signed root.

use std::collections::BTreeMap;
use std::fmt;

use agentauth_core::audit::{AuditEvent, BreakKind, ChainVerifier};
use agentauth_core::checkpoint::{self, Checkpoint, ProducerMark};
use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::merkle;

use crate::archive;
use crate::segment::{self, Decoded};
use crate::store::{SegmentStore, StoreError};

/// What is wrong, as a stable word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// A record's content does not match its hash, or is not canonical.
    Altered,
    /// Records of a producer are missing between two sealed ones.
    Dropped,
    /// A record comes after a later one of its producer.
    Reordered,
    /// A record appears twice.
    Duplicated,
    /// Two different records claim one place in a chain.
    Forked,
    /// A producer's heartbeat named records that were never sealed.
    TruncatedTail,
    /// A segment is missing from the sequence.
    MissingSegment,
    /// A segment has no checkpoint.
    MissingCheckpoint,
    /// A checkpoint's signature, number, link or claims are wrong.
    BadCheckpoint,
    /// The records do not match the signed Merkle root.
    RootMismatch,
    /// A segment cannot be read.
    Unreadable,
    /// The archive does not end at the expected checkpoint.
    HeadMismatch,
}

impl ProblemKind {
    /// The stable word for reports and scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Altered => "altered",
            ProblemKind::Dropped => "dropped",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Duplicated => "duplicated",
            ProblemKind::Forked => "forked",
            ProblemKind::TruncatedTail => "truncated_tail",
            ProblemKind::MissingSegment => "missing_segment",
            ProblemKind::MissingCheckpoint => "missing_checkpoint",
            ProblemKind::BadCheckpoint => "bad_checkpoint",
            ProblemKind::RootMismatch => "root_mismatch",
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::HeadMismatch => "head_mismatch",
        }
    }
}

/// The first broken thing in an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The segment's object name.
    pub segment: String,
    /// The record's line in the segment, from 1.
    pub line: Option<usize>,
    /// The record's producer and sequence number.
    pub record: Option<(String, u64)>,
    /// A sentence for a person.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.segment)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some((producer, seq)) = &self.record {
            write!(f, " ({producer} #{seq})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What a sound archive holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Segments checked.
    pub segments: u64,
    /// Records checked.
    pub records: u64,
    /// Every producer's chain at the end.
    pub producers: BTreeMap<String, ProducerMark>,
    /// The hash of the newest checkpoint (pin it, and pass it as `--head`
    /// next time, to detect segments dropped from the end).
    pub head: String,
}

/// What to check against.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The public keys that may have signed checkpoints (the root key and
    /// its predecessors).
    pub trusted: Vec<EcPublicJwk>,
    /// The checkpoint hash the archive must end at.
    pub head: Option<String>,
}

/// Verifies every segment of `store`.
pub async fn verify(store: &dyn SegmentStore, options: &VerifyOptions) -> Result<Summary, Problem> {
    let numbers = archive::segment_numbers(store)
        .await
        .map_err(|e| unreadable(store.describe(), &e))?;
    let mut walk = Walk::new(&options.trusted);
    for (i, &number) in numbers.iter().enumerate() {
        let expected = i as u64 + 1;
        if number != expected {
            return Err(problem(
                ProblemKind::MissingSegment,
                segment::name(expected),
                format!(
                    "segment {expected} is missing: the archive goes from {} to {number}",
                    segment::name(expected - 1)
                ),
            ));
        }
        let name = segment::name(number);
        let bytes = store
            .get(&name)
            .await
            .map_err(|e| unreadable(name.clone(), &e))?;
        let decoded = segment::decode(&bytes).map_err(|e| match e {
            segment::DecodeError::NoCheckpoint => problem(
                ProblemKind::MissingCheckpoint,
                name.clone(),
                "the segment has no checkpoint at its end: it was cut or rewritten".into(),
            ),
            other => problem(ProblemKind::Unreadable, name.clone(), other.to_string()),
        })?;
        walk.segment(number, &name, &decoded)?;
    }
    let summary = walk.finish();
    if let Some(expected) = &options.head
        && *expected != summary.head
    {
        return Err(problem(
            ProblemKind::HeadMismatch,
            numbers
                .last()
                .map_or_else(|| "(empty archive)".into(), |n| segment::name(*n)),
            format!(
                "the archive ends at checkpoint {}, not at the expected {expected}: \
                 segments were dropped from its end, or it was replaced",
                summary.head
            ),
        ));
    }
    Ok(summary)
}

/// The running check over segments in order.
struct Walk<'a> {
    trusted: &'a [EcPublicJwk],
    chains: ChainVerifier,
    prev: String,
    producers: BTreeMap<String, ProducerMark>,
    segments: u64,
    records: u64,
}

impl<'a> Walk<'a> {
    fn new(trusted: &'a [EcPublicJwk]) -> Self {
        Walk {
            trusted,
            chains: ChainVerifier::new(),
            prev: Checkpoint::genesis_prev(),
            producers: BTreeMap::new(),
            segments: 0,
            records: 0,
        }
    }

    fn segment(&mut self, number: u64, name: &str, decoded: &Decoded) -> Result<(), Problem> {
        let bad = |message: String| problem(ProblemKind::BadCheckpoint, name.to_owned(), message);
        let (checkpoint, _kid) =
            checkpoint::verify(&decoded.checkpoint, self.trusted).map_err(|e| bad(e.message))?;
        if checkpoint.segment != number {
            return Err(bad(format!(
                "its checkpoint is for segment {}: segments were renamed or swapped",
                checkpoint.segment
            )));
        }
        if checkpoint.prev != self.prev {
            return Err(bad(
                "its checkpoint does not follow the previous one: a segment before it was \
                 dropped, replaced or re-signed"
                    .into(),
            ));
        }
        for (i, line) in decoded.lines.iter().enumerate() {
            self.record(name, i + 1, line)?;
        }
        let root = merkle::root(&segment::leaves(&decoded.lines));
        if checkpoint::hex(&root) != checkpoint.root {
            return Err(problem(
                ProblemKind::RootMismatch,
                name.to_owned(),
                "its records do not match the signed Merkle root: records were altered, added \
                 or removed (with their chains rewritten)"
                    .into(),
            ));
        }
        if checkpoint.records != decoded.lines.len() as u64 {
            return Err(bad(format!(
                "its checkpoint counts {} records, the segment holds {}",
                checkpoint.records,
                decoded.lines.len()
            )));
        }
        self.check_marks(name, &checkpoint)?;
        self.prev = checkpoint::hash(&decoded.checkpoint);
        self.producers = checkpoint.producers;
        self.segments += 1;
        self.records += decoded.lines.len() as u64;
        Ok(())
    }

    fn record(&mut self, name: &str, line_no: usize, line: &str) -> Result<(), Problem> {
        let at = |kind: ProblemKind, record: Option<(String, u64)>, message: String| Problem {
            kind,
            segment: name.to_owned(),
            line: Some(line_no),
            record,
            message,
        };
        let event =
            AuditEvent::from_json(line).map_err(|e| at(ProblemKind::Altered, None, e.message))?;
        let id = Some((event.producer.clone(), event.seq));
        if segment::record_line(&event).ok().as_deref() != Some(line) {
            return Err(at(
                ProblemKind::Altered,
                id,
                "the line is not the canonical form of its record: it was edited".into(),
            ));
        }
        self.chains.push(&event).map_err(|b| {
            let kind = match b.kind {
                BreakKind::Altered => ProblemKind::Altered,
                BreakKind::Missing => ProblemKind::Dropped,
                BreakKind::Reordered => ProblemKind::Reordered,
                BreakKind::Duplicate => ProblemKind::Duplicated,
                BreakKind::Forked => ProblemKind::Forked,
            };
            let what = b
                .message
                .split_once(": ")
                .map_or(b.message.as_str(), |(_, m)| m);
            at(kind, id.clone(), what.to_owned())
        })
    }

    fn check_marks(&self, name: &str, checkpoint: &Checkpoint) -> Result<(), Problem> {
        let heads: BTreeMap<&str, (u64, &str)> = self
            .chains
            .heads()
            .map(|(p, seq, hash)| (p, (seq, hash)))
            .collect();
        for (producer, (seq, hash)) in &heads {
            let mark = checkpoint.producers.get(*producer);
            if mark.and_then(|m| m.last_seq) != Some(*seq)
                || mark.and_then(|m| m.last_hash.as_deref()) != Some(*hash)
            {
                return Err(problem(
                    ProblemKind::BadCheckpoint,
                    name.to_owned(),
                    format!(
                        "its checkpoint does not name {producer}'s sealed chain head #{seq}: \
                         the checkpoint and the records disagree"
                    ),
                ));
            }
        }
        for (producer, mark) in &checkpoint.producers {
            if let Some(beat) = mark.heartbeat_seq
                && mark.last_seq.is_none_or(|last| last < beat)
            {
                let sealed = mark
                    .last_seq
                    .map_or_else(|| "none of its records".to_owned(), |l| format!("#{l}"));
                return Err(Problem {
                    kind: ProblemKind::TruncatedTail,
                    segment: name.to_owned(),
                    line: None,
                    record: Some((producer.clone(), beat)),
                    message: format!(
                        "{producer}'s heartbeat reported #{beat}, but its sealed chain ends at \
                         {sealed}: the records after it were cut from the stream before they \
                         were sealed"
                    ),
                });
            }
            if mark.last_seq.is_some() && !heads.contains_key(producer.as_str()) {
                return Err(problem(
                    ProblemKind::BadCheckpoint,
                    name.to_owned(),
                    format!("its checkpoint names records of {producer} that no segment holds"),
                ));
            }
        }
        Ok(())
    }

    fn finish(self) -> Summary {
        Summary {
            segments: self.segments,
            records: self.records,
            producers: self.producers,
            head: self.prev,
        }
    }
}

fn problem(kind: ProblemKind, segment: String, message: String) -> Problem {
    Problem {
        kind,
        segment,
        line: None,
        record: None,
        message,
    }
}

fn unreadable(segment: String, error: &StoreError) -> Problem {
    problem(ProblemKind::Unreadable, segment, error.to_string())
}
