//! The records read since the last seal, checked as they arrive.

use std::collections::{BTreeMap, HashMap};

use agentauth_core::audit::{AuditEvent, ChainBreak, ChainVerifier};
use agentauth_core::checkpoint::ProducerMark;
use agentauth_state::redis::{StreamEntry, parse_entry_id};

use crate::seal::Head;
use crate::segment;

/// What became of one stream entry.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// Added to the batch.
    Record,
    /// Added, but its producer's chain is broken there.
    Broken(ChainBreak),
    /// Sealed in an earlier segment (delivered again after a restart).
    AlreadySealed,
    /// The entry holds no readable event.
    Invalid(String),
}

/// A producer whose heartbeat is ahead of everything read of it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Truncation {
    pub producer: String,
    pub last_seq: Option<u64>,
    pub heartbeat_seq: u64,
}

/// Records read and not yet sealed.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Record lines, in stream order.
    pub lines: Vec<String>,
    /// Every entry id to acknowledge once sealed (records and the rest).
    pub ids: Vec<String>,
    /// The highest entry id read.
    pub last_id: Option<String>,
    /// Chains after these records (starting from the head's).
    pub producers: BTreeMap<String, ProducerMark>,
    /// Stream time (ms) of the oldest entry read.
    pub oldest_ms: Option<i64>,
    /// Heartbeats ahead of the records since the last seal.
    pub truncations: Vec<Truncation>,
}

impl Batch {
    /// An empty batch continuing from `head`.
    pub fn after(head: &Head) -> Self {
        Batch {
            lines: Vec::new(),
            ids: Vec::new(),
            last_id: None,
            producers: head.producers.clone(),
            oldest_ms: None,
            truncations: Vec::new(),
        }
    }

    /// Nothing to seal and nothing to acknowledge.
    pub fn is_idle(&self) -> bool {
        self.ids.is_empty() && self.truncations.is_empty()
    }

    /// Takes one entry, checking its producer's chain with `chains`.
    pub fn accept(
        &mut self,
        entry: StreamEntry,
        head: &Head,
        chains: &mut ChainVerifier,
    ) -> Accepted {
        if let Some(ms) = entry_ms(&entry.id) {
            self.oldest_ms = Some(self.oldest_ms.map_or(ms, |old| old.min(ms)));
        }
        self.ids.push(entry.id.clone());
        self.last_id = Some(entry.id);
        let event = match entry.event {
            Ok(event) => event,
            Err(why) => return Accepted::Invalid(why),
        };
        if is_redelivery(&self.ids[self.ids.len() - 1], &event, head) {
            return Accepted::AlreadySealed;
        }
        let line = match segment::record_line(&event) {
            Ok(line) => line,
            Err(e) => return Accepted::Invalid(e.message),
        };
        let checked = chains.push(&event);
        if checked.is_err() {
            // Keep checking what follows against this record, so one break
            // is counted once rather than for every later record.
            chains.resume_at(&event.producer, event.seq, &event.hash);
        }
        self.lines.push(line);
        self.advance(&event);
        match checked {
            Ok(()) => Accepted::Record,
            Err(b) => Accepted::Broken(b),
        }
    }

    fn advance(&mut self, event: &AuditEvent) {
        let mark = self.producers.entry(event.producer.clone()).or_default();
        if mark.last_seq.is_none_or(|last| event.seq > last) {
            mark.last_seq = Some(event.seq);
            mark.last_hash = Some(event.hash.clone());
        }
    }

    /// Records the heartbeats read before a read that reached the end of
    /// the stream: every record up to each heartbeat was in the stream then,
    /// so one not read by now was cut. Returns the new truncations.
    pub fn note_heartbeats(&mut self, heartbeats: &HashMap<String, AuditEvent>) -> usize {
        let mut found = 0;
        for (producer, beat) in heartbeats {
            let mark = self.producers.entry(producer.clone()).or_default();
            if mark.heartbeat_seq.is_some_and(|seen| seen >= beat.seq) {
                continue;
            }
            mark.heartbeat_seq = Some(beat.seq);
            if mark.last_seq.is_none_or(|last| last < beat.seq) {
                found += 1;
                self.truncations.push(Truncation {
                    producer: producer.clone(),
                    last_seq: mark.last_seq,
                    heartbeat_seq: beat.seq,
                });
            }
        }
        found
    }
}

/// An entry sealed before: at or below its producer's sealed chain head and
/// at or before the last sealed stream entry. A record at or below the head
/// but newer in the stream is not one: its producer restarted its chain (a
/// Redis that lost its data, a reused producer id) or forked it, and it is
/// sealed and reported as a break instead of being dropped unseen.
fn is_redelivery(id: &str, event: &AuditEvent, head: &Head) -> bool {
    let below_head = head
        .producers
        .get(&event.producer)
        .and_then(|m| m.last_seq)
        .is_some_and(|last| event.seq <= last);
    let sealed_in_stream = match &head.last_entry_id {
        // Ids come from Redis and always parse; an unparsable one orders first.
        Some(sealed) => {
            parse_entry_id(id).unwrap_or_default() <= parse_entry_id(sealed).unwrap_or_default()
        }
        // Only heartbeats were sealed so far: by seq alone.
        None => true,
    };
    below_head && sealed_in_stream
}

/// The time part of a stream entry id, ms.
pub(crate) fn entry_ms(id: &str) -> Option<i64> {
    i64::try_from(parse_entry_id(id)?.0).ok()
}
