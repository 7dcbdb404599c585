//! Verification of WebAuthn assertions (W3C WebAuthn Level 3 §7.2) for
//! ES256 passkeys, pure and shared by the admission webhook and the operator.
//!
//! The checks, in order: sizes; `clientDataJSON` parses, its `type` is
//! `webauthn.get`, its `challenge` is the expected approval challenge, its
//! `origin` is an approval-UI origin and it is not cross-origin; the
//! authenticator data's `rpIdHash` is SHA-256 of the relying party id; the
//! signature over `authenticatorData || SHA-256(clientDataJSON)` verifies
//! under the registered key; user presence and (when required) user
//! verification flags are set; and the sign counter increased, unless both
//! stored and presented counters are zero (authenticators that keep no
//! counter, like most synced passkeys, report zero).

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::b64;
use crate::error::{Error, ErrorCode, Result};
use crate::es256::VerifyingKey;

/// Largest accepted `clientDataJSON`.
pub const MAX_CLIENT_DATA_LEN: usize = 4096;
/// Largest accepted authenticator data (extensions included).
pub const MAX_AUTHENTICATOR_DATA_LEN: usize = 4096;
/// Largest accepted DER signature (72 bytes for P-256, with slack).
pub const MAX_SIGNATURE_LEN: usize = 128;

const FLAG_USER_PRESENT: u8 = 0x01;
const FLAG_USER_VERIFIED: u8 = 0x04;

// A test helper: only with the `testing` feature (tests, `agentauth dev`),
// so the product binary cannot make assertions, only check them.
#[cfg(any(test, feature = "testing"))]
mod soft;
#[cfg(any(test, feature = "testing"))]
pub use soft::{SoftAuthenticator, USER_PRESENT, USER_VERIFIED};

/// An assertion as the browser returns it (raw bytes, not base64).
#[derive(Clone, Copy, Debug)]
pub struct Assertion<'a> {
    /// `response.authenticatorData`.
    pub authenticator_data: &'a [u8],
    /// `response.clientDataJSON`.
    pub client_data_json: &'a [u8],
    /// `response.signature`, ASN.1 DER.
    pub signature: &'a [u8],
}

/// What the relying party expects.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The challenge bytes (see [`crate::approval::challenge`]).
    pub challenge: &'a [u8],
    /// The relying party id, e.g. `approvals.example.com`.
    pub rp_id: &'a str,
    /// Origins the approval UI is served from, e.g. `https://approvals.example.com`.
    pub origins: &'a [String],
    /// Whether the user must have been verified (PIN, biometrics).
    pub require_user_verification: bool,
}

/// The registered credential.
#[derive(Clone, Copy, Debug)]
pub struct Credential<'a> {
    /// The passkey's public key.
    pub key: &'a VerifyingKey,
    /// The last sign counter seen.
    pub sign_count: u32,
}

/// What a successful verification learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The counter to store for the next assertion.
    pub sign_count: u32,
    /// Whether the user was verified.
    pub user_verified: bool,
}

#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    type_: String,
    challenge: String,
    origin: String,
    #[serde(default, rename = "crossOrigin")]
    cross_origin: Option<bool>,
}

/// Verifies an assertion against a registered credential.
pub fn verify(
    assertion: &Assertion<'_>,
    expected: &Expected<'_>,
    credential: &Credential<'_>,
) -> Result<Verified> {
    let invalid = |m: &str| Error::new(ErrorCode::ApprovalInvalid, m);
    if assertion.client_data_json.len() > MAX_CLIENT_DATA_LEN
        || assertion.authenticator_data.len() > MAX_AUTHENTICATOR_DATA_LEN
        || assertion.signature.len() > MAX_SIGNATURE_LEN
    {
        return Err(Error::new(
            ErrorCode::InputTooLarge,
            "the assertion is larger than allowed",
        ));
    }
    let client: ClientData = serde_json::from_slice(assertion.client_data_json)
        .map_err(|e| invalid(&format!("clientDataJSON is malformed: {e}")))?;
    if client.type_ != "webauthn.get" {
        return Err(ErrorCode::ApprovalTypeInvalid.into());
    }
    let challenge = b64::decode(&client.challenge, ErrorCode::ApprovalChallengeMismatch)?;
    if challenge != expected.challenge {
        return Err(ErrorCode::ApprovalChallengeMismatch.into());
    }
    if !expected.origins.iter().any(|o| o == &client.origin) || client.cross_origin == Some(true) {
        return Err(Error::new(
            ErrorCode::ApprovalOriginMismatch,
            format!("origin {:?} is not an approval origin", client.origin),
        ));
    }
    let data = assertion.authenticator_data;
    if data.len() < 37 {
        return Err(invalid("authenticator data is shorter than 37 bytes"));
    }
    let rp_id_hash: [u8; 32] = Sha256::digest(expected.rp_id.as_bytes()).into();
    if data[..32] != rp_id_hash {
        return Err(ErrorCode::ApprovalRpIdMismatch.into());
    }
    let mut signed = Vec::with_capacity(data.len() + 32);
    signed.extend_from_slice(data);
    signed.extend_from_slice(&Sha256::digest(assertion.client_data_json));
    if !credential.key.verify_der(&signed, assertion.signature) {
        return Err(ErrorCode::ApprovalSignatureInvalid.into());
    }
    let flags = data[32];
    if flags & FLAG_USER_PRESENT == 0 {
        return Err(ErrorCode::ApprovalUserNotPresent.into());
    }
    let user_verified = flags & FLAG_USER_VERIFIED != 0;
    if expected.require_user_verification && !user_verified {
        return Err(ErrorCode::ApprovalUserNotVerified.into());
    }
    let sign_count = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
    if (sign_count != 0 || credential.sign_count != 0) && sign_count <= credential.sign_count {
        return Err(Error::new(
            ErrorCode::ApprovalCounterNotIncreasing,
            format!(
                "the passkey counter went from {} to {sign_count}; the key may be cloned",
                credential.sign_count
            ),
        ));
    }
    Ok(Verified {
        sign_count,
        user_verified,
    })
}
