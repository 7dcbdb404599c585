//! Server-provided DPoP nonces at the token endpoint (RFC 9449 §8), off
//! unless `--dpop-nonce-key-file` is given.
//!
//! ```text
//!  proof verifies ─▶ nonce valid? ─ no ─▶ 400 use_dpop_nonce + DPoP-Nonce: <current>   (jti NOT claimed)
//!                                 └ yes ─▶ claim jti ─▶ … ─▶ answer + DPoP-Nonce: <current>
//! ```
//!
//! Why: without a nonce, whoever holds an agent key for a moment can make
//! proofs with future `iat`s and use them later, after the key was
//! replaced (RFC 9449 §11.1). A nonce the server hands out bounds a proof's
//! life to one or two nonce periods from when it was made. Nonces are
//! stateless ([`NonceIssuer`]): every replica with the same key accepts the
//! nonce any replica handed out.
//!
//! The nonce is checked after the proof's signature (a forged proof learns
//! nothing and costs no HMAC first) and before its `jti` is claimed: a proof
//! refused for its nonce burns nothing, so the client's retry (a new proof,
//! new `jti`) goes through and a retry of the very same proof is refused for
//! its nonce again, not as a replay.

use std::path::Path;

use agentauth_core::dpop::nonce::{MIN_KEY_LEN, NonceIssuer};
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

/// The response header carrying the nonce to use (RFC 9449 §8.1).
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The replay and nonce scope of the operator ([`NonceIssuer`] scope).
pub const SCOPE: &str = "operator";

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

/// Sets `DPoP-Nonce` to the current nonce on `response`. The token endpoint
/// sends it with every answer, so a client never has to fail once per
/// period to learn the next nonce (RFC 9449 §8.2).
pub fn attach(issuer: &NonceIssuer, now: i64, response: &mut Response) {
    // base64url is always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&issuer.current(now)) {
        response.headers_mut().insert(DPOP_NONCE, value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn short_missing_and_good_key_files() {
        let dir = std::env::temp_dir().join(format!("nonce-key-{}", std::process::id()));
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
