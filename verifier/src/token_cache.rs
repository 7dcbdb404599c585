//! The verified-token cache: the expensive, time-independent half of token
//! verification (framing, issuing key, ES256, claims decoding, capability
//! validation) remembered by SHA-256 of the token's bytes (DESIGN §11).
//!
//! ```text
//!  token ─sha256─▶ shard (first byte) ─▶ HashMap<[u8; 32], Arc<VerifiedToken>>
//!                                         hit only while now < valid_until
//!                                         and the key set has lost no key since
//! ```
//!
//! **Bounded.** At most `capacity` entries; a full shard first drops its
//! expired entries, then arbitrary ones (keys are hashes, so that is a
//! random eviction: no access-order bookkeeping on the hot path).
//!
//! **Never outlives the token.** An entry is valid until the token's `exp`
//! plus the accepted skew, and never past its issuing key's certificate;
//! when a JWKS refresh drops a key, the key epoch moves and every entry
//! made before it misses. Claims that depend on the caller (audience) or
//! the clock (`nbf`, `exp`) are still checked on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use agentauth_core::capability::Capability;
use agentauth_core::token::AccessTokenClaims;

const SHARDS: usize = 16;

/// A token whose signature verified and whose capabilities are valid.
#[derive(Debug)]
pub struct VerifiedToken {
    /// The claims.
    pub claims: AccessTokenClaims,
    /// `authorization_details` as capabilities, validated.
    pub capabilities: Vec<Capability>,
    /// Seconds since the epoch after which the entry is not used.
    pub valid_until: i64,
    /// The key epoch at verification (see [`crate::keys::KeySource::epoch`]).
    pub key_epoch: u64,
}

/// The cache. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct TokenCache {
    shards: Vec<Mutex<HashMap<[u8; 32], Arc<VerifiedToken>>>>,
    per_shard: usize,
}

impl TokenCache {
    /// A cache of at most about `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
        }
    }

    fn shard(&self, hash: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], Arc<VerifiedToken>>> {
        let index = usize::from(hash[0]) % SHARDS;
        // index < SHARDS == shards.len()
        &self.shards[index]
    }

    /// The entry for `hash`, if valid at `now` (seconds) under `key_epoch`;
    /// a stale entry is removed.
    pub fn get(&self, hash: &[u8; 32], now: i64, key_epoch: u64) -> Option<Arc<VerifiedToken>> {
        let mut shard = self
            .shard(hash)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = shard.get(hash)?;
        if now < entry.valid_until && entry.key_epoch == key_epoch {
            return Some(Arc::clone(entry));
        }
        shard.remove(hash);
        None
    }

    /// Remembers a verified token, evicting when the shard is full.
    pub fn insert(&self, hash: [u8; 32], token: Arc<VerifiedToken>, now: i64) {
        let mut shard = self
            .shard(&hash)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            shard.retain(|_, t| now < t.valid_until && t.key_epoch == token.key_epoch);
            // Still full: drop arbitrary entries (a hash map's first keys are
            // as good as random here) down to 7/8, so eviction is amortized.
            let excess = shard.len().saturating_sub(self.per_shard * 7 / 8);
            if shard.len() >= self.per_shard {
                let doomed: Vec<[u8; 32]> = shard.keys().take(excess.max(1)).copied().collect();
                for key in doomed {
                    shard.remove(&key);
                }
            }
        }
        shard.insert(hash, token);
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentauth_core::token::{Confirmation, GrantRef};

    fn token(valid_until: i64, key_epoch: u64) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken {
            claims: AccessTokenClaims {
                iss: "i".into(),
                sub: "ns/a".into(),
                aud: "sp".into(),
                client_id: "ns/a".into(),
                iat: 0,
                nbf: 0,
                exp: valid_until,
                jti: "j".into(),
                cnf: Confirmation { jkt: "k".into() },
                authorization_details: vec![],
                grant: GrantRef {
                    uid: "u".into(),
                    generation: 1,
                },
                env: None,
            },
            capabilities: vec![],
            valid_until,
            key_epoch,
        })
    }

    fn hash(i: u32) -> [u8; 32] {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&i.to_le_bytes());
        h[4] = (i % 251) as u8;
        h
    }

    #[test]
    fn entries_never_outlive_their_validity_or_key_epoch() {
        let cache = TokenCache::new(64);
        cache.insert(hash(1), token(100, 0), 0);
        assert!(cache.get(&hash(1), 99, 0).is_some());
        assert!(
            cache.get(&hash(1), 100, 0).is_none(),
            "expired at valid_until"
        );
        assert!(cache.is_empty(), "an expired entry is removed on sight");
        cache.insert(hash(2), token(100, 0), 0);
        assert!(
            cache.get(&hash(2), 1, 1).is_none(),
            "a lost key invalidates"
        );
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TokenCache::new(160);
        for i in 0..10_000 {
            cache.insert(hash(i), token(1_000, 0), 0);
        }
        assert!(cache.len() <= 160, "{} entries", cache.len());
        assert!(cache.len() >= 80, "{} entries", cache.len());
        // The newest entry is always kept.
        assert!(cache.get(&hash(9_999), 1, 0).is_some());
    }
}
