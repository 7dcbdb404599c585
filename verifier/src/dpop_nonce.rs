//! Server-provided DPoP nonces at the resource server (RFC 9449 §9), off
//! unless `--dpop-nonce-key-file` is given.
//!
//! ```text
//!  step 4: proof verifies, key = cnf.jkt ─▶ nonce valid? ─ no ─▶ deny use_dpop_nonce, dpopNonce: <current>
//!                                                      └ yes ─▶ … step 8 (Redis: jti) ─▶ allow
//!                                                               (+ dpopNonce when the slot rolled)
//!  /v1/verify: the nonce is `dpopNonce` in the JSON answer; the provider sends
//!              it to the agent as `DPoP-Nonce` with a 401 and
//!              `WWW-Authenticate: DPoP error="use_dpop_nonce"`.
//!  ext_authz:  that 401 and those headers are the answer itself ([`challenge`]).
//! ```
//!
//! Why: a nonce the verifier hands out bounds how long a DPoP proof made in
//! advance (by whoever held the agent key for a moment) stays usable, to one
//! or two nonce periods (RFC 9449 §11.1). Nonces are stateless
//! ([`NonceIssuer`], scope `verifier`): every node with the same key accepts
//! what any node handed out, with no shared-state call. The check runs
//! before the one Redis round trip that records the proof's `jti`, so a
//! proof refused for its nonce burns nothing. Cost on the hot path: nothing
//! but a branch when off; one HMAC when on (two once per period per client,
//! when the nonce it used is renewed).

use std::path::Path;

use agentauth_core::ErrorCode;
use agentauth_core::dpop::nonce::{MIN_KEY_LEN, NonceIssuer};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

use crate::verify::Decision;

/// The header carrying the nonce to use (RFC 9449 §8.1, §9).
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The nonce scope of the verifier ([`NonceIssuer`] scope).
pub const SCOPE: &str = "verifier";

/// Key files larger than this are refused before reading: not a key.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// Loads the nonce key from `path` (at least 32 bytes, used as they are)
/// and makes the issuer with a slot of `period_secs`.
pub fn load(path: &Path, period_secs: i64) -> Result<NonceIssuer, String> {
    let shown = path.display();
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("--dpop-nonce-key-file {shown}: {e}"))?;
    if !metadata.is_file() || metadata.len() > MAX_KEY_FILE_LEN {
        return Err(format!(
            "--dpop-nonce-key-file {shown}: not a regular file of at most {MAX_KEY_FILE_LEN} bytes"
        ));
    }
    let key = std::fs::read(path).map_err(|e| format!("--dpop-nonce-key-file {shown}: {e}"))?;
    if key.len() < MIN_KEY_LEN {
        return Err(format!(
            "--dpop-nonce-key-file {shown}: a nonce key needs at least {MIN_KEY_LEN} random bytes \
             (e.g. head -c 32 /dev/urandom)"
        ));
    }
    NonceIssuer::new(&key, SCOPE, period_secs)
        .map_err(|e| format!("--dpop-nonce-period: {}", e.message))
}

/// The ext_authz form of a decision that carries a nonce: `DPoP-Nonce` on
/// the answer, and for a `use_dpop_nonce` denial the RFC 9449 §9 challenge,
/// 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"`.
pub fn challenge(decision: &Decision, response: &mut Response) {
    let Some(nonce) = &decision.dpop_nonce else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(nonce) {
        response.headers_mut().insert(DPOP_NONCE, value);
    }
    if decision.reason == Some(ErrorCode::UseDpopNonce) {
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("DPoP algs=\"ES256\", error=\"use_dpop_nonce\""),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn short_missing_and_good_key_files() {
        let dir = std::env::temp_dir().join(format!("verifier-nonce-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, [1u8; 31]).unwrap();
        assert!(load(&short, 60).unwrap_err().contains("at least 32"));
        assert!(load(&dir.join("missing"), 60).is_err());
        let good = dir.join("good");
        std::fs::write(&good, [2u8; 32]).unwrap();
        let issuer = load(&good, 60).unwrap();
        issuer.check(Some(&issuer.current(100)), 100).unwrap();
        assert!(load(&good, 0).unwrap_err().contains("period"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
