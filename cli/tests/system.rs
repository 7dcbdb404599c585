//! The whole system across real processes (DESIGN §10, "system"): the
//! `agentauth dev` runner starts the local apiserver, Redis, the operator,
//! the webhook, two verifiers (two "nodes") and the example provider, each
//! its own process; this test plays the agent (the SDK, in this process) and
//! the human (the software passkey, through the approval API):
//!
//! ```text
//!  SDK request_grant ─▶ operator ─▶ CapabilityGrant (Pending)
//!  passkey approve   ─▶ approval API ─▶ status.approval ─▶ webhook ─▶ Approved
//!  SDK get_token     ─▶ operator ─▶ DPoP-bound token
//!  one request       ─▶ verifier-a: allow;  the same proof ─▶ verifier-b: dpop_replayed
//!  a call outside the grant ─▶ capability_not_granted (typed SDK error via the provider)
//!  revoke            ─▶ both verifiers deny grant_revoked within 1 s
//!  Redis audit stream ─▶ every producer's chain verifies; every step is in it
//! ```
//!
//! It lives with the CLI's tests because it needs the `agentauth` binary
//! (`CARGO_BIN_EXE_agentauth` is only given to this package's tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use agentauth::{AgentAuthClient, AgentAuthConfig, AgentKey, Capability};
use agentauth_core::audit::{AuditEvent, ChainVerifier, kinds};
use serde_json::{Value, json};

use support::{start, walk};

const AGENT: &str = "agents/shopping-agent";
/// The example provider's id (the tokens' audience), as `agentauth dev` runs it.
const AUDIENCE: &str = "https://shop.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_approval_token_verification_replay_revocation_and_audit() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let dev = start(&state);
    let endpoints = endpoints(&state);
    let operator = endpoints["operator"].as_str().unwrap().to_owned();
    let provider = endpoints["provider"].as_str().unwrap().to_owned();
    let audience = endpoints["provider_audience"].as_str().unwrap().to_owned();
    assert_eq!(audience, AUDIENCE);
    let verifiers: Vec<(String, String)> =
        serde_json::from_value(endpoints["verifiers"].clone()).unwrap();
    assert_eq!(verifiers.len(), 2, "two verifier nodes: {verifiers:?}");
    let redis_url = endpoints["redis"].as_str().expect("redis runs").to_owned();

    // The agent's key: the walk-through command (a process) writes it and
    // the Agent's spec.publicKey.
    let (ok, out) = walk(&state, &["agent-key", AGENT]);
    assert!(ok, "{out}");
    let key_file = state.join("agents").join("agents.shopping-agent.key");
    let config = AgentAuthConfig::new(&operator)
        .unwrap()
        .agent("agents", "shopping-agent")
        .key_file(&key_file);
    let client = AgentAuthClient::new(config).unwrap();

    // The SDK asks; a human approves with a passkey through the approval API.
    let grant = client
        .request_grant(&audience, vec![Capability::read("catalog/**")])
        .await
        .unwrap();
    assert!(grant.is_pending(), "{grant:?}");
    let reference = grant.reference();
    let (ok, out) = walk(&state, &["approve", &reference]);
    assert!(ok, "{out}");
    let approved = client
        .wait_for_approval(&reference, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(approved.is_approved(), "{approved:?}");

    // One request with one proof: verifier-a allows it; verifier-b, on the
    // other "node", refuses the same proof as a replay (shared Redis).
    let token = client.get_token(&audience).await.unwrap();
    let key = AgentKey::load(&key_file).unwrap();
    let url = format!("{provider}/catalog/paper");
    let headers = agentauth::auth::headers_for(&key, &token.access_token, "GET", &url).unwrap();
    let body = verify_body(&headers, &url, "read", "catalog/paper");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let first = verify(&http, &verifiers[0].1, &body).await;
    assert_eq!(first["allow"], true, "{first}");
    let replay = verify(&http, &verifiers[1].1, &body).await;
    assert_eq!(replay["allow"], false, "{replay}");
    assert_eq!(replay["reason"], "dpop_replayed", "{replay}");

    // Through the example provider with the SDK: inside the grant → 200,
    // outside → 403 with the verifier's code.
    let inside = call_provider(&client, &audience, &url).await;
    assert_eq!(inside.0, 200, "{}", inside.1);
    let outside = call_provider(&client, &audience, &format!("{provider}/orders/1")).await;
    assert_eq!(outside.0, 403, "{}", outside.1);
    assert!(
        outside.1.contains("capability_not_granted"),
        "{}",
        outside.1
    );

    // Revocation: both verifiers deny the grant within 1 s of the write.
    let (ok, out) = walk(&state, &["revoke", &reference]);
    assert!(ok, "{out}");
    let revoked_at = Instant::now();
    for (name, verifier) in &verifiers {
        loop {
            let headers =
                agentauth::auth::headers_for(&key, &token.access_token, "GET", &url).unwrap();
            let answer = verify(
                &http,
                verifier,
                &verify_body(&headers, &url, "read", "catalog/paper"),
            )
            .await;
            if answer["reason"] == "grant_revoked" {
                break;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "{name} still answers {answer} {:?} after the revocation",
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!("both verifiers deny after {:?}", revoked_at.elapsed());

    // The audit trail: every producer's chain verifies, and every step is there.
    let events = audit_events(&redis_url).await;
    let kinds_seen: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in [
        kinds::GRANT_CREATED,
        kinds::APPROVAL_RECORDED,
        kinds::GRANT_APPROVED,
        kinds::TOKEN_ISSUED,
        kinds::GRANT_REVOKED,
    ] {
        assert!(
            kinds_seen.contains(&kind),
            "no {kind} event: {kinds_seen:?}"
        );
    }
    let decisions: Vec<(&str, Option<&str>)> = events
        .iter()
        .filter(|e| e.kind == kinds::VERIFICATION)
        .map(|e| (e.producer.as_str(), e.reason.as_deref()))
        .collect();
    let producers: std::collections::BTreeSet<&str> = decisions.iter().map(|d| d.0).collect();
    assert_eq!(producers.len(), 2, "both verifiers audit: {decisions:?}");
    for reason in [
        None,
        Some("dpop_replayed"),
        Some("capability_not_granted"),
        Some("grant_revoked"),
    ] {
        assert!(
            decisions.iter().any(|d| d.1 == reason),
            "no verification with reason {reason:?}: {decisions:?}"
        );
    }

    let status = dev.interrupt();
    assert!(status.success(), "exit status {status:?}");
}

fn endpoints(state: &Path) -> Value {
    let text = std::fs::read(state.join("run").join("endpoints.json")).unwrap();
    serde_json::from_slice(&text).unwrap()
}

fn verify_body(headers: &agentauth::AuthHeaders, url: &str, kind: &str, resource: &str) -> Value {
    json!({
        "audience": AUDIENCE,
        "token": headers.authorization,
        "dpop": headers.dpop,
        "method": "GET",
        "url": url,
        "action": {"type": kind, "resource": resource},
    })
}

async fn verify(http: &reqwest::Client, verifier: &str, body: &Value) -> Value {
    let response = http
        .post(format!("{verifier}/v1/verify"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "a decision, not a malformed request"
    );
    response.json().await.unwrap()
}

/// Calls the example provider as the agent; returns the status and body.
async fn call_provider(client: &AgentAuthClient, audience: &str, url: &str) -> (u16, String) {
    let mut request = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
    client
        .authenticate_request(audience, &mut request)
        .await
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http.execute(request).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Every event in the audit stream (this run's system wrote them all),
/// after checking each producer's chain from its genesis.
async fn audit_events(redis_url: &str) -> Vec<AuditEvent> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // The verifiers batch their audit writes (a few ms); wait until the
    // revocation's denials are in.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
            .arg("agentauth:{audit}:stream")
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut verifier = ChainVerifier::new();
        let mut events = Vec::new();
        for (id, fields) in &entries {
            let json = fields.values().next().unwrap();
            let event = AuditEvent::from_json(json).unwrap_or_else(|e| panic!("{id}: {e:?}"));
            verifier
                .push(&event)
                .unwrap_or_else(|b| panic!("audit chain broken at {id}: {b:?}"));
            events.push(event);
        }
        let revoked_denials = events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("grant_revoked"))
            .count();
        if revoked_denials >= 2 || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
