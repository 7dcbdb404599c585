//! Sealing: the Merkle root over a batch's record lines, the checkpoint
//! that chains it to the previous one, its signature by the root key, and
//! the segment bytes.

use std::collections::BTreeMap;

use agentauth_core::checkpoint::{self, Checkpoint, ProducerMark, VERSION};
use agentauth_core::merkle;
use agentauth_core::{Error, jws};
use agentauth_signer::{Signer, SignerError, sign_compact};

use crate::segment;

/// The archive's newest checkpoint, from which the next segment continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The newest segment's number (0: none yet).
    pub segment: u64,
    /// [`checkpoint::hash`] of its signed checkpoint (the genesis when none).
    pub hash: String,
    /// Every producer's chain after it.
    pub producers: BTreeMap<String, ProducerMark>,
    /// The stream id of the last entry sealed (`None`: none yet).
    pub last_entry_id: Option<String>,
}

impl Head {
    /// An empty archive.
    pub fn genesis() -> Self {
        Head {
            segment: 0,
            hash: Checkpoint::genesis_prev(),
            producers: BTreeMap::new(),
            last_entry_id: None,
        }
    }

    /// The head after the segment signed as `signed`. The signature is not
    /// checked here: the archiver resumes from its own store, and
    /// `agentauth audit verify` checks every signature.
    pub fn after(signed: &str) -> Result<Self, Error> {
        let parts = jws::decode::<Checkpoint>(
            signed,
            checkpoint::MAX_CHECKPOINT_LEN,
            agentauth_core::ErrorCode::AuditCheckpointInvalid,
        )?;
        Ok(Head {
            segment: parts.claims.segment,
            hash: checkpoint::hash(signed),
            producers: parts.claims.producers,
            last_entry_id: parts.claims.last_entry_id,
        })
    }
}

/// A segment ready to be written.
#[derive(Clone, Debug)]
pub struct Sealed {
    /// Its object name.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The archive's head once it is written.
    pub head: Head,
    /// Its checkpoint.
    pub checkpoint: Checkpoint,
}

/// Why sealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The root key did not sign.
    #[error("the checkpoint could not be signed: {0}")]
    Sign(#[from] SignerError),
    /// The checkpoint or segment could not be encoded.
    #[error("the segment could not be encoded: {0}")]
    Encode(String),
}

/// What a segment holds besides its lines.
#[derive(Clone, Debug)]
pub struct Contents<'a> {
    /// Record lines ([`segment::record_line`]), in stream order.
    pub lines: &'a [String],
    /// Every producer's chain after these records.
    pub producers: BTreeMap<String, ProducerMark>,
    /// The stream id of the last entry.
    pub last_entry_id: Option<String>,
    /// Now, ms since the epoch.
    pub now_ms: i64,
}

/// Seals `contents` as the segment after `head`, signed by `signer`.
pub async fn seal(
    signer: &dyn Signer,
    head: &Head,
    contents: Contents<'_>,
) -> Result<Sealed, SealError> {
    let root = merkle::root(&segment::leaves(contents.lines));
    let sealed_at = jiff::Timestamp::from_millisecond(contents.now_ms)
        .map_err(|e| SealError::Encode(format!("bad clock: {e}")))?;
    let checkpoint = Checkpoint {
        v: VERSION,
        segment: head.segment + 1,
        records: contents.lines.len() as u64,
        root: checkpoint::hex(&root),
        prev: head.hash.clone(),
        producers: contents.producers,
        sealed_at: format!("{sealed_at:.3}"),
        last_entry_id: contents.last_entry_id,
    };
    let input = checkpoint::signing_input(signer.key_id(), &checkpoint)
        .map_err(|e| SealError::Encode(e.message))?;
    let signed = sign_compact(signer, &input).await?;
    let bytes =
        segment::encode(contents.lines, &signed).map_err(|e| SealError::Encode(e.to_string()))?;
    Ok(Sealed {
        name: segment::name(checkpoint.segment),
        bytes,
        head: Head {
            segment: checkpoint.segment,
            hash: checkpoint::hash(&signed),
            producers: checkpoint.producers.clone(),
            last_entry_id: checkpoint.last_entry_id.clone(),
        },
        checkpoint,
    })
}
