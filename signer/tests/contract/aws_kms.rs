//! The AWS KMS backend against moto: the signer connects by alias, as a
//! production configuration would; a rotation creates a new key and points
//! the alias at it (`UpdateAlias`), which is how KMS asymmetric keys rotate.

use std::net::SocketAddr;
use std::time::Duration;

use agentauth_signer::aws_kms::create_key;
use agentauth_signer::{AwsKmsConfig, AwsKmsSigner, SignerError};
use async_trait::async_trait;

use crate::common::{TestResult, moto_config, shared_moto_config};
use crate::{Backend, BoxSigner, unique};

struct AwsKms {
    config: AwsKmsConfig,
    alias: String,
}

/// A new key behind a new alias on the shared moto server.
pub async fn backend() -> Box<dyn Backend> {
    let config = shared_moto_config().await;
    let alias = format!("alias/{}", unique("contract"));
    let key_id = create_key(&config, "contract").await.unwrap();
    config
        .client()
        .await
        .unwrap()
        .create_alias()
        .alias_name(&alias)
        .target_key_id(key_id)
        .send()
        .await
        .unwrap();
    Box::new(AwsKms { config, alias })
}

#[async_trait]
impl Backend for AwsKms {
    async fn connect(&self) -> Result<BoxSigner, SignerError> {
        Ok(Box::new(
            AwsKmsSigner::connect(&self.config, &self.alias).await?,
        ))
    }

    async fn rotate(&self) -> TestResult {
        let key_id = create_key(&self.config, "contract, rotated").await?;
        self.config
            .client()
            .await?
            .update_alias()
            .alias_name(&self.alias)
            .target_key_id(key_id)
            .send()
            .await?;
        Ok(())
    }

    /// A symmetric encryption key (CreateKey's default).
    async fn connect_to_unusable_key(&self) -> Result<BoxSigner, SignerError> {
        let output = self
            .config
            .client()
            .await?
            .create_key()
            .send()
            .await
            .unwrap();
        let key_id = output.key_metadata().unwrap().key_id();
        Ok(Box::new(AwsKmsSigner::connect(&self.config, key_id).await?))
    }

    async fn connect_at(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Option<Result<BoxSigner, SignerError>> {
        let config = AwsKmsConfig {
            connect_timeout: timeout,
            operation_timeout: timeout,
            max_attempts: 1,
            ..moto_config(&format!("http://{addr}"))
        };
        Some(
            AwsKmsSigner::connect(&config, &self.alias)
                .await
                .map(|s| Box::new(s) as BoxSigner),
        )
    }
}
