//! `agentauth root-key`: the root key an install needs before its first
//! verifier starts. The printed JWK must be the one the operator signs with
//! (a local file, a real AWS KMS key on `moto_server`, a Transit key of a
//! real Vault-API server), and an existing key is never replaced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use agentauth_signer::aws_kms::create_key;
use agentauth_signer::{
    AwsKmsConfig, AwsKmsSigner, LocalSigner, Signer, StaticCredentials, VaultAuth,
    VaultTransitConfig, VaultTransitSigner,
};
use serde_json::Value;

fn agentauth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agentauth"))
        .args(args)
        .env_remove("AGENTAUTH_KMS_KEY_ID")
        .output()
        .unwrap()
}

fn jwk_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn generate_writes_a_private_key_and_prints_the_public_jwk_it_signs_with() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("root-key.pem");
    let path = file.to_str().unwrap();
    let printed = jwk_of(&agentauth(&["root-key", "generate", path]));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file is readable by its owner only");
    let signer = LocalSigner::from_file(&file).unwrap();
    assert_eq!(printed, serde_json::to_value(signer.public_jwk()).unwrap());
    assert_eq!(printed["kty"], "EC");
    assert!(printed.get("d").is_none(), "never the private part");
    assert_eq!(printed["kid"].as_str(), Some(signer.key_id()));
    // `jwk --file` prints the same.
    assert_eq!(
        jwk_of(&agentauth(&["root-key", "jwk", "--file", path])),
        printed
    );
}

#[test]
fn generate_never_replaces_an_existing_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("root-key.pem");
    std::fs::write(&file, "precious").unwrap();
    let out = agentauth(&["root-key", "generate", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("never replaced"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
}

#[test]
fn jwk_needs_a_key_to_read() {
    let out = agentauth(&["root-key", "jwk"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--file") && stderr.contains("--kms-key-id"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwk_prints_the_public_key_of_a_real_aws_kms_key() {
    let moto = agentauth_testenv::shared_moto().await.unwrap();
    let config = AwsKmsConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(moto.endpoint().into()),
        credentials: Some(StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
        }),
        max_attempts: 1,
        ..AwsKmsConfig::default()
    };
    let key_id = create_key(&config, "root-key cli test").await.unwrap();
    let signer = AwsKmsSigner::connect(&config, &key_id).await.unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agentauth"))
        .args(["root-key", "jwk", "--kms-key-id", &key_id])
        .args([
            "--kms-region",
            "us-east-1",
            "--kms-endpoint",
            moto.endpoint(),
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert_eq!(
        jwk_of(&out),
        serde_json::to_value(signer.public_jwk()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwk_prints_the_public_key_of_a_real_vault_transit_key() {
    let bao = agentauth_testenv::shared_openbao().await.unwrap();
    bao.enable_transit("transit").await.unwrap();
    let name = format!("root-key-cli-{}", std::process::id());
    bao.create_key("transit", &name, "ecdsa-p256")
        .await
        .unwrap();
    let config = VaultTransitConfig::new(
        bao.address(),
        name.as_str(),
        VaultAuth::Token(bao.root_token().to_owned()),
    );
    let signer = VaultTransitSigner::connect(&config).await.unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agentauth"))
        .args(["root-key", "jwk", "--signer", "vault-transit"])
        .args(["--vault-addr", bao.address(), "--vault-key", &name])
        .env("VAULT_TOKEN", bao.root_token())
        .output()
        .unwrap();
    assert_eq!(
        jwk_of(&out),
        serde_json::to_value(signer.public_jwk()).unwrap()
    );
}
