//! The key hierarchy as a verifier sees it: tokens verified through the
//! published JWKS and a pinned root (local and KMS roots), rotation with
//! tokens in flight, direct mode, and a KMS root that goes away.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentauth_core::ErrorCode;
use agentauth_core::keycert::{Jwks, RootKey, TrustedKeys};
use agentauth_core::token::{self, SignedToken};
use agentauth_signer::aws_kms::create_key;
use agentauth_signer::{
    AwsKmsSigner, HierarchyConfig, KeyHierarchy, LocalSigner, Signer, SignerError,
};
use common::{ISSUER, T0, TestResult, claims, expect, moto_config, shared_moto_config};

const HOUR: i64 = 3600;

/// What a verifier does: fetch the JWKS (here: serialize and parse it), check
/// it against the root it pinned, verify the token at `now`.
fn verify_via_jwks(
    hierarchy: &KeyHierarchy,
    pinned_root: &RootKey,
    token: &str,
    now: i64,
) -> agentauth_core::Result<SignedToken> {
    let json = serde_json::to_string(&hierarchy.jwks(now)).unwrap();
    let jwks = Jwks::parse(&json)?;
    let trusted = TrustedKeys::from_jwks(&jwks, pinned_root, ISSUER, now);
    assert!(trusted.rejected().is_empty(), "{:?}", trusted.rejected());
    token::verify(token, &trusted.at(now), &expect(), now)
}

fn pin(root: &dyn Signer) -> RootKey {
    RootKey::from_jwk(root.public_jwk()).unwrap()
}

async fn certifies_and_verifies(root: Arc<dyn Signer>) -> TestResult {
    let pinned_root = pin(&*root);
    let hierarchy = KeyHierarchy::certified(root, HierarchyConfig::new(ISSUER), T0).await?;
    let (kid, _) = hierarchy.current();
    assert_ne!(kid, pinned_root.kid, "tokens are signed by the issuing key");
    let jwks = hierarchy.jwks(T0);
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].kid, kid);
    assert!(jwks.keys[0].cert.is_some());
    assert_eq!(
        jwks.root.as_ref().unwrap().kid.as_deref(),
        Some(&*pinned_root.kid)
    );
    let token = hierarchy.sign_token(&claims(T0, 300)).await?;
    let signed = verify_via_jwks(&hierarchy, &pinned_root, &token, T0 + 10)?;
    assert_eq!(signed.kid, kid);
    // A verifier that pinned another root trusts nothing in this JWKS.
    let stranger = pin(&LocalSigner::generate()?);
    let trusted = TrustedKeys::from_jwks(&hierarchy.jwks(T0), &stranger, ISSUER, T0);
    assert_eq!(trusted.kids().count(), 0);
    let err = token::verify(&token, &trusted.at(T0), &expect(), T0).unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenKeyUnknown);
    Ok(())
}

#[tokio::test]
async fn a_local_root_certifies_an_issuing_key() -> TestResult {
    certifies_and_verifies(Arc::new(LocalSigner::generate()?)).await
}

#[tokio::test]
async fn a_kms_root_certifies_an_issuing_key() -> TestResult {
    let config = shared_moto_config().await;
    let root = AwsKmsSigner::connect(&config, &create_key(&config, "root").await?).await?;
    certifies_and_verifies(Arc::new(root)).await
}

#[tokio::test]
async fn rotation_keeps_tokens_in_flight_valid_until_they_expire() -> TestResult {
    let root = Arc::new(LocalSigner::generate()?);
    let pinned_root = pin(&*root);
    let hierarchy = KeyHierarchy::certified(root, HierarchyConfig::new(ISSUER), T0).await?;
    let (old_kid, _) = hierarchy.current();
    let rotation = T0 + 6 * HOUR;
    assert_eq!(hierarchy.next_rotation(), Some(rotation));

    // A full-lifetime token signed just before the rotation.
    let in_flight = hierarchy.sign_token(&claims(rotation - 1, HOUR)).await?;
    assert!(!hierarchy.rotate_if_due(rotation - 1).await?);
    assert!(hierarchy.rotate_if_due(rotation).await?);
    assert!(!hierarchy.rotate_if_due(rotation + 1).await?);
    let (new_kid, _) = hierarchy.current();
    assert_ne!(new_kid, old_kid);
    assert_eq!(hierarchy.next_rotation(), Some(rotation + 6 * HOUR));

    // Both keys are published; the token in flight verifies to its last second.
    let kids: Vec<_> = hierarchy
        .jwks(rotation)
        .keys
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, [new_kid.clone(), old_kid.clone()]);
    let last_second = rotation - 1 + HOUR - 1;
    verify_via_jwks(&hierarchy, &pinned_root, &in_flight, last_second)?;
    let fresh = hierarchy.sign_token(&claims(rotation, 300)).await?;
    assert_eq!(
        verify_via_jwks(&hierarchy, &pinned_root, &fresh, rotation)?.kid,
        new_kid
    );

    // The retired key stays for max token lifetime + clock skew after retiring.
    let dropped = rotation + HOUR + 60;
    assert_eq!(hierarchy.jwks(dropped - 1).keys.len(), 2);
    assert_eq!(hierarchy.jwks(dropped).keys.len(), 1);
    assert!(!hierarchy.rotate_if_due(dropped).await?); // prunes it
    let jwks = hierarchy.jwks(dropped);
    let trusted = TrustedKeys::from_jwks(&jwks, &pinned_root, ISSUER, dropped);
    let err = token::verify_signature(&in_flight, &trusted.at(dropped)).unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenKeyUnknown);
    Ok(())
}

#[tokio::test]
async fn direct_mode_signs_with_the_root_and_publishes_it_alone() -> TestResult {
    let config = shared_moto_config().await;
    let kms = AwsKmsSigner::connect(&config, &create_key(&config, "direct").await?).await?;
    for root in [
        Arc::new(LocalSigner::generate()?) as Arc<dyn Signer>,
        Arc::new(kms),
    ] {
        let pinned_root = pin(&*root);
        let hierarchy = KeyHierarchy::direct(Arc::clone(&root));
        assert!(hierarchy.is_direct());
        assert_eq!(hierarchy.current().0, pinned_root.kid);
        assert_eq!(hierarchy.current_key().not_after, i64::MAX);
        let jwks = hierarchy.jwks(T0);
        assert_eq!(jwks.keys.len(), 1);
        assert_eq!(jwks.keys[0].kid, pinned_root.kid);
        assert!(jwks.keys[0].cert.is_none());
        let token = hierarchy.sign_token(&claims(T0, 300)).await?;
        assert_eq!(
            verify_via_jwks(&hierarchy, &pinned_root, &token, T0)?.kid,
            pinned_root.kid
        );
        assert!(!hierarchy.rotate_if_due(T0 + 100 * HOUR).await?);
        assert_eq!(hierarchy.next_rotation(), None);
    }
    Ok(())
}

#[tokio::test]
async fn an_unreachable_kms_root_keeps_the_current_issuing_key() -> TestResult {
    let moto = agentauth_testenv::MotoServer::start().await?;
    let config = moto_config(moto.endpoint());
    let root = AwsKmsSigner::connect(&config, &create_key(&config, "root").await?).await?;
    let pinned_root = pin(&root);
    let hierarchy =
        KeyHierarchy::certified(Arc::new(root), HierarchyConfig::new(ISSUER), T0).await?;
    let (kid, _) = hierarchy.current();
    drop(moto);

    let due = T0 + 6 * HOUR;
    let err = hierarchy.rotate_if_due(due).await.unwrap_err();
    assert!(matches!(err, SignerError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("for Sign"), "{err}");
    // Issuance goes on with the current key, which the root certified for 24 h.
    assert_eq!(hierarchy.current().0, kid);
    let token = hierarchy.sign_token(&claims(due, 300)).await?;
    verify_via_jwks(&hierarchy, &pinned_root, &token, due)?;
    // But never past its certificate.
    let late = claims(T0 + 24 * HOUR - 100, 300);
    let err = hierarchy.sign_token(&late).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("after its issuing key's certificate"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn timings_that_could_strand_tokens_are_refused() -> TestResult {
    let root: Arc<dyn Signer> = Arc::new(LocalSigner::generate()?);
    let short = HierarchyConfig {
        validity: Duration::from_secs(6 * 3600),
        ..HierarchyConfig::new(ISSUER)
    };
    let long = HierarchyConfig {
        validity: Duration::from_secs(8 * 24 * 3600),
        ..HierarchyConfig::new(ISSUER)
    };
    let no_issuer = HierarchyConfig::new("");
    for config in [short, long, no_issuer] {
        let err = KeyHierarchy::certified(Arc::clone(&root), config.clone(), T0)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, SignerError::Load(_)), "{config:?}: {err:?}");
    }
    Ok(())
}

#[tokio::test]
async fn the_rotation_task_follows_the_injected_clock() -> TestResult {
    use std::sync::atomic::{AtomicI64, Ordering};
    let root: Arc<dyn Signer> = Arc::new(LocalSigner::generate()?);
    let hierarchy =
        Arc::new(KeyHierarchy::certified(root, HierarchyConfig::new(ISSUER), T0).await?);
    let clock = Arc::new(AtomicI64::new(T0 + HOUR));
    let task = tokio::spawn({
        let (hierarchy, clock) = (Arc::clone(&hierarchy), Arc::clone(&clock));
        async move {
            let now = move || clock.load(Ordering::SeqCst);
            hierarchy
                .rotate_periodically(now, Duration::from_millis(5))
                .await;
        }
    });
    let (first, _) = hierarchy.current();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(hierarchy.current().0, first, "not due yet");
    clock.store(T0 + 6 * HOUR, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while hierarchy.current().0 == first {
        assert!(std::time::Instant::now() < deadline, "no rotation");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(hierarchy.next_rotation(), Some(T0 + 12 * HOUR));
    task.abort();
    Ok(())
}
