//! `POST /v1/token` against a real apiserver: tokens are issued only for an
//! approved, unexpired, unrevoked grant to the agent holding its key, live
//! no longer than every bound allows, and verify through the JWKS and the
//! pinned root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use agentauth_core::audit::kinds;
use agentauth_core::es256::SigningKey;
use agentauth_core::jcs;
use api_support::{DEFAULT_TTL, Harness, Options, PRODUCER, problem, thumbprint, within};
use serde_json::json;

const SP: &str = "https://calendar.example.com";

/// An agent `bot` with a grant `g` approved for a day.
async fn approved(prefix: &str, options: Options) -> (Harness, SigningKey) {
    let h = Harness::start(prefix, options).await;
    let key = h.agent("bot").await;
    h.grant("g", "bot", json!({})).await;
    h.approve("g", h.now() + 86_400).await;
    (h, key)
}

#[tokio::test]
async fn issued_token_verifies_through_jwks_and_pinned_root() {
    within(async {
        let (h, key) = approved("token-issued", Options::default()).await;
        let (token, expires_in) = h.token(&key, "g", json!({})).await;
        assert_eq!(expires_in, DEFAULT_TTL);
        let signed = h.verify(&token, SP).await;
        let c = &signed.claims;
        assert_eq!(c.sub, format!("{}/bot", h.ns));
        assert_eq!(c.client_id, c.sub);
        assert_eq!(c.cnf.jkt, thumbprint(&key));
        assert_eq!(c.exp - c.iat, DEFAULT_TTL);
        assert_eq!(c.env, None);
        let grant = h.grants().get("g").await.unwrap();
        assert_eq!(Some(c.grant.uid.clone()), grant.metadata.uid);
        assert_eq!(Some(c.grant.generation), grant.metadata.generation);
        let details = serde_json::to_value(&c.authorization_details).unwrap();
        assert_eq!(
            details,
            json!([{"type": "agentauth:read", "resource": "calendars/primary/**"}])
        );
        assert_ne!(
            signed.kid,
            h.root.key_id(),
            "certified mode signs with an issuing key"
        );

        // token_issued is audited, and counted.
        h.ctx.audit.flush().await;
        let event = h
            .ctx
            .state
            .last_audit_event(PRODUCER)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.kind, kinds::TOKEN_ISSUED);
        assert_eq!(event.grant, Some(format!("{}/g", h.ns)));
        assert_eq!(event.details["jti"], json!(c.jti));
        let metrics = h
            .http
            .get(h.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("agentauth_token_requests_total{outcome=\"issued\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("agentauth_api_request_duration_seconds_count{route=\"/v1/token\"} 1")
        );
    })
    .await;
}

#[tokio::test]
async fn direct_mode_tokens_are_signed_by_the_root() {
    within(async {
        let options = Options {
            direct: true,
            ..Options::default()
        };
        let (h, key) = approved("token-direct", options).await;
        let (token, _) = h.token(&key, "g", json!({})).await;
        let signed = h.verify(&token, SP).await;
        assert_eq!(signed.kid, h.root.key_id());
    })
    .await;
}

#[tokio::test]
async fn form_requests_are_accepted() {
    within(async {
        let (h, key) = approved("token-form", Options::default()).await;
        let body = format!(
            "grant_type=urn%3Aagentauth%3Agrant-type%3Acapability-grant&grant={}%2Fg&expires_in=90",
            h.ns
        );
        let response = h
            .http
            .post(h.url("/v1/token"))
            .header("DPoP", h.proof(&key, "POST", "/v1/token"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["expires_in"], 90);
    })
    .await;
}

#[tokio::test]
async fn lifetime_never_exceeds_request_envelope_grant_or_one_hour() {
    within(async {
        let h = Harness::start("token-lifetime", Options::default()).await;
        let key = h.agent("bot").await;
        h.envelope("short", json!({"maxTokenTtl": "2m"})).await;
        h.grant("plain", "bot", json!({})).await;
        h.grant(
            "enveloped",
            "bot",
            json!({"envelopeRef": {"name": "short"}}),
        )
        .await;
        h.grant("ending", "bot", json!({})).await;
        h.approve("plain", h.now() + 86_400).await;
        h.approve("enveloped", h.now() + 86_400).await;
        h.approve("ending", h.now() + 100).await;

        assert_eq!(h.token(&key, "plain", json!({})).await.1, DEFAULT_TTL);
        assert_eq!(
            h.token(&key, "plain", json!({"expires_in": 60})).await.1,
            60
        );
        assert_eq!(
            h.token(&key, "plain", json!({"expires_in": 1800})).await.1,
            1800
        );
        let (token, capped) = h.token(&key, "plain", json!({"expires_in": 99_999})).await;
        assert_eq!(capped, 3600, "1 h cap");
        let c = h.verify(&token, SP).await.claims;
        assert_eq!(c.exp - c.iat, 3600);

        let (token, ttl) = h
            .token(&key, "enveloped", json!({"expires_in": 1800}))
            .await;
        assert_eq!(ttl, 120, "the envelope's maxTokenTtl");
        let envelope = h.ctx.caches.envelope(&h.ns, "short").unwrap();
        let env = jcs::digest_b64(&envelope.spec).unwrap();
        assert_eq!(h.verify(&token, SP).await.claims.env, Some(env));

        let (token, ttl) = h.token(&key, "ending", json!({})).await;
        assert!((90..=100).contains(&ttl), "the grant's expiry: {ttl}");
        let grant_expiry = h.ctx.caches.grant(&h.ns, "ending").unwrap();
        let grant_expiry = grant_expiry
            .status
            .as_ref()
            .unwrap()
            .expires_at
            .as_ref()
            .unwrap();
        assert_eq!(
            h.verify(&token, SP).await.claims.exp,
            grant_expiry.0.as_second()
        );
    })
    .await;
}

/// Threat: grant-name enumeration (issue 12 item 9). With some agent's key,
/// an attacker asks `/v1/token` for grant names in a namespace; an existing
/// grant of another agent and an absent one must answer alike (status,
/// code and message but for the name), or names leak.
#[tokio::test]
async fn grant_names_cannot_be_probed_with_another_agents_key() {
    within(async {
        let (h, _) = approved("token-probe", Options::default()).await;
        let prober = h.agent("prober").await;
        let mut answers = Vec::new();
        for grant in ["g", "no-such-grant"] {
            let body = json!({"grant": format!("{}/{grant}", h.ns)});
            let r = h.token_request(&prober, body).await;
            let body = problem(r, 404, "grant_unknown").await;
            let detail = body["detail"].as_str().unwrap();
            answers.push(detail.replace(&format!("/{grant} "), "/NAME "));
        }
        assert_eq!(answers[0], answers[1]);
    })
    .await;
}

#[tokio::test]
async fn wrong_key_and_replayed_proofs_are_refused() {
    within(async {
        let (h, key) = approved("token-keys", Options::default()).await;
        let other_agent = h.agent("other").await;
        let body = json!({"grant": format!("{}/g", h.ns)});
        // Another registered agent's key, and a key nobody registered: the
        // grant is as unknown to them as an absent one.
        let r = h.token_request(&other_agent, body.clone()).await;
        problem(r, 404, "grant_unknown").await;
        let r = h.token_request(&SigningKey::generate(), body.clone()).await;
        problem(r, 404, "grant_unknown").await;

        // The same proof twice: the second is a replay, whatever the first did.
        let proof = h.proof(&key, "POST", "/v1/token");
        let send = || {
            h.http
                .post(h.url("/v1/token"))
                .header("DPoP", proof.clone())
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
        };
        assert_eq!(send().await.unwrap().status(), 200);
        let r = send().await.unwrap();
        let body = problem(r, 401, "dpop_replayed").await;
        assert!(body["detail"].as_str().unwrap().contains("fresh proof"));
    })
    .await;
}

#[tokio::test]
async fn undecided_denied_revoked_and_expired_grants_get_no_token() {
    within(async {
        let h = Harness::start("token-phases", Options::default()).await;
        let key = h.agent("bot").await;
        let day = h.now() + 86_400;
        for name in [
            "pending",
            "denied",
            "revoked",
            "spec-revoked",
            "state-revoked",
            "expired",
            "past",
            "no-envelope",
        ] {
            let extra = if name == "no-envelope" {
                json!({"envelopeRef": {"name": "missing"}})
            } else {
                json!({})
            };
            h.grant(name, "bot", extra).await;
        }
        h.decide("denied", "Denied", day).await;
        h.approve("revoked", day).await;
        h.decide("revoked", "Revoked", day).await;
        h.approve("spec-revoked", day).await;
        h.approve("state-revoked", day).await;
        h.approve("expired", day).await;
        h.decide("expired", "Expired", day).await;
        h.approve("past", h.now() - 60).await;
        h.approve("no-envelope", day).await;

        // spec.revoked before the controller has moved the phase.
        let patch = json!({"spec": {"revoked": true}});
        let params = kube::api::PatchParams::default();
        h.grants()
            .patch("spec-revoked", &params, &kube::api::Patch::Merge(&patch))
            .await
            .unwrap();
        h.wait(|c| {
            c.grant(&h.ns, "spec-revoked")
                .is_some_and(|g| g.spec.revoked)
        })
        .await;
        // In the revocation set only (published by another replica).
        let uid = h
            .ctx
            .caches
            .grant(&h.ns, "state-revoked")
            .unwrap()
            .metadata
            .uid
            .clone()
            .unwrap();
        h.ctx
            .state
            .revoke_grant(&uid, h.now() * 1000)
            .await
            .unwrap();

        for (grant, status, code) in [
            ("pending", 403, "grant_not_approved"),
            ("denied", 403, "grant_not_approved"),
            ("revoked", 403, "grant_revoked"),
            ("spec-revoked", 403, "grant_revoked"),
            ("state-revoked", 403, "grant_revoked"),
            ("expired", 403, "grant_expired"),
            ("past", 403, "grant_expired"),
            ("no-envelope", 403, "envelope_invalid"),
            ("absent", 404, "grant_unknown"),
        ] {
            let r = h
                .token_request(&key, json!({"grant": format!("{}/{grant}", h.ns)}))
                .await;
            problem(r, status, code).await;
        }
        let metrics = h
            .http
            .get(h.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("agentauth_token_requests_total{outcome=\"grant_revoked\"} 3"),
            "{metrics}"
        );
    })
    .await;
}
