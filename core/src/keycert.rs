//! Key certificates: how a root key (kept in a KMS) vouches for a short-lived
//! issuing key (kept in memory), and how verifiers that pin only the root
//! decide which token-signing keys to trust (DESIGN §6).
//!
//! ```text
//!  root key (KMS, pinned by verifiers)
//!     │ signs once per rotation
//!     ▼
//!  certificate  header {typ: "agentauth-key+jwt", alg: ES256, kid: <root kid>}
//!               claims {iss, sub: <issuing kid>, jwk: <issuing public key>, iat, nbf, exp}
//!     │ published in /.well-known/jwks.json as the entry's "agentauth_cert"
//!     ▼
//!  issuing key (memory) ──signs──▶ access tokens {kid: <issuing kid>}
//! ```
//!
//! Every key id is the RFC 7638 thumbprint of its public key, so a kid names
//! exactly one key: a certificate whose `sub` is not the thumbprint of its
//! `jwk` is refused, and so is a JWKS entry whose key differs from the key
//! its certificate names (a swapped key). [`verify_certificate`] checks one
//! certificate; [`TrustedKeys`] turns a whole JWKS document into the
//! [`KeyResolver`](crate::token::KeyResolver) that token verification uses.
//!
//! Issuers backdate `nbf` by their clock-skew allowance, and keep each
//! certificate valid until every token its key signed has expired, so
//! verifiers compare `nbf`/`exp` strictly.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
use crate::es256::{SIGNATURE_LEN, SigningKey, VerifyingKey};
use crate::jwk::{EcPublicJwk, ec_thumbprint};
use crate::jws::{self, ES256, Header};

mod jwks;
#[cfg(test)]
mod tests;

pub use jwks::{CERTIFICATE_MEMBER, Jwks, JwksEntry, MAX_JWKS_LEN, RootKey, TrustedKeys};

/// The `typ` header of a key certificate. Distinct from `at+jwt`, so a
/// certificate can never pass as an access token nor the reverse, although
/// the root key may sign both (in `direct` mode).
pub const CERTIFICATE_TYPE: &str = "agentauth-key+jwt";

/// Certificates longer than this are refused before decoding; a real one is
/// about 600 bytes.
pub const MAX_CERTIFICATE_LEN: usize = 2048;

/// The longest validity a verifier accepts. Issuing keys live in memory, so
/// a stolen one must stop working soon even if the issuer asked for more;
/// the default hierarchy certifies for 24 hours.
pub const MAX_CERTIFICATE_LIFETIME_SECS: i64 = 7 * 24 * 3600;

/// What the root key states about an issuing key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCertificateClaims {
    /// The issuer (the operator's issuer URL) the key signs tokens for.
    pub iss: String,
    /// The issuing key's id: the RFC 7638 thumbprint of `jwk`.
    pub sub: String,
    /// The issuing key's public JWK.
    pub jwk: EcPublicJwk,
    /// When the certificate was made, seconds since the epoch.
    pub iat: i64,
    /// Start of validity, seconds since the epoch.
    pub nbf: i64,
    /// End of validity (exclusive), seconds since the epoch.
    pub exp: i64,
}

impl KeyCertificateClaims {
    /// Claims certifying `key` for `issuer` over `[not_before, not_after)`.
    pub fn new(
        issuer: impl Into<String>,
        key: &VerifyingKey,
        issued_at: i64,
        not_before: i64,
        not_after: i64,
    ) -> Self {
        let jwk = EcPublicJwk::from_key(key);
        KeyCertificateClaims {
            iss: issuer.into(),
            sub: ec_thumbprint(&jwk.x, &jwk.y),
            jwk,
            iat: issued_at,
            nbf: not_before,
            exp: not_after,
        }
    }

    /// The certified key, after checking that `sub` is its thumbprint and
    /// that the validity period is sane. Time-independent.
    pub fn validate(&self) -> Result<VerifyingKey> {
        let public = self
            .jwk
            .to_public_key()
            .map_err(|e| invalid(format!("the certified jwk is not a public P-256 key: {e}")))?;
        if self.sub != public.thumbprint {
            return Err(invalid(
                "sub is not the RFC 7638 thumbprint of the certified jwk",
            ));
        }
        if self.jwk.kid.as_deref().is_some_and(|kid| kid != self.sub) {
            return Err(invalid("the certified jwk's kid differs from sub"));
        }
        if self.iss.is_empty() {
            return Err(invalid("iss must be non-empty"));
        }
        if self.nbf >= self.exp || self.iat >= self.exp {
            return Err(invalid("the certificate expires before it becomes valid"));
        }
        if self.exp.saturating_sub(self.nbf) > MAX_CERTIFICATE_LIFETIME_SECS {
            return Err(invalid("the certificate is valid for longer than 7 days"));
        }
        Ok(public.key)
    }
}

/// An issuing key that a valid certificate vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedKey {
    /// The key id (its RFC 7638 thumbprint).
    pub kid: String,
    /// The public key.
    pub key: VerifyingKey,
    /// The issuer it was certified for.
    pub issuer: String,
    /// Start of validity, seconds since the epoch.
    pub not_before: i64,
    /// End of validity (exclusive), seconds since the epoch.
    pub not_after: i64,
}

/// The JOSE header of a certificate signed by root key `root_kid`.
pub fn header(root_kid: &str) -> Header {
    Header {
        typ: Some(CERTIFICATE_TYPE.into()),
        alg: ES256.into(),
        kid: Some(root_kid.into()),
        jwk: None,
        crit: None,
    }
}

/// The bytes the root key signs (a KMS signs their SHA-256 digest).
/// Refuses claims that [`verify_certificate`] would refuse at any time.
pub fn signing_input(root_kid: &str, claims: &KeyCertificateClaims) -> Result<String> {
    claims.validate()?;
    jws::signing_input(&header(root_kid), claims)
}

/// The compact certificate from its signing input and the root's `r || s`.
pub fn assemble(signing_input: &str, signature: &[u8; SIGNATURE_LEN]) -> String {
    jws::assemble(signing_input, signature)
}

/// Signs a certificate with a local root key (development and tests).
pub fn sign(root_kid: &str, claims: &KeyCertificateClaims, root: &SigningKey) -> Result<String> {
    let input = signing_input(root_kid, claims)?;
    Ok(assemble(&input, &root.sign(input.as_bytes())))
}

/// Checks a certificate against the pinned root key at `now` (seconds since
/// the epoch): size and framing, `typ` and `alg`, that `kid` names the
/// pinned root, the root's signature, that `sub` is the thumbprint of the
/// certified `jwk`, and the validity period. Every refusal is
/// `key_certificate_invalid`, with the reason in the message.
pub fn verify_certificate(
    cert: &str,
    root_kid: &str,
    root_key: &VerifyingKey,
    now: i64,
) -> Result<CertifiedKey> {
    if cert.len() > MAX_CERTIFICATE_LEN {
        return Err(Error::new(
            ErrorCode::InputTooLarge,
            format!(
                "key certificate of {} bytes exceeds the limit of {MAX_CERTIFICATE_LEN}",
                cert.len()
            ),
        ));
    }
    let parts = jws::decode::<KeyCertificateClaims>(
        cert,
        MAX_CERTIFICATE_LEN,
        ErrorCode::KeyCertificateInvalid,
    )?;
    if parts.header.typ.as_deref() != Some(CERTIFICATE_TYPE) {
        return Err(invalid(format!("typ must be {CERTIFICATE_TYPE}")));
    }
    if parts.header.jwk.is_some() {
        return Err(invalid("a key certificate carries no jwk header"));
    }
    if parts.header.kid.as_deref() != Some(root_kid) {
        return Err(invalid(format!(
            "signed by key {:?}, not by the pinned root {root_kid:?}",
            parts.header.kid.as_deref().unwrap_or("")
        )));
    }
    if !root_key.verify(parts.signing_input.as_bytes(), &parts.signature) {
        return Err(invalid("the root key's signature does not verify"));
    }
    let claims = parts.claims;
    let key = claims.validate()?;
    if now < claims.nbf {
        return Err(invalid(format!("not valid before {}", claims.nbf)));
    }
    if now >= claims.exp {
        return Err(invalid(format!("expired at {}", claims.exp)));
    }
    Ok(CertifiedKey {
        kid: claims.sub,
        key,
        issuer: claims.iss,
        not_before: claims.nbf,
        not_after: claims.exp,
    })
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::KeyCertificateInvalid, message)
}
