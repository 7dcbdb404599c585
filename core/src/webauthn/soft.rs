//! A software passkey for tests and `agentauth dev`: real ES256 assertions
//! that [`verify`](super::verify) accepts, from a key held in memory.

use sha2::{Digest, Sha256};

use super::{FLAG_USER_PRESENT, FLAG_USER_VERIFIED};
use crate::b64;
use crate::error::Result;
use crate::es256::{SigningKey, VerifyingKey};

/// A software passkey that produces real ES256 assertions: for tests, the
/// dev walkthrough and the approval helper, never for production approvals.
#[derive(Debug)]
pub struct SoftAuthenticator {
    key: SigningKey,
    /// The next counter value it will report (0 means "keeps no counter").
    pub counter: u32,
    /// Flags it sets (user present and verified by default).
    pub flags: u8,
}

impl SoftAuthenticator {
    /// A new authenticator with a fresh key, counting from 1.
    pub fn new() -> Self {
        SoftAuthenticator {
            key: SigningKey::generate(),
            counter: 1,
            flags: FLAG_USER_PRESENT | FLAG_USER_VERIFIED,
        }
    }

    /// An authenticator around an existing key.
    pub fn from_key(key: SigningKey) -> Self {
        SoftAuthenticator {
            key,
            counter: 1,
            flags: FLAG_USER_PRESENT | FLAG_USER_VERIFIED,
        }
    }

    /// Its public key.
    pub fn public_key(&self) -> Result<VerifyingKey> {
        self.key.verifying_key()
    }

    /// Makes an assertion over `challenge` for `rp_id` from `origin`,
    /// returning `(authenticatorData, clientDataJSON, signature)`.
    pub fn assert(
        &mut self,
        challenge: &[u8],
        rp_id: &str,
        origin: &str,
    ) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let client = serde_json::json!({
            "type": "webauthn.get",
            "challenge": b64::encode(challenge),
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes();
        let mut data = Vec::with_capacity(37);
        data.extend_from_slice(&Sha256::digest(rp_id.as_bytes()));
        data.push(self.flags);
        data.extend_from_slice(&self.counter.to_be_bytes());
        if self.counter != 0 {
            self.counter = self.counter.saturating_add(1);
        }
        let mut signed = data.clone();
        signed.extend_from_slice(&Sha256::digest(&client));
        let signature = self.key.sign_der(&signed);
        (data, client, signature)
    }
}

impl Default for SoftAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

/// The user-present flag, for building authenticators in tests.
pub const USER_PRESENT: u8 = FLAG_USER_PRESENT;
/// The user-verified flag, for building authenticators in tests.
pub const USER_VERIFIED: u8 = FLAG_USER_VERIFIED;
