//! The local backend: a PEM key file in a temporary folder, loaded the way
//! the operator loads `--root-key-file`; a rotation writes a new key there.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use agentauth_signer::{LocalSigner, SignerError};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::common::TestResult;
use crate::{Backend, BoxSigner};

struct Local {
    dir: tempfile::TempDir,
    key: PathBuf,
}

/// A fresh key file, mode 0600.
pub async fn backend() -> Box<dyn Backend> {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("root-key.pem");
    write_private(
        &key,
        LocalSigner::generate()
            .unwrap()
            .to_pem()
            .unwrap()
            .as_bytes(),
    );
    Box::new(Local { dir, key })
}

fn write_private(path: &std::path::Path, pem: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, pem).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[async_trait]
impl Backend for Local {
    async fn connect(&self) -> Result<BoxSigner, SignerError> {
        Ok(Box::new(LocalSigner::from_file(&self.key)?))
    }

    async fn rotate(&self) -> TestResult {
        let pem = LocalSigner::generate()?.to_pem()?;
        write_private(&self.key, pem.as_bytes());
        Ok(())
    }

    /// An Ed25519 key in a PKCS#8 file: a valid key, but not P-256.
    async fn connect_to_unusable_key(&self) -> Result<BoxSigner, SignerError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let der = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let body = STANDARD.encode(der.as_ref());
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
        let path = self.dir.path().join("ed25519.pem");
        write_private(&path, pem.as_bytes());
        Ok(Box::new(LocalSigner::from_file(&path)?))
    }

    async fn connect_at(
        &self,
        _addr: SocketAddr,
        _timeout: Duration,
    ) -> Option<Result<BoxSigner, SignerError>> {
        None
    }
}
