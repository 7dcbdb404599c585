//! Malformed and hostile requests get a 4xx problem+json with a stable code
//! (never a panic, never a dropped connection); failures of the shared
//! state and of the signer fail closed; discovery and health routes.
//!
//! Every code the agent API returns, and the test that reaches it:
//!
//! | code | status | test |
//! |---|---|---|
//! | request_invalid | 400, 404, 405, 409, 415 | malformed_bodies_are_refused, routes_and_methods, api_grants::idempotency_key_makes_retries_return_the_same_grant |
//! | input_too_large | 413 | malformed_bodies_are_refused |
//! | request_timeout | 408 | api_slowloris::a_trickled_body_is_answered_request_timeout |
//! | dpop_missing | 401 | bad_proofs_are_refused |
//! | dpop_invalid | 401 | bad_proofs_are_refused |
//! | dpop_method_mismatch | 401 | bad_proofs_are_refused |
//! | dpop_url_mismatch | 401 | bad_proofs_are_refused |
//! | dpop_stale | 401 | bad_proofs_are_refused |
//! | jwk_private_key_refused | 400 | bad_proofs_are_refused |
//! | dpop_replayed | 401 | api_token::wrong_key_and_replayed_proofs_are_refused, redis_state_replay_and_outage |
//! | dpop_key_mismatch | 401 | api_grants::grant_requests_need_the_agents_key_and_a_valid_spec |
//! | capability_invalid | 400 | api_grants::grant_requests_need_the_agents_key_and_a_valid_spec |
//! | grant_unknown | 404 | api_token::undecided_denied_revoked_and_expired_grants_get_no_token, api_token::grant_names_cannot_be_probed_with_another_agents_key, api_grants::agent_creates_a_grant_and_reads_it |
//! | grant_not_approved | 403 | api_token::undecided_denied_revoked_and_expired_grants_get_no_token |
//! | grant_revoked | 403 | api_token::undecided_denied_revoked_and_expired_grants_get_no_token |
//! | grant_expired | 403 | api_token::undecided_denied_revoked_and_expired_grants_get_no_token |
//! | envelope_invalid | 403 | api_token::undecided_denied_revoked_and_expired_grants_get_no_token |
//! | state_unavailable | 503 | redis_state_replay_and_outage |
//! | signing_failed | 500 | a_failing_signer_fails_closed |
//!
//! Not returned by this component: `dpop_ath_mismatch` and
//! `dpop_nonce_invalid` (no access token accompanies these proofs, and no
//! nonce is required). `POST /v1/grants` passes on whatever code the CRD's
//! `validate()` gives (`capability_invalid` is tested; `amount_invalid` and
//! the like come from the same path).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use std::sync::Arc;

use agentauth_core::jwk::EcPublicJwk;
use agentauth_signer::{LocalSigner, Signer, SignerError};
use agentauth_state::{RedisConfig, RedisState, SharedState};
use agentauth_testenv::RedisServer;
use api_support::{Harness, Options, problem, proof_at, proof_with_private_jwk, within};
use serde_json::{Value, json};

#[tokio::test]
async fn malformed_bodies_are_refused() {
    within(async {
        let h = Harness::start("hardening-bodies", Options::default()).await;
        let key = h.agent("bot").await;
        let send = |content_type: Option<&'static str>, body: Vec<u8>| {
            let mut request = h
                .http
                .post(h.url("/v1/token"))
                .header("DPoP", h.proof(&key, "POST", "/v1/token"))
                .body(body);
            if let Some(ct) = content_type {
                request = request.header("Content-Type", ct);
            }
            request.send()
        };
        let json = Some("application/json");
        for body in [
            &b"{"[..],
            b"not json",
            br#"{"grant": 5}"#,
            br#"{"grant": "a/b", "grant": "a/c"}"#,
            br#"{"grant": "a/b", "scope": "all"}"#,
            br#"{"grant": "no-slash"}"#,
            br#"{"grant": "a/b", "expires_in": 0}"#,
            br#"{"grant": "a/b", "expires_in": "60"}"#,
            br#"{"grant": "a/b", "grant_type": "client_credentials"}"#,
            b"[]",
            b"",
            b"\xff\xfe",
        ] {
            let r = send(json, body.to_vec()).await.unwrap();
            problem(r, 400, "request_invalid").await;
        }
        let form = Some("application/x-www-form-urlencoded");
        for body in [
            &b"grant=a%2Fb&grant=a%2Fc"[..],
            b"expires_in=60",
            b"grant=a%2Fb&expires_in=x",
        ] {
            let r = send(form, body.to_vec()).await.unwrap();
            problem(r, 400, "request_invalid").await;
        }
        let big = format!(r#"{{"grant": "{}"}}"#, "a".repeat(70 * 1024));
        problem(
            send(json, big.into_bytes()).await.unwrap(),
            413,
            "input_too_large",
        )
        .await;
        let r = send(Some("text/plain"), b"{}".to_vec()).await.unwrap();
        problem(r, 415, "request_invalid").await;
        let r = send(None, b"{}".to_vec()).await.unwrap();
        problem(r, 415, "request_invalid").await;
        let r = send(Some("application/json; charset=latin1"), b"{}".to_vec())
            .await
            .unwrap();
        problem(r, 415, "request_invalid").await;

        // A chunked body (no Content-Length) is counted while it is read.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..80).map(|_| Ok(vec![b' '; 1024])).collect();
        let stream = futures::stream::iter(chunks);
        let r = h
            .http
            .post(h.url("/v1/grants"))
            .header("DPoP", h.proof(&key, "POST", "/v1/grants"))
            .header("Content-Type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        problem(r, 413, "input_too_large").await;
    })
    .await;
}

#[tokio::test]
async fn bad_proofs_are_refused() {
    within(async {
        let h = Harness::start("hardening-proofs", Options::default()).await;
        let key = h.agent("bot").await;
        h.grant("g", "bot", json!({})).await;
        h.approve("g", h.now() + 3600).await;
        let body = json!({"grant": format!("{}/g", h.ns)}).to_string();
        let token_url = h.url("/v1/token");
        let send = |proofs: Vec<String>| {
            let mut request = h
                .http
                .post(h.url("/v1/token"))
                .header("Content-Type", "application/json")
                .body(body.clone());
            for p in proofs {
                request = request.header("DPoP", p);
            }
            request.send()
        };
        let now = h.now();
        let r = send(vec![]).await.unwrap();
        assert_eq!(r.headers()["www-authenticate"], "DPoP algs=\"ES256\"");
        problem(r, 401, "dpop_missing").await;
        let two = vec![
            h.proof(&key, "POST", "/v1/token"),
            h.proof(&key, "POST", "/v1/token"),
        ];
        problem(send(two).await.unwrap(), 401, "dpop_invalid").await;
        for garbage in ["x", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
            problem(
                send(vec![garbage.into()]).await.unwrap(),
                401,
                "dpop_invalid",
            )
            .await;
        }
        // A valid proof with its signature altered.
        let mut forged = h.proof(&key, "POST", "/v1/token");
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        problem(send(vec![forged]).await.unwrap(), 401, "dpop_invalid").await;
        let wrong_method = proof_at(&key, "GET", &token_url, now);
        problem(
            send(vec![wrong_method]).await.unwrap(),
            401,
            "dpop_method_mismatch",
        )
        .await;
        let wrong_url = proof_at(&key, "POST", &h.url("/v1/grants"), now);
        problem(
            send(vec![wrong_url]).await.unwrap(),
            401,
            "dpop_url_mismatch",
        )
        .await;
        let other_host = proof_at(&key, "POST", "https://evil.example/v1/token", now);
        problem(
            send(vec![other_host]).await.unwrap(),
            401,
            "dpop_url_mismatch",
        )
        .await;
        let old = proof_at(&key, "POST", &token_url, now - 3600);
        problem(send(vec![old]).await.unwrap(), 401, "dpop_stale").await;
        let future = proof_at(&key, "POST", &token_url, now + 3600);
        problem(send(vec![future]).await.unwrap(), 401, "dpop_stale").await;
        let private = proof_with_private_jwk(&key, &token_url, now);
        problem(
            send(vec![private]).await.unwrap(),
            400,
            "jwk_private_key_refused",
        )
        .await;
        // After all that, a good proof still works.
        assert_eq!(
            send(vec![h.proof(&key, "POST", "/v1/token")])
                .await
                .unwrap()
                .status(),
            200
        );
    })
    .await;
}

#[tokio::test]
async fn routes_methods_discovery_and_health() {
    within(async {
        let h = Harness::start("hardening-routes", Options::default()).await;
        let r = h.http.get(h.url("/v1/nothing")).send().await.unwrap();
        problem(r, 404, "request_invalid").await;
        let r = h.http.get(h.url("/v1/token")).send().await.unwrap();
        problem(r, 405, "request_invalid").await;
        let r = h.http.delete(h.url("/v1/grants")).send().await.unwrap();
        problem(r, 405, "request_invalid").await;

        let r = h
            .http
            .get(h.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let metadata: Value = r.json().await.unwrap();
        assert_eq!(metadata["issuer"], h.base);
        assert_eq!(metadata["token_endpoint"], h.url("/v1/token"));
        assert_eq!(metadata["jwks_uri"], h.url("/.well-known/jwks.json"));
        assert_eq!(
            metadata["dpop_signing_alg_values_supported"],
            json!(["ES256"])
        );
        assert_eq!(metadata["agentauth_grants_endpoint"], h.url("/v1/grants"));

        let jwks: Value = h
            .http
            .get(h.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert!(jwks["keys"][0]["agentauth_cert"].is_string());

        for path in ["/healthz", "/readyz"] {
            let r = h
                .http
                .get(h.url(path))
                .header("x-request-id", "probe-1")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(r.headers()["x-request-id"], "probe-1");
        }
        let r = h.http.get(h.url("/metrics")).send().await.unwrap();
        assert!(r.headers()["x-request-id"].to_str().unwrap().contains('-'));
        let text = r.text().await.unwrap();
        assert!(
            text.contains("agentauth_api_requests_total{route=\"unmatched\",status=\"404\"} 1"),
            "{text}"
        );
        assert!(text.contains("agentauth_api_requests_total{route=\"/readyz\",status=\"200\"} 1"));
    })
    .await;
}

#[tokio::test]
async fn redis_state_replay_and_outage() {
    within(async {
        let mut redis = RedisServer::start().await.unwrap();
        let state = RedisState::connect(RedisConfig::new(redis.url()))
            .await
            .unwrap();
        let state: Arc<dyn SharedState> = Arc::new(state);
        let options = Options {
            state: Some(state),
            ..Options::default()
        };
        let h = Harness::start("hardening-redis", options).await;
        let key = h.agent("bot").await;
        h.grant("g", "bot", json!({})).await;
        h.approve("g", h.now() + 3600).await;
        let body = json!({"grant": format!("{}/g", h.ns)}).to_string();
        let proof = h.proof(&key, "POST", "/v1/token");
        let send = |proof: String| {
            h.http
                .post(h.url("/v1/token"))
                .header("DPoP", proof)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
        };
        assert_eq!(send(proof.clone()).await.unwrap().status(), 200);
        problem(send(proof).await.unwrap(), 401, "dpop_replayed").await;
        assert_eq!(
            h.http.get(h.url("/readyz")).send().await.unwrap().status(),
            200
        );

        redis.kill();
        let r = send(h.proof(&key, "POST", "/v1/token")).await.unwrap();
        problem(r, 503, "state_unavailable").await;
        let r = h.http.get(h.url("/readyz")).send().await.unwrap();
        problem(r, 503, "state_unavailable").await;
    })
    .await;
}

/// A root whose every signature fails, like a KMS that refuses.
struct FailingSigner(LocalSigner);

#[async_trait::async_trait]
impl Signer for FailingSigner {
    fn key_id(&self) -> &str {
        self.0.key_id()
    }

    fn public_jwk(&self) -> &EcPublicJwk {
        self.0.public_jwk()
    }

    async fn sign_digest(&self, _: &[u8; 32]) -> Result<[u8; 64], SignerError> {
        Err(SignerError::Unavailable("the KMS refused".into()))
    }
}

#[tokio::test]
async fn a_failing_signer_fails_closed() {
    within(async {
        let root: Arc<dyn Signer> = Arc::new(FailingSigner(LocalSigner::generate().unwrap()));
        let options = Options {
            direct: true,
            root: Some(root),
            ..Options::default()
        };
        let h = Harness::start("hardening-signer", options).await;
        let key = h.agent("bot").await;
        h.grant("g", "bot", json!({})).await;
        h.approve("g", h.now() + 3600).await;
        let r = h
            .token_request(&key, json!({"grant": format!("{}/g", h.ns)}))
            .await;
        let body = problem(r, 500, "signing_failed").await;
        assert!(
            !body["detail"].as_str().unwrap().contains("KMS"),
            "no internals leak"
        );
    })
    .await;
}
