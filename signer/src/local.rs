//! A P-256 key held in this process: the embedded default root key, and
//! every in-memory issuing key of the hierarchy.
//!
//! On disk and in Kubernetes Secrets the key is PEM: PKCS#8
//! (`-----BEGIN PRIVATE KEY-----`, what `openssl genpkey -algorithm EC
//! -pkeyopt ec_paramgen_curve:P-256` writes, and what this module writes)
//! or SEC1 (`-----BEGIN EC PRIVATE KEY-----`, from `openssl ecparam
//! -genkey`). PEM rather than a JWK with `d`, so standard tools can make,
//! inspect and rotate the file.
//!
//! Signing uses aws-lc-rs: 16 µs per ES256 signature against 165 µs with
//! the pure-Rust `p256` (release build, this machine), and issuing keys sign
//! every token. Both libraries wipe the private key when it is dropped.
//!
//! A key file that group or others may read (`mode & 0o077 != 0`) is
//! refused: the root key signs every certificate, so a world-readable copy
//! is a compromised root. [`LocalSigner::load_or_generate`] creates the file
//! with mode 0600, atomically, and never replaces an existing one.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use agentauth_core::es256::{SigningKey, VerifyingKey};
use agentauth_core::jwk::EcPublicJwk;
use async_trait::async_trait;
use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use zeroize::Zeroizing;

use crate::{Signer, SignerError, published_jwk};

/// Key files larger than this are refused unread; a PEM P-256 key is ~240 bytes.
const MAX_KEY_FILE_LEN: u64 = 16 * 1024;

/// A P-256 private key in memory. Its `Debug` shows only the key id.
pub struct LocalSigner {
    pair: EcdsaKeyPair,
    public: VerifyingKey,
    kid: String,
    jwk: EcPublicJwk,
}

impl LocalSigner {
    /// Wraps a key.
    pub fn new(key: SigningKey) -> Result<Self, SignerError> {
        let scalar = Zeroizing::new(key.to_scalar());
        let secret = p256::SecretKey::from_slice(scalar.as_slice())
            .map_err(|e| SignerError::Load(format!("not a P-256 private key: {e}")))?;
        Self::from_secret(&secret)
    }

    fn from_secret(secret: &p256::SecretKey) -> Result<Self, SignerError> {
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| SignerError::Load(format!("cannot encode the key as PKCS#8: {e}")))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_bytes())
            .map_err(|e| SignerError::Load(format!("aws-lc refused the key: {e}")))?;
        let public = VerifyingKey::from_sec1(pair.public_key().as_ref())?;
        let (kid, jwk) = published_jwk(&public);
        Ok(LocalSigner {
            pair,
            public,
            kid,
            jwk,
        })
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, SignerError> {
        Self::new(SigningKey::generate())
    }

    /// Parses a PKCS#8 or SEC1 PEM private key, e.g. a Kubernetes Secret's
    /// data. The bytes are not kept.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SignerError> {
        let text = std::str::from_utf8(pem)
            .map_err(|_| SignerError::Load("the key is not PEM text".into()))?;
        let secret = if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            p256::SecretKey::from_sec1_pem(text)
                .map_err(|e| SignerError::Load(format!("not a SEC1 P-256 private key: {e}")))?
        } else {
            p256::SecretKey::from_pkcs8_pem(text).map_err(|e| {
                SignerError::Load(format!(
                    "not a PKCS#8 (BEGIN PRIVATE KEY) or SEC1 (BEGIN EC PRIVATE KEY) \
                     P-256 private key: {e}"
                ))
            })?
        };
        Self::from_secret(&secret)
    }

    /// The key as PKCS#8 PEM, for storing it (handle with care).
    pub fn to_pem(&self) -> Result<Zeroizing<String>, SignerError> {
        let scalar = self
            .pair
            .private_key()
            .as_be_bytes()
            .map_err(|_| SignerError::Load("cannot export the key".into()))?;
        let secret = p256::SecretKey::from_slice(scalar.as_ref())
            .map_err(|e| SignerError::Load(format!("cannot encode the key: {e}")))?;
        secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| SignerError::Load(format!("cannot encode the key as PKCS#8: {e}")))
    }

    /// Loads a PEM key file, refusing one that group or others may read.
    pub fn from_file(path: &Path) -> Result<Self, SignerError> {
        let io = |action, source| SignerError::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(|e| io("open the key file", e))?;
        // The mode of the opened file, not of the path: no window for a swap.
        let metadata = file.metadata().map_err(|e| io("inspect the key file", e))?;
        if !metadata.is_file() {
            return Err(SignerError::Load(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SignerError::InsecureKeyFile {
                path: path.to_path_buf(),
                mode,
            });
        }
        if metadata.len() > MAX_KEY_FILE_LEN {
            return Err(SignerError::Load(format!(
                "{} is larger than {MAX_KEY_FILE_LEN} bytes; not a key file",
                path.display()
            )));
        }
        let mut pem = Zeroizing::new(Vec::new());
        file.read_to_end(&mut pem)
            .map_err(|e| io("read the key file", e))?;
        Self::from_pem(&pem).map_err(|e| SignerError::Load(format!("{}: {e}", path.display())))
    }

    /// Loads the key file at `path`, or, when there is none, generates a key
    /// and writes it there with mode 0600 (for development and the embedded
    /// mode). The file appears complete or not at all, and an existing file
    /// is never replaced: when two processes race, both end up with the key
    /// of the one that linked it first.
    pub fn load_or_generate(path: &Path) -> Result<Self, SignerError> {
        match Self::from_file(path) {
            Err(SignerError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            loaded => return loaded,
        }
        let signer = Self::generate()?;
        let temporary = temporary_path(path);
        let written = write_new(&temporary, signer.to_pem()?.as_bytes())
            .and_then(|()| publish(&temporary, path));
        let _ = std::fs::remove_file(&temporary);
        match written {
            Ok(()) => {
                tracing::info!(path = %path.display(), kid = %signer.kid, "generated a signing key");
                Ok(signer)
            }
            Err(SignerError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                Self::from_file(path)
            }
            Err(e) => Err(e),
        }
    }

    /// The public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }
}

/// A sibling of `path` for writing before linking into place.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{nanos}.tmp", std::process::id()))
}

/// Creates `path` (which must not exist) with mode 0600 and writes `bytes`
/// to disk.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), SignerError> {
    let io = |action, source| SignerError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("create the key file", e))?;
    file.write_all(bytes)
        .map_err(|e| io("write the key file", e))?;
    file.sync_all().map_err(|e| io("sync the key file", e))
}

/// Links the finished temporary file to `path`; fails with `AlreadyExists`
/// rather than replacing a key someone else wrote.
fn publish(temporary: &Path, path: &Path) -> Result<(), SignerError> {
    std::fs::hard_link(temporary, path).map_err(|source| SignerError::Io {
        action: "create the key file",
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Persist the new directory entry; a failure here loses nothing now.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

impl fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Signer for LocalSigner {
    fn key_id(&self) -> &str {
        &self.kid
    }

    fn public_jwk(&self) -> &EcPublicJwk {
        &self.jwk
    }

    async fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignerError> {
        let sign = || {
            let digest = Digest::import_less_safe(digest, &SHA256).ok()?;
            let signature = self.pair.sign_digest(&digest).ok()?;
            <[u8; 64]>::try_from(signature.as_ref()).ok()
        };
        sign().ok_or_else(|| SignerError::Sign("aws-lc failed to sign".into()))
    }
}
