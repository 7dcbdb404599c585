//! Inclusion proofs: `agentauth audit prove <event>` and
//! `agentauth audit verify --proof`.
//!
//! A proof carries the record's line, its place in the segment's Merkle
//! tree, the audit path and the signed checkpoint, so it is checked with
//! the pinned public key alone, without the archive.

use agentauth_core::checkpoint::{self, parse_hash};
use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::merkle::{self, Hash};
use agentauth_core::{Error, ErrorCode};
use serde::{Deserialize, Serialize};

use crate::archive;
use crate::segment;
use crate::store::{SegmentStore, StoreError};

/// A record's inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The record's line (its canonical JSON).
    pub record: String,
    /// The segment's object name.
    pub segment: String,
    /// The record's leaf index in the segment, from 0.
    pub index: u64,
    /// The number of records in the segment.
    pub size: u64,
    /// The audit path, hex, bottom up.
    pub path: Vec<String>,
    /// The segment's signed checkpoint.
    pub checkpoint: String,
}

/// Which record to prove: `<producer>#<seq>` or the record's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventId {
    /// A producer's record by sequence number.
    Seq(String, u64),
    /// A record by its hash.
    Hash(String),
}

impl EventId {
    /// Parses `<producer>#<seq>` or 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some((producer, seq)) = text.rsplit_once('#') {
            let seq = seq
                .parse()
                .map_err(|_| format!("{seq:?} after '#' is not a sequence number"))?;
            return Ok(EventId::Seq(producer.to_owned(), seq));
        }
        if parse_hash(text).is_some() {
            return Ok(EventId::Hash(text.to_ascii_lowercase()));
        }
        Err(format!(
            "{text:?} names no record: give <producer>#<seq> (e.g. verifier/node-a#41) or a \
             record's 64-hex-digit hash"
        ))
    }

    fn matches(&self, event: &agentauth_core::audit::AuditEvent) -> bool {
        match self {
            EventId::Seq(producer, seq) => event.producer == *producer && event.seq == *seq,
            EventId::Hash(hash) => event.hash == *hash,
        }
    }
}

/// Why no proof was made.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The archive could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No sealed record has that id.
    #[error("no sealed record is {0}; it may not be archived yet")]
    NotFound(String),
}

/// Finds `id` in the archive and builds its proof.
pub async fn prove(store: &dyn SegmentStore, id: &EventId) -> Result<InclusionProof, ProveError> {
    for number in archive::segment_numbers(store).await?.into_iter().rev() {
        let decoded = archive::read_segment(store, number).await?;
        let found = decoded.lines.iter().position(|line| {
            agentauth_core::audit::AuditEvent::from_json(line).is_ok_and(|e| id.matches(&e))
        });
        if let Some(index) = found {
            let leaves = segment::leaves(&decoded.lines);
            let path = merkle::inclusion_proof(&leaves, index).unwrap_or_default();
            return Ok(InclusionProof {
                record: decoded.lines[index].clone(),
                segment: segment::name(number),
                index: index as u64,
                size: leaves.len() as u64,
                path: path.iter().map(|h| checkpoint::hex(h)).collect(),
                checkpoint: decoded.checkpoint,
            });
        }
    }
    Err(ProveError::NotFound(match id {
        EventId::Seq(p, s) => format!("{p}#{s}"),
        EventId::Hash(h) => h.clone(),
    }))
}

/// Checks a proof with the pinned keys alone: the checkpoint's signature,
/// that it is for the named segment and size, and the path from the
/// record's leaf to the signed root.
pub fn verify_proof(proof: &InclusionProof, trusted: &[EcPublicJwk]) -> Result<(), Error> {
    let (checkpoint, _) = checkpoint::verify(&proof.checkpoint, trusted)?;
    if segment::name(checkpoint.segment) != proof.segment || checkpoint.records != proof.size {
        return Err(Error::new(
            ErrorCode::AuditProofInvalid,
            format!(
                "the proof names {} of {} records, its checkpoint signs {} of {}",
                proof.segment,
                proof.size,
                segment::name(checkpoint.segment),
                checkpoint.records
            ),
        ));
    }
    let root = parse_hash(&checkpoint.root).ok_or_else(|| {
        Error::new(
            ErrorCode::AuditCheckpointInvalid,
            "the signed root is not hex",
        )
    })?;
    let path: Vec<Hash> = proof
        .path
        .iter()
        .map(|h| parse_hash(h))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            Error::new(
                ErrorCode::AuditProofInvalid,
                "a path hash is not 64 hex digits",
            )
        })?;
    let leaf = merkle::leaf_hash(proof.record.as_bytes());
    merkle::verify_inclusion(&leaf, proof.index, proof.size, &path, &root)
}
