//! The hash-chained audit log (DESIGN §8).
//!
//! Each producer (one pod) keeps its own chain:
//!
//! ```text
//! event_n = {producer, seq: n, time, kind, agent, grant, decision, reason, details,
//!            prev: hash(event_{n-1}) | GENESIS, hash}
//! hash    = hex(SHA-256(JCS(event_n without "hash")))
//! ```
//!
//! so altering, dropping, reordering or duplicating a record breaks the chain
//! at that record. The chain alone does not stop someone who rewrites *every*
//! later record too; the archiver's KMS-signed checkpoints over sealed
//! segments do. [`ChainVerifier`] checks events from many producers,
//! interleaved as a stream delivers them, and names the first broken record.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorCode, Result};
use crate::jcs;

/// `prev` of the first event of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Largest accepted serialized event.
pub const MAX_EVENT_LEN: usize = 64 * 1024;

/// Event kinds the services emit.
pub mod kinds {
    /// A CapabilityGrant was created.
    pub const GRANT_CREATED: &str = "grant_created";
    /// A grant was approved by a human.
    pub const GRANT_APPROVED: &str = "grant_approved";
    /// A grant was denied by a human.
    pub const GRANT_DENIED: &str = "grant_denied";
    /// A grant was revoked.
    pub const GRANT_REVOKED: &str = "grant_revoked";
    /// A grant expired.
    pub const GRANT_EXPIRED: &str = "grant_expired";
    /// An access token was issued.
    pub const TOKEN_ISSUED: &str = "token_issued";
    /// A verifier decided on a request.
    pub const VERIFICATION: &str = "verification";
    /// The approval API recorded a human's passkey-signed approval in a
    /// grant's status (the controllers then emit [`GRANT_APPROVED`]).
    pub const APPROVAL_RECORDED: &str = "approval_recorded";
    /// The approval API recorded a human's passkey-signed denial.
    pub const DENIAL_RECORDED: &str = "denial_recorded";
    /// The approval API set `spec.revoked` on an approved grant for a
    /// signed-in approver (the controllers then emit [`GRANT_REVOKED`]).
    pub const REVOKE_REQUESTED: &str = "grant_revoke_requested";
    /// An approver enrolled a passkey with a one-time enrollment token.
    pub const PASSKEY_ENROLLED: &str = "passkey_enrolled";
    /// An approver logged in to the approval API with a passkey.
    pub const APPROVER_LOGIN: &str = "approver_login";

    /// Every kind the operator emits (the verifier emits [`VERIFICATION`]):
    /// metrics labelled by kind start at zero for each.
    pub const OPERATOR: [&str; 11] = [
        GRANT_CREATED,
        GRANT_APPROVED,
        GRANT_DENIED,
        GRANT_REVOKED,
        GRANT_EXPIRED,
        TOKEN_ISSUED,
        APPROVAL_RECORDED,
        DENIAL_RECORDED,
        REVOKE_REQUESTED,
        PASSKEY_ENROLLED,
        APPROVER_LOGIN,
    ];
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Who wrote it: a stable pod identity, e.g. `operator/agentauth-operator-0`.
    pub producer: String,
    /// Position in the producer's chain, from 0.
    pub seq: u64,
    /// RFC 3339 UTC time with milliseconds.
    pub time: String,
    /// What happened (see [`kinds`]).
    pub kind: String,
    /// The agent, `namespace/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The grant, `namespace/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// `allow` or `deny` for decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// A stable reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Anything else worth keeping.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Hash of the producer's previous event, or [`GENESIS`].
    pub prev: String,
    /// This event's hash.
    pub hash: String,
}

/// The content of an event before the chain fills in `producer`, `seq`,
/// `time`, `prev` and `hash`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Draft {
    /// See [`AuditEvent::kind`].
    pub kind: String,
    /// See [`AuditEvent::agent`].
    pub agent: Option<String>,
    /// See [`AuditEvent::grant`].
    pub grant: Option<String>,
    /// See [`AuditEvent::decision`].
    pub decision: Option<String>,
    /// See [`AuditEvent::reason`].
    pub reason: Option<String>,
    /// See [`AuditEvent::details`].
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl AuditEvent {
    /// Parses one record (one line of a segment, one stream entry).
    pub fn from_json(json: &str) -> Result<Self> {
        if json.len() > MAX_EVENT_LEN {
            return Err(Error::new(
                ErrorCode::InputTooLarge,
                "audit record larger than 64 KiB",
            ));
        }
        serde_json::from_str(json).map_err(|e| {
            Error::new(
                ErrorCode::AuditRecordInvalid,
                format!("malformed audit record: {e}"),
            )
        })
    }

    /// The hash this event should carry, computed over everything but `hash`.
    pub fn compute_hash(&self) -> Result<String> {
        let mut value = serde_json::to_value(self)
            .map_err(|e| Error::new(ErrorCode::AuditRecordInvalid, e.to_string()))?;
        if let Some(object) = value.as_object_mut() {
            object.remove("hash");
        }
        let canonical = jcs::canonicalize(&value)?;
        Ok(hex(&Sha256::digest(canonical.as_bytes())))
    }
}

/// A producer's end of its chain.
#[derive(Clone, Debug)]
pub struct Chain {
    producer: String,
    next_seq: u64,
    last_hash: String,
}

impl Chain {
    /// A new chain starting at the genesis.
    pub fn new(producer: impl Into<String>) -> Self {
        Chain {
            producer: producer.into(),
            next_seq: 0,
            last_hash: GENESIS.into(),
        }
    }

    /// Continues a chain after a restart from its last written event, so a
    /// restarted producer neither forks nor repeats its chain.
    pub fn resume(last: &AuditEvent) -> Self {
        Chain {
            producer: last.producer.clone(),
            next_seq: last.seq.saturating_add(1),
            last_hash: last.hash.clone(),
        }
    }

    /// The sequence number the next event gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Links a draft into the chain at `now_ms` (milliseconds since the epoch).
    pub fn append(&mut self, draft: Draft, now_ms: i64) -> Result<AuditEvent> {
        let time = jiff::Timestamp::from_millisecond(now_ms)
            .map_err(|e| Error::new(ErrorCode::AuditRecordInvalid, format!("bad time: {e}")))?;
        let mut event = AuditEvent {
            producer: self.producer.clone(),
            seq: self.next_seq,
            time: format!("{time:.3}"),
            kind: draft.kind,
            agent: draft.agent,
            grant: draft.grant,
            decision: draft.decision,
            reason: draft.reason,
            details: draft.details,
            prev: self.last_hash.clone(),
            hash: String::new(),
        };
        event.hash = event.compute_hash()?;
        self.next_seq = self.next_seq.saturating_add(1);
        self.last_hash = event.hash.clone();
        Ok(event)
    }
}

/// How a chain broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakKind {
    /// The record's content does not match its hash.
    Altered,
    /// Records before this one are missing.
    Missing,
    /// The record arrived after a later one of its producer.
    Reordered,
    /// The record was already seen.
    Duplicate,
    /// A second, different record claims the same place in the chain, or
    /// links to a record other than its predecessor.
    Forked,
}

impl BreakKind {
    /// Every kind, for metrics that start each label at zero.
    pub const ALL: [BreakKind; 5] = [
        BreakKind::Altered,
        BreakKind::Missing,
        BreakKind::Reordered,
        BreakKind::Duplicate,
        BreakKind::Forked,
    ];

    /// The stable word (a metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakKind::Altered => "altered",
            BreakKind::Missing => "missing",
            BreakKind::Reordered => "reordered",
            BreakKind::Duplicate => "duplicate",
            BreakKind::Forked => "forked",
        }
    }
}

/// The first broken record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    /// Position of the record in the input, from 0.
    pub index: usize,
    /// Its producer.
    pub producer: String,
    /// Its sequence number.
    pub seq: u64,
    /// What is wrong.
    pub kind: BreakKind,
    /// A sentence for a person.
    pub message: String,
}

impl From<ChainBreak> for Error {
    fn from(b: ChainBreak) -> Self {
        Error::new(ErrorCode::AuditChainBroken, b.message)
    }
}

/// How many of each producer's newest records a [`ChainVerifier`]
/// remembers to tell a duplicate or a fork from a reordered record.
pub const SEEN_WINDOW: u64 = 1 << 16;

#[derive(Default)]
struct ProducerState {
    next_seq: u64,
    last_hash: String,
    seen: HashMap<u64, String>,
}

/// Checks interleaved events of many producers, in stream order.
#[derive(Default)]
pub struct ChainVerifier {
    producers: HashMap<String, ProducerState>,
    index: usize,
}

impl ChainVerifier {
    /// A verifier that expects every chain to start at its genesis.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expects `producer`'s chain to continue after `last` (e.g. the last
    /// event of the previous sealed segment).
    pub fn resume_after(&mut self, last: &AuditEvent) {
        let state = self.producers.entry(last.producer.clone()).or_default();
        state.next_seq = last.seq.saturating_add(1);
        state.last_hash = last.hash.clone();
        state.seen.insert(last.seq, last.hash.clone());
    }

    /// Expects `producer`'s chain to continue after its record `seq` with
    /// hash `hash` (a checkpoint's chain head).
    pub fn resume_at(&mut self, producer: &str, seq: u64, hash: &str) {
        let state = self.producers.entry(producer.to_owned()).or_default();
        state.next_seq = seq.saturating_add(1);
        state.last_hash = hash.to_owned();
        state.seen.insert(seq, hash.to_owned());
    }

    /// Each producer's chain head: the sequence number and hash of its
    /// newest accepted record.
    pub fn heads(&self) -> impl Iterator<Item = (&str, u64, &str)> {
        self.producers
            .iter()
            .filter(|(_, s)| s.next_seq > 0)
            .map(|(p, s)| (p.as_str(), s.next_seq - 1, s.last_hash.as_str()))
    }

    /// Checks the next event.
    pub fn push(&mut self, event: &AuditEvent) -> Result<(), ChainBreak> {
        let index = self.index;
        self.index += 1;
        let broken = |kind: BreakKind, what: String| ChainBreak {
            index,
            producer: event.producer.clone(),
            seq: event.seq,
            kind,
            message: format!("record {index} ({} #{}): {what}", event.producer, event.seq),
        };
        let recomputed = event
            .compute_hash()
            .map_err(|e| broken(BreakKind::Altered, e.message))?;
        if recomputed != event.hash {
            return Err(broken(
                BreakKind::Altered,
                "its content does not match its hash".into(),
            ));
        }
        let state = self
            .producers
            .entry(event.producer.clone())
            .or_insert_with(|| ProducerState {
                last_hash: GENESIS.into(),
                ..ProducerState::default()
            });
        if event.seq < state.next_seq {
            return Err(match state.seen.get(&event.seq) {
                Some(h) if *h == event.hash => {
                    broken(BreakKind::Duplicate, "it was already recorded".into())
                }
                Some(_) => broken(
                    BreakKind::Forked,
                    "another record already holds this place".into(),
                ),
                None => broken(
                    BreakKind::Reordered,
                    "it arrived after a later record".into(),
                ),
            });
        }
        if event.seq > state.next_seq {
            return Err(broken(
                BreakKind::Missing,
                format!(
                    "records {} to {} are missing",
                    state.next_seq,
                    event.seq - 1
                ),
            ));
        }
        if event.prev != state.last_hash {
            return Err(broken(
                BreakKind::Forked,
                "it does not link to its predecessor".into(),
            ));
        }
        state.seen.insert(event.seq, event.hash.clone());
        // A bounded memory of past records, so a long-running reader (the
        // archiver) does not grow with the log; an older repeat is named
        // `Reordered` rather than `Duplicate` or `Forked`.
        if let Some(old) = event.seq.checked_sub(SEEN_WINDOW) {
            state.seen.remove(&old);
        }
        state.next_seq = event.seq.saturating_add(1);
        state.last_hash = event.hash.clone();
        Ok(())
    }
}

/// Verifies a whole sequence; returns how many events each producer had.
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
) -> Result<HashMap<String, u64>, ChainBreak> {
    let mut verifier = ChainVerifier::new();
    for event in events {
        verifier.push(event)?;
    }
    Ok(verifier
        .producers
        .into_iter()
        .map(|(p, s)| (p, s.next_seq))
        .collect())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}
