//! The contract every signer backend keeps, checked the same way for each:
//!
//! | check                                   | what it proves |
//! |-----------------------------------------|----------------|
//! | `signs_what_its_jwk_verifies`           | a token signed through the backend verifies with `public_jwk()` alone |
//! | `key_id_is_the_rfc7638_thumbprint`      | `key_id()` is the JWK's RFC 7638 thumbprint, and stable across connects |
//! | `rotation_gives_a_new_kid_and_keeps_old_signatures_apart` | after the backend's own rotation a new connect has a new kid; old signatures verify with the old JWK and not the new; a signer connected before never returns a signature its JWK rejects |
//! | `a_key_that_cannot_sign_es256_is_signer_key_invalid` | the wrong kind of key is refused at connect, code `signer_key_invalid` |
//! | `an_unreachable_backend_is_signer_unavailable` | nothing listening: code `signer_unavailable`, within the timeout |
//! | `a_backend_that_never_answers_fails_closed_in_time` | a listener that never answers: code `signer_unavailable`, within the timeout |
//!
//! Backends (each a module of `tests/contract/`, against the real thing the
//! harness starts): `local` (key files in a temporary folder), `aws_kms`
//! (moto; a rotation points an alias at a new key), `vault_transit` (an
//! OpenBao/Vault dev server; a rotation is Transit's `rotate`).
//!
//! # Adding a backend
//!
//! 1. Write `signer/tests/contract/<name>.rs`: a type implementing
//!    [`Backend`] and `pub async fn backend() -> Box<dyn Backend>` that sets
//!    up a fresh key (each test calls it once; share servers, not keys).
//! 2. Add `<name>` to the `contract!` list at the end of this file (with
//!    `#[cfg(feature = "...")]` in front if the backend is behind a feature).
//!
//! Every check then runs for it, as the test `<name>::<check>`.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agentauth_core::ErrorCode;
use agentauth_core::token;
use agentauth_signer::{Signer, SignerError, sign_token};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{T0, TestResult, claims, expect, pinned};
use sha2::{Digest as _, Sha256};

/// A connected signer of any backend.
pub type BoxSigner = Box<dyn Signer>;

/// How the contract drives one backend.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Connects a signer to the backend's current key, the way production
    /// configuration does (for KMS backends: by the name that rotation
    /// moves, e.g. an alias).
    async fn connect(&self) -> Result<BoxSigner, SignerError>;

    /// Rotates the key the way an operator would: afterwards [`connect`]
    /// (`Backend::connect`) gets a new key.
    async fn rotate(&self) -> TestResult;

    /// Connects to a key that exists but cannot sign ES256 (another curve,
    /// a symmetric key, ...).
    async fn connect_to_unusable_key(&self) -> Result<BoxSigner, SignerError>;

    /// Connects as [`connect`](Backend::connect) would, but to the server
    /// at `addr`, with every timeout (connect, per call) at `timeout` and no
    /// retry. `None` for a backend with no network (local keys).
    async fn connect_at(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Option<Result<BoxSigner, SignerError>>;
}

/// The timeout the two fail-closed checks give the backend.
const TIMEOUT: Duration = Duration::from_secs(1);

/// How much later than [`TIMEOUT`] a backend may give up (scheduling, a
/// debug build on two busy cores).
const SLACK: Duration = Duration::from_secs(2);

/// A name no other test of this run uses (keys, aliases).
pub fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// The JWK's RFC 7638 thumbprint, computed here from the members in
/// lexicographic order, independently of `agentauth_core`.
fn rfc7638_thumbprint(signer: &dyn Signer) -> String {
    let jwk = signer.public_jwk();
    let canonical = format!(
        r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
        jwk.crv, jwk.kty, jwk.x, jwk.y
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The generic checks; each takes any [`Backend`].
mod checks {
    use super::*;

    pub async fn signs_what_its_jwk_verifies(backend: &dyn Backend) -> TestResult {
        let signer = backend.connect().await?;
        for i in 0..5 {
            let token = sign_token(&*signer, &claims(T0 + i, 300)).await?;
            let signed = token::verify(&token, &pinned(&*signer), &expect(), T0 + i)?;
            assert_eq!(signed.kid, signer.key_id());
            assert_eq!(signed.claims, claims(T0 + i, 300));
        }
        // The raw digest signature too, with the JWK's key and nothing else.
        let message = b"the contract";
        let signature = signer.sign_digest(&Sha256::digest(message).into()).await?;
        let key = signer.public_jwk().to_public_key()?.key;
        assert!(key.verify(message, &signature));
        Ok(())
    }

    pub async fn key_id_is_the_rfc7638_thumbprint(backend: &dyn Backend) -> TestResult {
        let signer = backend.connect().await?;
        let jwk = signer.public_jwk();
        assert_eq!((jwk.kty.as_str(), jwk.crv.as_str()), ("EC", "P-256"));
        assert_eq!(signer.key_id(), rfc7638_thumbprint(&*signer));
        assert_eq!(jwk.kid.as_deref(), Some(signer.key_id()));
        assert_eq!(jwk.alg.as_deref(), Some("ES256"));
        assert_eq!(jwk.use_.as_deref(), Some("sig"));
        let again = backend.connect().await?;
        assert_eq!(
            again.key_id(),
            signer.key_id(),
            "the same key, the same kid"
        );
        assert_eq!(again.public_jwk(), signer.public_jwk());
        Ok(())
    }

    pub async fn rotation_gives_a_new_kid_and_keeps_old_signatures_apart(
        backend: &dyn Backend,
    ) -> TestResult {
        let old = backend.connect().await?;
        let old_token = sign_token(&*old, &claims(T0, 300)).await?;
        backend.rotate().await?;
        let new = backend.connect().await?;
        assert_ne!(new.key_id(), old.key_id(), "a rotation brings a new kid");
        assert_eq!(new.key_id(), rfc7638_thumbprint(&*new));
        let new_token = sign_token(&*new, &claims(T0, 300)).await?;

        token::verify(&old_token, &pinned(&*old), &expect(), T0)?;
        token::verify(&new_token, &pinned(&*new), &expect(), T0)?;
        // By kid: each JWK knows only its own tokens.
        let err = token::verify(&old_token, &pinned(&*new), &expect(), T0).unwrap_err();
        assert_eq!(err.code, ErrorCode::TokenKeyUnknown);
        // By signature: the new key under the old kid still refuses it.
        let new_key_old_kid = (old.key_id().to_owned(), pinned(&*new).1);
        let err = token::verify(&old_token, &new_key_old_kid, &expect(), T0).unwrap_err();
        assert_eq!(err.code, ErrorCode::TokenSignatureInvalid);

        // A signer connected before the rotation signs with the key its JWK
        // names, or fails closed; it never hands out a signature its JWK
        // rejects.
        match sign_token(&*old, &claims(T0 + 1, 300)).await {
            Ok(token) => {
                token::verify(&token, &pinned(&*old), &expect(), T0 + 1)?;
            }
            Err(e) => {
                assert_eq!(e.code(), "signer_refused", "{e:?}");
                eprintln!("a signer connected before the rotation fails closed: {e}");
            }
        }
        Ok(())
    }

    pub async fn a_key_that_cannot_sign_es256_is_signer_key_invalid(
        backend: &dyn Backend,
    ) -> TestResult {
        let err = match backend.connect_to_unusable_key().await {
            Ok(signer) => panic!("connected to an unusable key: {}", signer.key_id()),
            Err(e) => e,
        };
        assert!(matches!(err, SignerError::Load(_)), "{err:?}");
        assert_eq!(err.code(), "signer_key_invalid");
        Ok(())
    }

    pub async fn an_unreachable_backend_is_signer_unavailable(backend: &dyn Backend) -> TestResult {
        // Nothing listens on a port just released.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        fails_closed_in_time(backend, addr).await
    }

    pub async fn a_backend_that_never_answers_fails_closed_in_time(
        backend: &dyn Backend,
    ) -> TestResult {
        // The kernel completes the handshake from the backlog; no one answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
        fails_closed_in_time(backend, silent.local_addr()?).await
    }

    async fn fails_closed_in_time(backend: &dyn Backend, addr: SocketAddr) -> TestResult {
        let started = Instant::now();
        let Some(result) = backend.connect_at(addr, TIMEOUT).await else {
            eprintln!("not applicable: this backend has no network");
            return Ok(());
        };
        let waited = started.elapsed();
        let err = match result {
            Ok(signer) => panic!("connected to {addr}: {}", signer.key_id()),
            Err(e) => e,
        };
        assert_eq!(err.code(), "signer_unavailable", "{err:?}");
        assert!(waited < TIMEOUT + SLACK, "gave up after {waited:?}");
        Ok(())
    }
}

/// Declares the backend modules of `tests/contract/` and runs every check
/// for each, as `<backend>::<check>`.
macro_rules! contract {
    ($($(#[$attr:meta])* $backend:ident),* $(,)?) => {
        /// The backends, one module each.
        mod contract {
            $($(#[$attr])* pub mod $backend;)*
        }
        $(
            $(#[$attr])*
            mod $backend {
                use super::{TestResult, checks, contract};

                contract!(@check $backend signs_what_its_jwk_verifies);
                contract!(@check $backend key_id_is_the_rfc7638_thumbprint);
                contract!(@check $backend rotation_gives_a_new_kid_and_keeps_old_signatures_apart);
                contract!(@check $backend a_key_that_cannot_sign_es256_is_signer_key_invalid);
                contract!(@check $backend an_unreachable_backend_is_signer_unavailable);
                contract!(@check $backend a_backend_that_never_answers_fails_closed_in_time);
            }
        )*
    };
    (@check $backend:ident $check:ident) => {
        #[tokio::test]
        async fn $check() -> TestResult {
            let backend = contract::$backend::backend().await;
            checks::$check(&*backend).await
        }
    };
}

contract! {
    local,
    aws_kms,
    vault_transit,
    #[cfg(feature = "gcp-kms")] gcp,
}
