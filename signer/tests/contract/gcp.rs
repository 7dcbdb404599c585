//! The Google Cloud KMS backend against the Cloud KMS stand-in
//! (`common/gcp_standin.rs`, one per test: it lives on the test's runtime).
//! The signer connects by key version, as a production configuration does;
//! a rotation adds a version to the key and the configuration moves to it
//! (asymmetric Cloud KMS keys have no primary version to follow).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use agentauth_signer::gcp_kms::{AccessToken, GcpCredentials};
use agentauth_signer::{GcpKmsConfig, GcpKmsSigner, SignerError};
use async_trait::async_trait;

use crate::common::TestResult;
use crate::common::gcp_standin::{GcpKmsStandin, TOKEN};
use crate::{Backend, BoxSigner};

const KEY: &str = "contract";

struct GcpKms {
    standin: GcpKmsStandin,
    /// The key version the configuration names.
    version: Mutex<String>,
}

impl GcpKms {
    fn config(&self, endpoint: String, key_version: &str) -> GcpKmsConfig {
        GcpKmsConfig {
            endpoint: Some(endpoint),
            credentials: GcpCredentials::AccessToken(AccessToken(TOKEN.into())),
            max_attempts: 1,
            ..GcpKmsConfig::new(key_version)
        }
    }

    async fn connect_to(&self, key_version: &str) -> Result<BoxSigner, SignerError> {
        let config = self.config(self.standin.endpoint(), key_version);
        Ok(Box::new(GcpKmsSigner::connect(&config).await?))
    }
}

/// A new stand-in holding one `EC_SIGN_P256_SHA256` key version.
pub async fn backend() -> Box<dyn Backend> {
    let standin = GcpKmsStandin::start().await.unwrap();
    let version = Mutex::new(standin.create_key(KEY));
    Box::new(GcpKms { standin, version })
}

#[async_trait]
impl Backend for GcpKms {
    async fn connect(&self) -> Result<BoxSigner, SignerError> {
        let version = self.version.lock().unwrap().clone();
        self.connect_to(&version).await
    }

    async fn rotate(&self) -> TestResult {
        *self.version.lock().unwrap() = self.standin.rotate(KEY);
        Ok(())
    }

    /// An `EC_SIGN_P384_SHA384` key version.
    async fn connect_to_unusable_key(&self) -> Result<BoxSigner, SignerError> {
        self.connect_to(&self.standin.create_p384_key("p384")).await
    }

    async fn connect_at(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Option<Result<BoxSigner, SignerError>> {
        let version = self.version.lock().unwrap().clone();
        let config = GcpKmsConfig {
            attempt_timeout: timeout,
            call_timeout: timeout,
            ..self.config(format!("http://{addr}"), &version)
        };
        Some(
            GcpKmsSigner::connect(&config)
                .await
                .map(|s| Box::new(s) as BoxSigner),
        )
    }
}
