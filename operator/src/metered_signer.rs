//! The root signer, measured: every call to the KMS (or the local root key)
//! counts in `agentauth_signer_duration_seconds{key="root"}` and, when it
//! fails, `agentauth_signer_errors_total{key="root"}`.
//!
//! The root signs issuing-key certifications on rotation, and every token in
//! direct mode; either way a slow or failing KMS shows here first.

use std::sync::Arc;
use std::time::Instant;

use agentauth_core::jwk::EcPublicJwk;
use agentauth_signer::{Signer, SignerError};
use async_trait::async_trait;

use crate::metrics::Metrics;

/// A [`Signer`] that measures each signature of the one it wraps.
pub struct MeteredSigner {
    inner: Arc<dyn Signer>,
    key: &'static str,
    metrics: Metrics,
}

impl MeteredSigner {
    /// Measures `inner`'s signatures under the `key` label (`root`, `issuing`).
    pub fn new(inner: Arc<dyn Signer>, key: &'static str, metrics: Metrics) -> Self {
        MeteredSigner {
            inner,
            key,
            metrics,
        }
    }
}

#[async_trait]
impl Signer for MeteredSigner {
    fn key_id(&self) -> &str {
        self.inner.key_id()
    }

    fn public_jwk(&self) -> &EcPublicJwk {
        self.inner.public_jwk()
    }

    async fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignerError> {
        let started = Instant::now();
        let signed = self.inner.sign_digest(digest).await;
        self.metrics
            .signed(self.key, started.elapsed().as_secs_f64(), signed.is_ok());
        signed
    }
}
