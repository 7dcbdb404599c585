//! # agentauth-signer
//!
//! Keys that sign for AgentAuth (DESIGN §6): a [`Signer`] trait with a local
//! P-256 backend (the embedded default), AWS KMS and Vault Transit
//! ([`VaultTransitSigner`], an `ecdsa-p256` key whose version it pins), and
//! the key hierarchy in which a KMS root key certifies short-lived in-memory
//! issuing keys so that token issuance does not wait on the KMS.
//!
//! A crate of its own, rather than a module of the operator, because the
//! audit archiver signs its checkpoints with the same root key.
//!
//! ```text
//!  root: LocalSigner (file / Secret)  or  AwsKmsSigner (GetPublicKey once, Sign per call)
//!          │
//!          ▼
//!  KeyHierarchy ── direct:    the root signs every token; JWKS = [root]
//!               └─ certified: the root signs a certificate (agentauth_core::keycert)
//!                             for an in-memory LocalSigner once per rotation;
//!                             JWKS = [current + retired issuing keys, each with its certificate]
//!          │ current() ──▶ sign_token(signer, &claims) ──▶ compact JWS (at+jwt)
//!          └ jwks(now)  ──▶ /.well-known/jwks.json
//! ```
//!
//! Every key id is the RFC 7638 thumbprint of the key's public JWK, so
//! verifiers can check that a kid names the key it claims to.
//!
//! With the `gcp-kms` feature, `GcpKmsSigner` (module `gcp_kms`) signs with a
//! Google Cloud KMS key version: getPublicKey once, asymmetricSign per call,
//! each reply checked by its CRC32C and the signature against the key.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::token::{self, AccessTokenClaims};
use agentauth_core::{es256::SIGNATURE_LEN, jws};
use async_trait::async_trait;
use sha2::{Digest as _, Sha256};

pub mod aws_kms;
pub mod aws_sdk;
#[cfg(feature = "gcp-kms")]
pub mod gcp_kms;
pub mod hierarchy;
pub mod local;
pub mod select;
pub mod vault_transit;

pub use aws_kms::{AwsKmsConfig, AwsKmsSigner, StaticCredentials};
#[cfg(feature = "gcp-kms")]
pub use gcp_kms::{GcpKmsConfig, GcpKmsSigner};
pub use hierarchy::{CurrentKey, HierarchyConfig, KeyHierarchy};
pub use local::LocalSigner;
pub use select::{SignerArgs, SignerKind};
pub use vault_transit::{VaultAuth, VaultMarshaling, VaultTransitConfig, VaultTransitSigner};

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The key could not be loaded or created.
    #[error("failed to load the signing key: {0}")]
    Load(String),
    /// The KMS (or the local key) refused or failed to sign.
    #[error("failed to sign: {0}")]
    Sign(String),
    /// A key file that other users could read was refused.
    #[error(
        "refusing the key file {}: its mode {mode:04o} lets group or others read it; \
         run `chmod 600` on it (or mount the Secret with defaultMode 0400)",
        path.display()
    )]
    InsecureKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file could not be read or written.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What was being done ("read the key file").
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The KMS could not be reached (connection refused, DNS, timeout).
    #[error("the KMS is unavailable: {0}")]
    Unavailable(String),
    /// What was to be signed is not valid (e.g. token claims), or a
    /// certificate failed its self-check.
    #[error("{0}")]
    Protocol(#[from] agentauth_core::Error),
}

impl SignerError {
    /// A stable, machine-readable code for this error, for logs, metrics
    /// labels and alerts; the message may change, the codes do not.
    ///
    /// | code                       | variant              | what to do |
    /// |----------------------------|----------------------|------------|
    /// | `signer_key_invalid`       | [`Load`]             | the key is missing, of the wrong type, or not permitted: fix the key or its policy |
    /// | `signer_refused`           | [`Sign`]             | the backend refused or botched one signature: read the message |
    /// | `signer_unavailable`       | [`Unavailable`]      | the backend did not answer in time: check the network; retrying may help |
    /// | `signer_key_file_insecure` | [`InsecureKeyFile`]  | `chmod 600` the key file |
    /// | `signer_io`                | [`Io`]               | the key file could not be read or written |
    /// | `signer_protocol`          | [`Protocol`]         | what was to be signed was invalid (a bug upstream) |
    ///
    /// [`Load`]: SignerError::Load
    /// [`Sign`]: SignerError::Sign
    /// [`Unavailable`]: SignerError::Unavailable
    /// [`InsecureKeyFile`]: SignerError::InsecureKeyFile
    /// [`Io`]: SignerError::Io
    /// [`Protocol`]: SignerError::Protocol
    pub fn code(&self) -> &'static str {
        match self {
            SignerError::Load(_) => "signer_key_invalid",
            SignerError::Sign(_) => "signer_refused",
            SignerError::Unavailable(_) => "signer_unavailable",
            SignerError::InsecureKeyFile { .. } => "signer_key_file_insecure",
            SignerError::Io { .. } => "signer_io",
            SignerError::Protocol(_) => "signer_protocol",
        }
    }
}

/// A key that signs SHA-256 digests with ES256.
///
/// `key_id()` is the RFC 7638 thumbprint of `public_jwk()`, and the JWK
/// carries it as its `kid`; every implementation here keeps to that.
#[async_trait]
pub trait Signer: Send + Sync + 'static {
    /// The key id published in JWKS and token headers.
    fn key_id(&self) -> &str;

    /// The public key.
    fn public_jwk(&self) -> &EcPublicJwk;

    /// Signs a SHA-256 digest, returning the JWS form `r || s`.
    async fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignerError>;
}

/// The public JWK of a key as the signers publish it: with `kid`, `alg`, `use`.
pub(crate) fn published_jwk(key: &agentauth_core::es256::VerifyingKey) -> (String, EcPublicJwk) {
    let mut jwk = EcPublicJwk::from_key(key);
    let kid = agentauth_core::jwk::ec_thumbprint(&jwk.x, &jwk.y);
    jwk.kid = Some(kid.clone());
    jwk.alg = Some(jws::ES256.into());
    jwk.use_ = Some("sig".into());
    (kid, jwk)
}

/// Signs a JWS signing input (`BASE64URL(header) '.' BASE64URL(payload)`)
/// with `signer` and returns the compact JWS.
pub async fn sign_compact<S: Signer + ?Sized>(
    signer: &S,
    signing_input: &str,
) -> Result<String, SignerError> {
    let digest: [u8; 32] = Sha256::digest(signing_input.as_bytes()).into();
    let signature: [u8; SIGNATURE_LEN] = signer.sign_digest(&digest).await?;
    Ok(jws::assemble(signing_input, &signature))
}

/// Signs an access token (DESIGN §5) with `signer`, under its key id.
/// Refuses claims that [`AccessTokenClaims::validate`] refuses.
pub async fn sign_token<S: Signer + ?Sized>(
    signer: &S,
    claims: &AccessTokenClaims,
) -> Result<String, SignerError> {
    let input = token::signing_input(signer.key_id(), claims)?;
    sign_compact(signer, &input).await
}

#[cfg(test)]
mod tests {
    use super::SignerError;

    #[test]
    fn every_variant_has_its_own_stable_code() {
        let io = || std::io::Error::other("x");
        let errors = [
            (SignerError::Load("x".into()), "signer_key_invalid"),
            (SignerError::Sign("x".into()), "signer_refused"),
            (SignerError::Unavailable("x".into()), "signer_unavailable"),
            (
                SignerError::InsecureKeyFile {
                    path: "k.pem".into(),
                    mode: 0o644,
                },
                "signer_key_file_insecure",
            ),
            (
                SignerError::Io {
                    action: "read",
                    path: "k.pem".into(),
                    source: io(),
                },
                "signer_io",
            ),
            (
                SignerError::Protocol(agentauth_core::Error::new(
                    agentauth_core::ErrorCode::TokenClaimsInvalid,
                    "x",
                )),
                "signer_protocol",
            ),
        ];
        let mut seen = std::collections::HashSet::new();
        for (error, code) in &errors {
            assert_eq!(error.code(), *code, "{error:?}");
            assert!(seen.insert(*code), "{code} used twice");
            assert!(code.starts_with("signer_"), "{code}");
        }
    }
}
