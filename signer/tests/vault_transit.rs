//! The Vault Transit signer against a real OpenBao/Vault dev server (built
//! from Go modules by `ensure_openbao`, started by the harness, stopped with
//! this process): tokens that `agentauth_core` accepts in both signature
//! encodings, refusals with what to do next, key rotation, Kubernetes auth
//! against the harness's kube-apiserver, and failing closed within the
//! timeout when Vault is not there or does not answer.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use agentauth_core::ErrorCode;
use agentauth_core::token;
use agentauth_signer::{
    Signer, SignerError, VaultAuth, VaultMarshaling, VaultTransitConfig, VaultTransitSigner,
    sign_token,
};
use agentauth_testenv::{LatencyProxy, OpenBao, shared_openbao};
use common::{T0, TestResult, claims, expect, pinned};

const MOUNT: &str = "transit";

/// A name no other test of this run uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The shared server with Transit mounted, and a new key of `key_type`.
async fn server_with_key(key_type: &str) -> (&'static OpenBao, String) {
    let bao = shared_openbao().await.unwrap();
    bao.enable_transit(MOUNT).await.unwrap();
    let name = unique("key");
    bao.create_key(MOUNT, &name, key_type).await.unwrap();
    (bao, name)
}

/// Root-token settings for `name` on `bao`, with short timeouts.
fn config(bao: &OpenBao, name: &str) -> VaultTransitConfig {
    let mut config = VaultTransitConfig::new(
        bao.address(),
        name,
        VaultAuth::Token(bao.root_token().to_owned()),
    );
    config.connect_timeout = Duration::from_secs(1);
    config.request_timeout = Duration::from_secs(2);
    config
}

/// A policy allowing exactly what the signer needs on `name`.
fn signer_policy(name: &str) -> String {
    format!(
        "path \"{MOUNT}/keys/{name}\" {{ capabilities = [\"read\"] }}\n\
         path \"{MOUNT}/sign/{name}\" {{ capabilities = [\"update\"] }}\n"
    )
}

#[tokio::test]
async fn a_transit_signed_token_verifies_in_both_encodings() -> TestResult {
    let (bao, name) = server_with_key("ecdsa-p256").await;
    let mut kids = Vec::new();
    for marshaling in [VaultMarshaling::Jws, VaultMarshaling::Asn1] {
        let mut config = config(bao, &name);
        config.marshaling = marshaling;
        let debug = format!("{config:?}");
        assert!(!debug.contains(bao.root_token()), "{debug}");
        let signer = VaultTransitSigner::connect(&config).await?;
        assert_eq!(signer.key_version(), 1);
        // Many signatures: Go's ECDSA gives high and low s alike, and both
        // encodings must come out as an r || s the verifier accepts.
        for i in 0..20 {
            let token = sign_token(&signer, &claims(T0 + i, 300)).await?;
            let signed = token::verify(&token, &pinned(&signer), &expect(), T0 + i)?;
            assert_eq!(signed.kid, signer.key_id());
            assert_eq!(signed.claims, claims(T0 + i, 300));
        }
        kids.push(signer.key_id().to_owned());
        let debug = format!("{signer:?}");
        assert!(
            debug.contains(&name) && debug.contains("redacted"),
            "{debug}"
        );
        assert!(!debug.contains(bao.root_token()), "{debug}");
    }
    assert_eq!(kids[0], kids[1], "one key, one kid, whatever the encoding");
    Ok(())
}

#[tokio::test]
async fn keys_that_cannot_sign_es256_are_refused_with_what_to_do() -> TestResult {
    let bao = shared_openbao().await?;
    bao.enable_transit(MOUNT).await?;
    for key_type in ["aes256-gcm96", "ed25519", "ecdsa-p384", "rsa-2048"] {
        let name = unique(key_type);
        bao.create_key(MOUNT, &name, key_type).await?;
        let err = VaultTransitSigner::connect(&config(bao, &name))
            .await
            .unwrap_err();
        assert!(matches!(err, SignerError::Load(_)), "{err:?}");
        assert_eq!(err.code(), "signer_key_invalid");
        let message = err.to_string();
        assert!(
            message.contains(&format!("its type is {key_type}"))
                && message.contains("type=ecdsa-p256"),
            "{message}"
        );
    }
    // No such key (or a wrong mount): says how to create one.
    let err = VaultTransitSigner::connect(&config(bao, "no-such-key"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "signer_key_invalid", "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("HTTP 404")
            && message.contains("bao write -f transit/keys/no-such-key type=ecdsa-p256"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn wrong_and_unprivileged_tokens_are_refused_with_what_to_do() -> TestResult {
    let (bao, name) = server_with_key("ecdsa-p256").await;
    // A token Vault does not know.
    let mut wrong = config(bao, &name);
    wrong.auth = VaultAuth::Token("hvs.not-a-real-token".into());
    let err = VaultTransitSigner::connect(&wrong).await.unwrap_err();
    assert_eq!(err.code(), "signer_key_invalid", "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("HTTP 403")
            && message.contains("the Vault token is not allowed this")
            && message.contains(&format!("`read` on transit/keys/{name}")),
        "{message}"
    );
    assert!(!message.contains("not-a-real-token"), "{message}");

    // A token that may read the key but not sign with it: connects, then
    // every signature is refused, naming the missing capability.
    let read_only = unique("read-only");
    bao.put_policy(
        &read_only,
        &format!("path \"{MOUNT}/keys/{name}\" {{ capabilities = [\"read\"] }}"),
    )
    .await?;
    let mut reader = config(bao, &name);
    reader.auth = VaultAuth::Token(bao.create_token(&[&read_only], "1h").await?);
    let signer = VaultTransitSigner::connect(&reader).await?;
    let err = signer.sign_digest(&[1; 32]).await.unwrap_err();
    assert_eq!(err.code(), "signer_refused", "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("`update` on transit/sign/{name}")),
        "{err}"
    );

    // The documented least privilege is enough.
    let policy = unique("signer");
    bao.put_policy(&policy, &signer_policy(&name)).await?;
    let mut least = config(bao, &name);
    least.auth = VaultAuth::Token(bao.create_token(&[&policy], "1h").await?);
    let signer = VaultTransitSigner::connect(&least).await?;
    let token = sign_token(&signer, &claims(T0, 300)).await?;
    token::verify(&token, &pinned(&signer), &expect(), T0)?;
    Ok(())
}

#[tokio::test]
async fn a_rotation_never_breaks_a_connected_signer_and_a_new_connect_gets_a_new_kid() -> TestResult
{
    let (bao, name) = server_with_key("ecdsa-p256").await;
    let before = VaultTransitSigner::connect(&config(bao, &name)).await?;
    let old_token = sign_token(&before, &claims(T0, 300)).await?;
    bao.rotate_key(MOUNT, &name).await?;
    bao.rotate_key(MOUNT, &name).await?;

    // Still pinned to version 1: its signatures verify with the JWK it published.
    assert_eq!(before.key_version(), 1);
    for i in 0..5 {
        let token = sign_token(&before, &claims(T0 + i, 300)).await?;
        token::verify(&token, &pinned(&before), &expect(), T0 + i)?;
    }

    let after = VaultTransitSigner::connect(&config(bao, &name)).await?;
    assert_eq!(after.key_version(), 3);
    assert_ne!(after.key_id(), before.key_id());
    let new_token = sign_token(&after, &claims(T0, 300)).await?;
    token::verify(&new_token, &pinned(&after), &expect(), T0)?;
    // Old tokens verify with the old JWK only, new ones with the new only.
    token::verify(&old_token, &pinned(&before), &expect(), T0)?;
    let err = token::verify(&old_token, &pinned(&after), &expect(), T0).unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenKeyUnknown);
    let err = token::verify(&new_token, &pinned(&before), &expect(), T0).unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenKeyUnknown);

    // Version 1 retired by policy: the pinned signer fails closed and says
    // to reconnect, it does not switch keys behind its JWK's back.
    bao.api(
        "POST",
        &format!("{MOUNT}/keys/{name}/config"),
        Some(serde_json::json!({ "min_decryption_version": 3, "min_encryption_version": 3 })),
    )
    .await?;
    let err = before.sign_digest(&[2; 32]).await.unwrap_err();
    assert_eq!(err.code(), "signer_refused", "{err:?}");
    assert!(err.to_string().contains("reconnect"), "{err}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_vault_fails_within_the_connect_timeout() -> TestResult {
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut config = VaultTransitConfig::new(
        format!("http://127.0.0.1:{port}"),
        "root",
        VaultAuth::Token("t".into()),
    );
    config.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = VaultTransitSigner::connect(&config).await.unwrap_err();
    assert!(matches!(err, SignerError::Unavailable(_)), "{err:?}");
    assert_eq!(err.code(), "signer_unavailable");
    assert!(
        err.to_string()
            .contains(&format!("cannot reach Vault at http://127.0.0.1:{port}")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A Vault that goes away after connecting.
    let mut bao = OpenBao::start().await?;
    bao.enable_transit(MOUNT).await?;
    bao.create_key(MOUNT, "gone", "ecdsa-p256").await?;
    let signer = VaultTransitSigner::connect(&self::config(&bao, "gone")).await?;
    bao.stop();
    let err = signer.sign_digest(&[3; 32]).await.unwrap_err();
    assert_eq!(err.code(), "signer_unavailable", "{err:?}");
    Ok(())
}

#[tokio::test]
async fn a_vault_that_never_answers_fails_closed_within_the_call_timeout() -> TestResult {
    // The kernel completes the handshake (the backlog) but no one ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut config = VaultTransitConfig::new(
        format!("http://{}", silent.local_addr()?),
        "root",
        VaultAuth::Token("t".into()),
    );
    config.request_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = VaultTransitSigner::connect(&config).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.code(), "signer_unavailable", "{err:?}");
    assert!(err.to_string().contains("no answer in time"), "{err}");
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // A connected signer whose Vault stops answering mid-flight.
    let (bao, name) = server_with_key("ecdsa-p256").await;
    let proxy = LatencyProxy::start(bao.addr()).await?;
    let mut config = self::config(bao, &name);
    config.address = format!("http://{}", proxy.addr());
    config.request_timeout = Duration::from_secs(1);
    let signer = VaultTransitSigner::connect(&config).await?;
    signer.sign_digest(&[4; 32]).await?;
    proxy.set_reply_delay(Duration::from_secs(30));
    let started = Instant::now();
    let err = signer.sign_digest(&[4; 32]).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.code(), "signer_unavailable", "{err:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    Ok(())
}

#[tokio::test]
async fn a_tls_vault_is_trusted_through_the_configured_ca_bundle() -> TestResult {
    let bao = OpenBao::start_tls().await?;
    bao.cli(&["secrets", "enable", "transit"]).await?;
    bao.cli(&["write", "-f", "transit/keys/tls", "type=ecdsa-p256"])
        .await?;
    let mut config = config(&bao, "tls");
    assert!(
        config.address.starts_with("https://127.0.0.1:"),
        "{}",
        config.address
    );
    config.ca_bundle = Some(bao.ca_path().unwrap().to_path_buf());
    let signer = VaultTransitSigner::connect(&config).await?;
    let token = sign_token(&signer, &claims(T0, 300)).await?;
    token::verify(&token, &pinned(&signer), &expect(), T0)?;

    // The system's roots do not know the dev server's CA.
    let mut untrusted = config.clone();
    untrusted.ca_bundle = None;
    let err = VaultTransitSigner::connect(&untrusted).await.unwrap_err();
    assert_eq!(err.code(), "signer_key_invalid", "{err:?}");
    assert!(err.to_string().contains("configure the CA bundle"), "{err}");

    // A bundle file with no certificate in it.
    let dir = tempfile::tempdir()?;
    let empty = dir.path().join("ca.pem");
    std::fs::write(&empty, "not a certificate\n")?;
    let mut broken = config.clone();
    broken.ca_bundle = Some(empty);
    let err = VaultTransitSigner::connect(&broken).await.unwrap_err();
    assert_eq!(err.code(), "signer_key_invalid", "{err:?}");
    assert!(err.to_string().contains("ca.pem"), "{err}");
    Ok(())
}

/// Kubernetes auth end to end: OpenBao reviews a TokenRequest token with the
/// harness's kube-apiserver, and the signer logs in again when its Vault
/// token expires or is revoked.
#[tokio::test]
async fn kubernetes_auth_logs_in_with_a_service_account_token_and_logs_in_again() -> TestResult {
    let (bao, name) = server_with_key("ecdsa-p256").await;
    let control_plane = agentauth_testenv::shared().await;
    let namespace = control_plane.test_namespace("vault-k8s").await?;
    let mount = unique("k8s");
    bao.enable_kubernetes_auth(control_plane, &mount).await?;
    let policy = unique("signer");
    bao.put_policy(&policy, &signer_policy(&name)).await?;
    // Vault tokens that live 2 s: renewed by a new login after 1.5 s.
    bao.kubernetes_role(
        &mount,
        "agentauth",
        &namespace,
        "agentauth",
        &[&policy],
        "2s",
    )
    .await?;
    let jwt =
        agentauth_testenv::service_account_token(control_plane, &namespace, "agentauth", 3600)
            .await?;
    let dir = tempfile::tempdir()?;
    let jwt_path = dir.path().join("token");
    std::fs::write(&jwt_path, &jwt)?;

    let mut config = config(bao, &name);
    config.auth = VaultAuth::Kubernetes {
        role: "agentauth".into(),
        jwt_path: jwt_path.clone(),
        mount: mount.clone(),
    };
    let signer = VaultTransitSigner::connect(&config).await?;
    let debug = format!("{signer:?}");
    assert!(
        !debug.contains(&jwt[..20]) && debug.contains("agentauth"),
        "{debug}"
    );
    let token = sign_token(&signer, &claims(T0, 300)).await?;
    token::verify(&token, &pinned(&signer), &expect(), T0)?;

    // Past the lease: a new login, transparently.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    signer.sign_digest(&[5; 32]).await?;

    // Every token from this auth mount revoked: a 403, a new login, a retry.
    bao.api(
        "PUT",
        &format!("sys/leases/revoke-prefix/auth/{mount}/login"),
        None,
    )
    .await?;
    assert_eq!(logins(bao, &mount).await, 0);
    signer.sign_digest(&[6; 32]).await?;
    assert_eq!(logins(bao, &mount).await, 1, "one new login");

    // A role that does not bind this service account: refused, with advice.
    bao.kubernetes_role(
        &mount,
        "other",
        &namespace,
        "someone-else",
        &[&policy],
        "1h",
    )
    .await?;
    let mut other = config.clone();
    other.auth = VaultAuth::Kubernetes {
        role: "other".into(),
        jwt_path,
        mount: mount.clone(),
    };
    let err = VaultTransitSigner::connect(&other).await.unwrap_err();
    assert_eq!(err.code(), "signer_key_invalid", "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("role other") && message.contains("binds this pod's service account"),
        "{message}"
    );
    assert!(!message.contains(&jwt[..20]), "{message}");

    // No token file: an I/O error naming the file.
    let mut missing = config.clone();
    missing.auth = VaultAuth::Kubernetes {
        role: "agentauth".into(),
        jwt_path: dir.path().join("absent"),
        mount,
    };
    let err = VaultTransitSigner::connect(&missing).await.unwrap_err();
    assert_eq!(err.code(), "signer_io", "{err:?}");
    assert!(err.to_string().contains("absent"), "{err}");
    Ok(())
}

/// How many Vault tokens from logins at `auth/<mount>` are alive (one lease each).
async fn logins(bao: &OpenBao, mount: &str) -> usize {
    // LIST answers 404 when there is none.
    match bao
        .api(
            "LIST",
            &format!("sys/leases/lookup/auth/{mount}/login/"),
            None,
        )
        .await
    {
        Ok(answer) => answer["data"]["keys"].as_array().map_or(0, Vec::len),
        Err(_) => 0,
    }
}
