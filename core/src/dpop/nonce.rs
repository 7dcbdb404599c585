//! Server-provided DPoP nonces (RFC 9449 §8 for the token endpoint, §9 for
//! resource servers), stateless so that every node of a service accepts the
//! nonce any other node handed out.
//!
//! ```text
//!  nonce = base64url( slot (8 bytes, big-endian) || HMAC-SHA256(key, label || scope || slot)[..16] )
//!  slot  = floor(now / period)
//!  valid while slot ∈ {current, current − 1}: between one and two periods
//! ```
//!
//! Why an HMAC over a time slot and not a stored random value: a nonce must
//! work on every verifier node and operator replica without a write per
//! challenge, and the nodes already share configuration (the key) but not
//! necessarily a store that answers within the request budget. The cost is
//! that one nonce serves every client during its slot; RFC 9449 §8 allows
//! that (a nonce limits how long a proof made in advance stays usable, it
//! is not a per-client secret), and each proof's `jti` is still single-use.
//! The scope (`operator`, `verifier`) keeps a nonce of one service from
//! being valid at the other even when an operator reuses a key.

use aws_lc_rs::{constant_time, hmac};

use crate::b64;
use crate::error::{Error, ErrorCode, Result};

/// The shortest key accepted, in bytes (the HMAC-SHA256 output size).
pub const MIN_KEY_LEN: usize = 32;

/// Bytes of MAC kept in a nonce: 128 bits, beyond guessing.
const MAC_LEN: usize = 16;

/// Domain separation of the MAC input.
const LABEL: &[u8] = b"agentauth-dpop-nonce-v1\0";

/// Issues and checks the nonces of one service.
pub struct NonceIssuer {
    key: hmac::Key,
    scope: String,
    period_secs: i64,
}

impl std::fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("NonceIssuer")
            .field("scope", &self.scope)
            .field("period_secs", &self.period_secs)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// An issuer for `scope` with a shared `key` (at least
    /// [`MIN_KEY_LEN`] bytes) and a slot of `period_secs` (at least 1).
    pub fn new(key: &[u8], scope: &str, period_secs: i64) -> Result<Self> {
        if key.len() < MIN_KEY_LEN {
            return Err(Error::new(
                ErrorCode::RequestInvalid,
                format!("the DPoP nonce key must be at least {MIN_KEY_LEN} bytes"),
            ));
        }
        if period_secs < 1 {
            return Err(Error::new(
                ErrorCode::RequestInvalid,
                "the DPoP nonce period must be at least one second",
            ));
        }
        Ok(NonceIssuer {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            scope: scope.to_owned(),
            period_secs,
        })
    }

    /// The nonce to hand out at `now` (seconds since the epoch).
    pub fn current(&self, now: i64) -> String {
        let slot = now.div_euclid(self.period_secs);
        let mut out = Vec::with_capacity(8 + MAC_LEN);
        out.extend_from_slice(&slot.to_be_bytes());
        out.extend_from_slice(&self.mac(slot).as_ref()[..MAC_LEN]);
        b64::encode(out)
    }

    /// Refuses with `use_dpop_nonce` unless `nonce` is one this issuer
    /// handed out in the current or the previous slot.
    pub fn check(&self, nonce: Option<&str>, now: i64) -> Result<()> {
        self.check_slot(nonce, now).map(|_| ())
    }

    /// [`NonceIssuer::check`], and the nonce to hand out with the answer
    /// when the accepted one is from the previous slot (it expires within a
    /// period), so a client that follows `DPoP-Nonce` never meets a refusal.
    /// Costs one more HMAC only in that case: once per client per period.
    pub fn check_and_renew(&self, nonce: Option<&str>, now: i64) -> Result<Option<String>> {
        let slot = self.check_slot(nonce, now)?;
        let current = now.div_euclid(self.period_secs);
        Ok((slot != current).then(|| self.current(now)))
    }

    /// The slot of a valid nonce.
    fn check_slot(&self, nonce: Option<&str>, now: i64) -> Result<i64> {
        let refuse = |why: &str| {
            Err(Error::new(
                ErrorCode::UseDpopNonce,
                format!("{why}: make a new proof with the nonce of the DPoP-Nonce answer"),
            ))
        };
        let Some(nonce) = nonce else {
            return refuse("this server requires a DPoP nonce and the proof has none");
        };
        let bytes = match b64::decode(nonce, ErrorCode::UseDpopNonce) {
            Ok(bytes) if bytes.len() == 8 + MAC_LEN => bytes,
            _ => return refuse("the proof's nonce is not one this server issued"),
        };
        let (slot, mac) = bytes.split_at(8);
        let mut slot_bytes = [0u8; 8];
        slot_bytes.copy_from_slice(slot);
        let slot = i64::from_be_bytes(slot_bytes);
        let expected = self.mac(slot);
        if constant_time::verify_slices_are_equal(mac, &expected.as_ref()[..MAC_LEN]).is_err() {
            return refuse("the proof's nonce is not one this server issued");
        }
        let current = now.div_euclid(self.period_secs);
        if slot != current && slot != current.saturating_sub(1) {
            return refuse("the proof's nonce has expired");
        }
        Ok(slot)
    }

    fn mac(&self, slot: i64) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(LABEL);
        context.update(self.scope.as_bytes());
        context.update(b"\0");
        context.update(&slot.to_be_bytes());
        context.sign()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_nonce_lives_one_to_two_periods_then_is_refused() {
        let issuer = NonceIssuer::new(KEY, "verifier", 60).unwrap();
        let nonce = issuer.current(1_200);
        for now in [1_200, 1_259, 1_260, 1_319] {
            issuer.check(Some(&nonce), now).unwrap();
        }
        for now in [1_320, 1_199, 10_000] {
            let e = issuer.check(Some(&nonce), now).unwrap_err();
            assert_eq!(e.code, ErrorCode::UseDpopNonce, "{now}");
        }
    }

    #[test]
    fn foreign_missing_and_forged_nonces_are_refused() {
        let issuer = NonceIssuer::new(KEY, "verifier", 60).unwrap();
        let other_scope = NonceIssuer::new(KEY, "operator", 60).unwrap();
        let other_key = NonceIssuer::new(&[7u8; 32], "verifier", 60).unwrap();
        for nonce in [
            None,
            Some(other_scope.current(100)),
            Some(other_key.current(100)),
            Some("short".to_owned()),
            Some(String::new()),
            Some(b64::encode([0u8; 24])),
        ] {
            let e = issuer.check(nonce.as_deref(), 100).unwrap_err();
            assert_eq!(e.code, ErrorCode::UseDpopNonce, "{nonce:?}");
        }
        // Two nodes with the same key agree.
        let twin = NonceIssuer::new(KEY, "verifier", 60).unwrap();
        twin.check(Some(&issuer.current(100)), 100).unwrap();
    }

    #[test]
    fn a_nonce_of_the_previous_slot_is_renewed() {
        let issuer = NonceIssuer::new(KEY, "operator", 60).unwrap();
        let nonce = issuer.current(1_200);
        assert_eq!(issuer.check_and_renew(Some(&nonce), 1_259).unwrap(), None);
        let renewed = issuer.check_and_renew(Some(&nonce), 1_260).unwrap();
        assert_eq!(renewed, Some(issuer.current(1_260)));
        assert_ne!(renewed, Some(nonce.clone()));
        let e = issuer.check_and_renew(Some(&nonce), 1_320).unwrap_err();
        assert_eq!(e.code, ErrorCode::UseDpopNonce);
    }

    #[test]
    fn short_keys_and_empty_periods_are_refused() {
        assert!(NonceIssuer::new(&KEY[..31], "verifier", 60).is_err());
        assert!(NonceIssuer::new(KEY, "verifier", 0).is_err());
        assert!(!format!("{:?}", NonceIssuer::new(KEY, "v", 1).unwrap()).contains("0123"));
    }
}
