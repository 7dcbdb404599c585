//! Access tokens: the JWT profile of RFC 9068 as DESIGN §5 fixes it.
//!
//! ```text
//! header  {typ: "at+jwt", alg: "ES256", kid}
//! claims  {iss, sub, aud, client_id, iat, nbf, exp, jti,
//!          cnf: {jkt}, authorization_details: [...], grant: {uid, generation}, env?}
//! ```
//!
//! Verification is split in two so the verifier can cache the expensive half:
//! [`verify_signature`] (size, framing, header, issuing key, ES256) depends
//! only on the token's bytes and the key set, and its result may be cached by
//! the token's hash; [`check_claims`] (issuer, audience, `nbf`/`exp`) depends
//! on the clock and the audience asking, and runs on every request.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::capability::AuthorizationDetail;
use crate::error::{Error, ErrorCode, Result};
use crate::es256::{SigningKey, VerifyingKey};
use crate::jws::{self, ES256, Header};

/// Tokens longer than this are refused before any decoding. A token with 20
/// capabilities is ~3 KiB; 8 KiB leaves room and bounds the work an attacker
/// can cause.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The `typ` header of an access token (RFC 9068 §2.1).
pub const TOKEN_TYPE: &str = "at+jwt";

/// The hard ceiling on a token's lifetime, whatever grant and envelope allow.
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 3600;

/// The default lifetime of a token (DESIGN §5).
pub const DEFAULT_TOKEN_LIFETIME_SECS: i64 = 300;

/// Sender constraint (RFC 9449 §6): the thumbprint of the agent's DPoP key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// RFC 7638 thumbprint of the key every DPoP proof must be signed with.
    pub jkt: String,
}

/// Which grant, at which spec generation, a token was issued from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRef {
    /// The CapabilityGrant's `metadata.uid`.
    pub uid: String,
    /// The CapabilityGrant's `metadata.generation` when approved.
    pub generation: i64,
}

/// The claims of an AgentAuth access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessTokenClaims {
    /// The operator's issuer URL.
    pub iss: String,
    /// The agent, `namespace/name`.
    pub sub: String,
    /// The service provider the token is for.
    pub aud: String,
    /// The agent again, as the OAuth client (RFC 9068 §2.2).
    pub client_id: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Not before, seconds since the epoch.
    pub nbf: i64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// The DPoP key binding.
    pub cnf: Confirmation,
    /// One RFC 9396 object per granted capability.
    pub authorization_details: Vec<AuthorizationDetail>,
    /// The grant the token derives from.
    pub grant: GrantRef,
    /// Digest of the behavioral envelope in force at issuance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

impl AccessTokenClaims {
    /// Checks internal consistency, as an issuer must before signing.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::new(ErrorCode::TokenClaimsInvalid, m));
        if self.iss.is_empty() || self.sub.is_empty() || self.aud.is_empty() {
            return bad("iss, sub and aud must be non-empty");
        }
        if self.jti.is_empty() || self.cnf.jkt.is_empty() || self.grant.uid.is_empty() {
            return bad("jti, cnf.jkt and grant.uid must be non-empty");
        }
        if self.nbf > self.exp || self.iat > self.exp {
            return bad("the token expires before it becomes valid");
        }
        if self.exp.saturating_sub(self.nbf.min(self.iat)) > MAX_TOKEN_LIFETIME_SECS {
            return bad("the token lives longer than one hour");
        }
        Ok(())
    }
}

/// Finds issuing keys by `kid`.
pub trait KeyResolver {
    /// The key for `kid`, if it is trusted.
    fn resolve(&self, kid: &str) -> Option<&VerifyingKey>;
}

impl KeyResolver for std::collections::HashMap<String, VerifyingKey> {
    fn resolve(&self, kid: &str) -> Option<&VerifyingKey> {
        self.get(kid)
    }
}

impl KeyResolver for (String, VerifyingKey) {
    fn resolve(&self, kid: &str) -> Option<&VerifyingKey> {
        (self.0 == kid).then_some(&self.1)
    }
}

/// What a token must say to be accepted here.
#[derive(Clone, Debug)]
pub struct Expectations {
    /// The trusted issuer.
    pub issuer: String,
    /// This service provider's id.
    pub audience: String,
    /// Clock skew tolerated on `nbf` and `exp`, in seconds.
    pub leeway_secs: i64,
}

/// The header of a token that will be signed with issuing key `kid`.
pub fn header(kid: &str) -> Header {
    Header {
        typ: Some(TOKEN_TYPE.into()),
        alg: ES256.into(),
        kid: Some(kid.into()),
        jwk: None,
        crit: None,
    }
}

/// The bytes to sign (through a KMS or a local key) for these claims.
pub fn signing_input(kid: &str, claims: &AccessTokenClaims) -> Result<String> {
    claims.validate()?;
    jws::signing_input(&header(kid), claims)
}

/// Signs a token with a local key.
pub fn sign(kid: &str, claims: &AccessTokenClaims, key: &SigningKey) -> Result<String> {
    let input = signing_input(kid, claims)?;
    Ok(jws::assemble(&input, &key.sign(input.as_bytes())))
}

/// A token whose signature verified; claims still need [`check_claims`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedToken {
    /// The issuing key's id.
    pub kid: String,
    /// The claims.
    pub claims: AccessTokenClaims,
}

/// SHA-256 of the token's bytes: the cache key for verified tokens and the
/// value DPoP's `ath` carries (base64url-encoded).
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Framing, header, issuing key and signature. Independent of time and
/// audience, so the result may be cached by [`token_hash`].
pub fn verify_signature(token: &str, keys: &impl KeyResolver) -> Result<SignedToken> {
    let parts = jws::decode::<AccessTokenClaims>(token, MAX_TOKEN_LEN, ErrorCode::TokenMalformed)?;
    if parts.header.typ.as_deref() != Some(TOKEN_TYPE) {
        return Err(Error::new(
            ErrorCode::TokenTypeInvalid,
            "typ must be at+jwt",
        ));
    }
    if parts.header.jwk.is_some() {
        return Err(Error::new(
            ErrorCode::TokenMalformed,
            "access tokens carry no jwk header",
        ));
    }
    let kid = parts
        .header
        .kid
        .ok_or_else(|| Error::new(ErrorCode::TokenKeyUnknown, "the token has no kid"))?;
    let key = keys.resolve(&kid).ok_or_else(|| {
        Error::new(
            ErrorCode::TokenKeyUnknown,
            format!("no trusted issuing key {kid:?}"),
        )
    })?;
    if !key.verify(parts.signing_input.as_bytes(), &parts.signature) {
        return Err(ErrorCode::TokenSignatureInvalid.into());
    }
    Ok(SignedToken {
        kid,
        claims: parts.claims,
    })
}

/// Issuer, audience and validity period at `now` (seconds since the epoch).
pub fn check_claims(claims: &AccessTokenClaims, expect: &Expectations, now: i64) -> Result<()> {
    if claims.iss != expect.issuer {
        return Err(ErrorCode::TokenIssuerInvalid.into());
    }
    if claims.aud != expect.audience {
        return Err(ErrorCode::TokenAudienceInvalid.into());
    }
    if now >= claims.exp.saturating_add(expect.leeway_secs) {
        return Err(Error::new(
            ErrorCode::TokenExpired,
            format!("the access token expired at {}", claims.exp),
        ));
    }
    if now < claims.nbf.saturating_sub(expect.leeway_secs) {
        return Err(ErrorCode::TokenNotYetValid.into());
    }
    Ok(())
}

/// Both halves at once.
pub fn verify(
    token: &str,
    keys: &impl KeyResolver,
    expect: &Expectations,
    now: i64,
) -> Result<SignedToken> {
    let signed = verify_signature(token, keys)?;
    check_claims(&signed.claims, expect, now)?;
    Ok(signed)
}
