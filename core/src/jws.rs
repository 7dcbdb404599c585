//! Compact JWS (RFC 7515 §7.1) framing shared by access tokens and DPoP
//! proofs: size limit, split, base64url, header and claims decoding, and the
//! ES256 signature bytes. What the header must say is decided by the callers
//! ([`crate::token`], [`crate::dpop`]); this module only refuses what no
//! caller accepts: anything but ES256, and any `crit` extension.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::b64;
use crate::error::{Error, ErrorCode, Result};
use crate::es256::{SIGNATURE_LEN, SigningKey};
use crate::jwk::EcPublicJwk;

/// The only accepted `alg` (RFC 7518 §3.4).
pub const ES256: &str = "ES256";

/// A JOSE header as AgentAuth reads it. Unknown members are ignored (RFC 7515
/// §4), but `crit` is refused because no extension is understood.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Media type: `at+jwt` for access tokens, `dpop+jwt` for proofs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Signature algorithm; only `ES256`.
    pub alg: String,
    /// Key id of an issuing key (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The signer's public key (DPoP proofs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<EcPublicJwk>,
    /// Critical extensions; any value is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<serde_json::Value>,
}

/// A compact JWS split into its parts; the signature is checked by callers.
#[derive(Debug)]
pub struct Parts<'a, C> {
    /// The decoded header.
    pub header: Header,
    /// The decoded claims.
    pub claims: C,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, the signed bytes.
    pub signing_input: &'a str,
    /// `r || s`.
    pub signature: [u8; SIGNATURE_LEN],
}

/// Splits and decodes a compact JWS. `code` is the error code for malformed
/// input (`token_malformed` or `dpop_invalid`).
pub fn decode<'a, C: DeserializeOwned>(
    jws: &'a str,
    max_len: usize,
    code: ErrorCode,
) -> Result<Parts<'a, C>> {
    if jws.len() > max_len {
        return Err(Error::new(
            ErrorCode::InputTooLarge,
            format!("JWS of {} bytes exceeds the limit of {max_len}", jws.len()),
        ));
    }
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::new(code, "expected three dot-separated parts"));
    };
    let header: Header = decode_json(h, code, "header")?;
    if header.alg != ES256 {
        let code = match code {
            ErrorCode::TokenMalformed => ErrorCode::TokenAlgorithmUnsupported,
            other => other,
        };
        return Err(Error::new(
            code,
            format!("alg {:?} is not accepted; only ES256", header.alg),
        ));
    }
    if header.crit.is_some() {
        let code = match code {
            ErrorCode::TokenMalformed => ErrorCode::TokenCriticalUnsupported,
            other => other,
        };
        return Err(Error::new(
            code,
            "critical header extensions are not supported",
        ));
    }
    let claims: C = decode_json(p, code, "payload")?;
    let raw_sig = b64::decode(s, code)?;
    let signature: [u8; SIGNATURE_LEN] = raw_sig
        .try_into()
        .map_err(|_| Error::new(code, "ES256 signature must be 64 bytes"))?;
    Ok(Parts {
        header,
        claims,
        signing_input: &jws[..h.len() + 1 + p.len()],
        signature,
    })
}

fn decode_json<T: DeserializeOwned>(part: &str, code: ErrorCode, what: &str) -> Result<T> {
    let bytes = b64::decode(part, code)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::new(code, format!("invalid {what}: {e}")))
}

/// The signing input for a header and claims.
pub fn signing_input<C: Serialize>(header: &Header, claims: &C) -> Result<String> {
    Ok(format!(
        "{}.{}",
        b64::encode(to_json(header)?),
        b64::encode(to_json(claims)?)
    ))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| Error::new(ErrorCode::JsonInvalid, format!("cannot encode JSON: {e}")))
}

/// Appends the signature to a signing input.
pub fn assemble(signing_input: &str, signature: &[u8; SIGNATURE_LEN]) -> String {
    format!("{signing_input}.{}", b64::encode(signature))
}

/// Signs header and claims with a local key.
pub fn sign<C: Serialize>(header: &Header, claims: &C, key: &SigningKey) -> Result<String> {
    let input = signing_input(header, claims)?;
    let sig = key.sign(input.as_bytes());
    Ok(assemble(&input, &sig))
}
