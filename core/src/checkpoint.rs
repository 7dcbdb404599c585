//! Audit checkpoints: what the archiver signs at the end of every sealed
//! segment (DESIGN §8).
//!
//! ```text
//!  segment n:  record lines (JCS of each event)  ──▶ Merkle root (crate::merkle)
//!  checkpoint: {v, segment: n, records, root, prev: hash(checkpoint n-1) | GENESIS,
//!               producers: {p: {last_seq, last_hash, heartbeat_seq}}, sealed_at, …}
//!  signed as a compact JWS (typ agentauth-checkpoint+jws, ES256, kid = root key)
//! ```
//!
//! The root key signs it through the same [`Signer`] abstraction as tokens,
//! so a checkpoint is as hard to forge as a token. `prev` chains
//! checkpoints: dropping, reordering or re-signing a segment breaks the link
//! from the next one. `producers` carries every producer's chain head *after*
//! this segment (cumulative), so the next segment's chains resume from it,
//! and the highest heartbeat the archiver read before sealing: a producer
//! whose sealed chain ends before its heartbeat lost its tail.
//!
//! [`Signer`]: https://docs.rs/agentauth-signer

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::GENESIS;
use crate::error::{Error, ErrorCode, Result};
use crate::es256::{SIGNATURE_LEN, VerifyingKey};
use crate::jwk::EcPublicJwk;
use crate::jws::{self, ES256, Header};

/// The `typ` of a signed checkpoint.
pub const CHECKPOINT_TYPE: &str = "agentauth-checkpoint+jws";

/// The format version this code writes and reads.
pub const VERSION: u32 = 1;

/// Largest accepted signed checkpoint (many producers fit; a runaway does not).
pub const MAX_CHECKPOINT_LEN: usize = 1024 * 1024;

/// A producer's chain as of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerMark {
    /// The sequence number of its newest sealed record; `None` when none
    /// is sealed yet (only its heartbeat was seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// That record's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_hash: Option<String>,
    /// The highest sequence number its heartbeat reported before this
    /// segment was sealed: every record up to it was in the stream then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seq: Option<u64>,
}

/// The signed statement over one sealed segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// [`VERSION`].
    pub v: u32,
    /// The segment's number, from 1, without gaps.
    pub segment: u64,
    /// How many records the segment holds.
    pub records: u64,
    /// Hex Merkle root over the segment's record lines.
    pub root: String,
    /// Hex SHA-256 of the previous signed checkpoint ([`hash`]), or
    /// [`GENESIS`] for segment 1.
    pub prev: String,
    /// Every producer's chain after this segment (cumulative).
    pub producers: BTreeMap<String, ProducerMark>,
    /// When the segment was sealed, RFC 3339 UTC.
    pub sealed_at: String,
    /// The stream entry id of the segment's last record, for operators
    /// matching the archive to Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_entry_id: Option<String>,
}

impl Checkpoint {
    /// The `prev` of segment 1.
    pub fn genesis_prev() -> String {
        GENESIS.to_owned()
    }
}

/// The JOSE header of a checkpoint signed by key `kid`.
pub fn header(kid: &str) -> Header {
    Header {
        typ: Some(CHECKPOINT_TYPE.into()),
        alg: ES256.into(),
        kid: Some(kid.into()),
        jwk: None,
        crit: None,
    }
}

/// The bytes the root key signs (a KMS signs their SHA-256 digest).
pub fn signing_input(kid: &str, checkpoint: &Checkpoint) -> Result<String> {
    jws::signing_input(&header(kid), checkpoint)
}

/// The compact signed checkpoint from its signing input and `r || s`.
pub fn assemble(signing_input: &str, signature: &[u8; SIGNATURE_LEN]) -> String {
    jws::assemble(signing_input, signature)
}

/// The hash that the next checkpoint's `prev` names: hex SHA-256 of the
/// compact signed checkpoint.
pub fn hash(signed: &str) -> String {
    hex(&Sha256::digest(signed.as_bytes()))
}

/// Lowercase hex of bytes (roots and hashes in checkpoints).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Parses 64 hex digits.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// Checks a signed checkpoint's framing, `typ`, `alg`, that its `kid` names
/// one of the `trusted` keys and that key's signature; returns the
/// checkpoint and the kid that signed it. Every refusal is
/// `audit_checkpoint_invalid`.
pub fn verify(signed: &str, trusted: &[EcPublicJwk]) -> Result<(Checkpoint, String)> {
    let parts = jws::decode::<Checkpoint>(
        signed,
        MAX_CHECKPOINT_LEN,
        ErrorCode::AuditCheckpointInvalid,
    )?;
    if parts.header.typ.as_deref() != Some(CHECKPOINT_TYPE) {
        return Err(invalid(format!("typ must be {CHECKPOINT_TYPE}")));
    }
    if parts.header.jwk.is_some() {
        return Err(invalid("a checkpoint carries no jwk header"));
    }
    let kid = parts.header.kid.unwrap_or_default();
    let mut pinned = Vec::with_capacity(trusted.len());
    let mut key: Option<VerifyingKey> = None;
    for jwk in trusted {
        let public = jwk.to_public_key()?;
        if public.thumbprint == kid {
            key = Some(public.key);
        }
        pinned.push(public.thumbprint);
    }
    let Some(key) = key else {
        return Err(invalid(format!(
            "signed by key {kid:?}, which is not a pinned checkpoint key ({})",
            pinned.join(", ")
        )));
    };
    if !key.verify(parts.signing_input.as_bytes(), &parts.signature) {
        return Err(invalid(format!(
            "the signature does not verify with key {kid}: the checkpoint was altered or re-signed"
        )));
    }
    if parts.claims.v != VERSION {
        return Err(invalid(format!(
            "checkpoint version {} is not supported (this build reads {VERSION})",
            parts.claims.v
        )));
    }
    Ok((parts.claims, kid))
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::AuditCheckpointInvalid, message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::es256::SigningKey;

    fn signed(key: &SigningKey, checkpoint: &Checkpoint) -> (String, EcPublicJwk) {
        let public = key.verifying_key().unwrap();
        let mut jwk = EcPublicJwk::from_key(&public);
        let kid = crate::jwk::ec_thumbprint(&jwk.x, &jwk.y);
        jwk.kid = Some(kid.clone());
        let input = signing_input(&kid, checkpoint).unwrap();
        (assemble(&input, &key.sign(input.as_bytes())), jwk)
    }

    fn sample() -> Checkpoint {
        let mut producers = BTreeMap::new();
        producers.insert(
            "operator/a".to_owned(),
            ProducerMark {
                last_seq: Some(4),
                last_hash: Some("ab".repeat(32)),
                heartbeat_seq: Some(4),
            },
        );
        Checkpoint {
            v: VERSION,
            segment: 1,
            records: 5,
            root: "cd".repeat(32),
            prev: Checkpoint::genesis_prev(),
            producers,
            sealed_at: "2026-12-07T00:00:00.000Z".into(),
            last_entry_id: Some("1-0".into()),
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_with_its_key_only() {
        let key = SigningKey::generate();
        let (jws, jwk) = signed(&key, &sample());
        let (checkpoint, kid) = verify(&jws, std::slice::from_ref(&jwk)).unwrap();
        assert_eq!(checkpoint, sample());
        assert_eq!(Some(kid), jwk.kid);
        // Another key, even one claiming the same kid, is refused.
        let (forged, _) = signed(&SigningKey::generate(), &sample());
        let err = verify(&forged, std::slice::from_ref(&jwk)).unwrap_err();
        assert_eq!(err.code, ErrorCode::AuditCheckpointInvalid);
        let mut claimed = forged.split('.').map(str::to_owned).collect::<Vec<_>>();
        claimed[0] = jws.split('.').next().unwrap().to_owned();
        let err = verify(&claimed.join("."), &[jwk]).unwrap_err();
        assert_eq!(err.code, ErrorCode::AuditCheckpointInvalid);
        assert!(err.message.contains("altered or re-signed"), "{err}");
    }

    #[test]
    fn hashes_round_trip_and_malformed_hex_is_refused() {
        let h = [7u8; 32];
        assert_eq!(parse_hash(&hex(&h)), Some(h));
        assert_eq!(parse_hash("zz"), None);
        assert_eq!(parse_hash(&"g".repeat(64)), None);
        assert_eq!(hash("a.b.c").len(), 64);
    }
}
