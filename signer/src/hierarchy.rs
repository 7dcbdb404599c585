//! The key hierarchy (DESIGN §6): which key signs tokens now, and which keys
//! `/.well-known/jwks.json` publishes.
//!
//! ```text
//!  time ──────────────────────────────────────────────────────────────▶
//!  key A  [created ── signs tokens ── retired]── published ──┤ dropped
//!                     (rotation interval, 6 h)   (max token lifetime
//!  key B                              [created ── signs ...      + skew)
//!  cert A [nbf = created − skew ───────────────────────────── exp = created + validity (24 h)]
//! ```
//!
//! In `certified` mode the root signer (a KMS key, usually) certifies a
//! fresh in-memory [`LocalSigner`] at every rotation — one KMS call per
//! rotation instead of one per token. A retired key stays in the JWKS until
//! every token it could have signed has expired, so rotation never breaks a
//! token in flight. Its certificate outlives that: the configuration is
//! refused unless validity ≥ rotation interval + max token lifetime + skew,
//! which also leaves the rest of the validity as slack for a KMS outage.
//!
//! In `direct` mode the root signs every token and the JWKS carries the root
//! alone, which verifiers pinning the root accept as it is.
//!
//! No clock of its own: every time-dependent method takes `now` (seconds
//! since the epoch), so tests compare exactly.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use agentauth_core::es256::VerifyingKey;
use agentauth_core::keycert::{
    self, Jwks, JwksEntry, KeyCertificateClaims, MAX_CERTIFICATE_LIFETIME_SECS, RootKey,
};
use agentauth_core::token::{AccessTokenClaims, MAX_TOKEN_LIFETIME_SECS};

use crate::{LocalSigner, Signer, SignerError, sign_compact, sign_token};

/// Timing of the certified hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HierarchyConfig {
    /// The issuer URL the issuing keys are certified for (the tokens' `iss`).
    pub issuer: String,
    /// How long a certificate is valid (default 24 h).
    pub validity: Duration,
    /// How long a key signs tokens before the next one takes over (default 6 h).
    pub rotation_interval: Duration,
    /// The longest lifetime of a token (default and ceiling: 1 h).
    pub max_token_lifetime: Duration,
    /// Clock skew allowed between issuer and verifiers (default 60 s):
    /// certificates are backdated by it and retired keys kept that much longer.
    pub clock_skew: Duration,
}

impl HierarchyConfig {
    /// The defaults for `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        HierarchyConfig {
            issuer: issuer.into(),
            validity: Duration::from_secs(24 * 3600),
            rotation_interval: Duration::from_secs(6 * 3600),
            max_token_lifetime: Duration::from_secs(MAX_TOKEN_LIFETIME_SECS.unsigned_abs()),
            clock_skew: Duration::from_secs(60),
        }
    }

    /// Refuses timings under which a token could outlive its key's
    /// certificate, or certificates that verifiers would refuse.
    pub fn validate(&self) -> Result<(), SignerError> {
        let bad = |m: String| Err(SignerError::Load(format!("invalid key hierarchy: {m}")));
        if self.issuer.is_empty() {
            return bad("the issuer is empty".into());
        }
        if self.rotation_interval.is_zero() {
            return bad("the rotation interval is zero".into());
        }
        if self.max_token_lifetime.as_secs() > MAX_TOKEN_LIFETIME_SECS.unsigned_abs() {
            return bad("the maximum token lifetime exceeds 1 h".into());
        }
        let needed = self.rotation_interval + self.max_token_lifetime + self.clock_skew;
        if self.validity < needed {
            return bad(format!(
                "validity {:?} is shorter than rotation interval + max token lifetime + \
                 clock skew ({needed:?})",
                self.validity
            ));
        }
        if secs(self.validity + self.clock_skew) > MAX_CERTIFICATE_LIFETIME_SECS {
            return bad("validity + clock skew exceeds the 7-day certificate limit".into());
        }
        Ok(())
    }

    /// How long a retired key stays published.
    fn retention(&self) -> i64 {
        secs(self.max_token_lifetime + self.clock_skew)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The key that signs tokens now.
#[derive(Clone)]
pub struct CurrentKey {
    /// Its key id (the tokens' `kid`).
    pub kid: String,
    /// The signer.
    pub signer: Arc<dyn Signer>,
    /// When its certificate expires (`i64::MAX` in direct mode): no token
    /// signed with it may expire later.
    pub not_after: i64,
}

/// An issuing key with its certificate.
struct IssuingKey {
    signer: Arc<LocalSigner>,
    cert: String,
    created_at: i64,
    not_after: i64,
    /// When it stopped signing; `None` while current.
    retired_at: Option<i64>,
}

impl IssuingKey {
    fn entry(&self) -> JwksEntry {
        let kid = self.signer.key_id();
        JwksEntry::new(kid, self.signer.verifying_key(), Some(self.cert.clone()))
    }
}

/// The root signer and, in certified mode, the issuing keys.
pub struct KeyHierarchy {
    root: Arc<dyn Signer>,
    /// `None` in direct mode.
    config: Option<HierarchyConfig>,
    /// Current key first, then retired keys, newest first.
    keys: RwLock<Vec<IssuingKey>>,
    /// Serializes rotations (each one is a KMS call).
    rotating: tokio::sync::Mutex<()>,
}

impl KeyHierarchy {
    /// Direct mode: the root signs every token.
    pub fn direct(root: Arc<dyn Signer>) -> Self {
        KeyHierarchy {
            root,
            config: None,
            keys: RwLock::new(Vec::new()),
            rotating: tokio::sync::Mutex::new(()),
        }
    }

    /// Certified mode, with a first issuing key certified at `now`.
    pub async fn certified(
        root: Arc<dyn Signer>,
        config: HierarchyConfig,
        now: i64,
    ) -> Result<Self, SignerError> {
        config.validate()?;
        let pinned = RootKey::from_jwk(root.public_jwk())?;
        if pinned.kid != root.key_id() {
            return Err(SignerError::Load(format!(
                "the root key id {:?} is not its RFC 7638 thumbprint {:?}",
                root.key_id(),
                pinned.kid
            )));
        }
        let hierarchy = KeyHierarchy {
            root,
            config: Some(config),
            keys: RwLock::new(Vec::new()),
            rotating: tokio::sync::Mutex::new(()),
        };
        hierarchy.rotate(now).await?;
        Ok(hierarchy)
    }

    /// Whether the root signs every token.
    pub fn is_direct(&self) -> bool {
        self.config.is_none()
    }

    /// The root signer.
    pub fn root(&self) -> &Arc<dyn Signer> {
        &self.root
    }

    /// The key id and signer for the next token.
    pub fn current(&self) -> (String, Arc<dyn Signer>) {
        let key = self.current_key();
        (key.kid, key.signer)
    }

    /// The key for the next token, with its certificate's expiry.
    pub fn current_key(&self) -> CurrentKey {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        match keys.first() {
            Some(key) => CurrentKey {
                kid: key.signer.key_id().to_owned(),
                signer: Arc::clone(&key.signer) as Arc<dyn Signer>,
                not_after: key.not_after,
            },
            None => CurrentKey {
                kid: self.root.key_id().to_owned(),
                signer: Arc::clone(&self.root),
                not_after: i64::MAX,
            },
        }
    }

    /// Signs a token with the current key, refusing one that would outlive
    /// the key's certificate (cap `exp` at [`CurrentKey::not_after`]).
    pub async fn sign_token(&self, claims: &AccessTokenClaims) -> Result<String, SignerError> {
        let key = self.current_key();
        if claims.exp > key.not_after {
            return Err(SignerError::Sign(format!(
                "the token would expire at {}, after its issuing key's certificate ({})",
                claims.exp, key.not_after
            )));
        }
        sign_token(&*key.signer, claims).await
    }

    /// When the next rotation is due (`None` in direct mode).
    pub fn next_rotation(&self) -> Option<i64> {
        let config = self.config.as_ref()?;
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let created_at = keys.first().map_or(i64::MIN, |k| k.created_at);
        Some(created_at.saturating_add(secs(config.rotation_interval)))
    }

    /// Rotates if the current key has signed for the rotation interval, and
    /// forgets retired keys whose tokens have all expired. `Ok(true)` when
    /// it rotated. On error (the root KMS unreachable) the current key stays
    /// in use; call again later.
    pub async fn rotate_if_due(&self, now: i64) -> Result<bool, SignerError> {
        let Some(config) = &self.config else {
            return Ok(false);
        };
        let _rotating = self.rotating.lock().await;
        self.prune(config, now);
        if self.next_rotation().is_some_and(|due| now < due) {
            return Ok(false);
        }
        self.rotate_locked(config, now).await?;
        Ok(true)
    }

    /// Rotates now, whatever the schedule (no-op in direct mode).
    pub async fn rotate(&self, now: i64) -> Result<(), SignerError> {
        let Some(config) = &self.config else {
            return Ok(());
        };
        let _rotating = self.rotating.lock().await;
        self.rotate_locked(config, now).await
    }

    async fn rotate_locked(&self, config: &HierarchyConfig, now: i64) -> Result<(), SignerError> {
        let next = self.issue(config, now).await?;
        tracing::info!(
            kid = next.signer.key_id(),
            not_after = next.not_after,
            "rotated the issuing key"
        );
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = keys.first_mut() {
            current.retired_at = Some(now);
        }
        keys.insert(0, next);
        Ok(())
    }

    /// A fresh issuing key, certified by the root (one root signature).
    async fn issue(&self, config: &HierarchyConfig, now: i64) -> Result<IssuingKey, SignerError> {
        let signer = Arc::new(LocalSigner::generate()?);
        let public: &VerifyingKey = signer.verifying_key();
        let not_after = now.saturating_add(secs(config.validity));
        let claims = KeyCertificateClaims::new(
            &config.issuer,
            public,
            now,
            now.saturating_sub(secs(config.clock_skew)),
            not_after,
        );
        let input = keycert::signing_input(self.root.key_id(), &claims)?;
        let cert = sign_compact(&*self.root, &input).await?;
        // Verifiers will check this; check it first, with what they pin.
        let root = RootKey::from_jwk(self.root.public_jwk())?;
        keycert::verify_certificate(&cert, &root.kid, &root.key, now)?;
        Ok(IssuingKey {
            signer,
            cert,
            created_at: now,
            not_after,
            retired_at: None,
        })
    }

    fn prune(&self, config: &HierarchyConfig, now: i64) {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        keys.retain(|k| is_published(k, config, now));
    }

    /// The JWKS document at `now`: the current and still-needed retired
    /// issuing keys with their certificates, or the root alone in direct mode.
    pub fn jwks(&self, now: i64) -> Jwks {
        let root = Some(self.root.public_jwk().clone());
        let Some(config) = &self.config else {
            let key = self.root.public_jwk().to_public_key().map(|p| p.key);
            let keys = key
                .map(|key| vec![JwksEntry::new(self.root.key_id(), &key, None)])
                .unwrap_or_default();
            return Jwks { keys, root };
        };
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        Jwks {
            keys: keys
                .iter()
                .filter(|k| is_published(k, config, now))
                .map(IssuingKey::entry)
                .collect(),
            root,
        }
    }

    /// Calls [`KeyHierarchy::rotate_if_due`] every `period` with the time
    /// `now()` gives, logging failures; runs until the task is dropped.
    pub async fn rotate_periodically(&self, now: impl Fn() -> i64, period: Duration) {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.rotate_if_due(now()).await {
                tracing::warn!(%error, "issuing key rotation failed; the current key stays in use");
            }
        }
    }
}

impl fmt::Debug for KeyHierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let kids: Vec<&str> = keys.iter().map(|k| k.signer.key_id()).collect();
        f.debug_struct("KeyHierarchy")
            .field("root", &self.root.key_id())
            .field("config", &self.config)
            .field("issuing_keys", &kids)
            .finish_non_exhaustive()
    }
}

/// Current, or retired less than the retention ago; and certified at `now`.
fn is_published(key: &IssuingKey, config: &HierarchyConfig, now: i64) -> bool {
    let needed = key
        .retired_at
        .is_none_or(|at| now < at.saturating_add(config.retention()));
    needed && now < key.not_after
}
