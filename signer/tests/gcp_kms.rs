//! The Google Cloud KMS signer against the Cloud KMS stand-in
//! (`common/gcp_standin.rs`; no Cloud KMS emulator is available here):
//! tokens that `agentauth_core` accepts, every integrity check performed as
//! an attack (each test fails on a client that skips its check), refusals
//! with advice, rotation, and failing closed when the KMS is away or hangs.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use agentauth_core::token;
use agentauth_signer::gcp_kms::{AccessToken, GcpCredentials};
use agentauth_signer::{GcpKmsConfig, GcpKmsSigner, Signer, SignerError, sign_token};
use common::gcp_standin::{Fault, GcpKmsStandin, TOKEN};
use common::{T0, TestResult, claims, expect, pinned};

/// Settings for the stand-in: its endpoint, its token, one attempt, short timeouts.
fn config(standin: &GcpKmsStandin, key_version: &str) -> GcpKmsConfig {
    GcpKmsConfig {
        endpoint: Some(standin.endpoint()),
        credentials: GcpCredentials::AccessToken(AccessToken(TOKEN.into())),
        attempt_timeout: Duration::from_secs(2),
        call_timeout: Duration::from_secs(2),
        max_attempts: 1,
        ..GcpKmsConfig::new(key_version)
    }
}

/// A stand-in with one key and a signer connected to it.
async fn connected() -> Result<(GcpKmsStandin, GcpKmsSigner), Box<dyn std::error::Error>> {
    let standin = GcpKmsStandin::start().await?;
    let version = standin.create_key("root");
    let signer = GcpKmsSigner::connect(&config(&standin, &version)).await?;
    Ok((standin, signer))
}

fn load_error(err: &SignerError, needle: &str) {
    assert!(matches!(err, SignerError::Load(_)), "{err:?}");
    assert!(err.to_string().contains(needle), "{err}");
}

fn sign_error(err: &SignerError, needle: &str) {
    assert!(matches!(err, SignerError::Sign(_)), "{err:?}");
    assert!(err.to_string().contains(needle), "{err}");
}

#[tokio::test]
async fn a_cloud_kms_signed_token_verifies() -> TestResult {
    let (standin, signer) = connected().await?;
    let token = sign_token(&signer, &claims(T0, 300)).await?;
    let signed = token::verify(&token, &pinned(&signer), &expect(), T0)?;
    assert_eq!(signed.kid, signer.key_id());
    assert_eq!(signed.claims, claims(T0, 300));
    // One getPublicKey at connect, one asymmetricSign per signature.
    let name = signer.key_version();
    assert_eq!(
        standin.requests(),
        [
            format!("GET /v1/{name}/publicKey"),
            format!("POST /v1/{name}:asymmetricSign")
        ]
    );
    // The same version, connected again, has the same id.
    let again = GcpKmsSigner::connect(&config(&standin, name)).await?;
    assert_eq!(again.key_id(), signer.key_id());
    let debug = format!("{signer:?} {:?}", config(&standin, name));
    assert!(debug.contains(name) && !debug.contains(TOKEN), "{debug}");
    Ok(())
}

#[tokio::test]
async fn a_key_of_another_algorithm_is_refused() -> TestResult {
    let standin = GcpKmsStandin::start().await?;
    let p384 = standin.create_p384_key("p384");
    let err = GcpKmsSigner::connect(&config(&standin, &p384))
        .await
        .unwrap_err();
    load_error(
        &err,
        "its algorithm is EC_SIGN_P384_SHA384, not EC_SIGN_P256_SHA256",
    );
    load_error(&err, "--default-algorithm ec-sign-p256-sha256");
    Ok(())
}

#[tokio::test]
async fn a_key_name_without_version_is_refused_before_any_request() -> TestResult {
    let standin = GcpKmsStandin::start().await?;
    let version = standin.create_key("root");
    let key = version.rsplit_once("/cryptoKeyVersions/").unwrap().0;
    let err = GcpKmsSigner::connect(&config(&standin, key))
        .await
        .unwrap_err();
    load_error(&err, "is not a Cloud KMS key version name");
    assert!(standin.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_public_key_that_does_not_match_its_crc32c_is_refused() -> TestResult {
    let standin = GcpKmsStandin::start().await?;
    let version = standin.create_key("root");
    standin.fail_next(Fault::PemCrc32c);
    let err = GcpKmsSigner::connect(&config(&standin, &version))
        .await
        .unwrap_err();
    load_error(&err, "does not match its pemCrc32c");
    Ok(())
}

#[tokio::test]
async fn a_public_key_of_another_version_is_refused() -> TestResult {
    let standin = GcpKmsStandin::start().await?;
    let version = standin.create_key("root");
    let other = standin.rotate("root");
    standin.fail_next(Fault::OtherName(other.clone()));
    let err = GcpKmsSigner::connect(&config(&standin, &version))
        .await
        .unwrap_err();
    load_error(
        &err,
        &format!("getPublicKey answered for another key version, {other:?}"),
    );
    Ok(())
}

#[tokio::test]
async fn a_signature_that_does_not_match_its_crc32c_is_refused() -> TestResult {
    let (standin, signer) = connected().await?;
    standin.fail_next(Fault::SignatureCrc32c);
    let err = signer.sign_digest(&[7; 32]).await.unwrap_err();
    sign_error(&err, "does not match its signatureCrc32c");
    // The next one is fine again.
    signer.sign_digest(&[7; 32]).await?;
    Ok(())
}

#[tokio::test]
async fn a_digest_kms_did_not_verify_is_refused() -> TestResult {
    let (standin, signer) = connected().await?;
    standin.fail_next(Fault::DigestNotVerified);
    let err = signer.sign_digest(&[7; 32]).await.unwrap_err();
    sign_error(&err, "verifiedDigestCrc32c is false");
    Ok(())
}

#[tokio::test]
async fn a_signature_that_does_not_verify_is_refused() -> TestResult {
    let (standin, signer) = connected().await?;
    // A valid signature by the right key, with the right CRC32C, over another digest.
    standin.fail_next(Fault::WrongSignature);
    let err = signer.sign_digest(&[7; 32]).await.unwrap_err();
    sign_error(&err, "does not verify against its public key");
    Ok(())
}

#[tokio::test]
async fn a_signature_from_another_version_is_refused() -> TestResult {
    let (standin, signer) = connected().await?;
    let other = standin.rotate("root");
    standin.fail_next(Fault::OtherName(other.clone()));
    let err = signer.sign_digest(&[7; 32]).await.unwrap_err();
    sign_error(
        &err,
        &format!("asymmetricSign answered for another key version, {other:?}"),
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_token_or_permission_is_a_clear_error() -> TestResult {
    let standin = GcpKmsStandin::start().await?;
    let version = standin.create_key("root");
    let mut wrong = config(&standin, &version);
    wrong.credentials = GcpCredentials::AccessToken(AccessToken("ya29.expired".into()));
    let err = GcpKmsSigner::connect(&wrong).await.unwrap_err();
    load_error(&err, "refused getPublicKey: UNAUTHENTICATED");
    load_error(&err, "check the credentials");
    assert!(!err.to_string().contains("ya29.expired"), "{err}");

    let missing = version.replace("cryptoKeyVersions/1", "cryptoKeyVersions/9");
    let err = GcpKmsSigner::connect(&config(&standin, &missing))
        .await
        .unwrap_err();
    load_error(&err, "NOT_FOUND");
    load_error(&err, &format!("check that {missing} exists"));

    // Allowed to read the public key, not to sign.
    let signer = GcpKmsSigner::connect(&config(&standin, &version)).await?;
    standin.allow_signing(false);
    let err = signer.sign_digest(&[7; 32]).await.unwrap_err();
    sign_error(
        &err,
        "PERMISSION_DENIED: Permission 'cloudkms.cryptoKeyVersions.useToSign' denied",
    );
    sign_error(
        &err,
        "grant the signer's service account roles/cloudkms.signerVerifier",
    );

    // A token revoked after connecting.
    standin.allow_signing(true);
    standin.set_token("ya29.rotated");
    let err = signer.sign_digest(&[7; 32]).await.unwrap_err();
    sign_error(&err, "refused asymmetricSign: UNAUTHENTICATED");
    Ok(())
}

#[tokio::test]
async fn a_new_version_has_a_new_kid_and_old_signatures_still_verify() -> TestResult {
    let (standin, v1) = connected().await?;
    let old_token = sign_token(&v1, &claims(T0, 300)).await?;
    let v2 = GcpKmsSigner::connect(&config(&standin, &standin.rotate("root"))).await?;
    assert_ne!(v1.key_id(), v2.key_id());
    assert_ne!(v1.public_jwk(), v2.public_jwk());
    let new_token = sign_token(&v2, &claims(T0 + 1, 300)).await?;
    // A verifier holding both JWKs during the overlap accepts both tokens,
    // each under its own kid.
    assert_eq!(
        token::verify(&old_token, &pinned(&v1), &expect(), T0 + 1)?.kid,
        v1.key_id()
    );
    assert_eq!(
        token::verify(&new_token, &pinned(&v2), &expect(), T0 + 1)?.kid,
        v2.key_id()
    );
    assert!(token::verify(&old_token, &pinned(&v2), &expect(), T0 + 1).is_err());
    // The old version still signs (it stays enabled until disabled in KMS).
    sign_token(&v1, &claims(T0 + 2, 300)).await?;
    Ok(())
}

#[tokio::test]
async fn an_unreachable_kms_fails_closed_within_the_timeout() -> TestResult {
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut gone = GcpKmsConfig::new(
        "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
    );
    gone.endpoint = Some(format!("http://127.0.0.1:{port}"));
    gone.credentials = GcpCredentials::AccessToken(AccessToken(TOKEN.into()));
    gone.call_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let err = GcpKmsSigner::connect(&gone).await.unwrap_err();
    assert!(matches!(err, SignerError::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("http://127.0.0.1:{port}")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A KMS that goes away after connecting.
    let (standin, signer) = connected().await?;
    drop(standin);
    let started = Instant::now();
    let err = signer.sign_digest(&[7; 32]).await.unwrap_err();
    assert!(matches!(err, SignerError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("asymmetricSign"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_hanging_kms_fails_closed_within_the_timeout() -> TestResult {
    let standin = GcpKmsStandin::start().await?;
    let version = standin.create_key("root");
    let signer = GcpKmsSigner::connect(&config(&standin, &version)).await?;
    standin.hang();
    for (attempt_timeout, call_timeout) in [(2, 1), (1, 2)] {
        let mut hung = config(&standin, &version);
        hung.attempt_timeout = Duration::from_secs(attempt_timeout);
        hung.call_timeout = Duration::from_secs(call_timeout);
        let started = Instant::now();
        let err = GcpKmsSigner::connect(&hung).await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, SignerError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("getPublicKey"), "{err}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2900),
            "{took:?}"
        );
    }
    let started = Instant::now();
    let err = signer.sign_digest(&[7; 32]).await.unwrap_err();
    assert!(matches!(err, SignerError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("asymmetricSign"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}
