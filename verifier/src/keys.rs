//! The token-signing keys: the operator's JWKS, fetched from a URL (or read
//! from a file), and trusted only through the pinned root key (DESIGN §6,
//! [`TrustedKeys`]).
//!
//! ```text
//!  start ──fetch──▶ TrustedKeys::from_jwks(jwks, root, issuer, now) ──swap──▶ current
//!  every --jwks-refresh (every 5 s while no key is trusted) ──fetch──┘
//!  unknown kid on a request ── at most once per --jwks-min-interval ──fetch──┘
//! ```
//!
//! A fetched document replaces the current one only when it parses; a
//! failed fetch keeps the keys already trusted (their certificates still
//! bound them in time). When a refresh drops a key that was trusted, the
//! key epoch moves, so every cached token it had verified misses.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::keycert::{Jwks, MAX_JWKS_LEN, RootKey, TrustedKeys};
use tokio::time::Instant;

use crate::Clock;
use crate::metrics::Metrics;

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The pinned root key is not a public P-256 JWK.
    #[error("invalid root key: {0}")]
    Root(String),
    /// The JWKS could not be fetched or read.
    #[error("failed to fetch the JWKS from {origin}: {message}")]
    Fetch {
        /// The URL or file.
        origin: String,
        /// What went wrong.
        message: String,
    },
    /// The JWKS is not a valid document.
    #[error("invalid JWKS from {origin}: {message}")]
    Invalid {
        /// The URL or file.
        origin: String,
        /// What went wrong.
        message: String,
    },
}

/// Where the JWKS comes from.
#[derive(Clone, Debug)]
pub enum JwksOrigin {
    /// Fetched over HTTP(S).
    Url(String),
    /// Read from a file.
    File(PathBuf),
}

impl JwksOrigin {
    fn describe(&self) -> String {
        match self {
            JwksOrigin::Url(url) => url.clone(),
            JwksOrigin::File(path) => path.display().to_string(),
        }
    }
}

/// The pinned root, the current trusted keys and how to refresh them.
pub struct KeySource {
    root: RootKey,
    issuer: String,
    origin: JwksOrigin,
    client: reqwest::Client,
    current: RwLock<Arc<TrustedKeys>>,
    epoch: AtomicU64,
    min_interval: Duration,
    last_on_demand: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySource")
            .field("root", &self.root.kid)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Parses the pinned root key from its JWK (JSON).
pub fn parse_root(json: &str) -> Result<RootKey, KeyError> {
    let jwk: EcPublicJwk =
        serde_json::from_str(json.trim()).map_err(|e| KeyError::Root(e.to_string()))?;
    RootKey::from_jwk(&jwk).map_err(|e| KeyError::Root(e.message))
}

impl KeySource {
    /// A source with no trusted keys yet; call [`KeySource::refresh`].
    pub fn new(
        root: RootKey,
        issuer: String,
        origin: JwksOrigin,
        min_interval: Duration,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        KeySource {
            root,
            issuer,
            origin,
            client,
            current: RwLock::new(Arc::new(TrustedKeys::default())),
            epoch: AtomicU64::new(0),
            min_interval,
            last_on_demand: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            clock,
            metrics,
        }
    }

    /// The keys trusted now.
    pub fn current(&self) -> Arc<TrustedKeys> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Moves whenever a refresh drops a key that was trusted.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Whether at least one key is trusted.
    pub fn has_keys(&self) -> bool {
        self.current().kids().next().is_some()
    }

    /// Fetches and installs the JWKS now.
    pub async fn refresh(&self) -> Result<(), KeyError> {
        let _one_at_a_time = self.fetching.lock().await;
        self.refresh_locked().await
    }

    /// After an unknown `kid`: refreshes unless one such refresh ran within
    /// the minimum interval (so a flood of bogus kids costs one fetch).
    /// Returns whether it refreshed.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        {
            let mut last = self
                .last_on_demand
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if last.is_some_and(|at| now.duration_since(at) < self.min_interval) {
                self.metrics
                    .jwks_refreshes
                    .with_label_values(&["throttled"])
                    .inc();
                return false;
            }
            *last = Some(now);
        }
        match self.refresh().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "JWKS refresh for an unknown kid failed");
                false
            }
        }
    }

    async fn refresh_locked(&self) -> Result<(), KeyError> {
        let result = self.load().await;
        let label = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .jwks_refreshes
            .with_label_values(&[label])
            .inc();
        let jwks = result?;
        let now = self.clock.now_ms().div_euclid(1000);
        let trusted = TrustedKeys::from_jwks(&jwks, &self.root, &self.issuer, now);
        for (kid, error) in trusted.rejected() {
            tracing::warn!(kid, %error, "JWKS entry not trusted");
        }
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let lost = current.kids().any(|kid| trusted.not_after(kid).is_none());
        if lost {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.metrics
            .trusted_keys
            .set(i64::try_from(trusted.kids().count()).unwrap_or(i64::MAX));
        *current = Arc::new(trusted);
        Ok(())
    }

    async fn load(&self) -> Result<Jwks, KeyError> {
        let origin = self.origin.describe();
        let fetch = |message: String| KeyError::Fetch {
            origin: origin.clone(),
            message,
        };
        let text = match &self.origin {
            JwksOrigin::File(path) => {
                let bytes = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || std::fs::read(path)
                })
                .await
                .map_err(|e| fetch(e.to_string()))?
                .map_err(|e| fetch(e.to_string()))?;
                if bytes.len() > MAX_JWKS_LEN {
                    return Err(fetch(format!("larger than {MAX_JWKS_LEN} bytes")));
                }
                String::from_utf8(bytes).map_err(|e| fetch(e.to_string()))?
            }
            JwksOrigin::Url(url) => self.fetch_url(url).await.map_err(fetch)?,
        };
        Jwks::parse(&text).map_err(|e| KeyError::Invalid {
            origin,
            message: e.message,
        })
    }

    async fn fetch_url(&self, url: &str) -> Result<String, String> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_LEN {
                return Err(format!("larger than {MAX_JWKS_LEN} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|e| e.to_string())
    }

    /// Refreshes every `interval` (every 5 s while no key is trusted), until
    /// the task is dropped.
    pub async fn refresh_periodically(self: Arc<Self>, interval: Duration) {
        loop {
            let wait = if self.has_keys() {
                interval
            } else {
                interval.min(Duration::from_secs(5))
            };
            tokio::time::sleep(wait).await;
            if let Err(error) = self.refresh().await {
                tracing::warn!(%error, "JWKS refresh failed; keeping the keys already trusted");
            }
        }
    }
}
