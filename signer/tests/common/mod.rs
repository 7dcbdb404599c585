//! Fixtures shared by the signer's test binaries.

#![allow(dead_code, reason = "each test binary uses its own part")]

pub mod gcp_standin;

use agentauth_core::es256::VerifyingKey;
use agentauth_core::token::{AccessTokenClaims, Confirmation, Expectations, GrantRef};
use agentauth_signer::{AwsKmsConfig, Signer, StaticCredentials};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub const ISSUER: &str = "https://agentauth.test";
pub const AUDIENCE: &str = "shop";
/// A fixed "now" (2023-11-14T22:13:20Z); tests move time by adding to it.
pub const T0: i64 = 1_700_000_000;

/// Claims of a token issued at `iat` that lives `lifetime` seconds.
pub fn claims(iat: i64, lifetime: i64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISSUER.into(),
        sub: "team-a/agent".into(),
        aud: AUDIENCE.into(),
        client_id: "team-a/agent".into(),
        iat,
        nbf: iat,
        exp: iat + lifetime,
        jti: format!("jti-{iat}"),
        cnf: Confirmation {
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
        },
        authorization_details: vec![],
        grant: GrantRef {
            uid: "3f1e2d4c".into(),
            generation: 1,
        },
        env: None,
    }
}

pub fn expect() -> Expectations {
    Expectations {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        leeway_secs: 0,
    }
}

/// What a verifier pins for `signer` when it trusts it directly: `(kid, key)`.
pub fn pinned(signer: &dyn Signer) -> (String, VerifyingKey) {
    let public = signer.public_jwk().to_public_key().unwrap();
    assert_eq!(public.thumbprint, signer.key_id(), "kid is the thumbprint");
    (signer.key_id().to_owned(), public.key)
}

/// Settings for a moto server: dummy static credentials on the SDK config
/// (not in the process environment), one attempt, short timeouts.
pub fn moto_config(endpoint: &str) -> AwsKmsConfig {
    AwsKmsConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.into()),
        credentials: Some(StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
        }),
        max_attempts: 1,
        ..AwsKmsConfig::default()
    }
}

/// The shared moto server's settings; the test fails if it cannot start.
pub async fn shared_moto_config() -> AwsKmsConfig {
    let moto = agentauth_testenv::shared_moto().await.unwrap();
    moto_config(moto.endpoint())
}
