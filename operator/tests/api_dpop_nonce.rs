//! DPoP server nonces at `POST /v1/token` (RFC 9449 §8) against a real
//! apiserver, driven by an independent client: its proofs are built here
//! with the `p256` crate, `serde_json` and `base64`, not with AgentAuth's
//! DPoP code, so the test checks the wire protocol and not our own code
//! against itself.
//!
//! Threat: pre-generated DPoP proofs (a stolen key's proofs made in advance,
//! with future `iat`s, used after the key was replaced) — RFC 9449 §8/§11.1;
//! issue 12 "Also". With nonces on, a proof is usable only with a nonce the
//! operator handed out during the last one or two periods.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use std::sync::Arc;

use agentauth_core::dpop::nonce::NonceIssuer;
use agentauth_core::jwk::EcPublicJwk;
use api_support::{Harness, Options, problem, within};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const NONCE_KEY: &[u8] = b"operator nonce key for the tests, 32+ bytes";
const PERIOD: i64 = 60;

/// An OAuth client with its own DPoP implementation.
struct IndependentClient {
    key: SigningKey,
    x: String,
    y: String,
}

impl IndependentClient {
    fn new() -> Self {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let point = key.verifying_key().to_encoded_point(false);
        IndependentClient {
            x: B64.encode(point.x().unwrap()),
            y: B64.encode(point.y().unwrap()),
            key,
        }
    }

    fn public_jwk(&self) -> EcPublicJwk {
        serde_json::from_value(json!({"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y}))
            .unwrap()
    }

    /// RFC 7638: SHA-256 of the required members in lexicographic order.
    fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.x, self.y
        );
        B64.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// An RFC 9449 §4.2 proof for `POST url`, with `jti` and `nonce`.
    fn proof(&self, url: &str, jti: &str, nonce: Option<&str>) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256",
            "jwk": {"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y}});
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({"jti": jti, "htm": "POST", "htu": url, "iat": iat});
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature.to_bytes()))
    }
}

fn fresh_jti() -> String {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    B64.encode(bytes)
}

fn issuer() -> Arc<NonceIssuer> {
    Arc::new(NonceIssuer::new(NONCE_KEY, "operator", PERIOD).unwrap())
}

/// An API with `options`, the independent client as agent `bot`, grant `g`
/// approved for a day.
async fn setup(prefix: &str, options: Options) -> (Harness, IndependentClient) {
    let h = Harness::start(prefix, options).await;
    let client = IndependentClient::new();
    h.agent_with_key("bot", client.public_jwk()).await;
    h.grant("g", "bot", json!({})).await;
    h.approve("g", h.now() + 86_400).await;
    (h, client)
}

async fn post_token(h: &Harness, proof: &str) -> reqwest::Response {
    h.http
        .post(h.url("/v1/token"))
        .header("DPoP", proof)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("grant={}%2Fg", h.ns))
        .send()
        .await
        .unwrap()
}

fn nonce_of(response: &reqwest::Response) -> String {
    let value = response
        .headers()
        .get("dpop-nonce")
        .expect("a DPoP-Nonce header");
    value.to_str().unwrap().to_owned()
}

/// Threat: pre-generated DPoP proofs — RFC 9449 §8/§11.1; issue 12 "Also".
/// The RFC 9449 §8 flow as any OAuth client runs it: no nonce → 400
/// `use_dpop_nonce` with `DPoP-Nonce`; retry with it → a token. The refused
/// proof burnt nothing: its very `jti`, in the retry, is accepted.
#[tokio::test]
async fn independent_client_retries_with_the_servers_nonce() {
    within(async {
        let options = Options {
            dpop_nonce: Some(issuer()),
            ..Options::default()
        };
        let (h, client) = setup("nonce-flow", options).await;
        let url = h.url("/v1/token");
        let jti = fresh_jti();

        let refused = post_token(&h, &client.proof(&url, &jti, None)).await;
        let nonce = nonce_of(&refused);
        let body = problem(refused, 400, "use_dpop_nonce").await;
        assert_eq!(
            body["error"], "use_dpop_nonce",
            "OAuth error member: {body}"
        );

        let issued = post_token(&h, &client.proof(&url, &jti, Some(&nonce))).await;
        assert_eq!(issued.status(), 200);
        assert!(
            !nonce_of(&issued).is_empty(),
            "success carries the nonce too"
        );
        let body: Value = issued.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap();
        let claims = h.verify(token, "https://calendar.example.com").await.claims;
        assert_eq!(claims.cnf.jkt, client.thumbprint());

        // The accepted proof's jti is now spent: replay protection still holds.
        let replay = post_token(&h, &client.proof(&url, &jti, Some(&nonce))).await;
        problem(replay, 401, "dpop_replayed").await;
    })
    .await;
}

/// Threat: pre-generated DPoP proofs — RFC 9449 §8/§11.1; issue 12 "Also".
/// A proof made with a nonce that is forged, of another key or scope, or
/// older than two periods (what a proof made in advance would carry) is
/// refused `use_dpop_nonce` with a fresh nonce; a proof whose signature
/// fails is refused for that first.
#[tokio::test]
async fn forged_foreign_and_expired_nonces_are_refused() {
    within(async {
        let options = Options {
            dpop_nonce: Some(issuer()),
            ..Options::default()
        };
        let (h, client) = setup("nonce-refused", options).await;
        let url = h.url("/v1/token");
        let now = h.now();
        let other_key = NonceIssuer::new(&[9u8; 32], "operator", PERIOD).unwrap();
        let other_scope = NonceIssuer::new(NONCE_KEY, "verifier", PERIOD).unwrap();
        let cases = [
            ("forged", B64.encode([0u8; 24])),
            ("garbage", "not-a-nonce".to_owned()),
            ("other key", other_key.current(now)),
            ("verifier scope", other_scope.current(now)),
            ("expired", issuer().current(now - 2 * PERIOD - 1)),
            ("future", issuer().current(now + 2 * PERIOD)),
        ];
        for (case, nonce) in cases {
            let response = post_token(&h, &client.proof(&url, &fresh_jti(), Some(&nonce))).await;
            let fresh = nonce_of(&response);
            assert_ne!(fresh, nonce, "{case}");
            problem(response, 400, "use_dpop_nonce").await;
        }

        // Signature first: a broken proof is dpop_invalid, nonce or not.
        let good = client.proof(&url, &fresh_jti(), None);
        let broken = format!("{}AAAA", &good[..good.len() - 4]);
        problem(post_token(&h, &broken).await, 401, "dpop_invalid").await;
    })
    .await;
}

/// Off by default: a proof without a nonce gets a token, and no nonce is
/// handed out (the independent client checked against the default setup).
#[tokio::test]
async fn without_a_nonce_key_no_nonce_is_required() {
    within(async {
        let (h, client) = setup("nonce-off", Options::default()).await;
        let url = h.url("/v1/token");
        let response = post_token(&h, &client.proof(&url, &fresh_jti(), None)).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("dpop-nonce").is_none());
    })
    .await;
}
