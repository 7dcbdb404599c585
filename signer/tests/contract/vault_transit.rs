//! The Vault Transit backend against the shared OpenBao/Vault dev server: a
//! new `ecdsa-p256` key per test, signed for with a least-privilege token;
//! a rotation is Transit's own `rotate` (the signer connects to the latest
//! version and pins it).

use std::net::SocketAddr;
use std::time::Duration;

use agentauth_signer::{SignerError, VaultAuth, VaultTransitConfig, VaultTransitSigner};
use agentauth_testenv::{OpenBao, shared_openbao};
use async_trait::async_trait;

use crate::common::TestResult;
use crate::{Backend, BoxSigner, unique};

const MOUNT: &str = "transit";

struct VaultTransit {
    bao: &'static OpenBao,
    key: String,
    token: String,
}

/// A new key, and a token whose policy allows exactly reading and signing with it.
pub async fn backend() -> Box<dyn Backend> {
    let bao = shared_openbao().await.unwrap();
    bao.enable_transit(MOUNT).await.unwrap();
    let key = unique("contract");
    bao.create_key(MOUNT, &key, "ecdsa-p256").await.unwrap();
    let policy = format!(
        "path \"{MOUNT}/keys/{key}\" {{ capabilities = [\"read\"] }}\n\
         path \"{MOUNT}/sign/{key}\" {{ capabilities = [\"update\"] }}\n"
    );
    bao.put_policy(&key, &policy).await.unwrap();
    let token = bao.create_token(&[&key], "1h").await.unwrap();
    Box::new(VaultTransit { bao, key, token })
}

impl VaultTransit {
    fn config(&self, address: String, key: &str) -> VaultTransitConfig {
        let mut config =
            VaultTransitConfig::new(address, key, VaultAuth::Token(self.token.clone()));
        config.mount = MOUNT.into();
        config
    }
}

#[async_trait]
impl Backend for VaultTransit {
    async fn connect(&self) -> Result<BoxSigner, SignerError> {
        let config = self.config(self.bao.address().to_owned(), &self.key);
        Ok(Box::new(VaultTransitSigner::connect(&config).await?))
    }

    async fn rotate(&self) -> TestResult {
        self.bao.rotate_key(MOUNT, &self.key).await?;
        Ok(())
    }

    /// An AES key: Transit has it, but it cannot sign.
    async fn connect_to_unusable_key(&self) -> Result<BoxSigner, SignerError> {
        let name = unique("aes");
        self.bao
            .create_key(MOUNT, &name, "aes256-gcm96")
            .await
            .unwrap();
        let mut config = self.config(self.bao.address().to_owned(), &name);
        config.auth = VaultAuth::Token(self.bao.root_token().to_owned());
        Ok(Box::new(VaultTransitSigner::connect(&config).await?))
    }

    async fn connect_at(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Option<Result<BoxSigner, SignerError>> {
        let mut config = self.config(format!("http://{addr}"), &self.key);
        config.connect_timeout = timeout;
        config.request_timeout = timeout;
        Some(
            VaultTransitSigner::connect(&config)
                .await
                .map(|s| Box::new(s) as BoxSigner),
        )
    }
}
