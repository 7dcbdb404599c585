//! DPoP server nonces at the verifier (RFC 9449 §9), on a real Redis with
//! the clock injected so nonce slots are crossed exactly.
//!
//! Threat: pre-generated DPoP proofs (a stolen key's proofs made in advance,
//! used after the key was replaced) — RFC 9449 §8/§11.1; issue 12 "Also".
//! With nonces on, a proof is usable only with a nonce a verifier handed
//! out during the last one or two periods.

use std::sync::Arc;
use std::time::Duration;

use agentauth_core::dpop;
use agentauth_state::{ManualClock, RedisConfig, RedisState, SharedState};
use agentauth_testenv::RedisServer;
use serde_json::{Value, json};

use crate::support::*;

/// 1_800_000_000 s is a multiple of the 60 s period: slots start at the
/// start and at every whole minute after it.
const START_US: u64 = 1_800_000_000_000_000;

/// A proof of the fixture's agent for POST `URL` with `jti` and `nonce`.
fn proof(fx: &Fixture, token: &str, jti: &str, nonce: Option<&str>) -> String {
    let request = dpop::Request {
        method: "POST",
        url: URL,
        access_token: Some(token),
        nonce,
    };
    dpop::create(&fx.agent, &request, fx.now(), jti).unwrap()
}

fn with_proof(fx: &Fixture, token: &str, proof: String) -> Value {
    let mut body = fx.body(token, read("orders/1"));
    body["dpop"] = json!(proof);
    body
}

/// Threat: pre-generated DPoP proofs — RFC 9449 §8/§11.1; issue 12 "Also".
/// A proof without a nonce is denied `use_dpop_nonce` with the nonce to use;
/// the refusal recorded nothing (the same `jti`, now with the nonce, is
/// allowed once and then refused as a replay); a nonce older than two
/// periods is refused; a nonce one slot old is accepted and renewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_needs_a_fresh_nonce_and_a_refusal_burns_nothing() {
    let redis = RedisServer::start().await.unwrap();
    let mut redis_config = RedisConfig::new(redis.url());
    redis_config.hot_timeout = Duration::from_secs(2);
    let state: Arc<dyn SharedState> = Arc::new(RedisState::connect(redis_config).await.unwrap());
    let clock = Arc::new(ManualClock::new(START_US));
    let fx = Fixture::with_clock(clock.clone()).await;
    let key_file = fx.dir.path().join("nonce.key");
    std::fs::write(&key_file, [42u8; 32]).unwrap();
    let v = start_with(
        &fx,
        state.clone(),
        |c| {
            c.dpop_nonce_key_file = Some(key_file);
            c.state_timeout = agentauth_core::gcra::Period::parse("2s").unwrap();
        },
        true,
    )
    .await;
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;
    let jti = dpop::new_jti();

    // No nonce: denied, and the answer carries the nonce to use.
    let (status, answer) = v
        .verify(&with_proof(&fx, &token, proof(&fx, &token, &jti, None)))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["allow"], false, "{answer}");
    assert_eq!(answer["reason"], "use_dpop_nonce", "{answer}");
    let nonce = answer["dpopNonce"].as_str().unwrap().to_owned();

    // The refused proof's jti was not recorded: with the nonce it passes,
    // once. A nonce that is current needs no renewal.
    let retry = with_proof(&fx, &token, proof(&fx, &token, &jti, Some(&nonce)));
    let (_, answer) = v.verify(&retry).await;
    assert_eq!(answer["allow"], true, "{answer}");
    assert!(answer.get("dpopNonce").is_none(), "{answer}");
    assert_eq!(v.reason(&retry).await, "dpop_replayed");

    // A forged nonce is refused like a missing one.
    let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let body = with_proof(
        &fx,
        &token,
        proof(&fx, &token, &dpop::new_jti(), Some(forged)),
    );
    assert_eq!(v.reason(&body).await, "use_dpop_nonce");

    // One slot later the nonce is still accepted, and the answer hands out
    // the next one.
    clock.advance(Duration::from_secs(60));
    let body = with_proof(
        &fx,
        &token,
        proof(&fx, &token, &dpop::new_jti(), Some(&nonce)),
    );
    let (_, answer) = v.verify(&body).await;
    assert_eq!(answer["allow"], true, "{answer}");
    let renewed = answer["dpopNonce"].as_str().unwrap().to_owned();
    assert_ne!(renewed, nonce);

    // Two slots later it is stale: what a proof made in advance would carry.
    clock.advance(Duration::from_secs(60));
    let body = with_proof(
        &fx,
        &token,
        proof(&fx, &token, &dpop::new_jti(), Some(&nonce)),
    );
    let (_, answer) = v.verify(&body).await;
    assert_eq!(answer["reason"], "use_dpop_nonce", "{answer}");
    let current = answer["dpopNonce"].as_str().unwrap().to_owned();
    assert!(current != nonce && current != renewed, "{answer}");
    // The renewed nonce (one slot old by now) still works, and is renewed.
    let body = with_proof(
        &fx,
        &token,
        proof(&fx, &token, &dpop::new_jti(), Some(&renewed)),
    );
    let (_, answer) = v.verify(&body).await;
    assert_eq!(answer["allow"], true, "{answer}");
    assert_eq!(answer["dpopNonce"], json!(current), "{answer}");
    v.stop().await;
}

/// Threat: pre-generated DPoP proofs — RFC 9449 §9. In the Envoy form the
/// refusal is the RFC's challenge: 401, `WWW-Authenticate: DPoP
/// error="use_dpop_nonce"`, `DPoP-Nonce`; with nonces off (the default) a
/// proof without a nonce is allowed and no nonce is handed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_answers_the_nonce_challenge_and_nonces_are_off_by_default() {
    let fx = Fixture::new().await;
    let state: Arc<dyn SharedState> = Arc::new(agentauth_state::InProcessState::new());
    let key_file = fx.dir.path().join("nonce.key");
    std::fs::write(&key_file, [7u8; 48]).unwrap();
    let on = start_with(
        &fx,
        state.clone(),
        |c| c.dpop_nonce_key_file = Some(key_file),
        true,
    )
    .await;
    let off = start(&fx, state.clone()).await;
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;

    let check = |proof: String| {
        on.client
            .post(format!("{}/ext_authz/orders/42", on.base))
            .header("host", "shop.test")
            .header("x-forwarded-proto", "https")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .header("x-agentauth-action-type", "read")
            .header("x-agentauth-resource", "orders/1")
            .send()
    };
    let refused = check(proof(&fx, &token, &dpop::new_jti(), None))
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let headers = refused.headers();
    assert_eq!(headers["x-agentauth-reason"], "use_dpop_nonce");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains("error=\"use_dpop_nonce\""),
        "{challenge}"
    );
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let allowed = check(proof(&fx, &token, &dpop::new_jti(), Some(&nonce)))
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);

    // Off: no nonce required, none handed out.
    let body = with_proof(&fx, &token, proof(&fx, &token, &dpop::new_jti(), None));
    let (_, answer) = off.verify(&body).await;
    assert_eq!(answer["allow"], true, "{answer}");
    assert!(answer.get("dpopNonce").is_none(), "{answer}");
    on.stop().await;
    off.stop().await;
}
