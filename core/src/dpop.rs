//! DPoP proofs (RFC 9449): creating them (agents) and verifying them
//! (operator token endpoint, verifier).
//!
//! A proof is a JWT signed by the agent's key with that key in its header.
//! Verification (§4.3) checks, in order: framing and size, `typ`
//! `dpop+jwt`, `alg` ES256, a public P-256 `jwk`, the signature under that
//! key, `jti` bounds, `htm`, `htu` after normalization ([`crate::htu`]),
//! `iat` within the window, `ath` when an access token is presented, and
//! `nonce` when the server requires one. It returns the key's thumbprint,
//! which the caller compares with the token's `cnf.jkt` or the Agent's
//! registered key, and the `jti`, which the caller must check for replay
//! (that needs shared state, so it is not done here).

pub mod nonce;

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::b64;
use crate::error::{Error, ErrorCode, Result};
use crate::es256::SigningKey;
use crate::htu;
use crate::jwk::{EcPublicJwk, KeyCache};
use crate::jws::{self, ES256, Header};
use crate::token::token_hash;

/// Proofs longer than this are refused before decoding (a P-256 proof with
/// `ath` and `nonce` is ~600 bytes).
pub const MAX_PROOF_LEN: usize = 2048;

/// The `typ` header of a proof.
pub const PROOF_TYPE: &str = "dpop+jwt";

/// Bounds on `jti`: long enough to be unguessable, short enough to be a key.
pub const JTI_MIN_LEN: usize = 16;
/// See [`JTI_MIN_LEN`].
pub const JTI_MAX_LEN: usize = 128;

/// The claims of a proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    /// Unique proof id, checked for replay by the caller.
    pub jti: String,
    /// HTTP method of the request.
    pub htm: String,
    /// HTTP URL of the request, without query and fragment.
    pub htu: String,
    /// Creation time, seconds since the epoch.
    pub iat: i64,
    /// base64url(SHA-256(access token)), when a token is presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
    /// Server-provided nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// What the request that carries the proof looks like.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The HTTP method as received.
    pub method: &'a str,
    /// The absolute URL as received.
    pub url: &'a str,
    /// The access token presented with the proof, if any.
    pub access_token: Option<&'a str>,
    /// The nonce the server requires, if any.
    pub nonce: Option<&'a str>,
}

/// Accepted age and clock skew, in seconds (DESIGN §5: default 60 s each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// How old a proof may be.
    pub max_age_secs: i64,
    /// How far in the future a proof's `iat` may lie (client clock ahead).
    pub max_skew_secs: i64,
}

/// The largest clock difference between the nodes that share one replay
/// store (verifier nodes, operator replicas, the store itself) that the
/// replay TTL still covers. NTP keeps nodes within milliseconds; 5 s is
/// headroom for a node whose time daemon stalled, at the cost of 5 s more
/// memory per `jti`.
pub const REPLAY_CLOCK_MARGIN_MS: u64 = 5_000;

impl Window {
    /// How long a proof's `jti` must be remembered so that a replay is
    /// refused at every instant the proof is still accepted.
    ///
    /// `iat` and the verifier's `now` are whole seconds, `now` being the
    /// floor of the clock. A proof with `iat = T` is accepted while
    /// `T − max_skew ≤ floor(now) ≤ T + max_age`, that is for clock times
    /// in `[(T − max_skew) s, (T + max_age + 1) s)`: `max_age + max_skew + 1`
    /// seconds of real time, one more than the two bounds suggest. Its
    /// `jti` is stored at the first use, which can be as early as the start
    /// of that span, so the TTL is the whole span plus
    /// [`REPLAY_CLOCK_MARGIN_MS`] for nodes whose clocks differ.
    pub fn replay_ttl_ms(&self) -> u64 {
        let span_secs = self
            .max_age_secs
            .max(0)
            .saturating_add(self.max_skew_secs.max(0))
            .saturating_add(1);
        u64::try_from(span_secs)
            .unwrap_or(u64::MAX)
            .saturating_mul(1000)
            .saturating_add(REPLAY_CLOCK_MARGIN_MS)
    }
}

impl Default for Window {
    fn default() -> Self {
        Window {
            max_age_secs: 60,
            max_skew_secs: 60,
        }
    }
}

/// A proof that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    /// The proof's `jti`, for the replay check.
    pub jti: String,
    /// The proof's `iat`.
    pub iat: i64,
    /// The proof's `nonce`, for a caller that checks server nonces itself
    /// ([`nonce::NonceIssuer`]).
    pub nonce: Option<String>,
}

/// Verifies a proof for `request` at `now` (seconds since the epoch).
pub fn verify(
    proof: &str,
    request: &Request<'_>,
    window: Window,
    now: i64,
) -> Result<VerifiedProof> {
    verify_with(proof, request, UrlForm::Received, window, now, None)
}

/// [`verify`] for a caller that already normalized `request.url` with
/// [`htu::normalize`] (the verifier does in its first step), so the hot path
/// parses that URL once.
pub fn verify_normalized(
    proof: &str,
    request: &Request<'_>,
    window: Window,
    now: i64,
) -> Result<VerifiedProof> {
    verify_with(proof, request, UrlForm::Normalized, window, now, None)
}

/// [`verify_normalized`] with the proof's key taken from `keys` when it was
/// seen before (see [`KeyCache`]): the same checks, in the same order, with
/// the same errors.
pub fn verify_normalized_cached(
    proof: &str,
    request: &Request<'_>,
    window: Window,
    now: i64,
    keys: &KeyCache,
) -> Result<VerifiedProof> {
    verify_with(proof, request, UrlForm::Normalized, window, now, Some(keys))
}

/// Whether a request's URL still needs normalizing.
#[derive(Clone, Copy)]
enum UrlForm {
    Received,
    Normalized,
}

fn verify_with(
    proof: &str,
    request: &Request<'_>,
    url_form: UrlForm,
    window: Window,
    now: i64,
    keys: Option<&KeyCache>,
) -> Result<VerifiedProof> {
    let invalid = |m: &str| Error::new(ErrorCode::DpopInvalid, m);
    let parts = jws::decode::<ProofClaims>(proof, MAX_PROOF_LEN, ErrorCode::DpopInvalid)?;
    if parts.header.typ.as_deref() != Some(PROOF_TYPE) {
        return Err(invalid("typ must be dpop+jwt"));
    }
    let jwk = parts
        .header
        .jwk
        .as_ref()
        .ok_or_else(|| invalid("the proof has no jwk header"))?;
    let key = match keys {
        Some(keys) => jwk.to_public_key_cached(keys),
        None => jwk.to_public_key().map(Arc::new),
    };
    let key = key.map_err(|e| match e.code {
        ErrorCode::JwkPrivateKeyRefused => e,
        _ => invalid(&format!("bad jwk header: {}", e.message)),
    })?;
    if !key
        .key
        .verify(parts.signing_input.as_bytes(), &parts.signature)
    {
        return Err(invalid("the proof signature does not verify"));
    }
    let claims = parts.claims;
    check_claims(&claims, request, url_form, window, now)?;
    Ok(VerifiedProof {
        jkt: key.thumbprint.clone(),
        jti: claims.jti,
        iat: claims.iat,
        nonce: claims.nonce,
    })
}

/// The proof's claims against the request: `jti`, `htm`, `htu`, `iat`,
/// `ath` and the server nonce, in that order (the first that fails answers).
fn check_claims(
    claims: &ProofClaims,
    request: &Request<'_>,
    url_form: UrlForm,
    window: Window,
    now: i64,
) -> Result<()> {
    let invalid = |m: &str| Error::new(ErrorCode::DpopInvalid, m);
    let jti_ok = (JTI_MIN_LEN..=JTI_MAX_LEN).contains(&claims.jti.len())
        && claims.jti.bytes().all(|b| b.is_ascii_graphic());
    if !jti_ok {
        return Err(invalid("jti must be 16 to 128 printable ASCII characters"));
    }
    if claims.htm != request.method {
        return Err(Error::new(
            ErrorCode::DpopMethodMismatch,
            format!(
                "the proof is for {:?}, the request is {:?}",
                claims.htm, request.method
            ),
        ));
    }
    let proof_url = htu::normalize(&claims.htu, ErrorCode::DpopUrlMismatch)?;
    let request_url = match url_form {
        UrlForm::Received => Cow::Owned(htu::normalize(request.url, ErrorCode::RequestInvalid)?),
        UrlForm::Normalized => Cow::Borrowed(request.url),
    };
    if proof_url != request_url {
        return Err(Error::new(
            ErrorCode::DpopUrlMismatch,
            format!("the proof is for {proof_url}, the request is for {request_url}"),
        ));
    }
    if claims.iat < now.saturating_sub(window.max_age_secs) {
        return Err(Error::new(ErrorCode::DpopStale, "the proof is too old"));
    }
    if claims.iat > now.saturating_add(window.max_skew_secs) {
        return Err(Error::new(
            ErrorCode::DpopStale,
            "the proof was issued in the future",
        ));
    }
    if let Some(token) = request.access_token {
        let expected = b64::encode(token_hash(token));
        if claims.ath.as_deref() != Some(expected.as_str()) {
            return Err(ErrorCode::DpopAthMismatch.into());
        }
    }
    if let Some(nonce) = request.nonce {
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(ErrorCode::DpopNonceInvalid.into());
        }
    }
    Ok(())
}

/// A fresh random `jti` (128 bits, base64url).
pub fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    b64::encode(bytes)
}

/// Creates a proof for one request. `url` may carry a query; it is dropped.
pub fn create(key: &SigningKey, request: &Request<'_>, iat: i64, jti: &str) -> Result<String> {
    let jwk = EcPublicJwk::from_key(&key.verifying_key()?);
    let header = Header {
        typ: Some(PROOF_TYPE.into()),
        alg: ES256.into(),
        kid: None,
        jwk: Some(jwk),
        crit: None,
    };
    let claims = ProofClaims {
        jti: jti.into(),
        htm: request.method.into(),
        htu: strip_query(request.url).into(),
        iat,
        ath: request.access_token.map(|t| b64::encode(token_hash(t))),
        nonce: request.nonce.map(Into::into),
    };
    jws::sign(&header, &claims, key)
}

fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}
