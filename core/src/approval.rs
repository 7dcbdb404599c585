//! The approval challenge (DESIGN §4.2): what a human's passkey signs.
//!
//! ```text
//! challenge = SHA-256( JCS({agentKeyThumbprint, decision, envelopeDigest,
//!                            generation, grantUid, nonce, specDigest}) )
//! specDigest     = base64url( SHA-256( JCS(grant.spec) ) )
//! envelopeDigest = base64url( SHA-256( JCS(envelope.spec) ) ), or "" without envelopeRef
//! agentKeyThumbprint = RFC 7638 thumbprint of the agent's spec.publicKey
//! ```
//!
//! Binding the grant's uid, generation and spec digest means a signature
//! cannot be moved to another grant, survive a spec change, or be reused
//! after re-creation under the same name. The grant spec names its envelope
//! and agent only by reference, so the approval also binds the envelope's
//! limits and the agent's key as they were shown to the approver (DESIGN
//! §13: what a person approves is what is enforced); a later change to
//! either no longer matches the record. Binding the decision means an
//! approval cannot be turned into a denial or back; the nonce, issued by the
//! approval API per ceremony, makes every challenge unique. The WebAuthn
//! `challenge` field carries these 32 bytes base64url-encoded.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
use crate::jcs;

/// Nonce length bounds, in characters.
pub const NONCE_MIN_LEN: usize = 16;
/// See [`NONCE_MIN_LEN`].
pub const NONCE_MAX_LEN: usize = 128;

/// A human's decision on a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Decision {
    /// The grant may be used.
    Approved,
    /// The grant is refused for good.
    Denied,
}

impl Decision {
    /// The wire form, `Approved` or `Denied`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "Approved",
            Decision::Denied => "Denied",
        }
    }
}

/// Everything a challenge binds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeInput {
    /// The grant's `metadata.uid`.
    pub grant_uid: String,
    /// The grant's `metadata.generation`.
    pub generation: i64,
    /// [`spec_digest`] of the grant's spec.
    pub spec_digest: String,
    /// The decision being signed.
    pub decision: Decision,
    /// The ceremony's nonce.
    pub nonce: String,
    /// [`envelope_digest`] of the envelope's spec, or `""` when the grant
    /// names no envelope.
    pub envelope_digest: String,
    /// The RFC 7638 thumbprint of the agent's public key.
    pub agent_key_thumbprint: String,
}

/// Length of a base64url SHA-256 digest or thumbprint, in characters.
pub const DIGEST_LEN: usize = 43;

/// The digest of an envelope spec, as stored in
/// `status.approval.envelopeDigest` (and the access token's `env` claim).
pub fn envelope_digest<T: Serialize + ?Sized>(spec: &T) -> Result<String> {
    jcs::digest_b64(spec)
}

/// The digest of a grant spec, as stored in `status.approval.specDigest`.
pub fn spec_digest<T: Serialize + ?Sized>(spec: &T) -> Result<String> {
    jcs::digest_b64(spec)
}

/// The 32 challenge bytes a passkey signs for this input.
pub fn challenge(input: &ChallengeInput) -> Result<[u8; 32]> {
    let nonce_ok = (NONCE_MIN_LEN..=NONCE_MAX_LEN).contains(&input.nonce.len())
        && input.nonce.bytes().all(|b| b.is_ascii_graphic());
    if !nonce_ok {
        return Err(Error::new(
            ErrorCode::ApprovalInvalid,
            "the approval nonce must be 16 to 128 printable ASCII characters",
        ));
    }
    if input.grant_uid.is_empty() || input.spec_digest.is_empty() || input.generation < 1 {
        return Err(Error::new(
            ErrorCode::ApprovalInvalid,
            "the approval must name a grant uid, a generation and a spec digest",
        ));
    }
    let envelope_ok = input.envelope_digest.is_empty() || input.envelope_digest.len() == DIGEST_LEN;
    if !envelope_ok || input.agent_key_thumbprint.len() != DIGEST_LEN {
        return Err(Error::new(
            ErrorCode::ApprovalInvalid,
            "the approval must bind the envelope digest (43 characters, or empty without an \
             envelope) and the agent key thumbprint (43 characters)",
        ));
    }
    jcs::sha256(input)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn input() -> ChallengeInput {
        ChallengeInput {
            grant_uid: "6a1f0c2e-0000-4000-8000-000000000001".into(),
            generation: 1,
            spec_digest: spec_digest(&serde_json::json!({"a": 1})).unwrap(),
            decision: Decision::Approved,
            nonce: "nonce-0123456789abcdef".into(),
            envelope_digest: envelope_digest(&serde_json::json!({"maxPerDay": "100"})).unwrap(),
            agent_key_thumbprint: spec_digest(&serde_json::json!({"k": 1})).unwrap(),
        }
    }

    #[test]
    fn every_bound_field_changes_the_challenge() {
        let base = challenge(&input()).unwrap();
        let mut variants = vec![];
        let mut i = input();
        i.grant_uid.push('x');
        variants.push(i);
        let mut i = input();
        i.generation = 2;
        variants.push(i);
        let mut i = input();
        i.spec_digest = spec_digest(&serde_json::json!({"a": 2})).unwrap();
        variants.push(i);
        let mut i = input();
        i.decision = Decision::Denied;
        variants.push(i);
        let mut i = input();
        i.nonce.push('x');
        variants.push(i);
        let mut i = input();
        i.envelope_digest = envelope_digest(&serde_json::json!({"maxPerDay": "1000"})).unwrap();
        variants.push(i);
        let mut i = input();
        i.envelope_digest = String::new();
        variants.push(i);
        let mut i = input();
        i.agent_key_thumbprint = spec_digest(&serde_json::json!({"k": 2})).unwrap();
        variants.push(i);
        for v in variants {
            assert_ne!(challenge(&v).unwrap(), base, "{v:?}");
        }
    }

    #[test]
    fn spec_digest_ignores_key_order_and_short_nonces_are_refused() {
        let a = spec_digest(&serde_json::json!({"x": 1, "y": [1, 2]})).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"y":[1,2],"x":1}"#).unwrap();
        assert_eq!(a, spec_digest(&b).unwrap());
        let mut i = input();
        i.nonce = "short".into();
        assert_eq!(challenge(&i).unwrap_err().code, ErrorCode::ApprovalInvalid);
    }

    #[test]
    fn a_missing_or_malformed_binding_is_refused() {
        let mut i = input();
        i.agent_key_thumbprint = String::new();
        assert_eq!(challenge(&i).unwrap_err().code, ErrorCode::ApprovalInvalid);
        let mut i = input();
        i.envelope_digest = "short".into();
        assert_eq!(challenge(&i).unwrap_err().code, ErrorCode::ApprovalInvalid);
    }
}
