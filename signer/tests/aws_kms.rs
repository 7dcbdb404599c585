//! The AWS KMS signer against a real `moto_server` (started by the harness,
//! stopped with this process): key creation, tokens that `agentauth_core`
//! accepts, refusals, and clear errors when the KMS is not there.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use agentauth_core::ErrorCode;
use agentauth_core::token;
use agentauth_signer::aws_kms::create_key;
use agentauth_signer::{AwsKmsSigner, LocalSigner, Signer, SignerError, sign_compact, sign_token};
use common::{T0, TestResult, claims, expect, moto_config, pinned, shared_moto_config};

#[tokio::test]
async fn a_kms_signed_token_verifies() -> TestResult {
    let config = shared_moto_config().await;
    let key_id = create_key(&config, "agentauth test root").await?;
    let signer = AwsKmsSigner::connect(&config, &key_id).await?;
    assert_eq!(signer.kms_key_id(), key_id);
    let token = sign_token(&signer, &claims(T0, 300)).await?;
    let signed = token::verify(&token, &pinned(&signer), &expect(), T0)?;
    assert_eq!(signed.kid, signer.key_id());
    assert_eq!(signed.claims, claims(T0, 300));
    // The same key, connected again, has the same id.
    let again = AwsKmsSigner::connect(&config, &key_id).await?;
    assert_eq!(again.key_id(), signer.key_id());
    let debug = format!("{signer:?}");
    assert!(
        debug.contains(&key_id) && !debug.contains("testing"),
        "{debug}"
    );
    Ok(())
}

#[tokio::test]
async fn a_signature_by_another_kms_key_is_refused() -> TestResult {
    let config = shared_moto_config().await;
    let a = AwsKmsSigner::connect(&config, &create_key(&config, "a").await?).await?;
    let b = AwsKmsSigner::connect(&config, &create_key(&config, "b").await?).await?;
    assert_ne!(a.key_id(), b.key_id());
    // Key A signs a token that claims to come from key B.
    let input = token::signing_input(b.key_id(), &claims(T0, 300))?;
    let forged = sign_compact(&a, &input).await?;
    let err = token::verify(&forged, &pinned(&b), &expect(), T0).unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenSignatureInvalid);
    // A's honest token is unknown to a verifier that trusts only B.
    let honest = sign_token(&a, &claims(T0, 300)).await?;
    let err = token::verify(&honest, &pinned(&b), &expect(), T0).unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenKeyUnknown);
    Ok(())
}

#[tokio::test]
async fn keys_that_cannot_sign_es256_are_refused() -> TestResult {
    let config = shared_moto_config().await;
    // A symmetric encryption key, CreateKey's default.
    let output = config.client().await?.create_key().send().await?;
    let symmetric = output.key_metadata().unwrap().key_id().to_owned();
    let err = AwsKmsSigner::connect(&config, &symmetric)
        .await
        .unwrap_err();
    assert!(matches!(err, SignerError::Load(_)), "{err:?}");
    assert!(err.to_string().contains("SIGN_VERIFY"), "{err}");

    let err = AwsKmsSigner::connect(&config, "00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert!(matches!(err, SignerError::Load(_)), "{err:?}");
    assert!(err.to_string().contains("NotFoundException"), "{err}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_kms_is_a_clear_error() -> TestResult {
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = moto_config(&format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    let err = AwsKmsSigner::connect(&config, "alias/root")
        .await
        .unwrap_err();
    assert!(matches!(err, SignerError::Unavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "cannot reach http://127.0.0.1:{port} for GetPublicKey"
        )),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A KMS that goes away after connecting.
    let moto = agentauth_testenv::MotoServer::start().await?;
    let config = moto_config(moto.endpoint());
    let signer = AwsKmsSigner::connect(&config, &create_key(&config, "gone").await?).await?;
    drop(moto);
    let err = sign_token(&signer, &claims(T0, 300)).await.unwrap_err();
    assert!(matches!(err, SignerError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("for Sign"), "{err}");
    Ok(())
}

#[tokio::test]
async fn one_kms_sign_and_one_local_sign_timed() -> TestResult {
    let config = shared_moto_config().await;
    let kms = AwsKmsSigner::connect(&config, &create_key(&config, "timing").await?).await?;
    let local = LocalSigner::generate()?;
    let digest = [7_u8; 32];
    // Warm up: the KMS connection, aws-lc's tables.
    kms.sign_digest(&digest).await?;
    local.sign_digest(&digest).await?;
    let rounds = 20_u32;
    let started = Instant::now();
    for _ in 0..rounds {
        kms.sign_digest(&digest).await?;
    }
    let kms_each = started.elapsed() / rounds;
    let started = Instant::now();
    for _ in 0..rounds {
        local.sign_digest(&digest).await?;
    }
    let local_each = started.elapsed() / rounds;
    // A measurement, not a check: debug builds sign locally ~100x slower than release.
    eprintln!("sign_digest: KMS (moto) {kms_each:?}, local {local_each:?} (mean of {rounds})");
    Ok(())
}
