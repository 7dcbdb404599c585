//! What a person approves is what is enforced (DESIGN §13), against the real
//! apiserver, webhook, controllers, approval API and token endpoint: an
//! approval binds the envelope's spec and the agent's key; changing either
//! after approval suspends the grant (no token, shared state `Suspended`, so
//! verifiers deny `grant_suspended`) until an approver approves it again.

use std::time::{Duration, Instant};

use agentauth_core::dpop;
use agentauth_core::es256::SigningKey;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_crds::approval::Binding;
use agentauth_crds::conditions::{self, reasons, types};
use agentauth_crds::{Agent, BehavioralEnvelope, CapabilityGrant};
use agentauth_operator::clock::Clock;
use agentauth_state::{GrantPhase as StatePhase, SharedState};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::*;

/// An agent `pay-bot` holding `key`, envelope `limits` (maxPerDay 100.00
/// EUR), grant `pay` (transact orders/**) approved by a logged-in approver.
struct Paying {
    env: Env,
    key: SigningKey,
    approver: agentauth_soft_passkey::SoftApprover,
}

impl Paying {
    async fn new(prefix: &str) -> Paying {
        let env = Env::new(prefix).await;
        let key = SigningKey::generate();
        env.create(agent_doc(&env.ns, &key)).await;
        env.create(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "BehavioralEnvelope",
            "metadata": {"name": "limits", "namespace": env.ns},
            "spec": {"transactions": {"currency": "EUR", "maxPerTransaction": "100.00",
                                      "maxPerDay": "100.00"}},
        }))
        .await;
        env.create(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "CapabilityGrant",
            "metadata": {"name": "pay", "namespace": env.ns},
            "spec": {"agentRef": {"name": "pay-bot"}, "serviceProvider": "https://shop.example.com",
                     "capabilities": [{"type": "transact", "resource": "orders/**",
                                       "maxAmount": "500.00", "currency": "EUR"}],
                     "envelopeRef": {"name": "limits"},
                     "duration": "8h", "reason": "Pay for the team's groceries"},
        }))
        .await;
        let (approver, _, email) = env.logged_in("dana", &[env.ns.as_str()]).await;
        env.allow_approve(&email).await;
        let ns = env.ns.clone();
        env.wait(|c| {
            c.agent(&ns, "pay-bot").is_some_and(|a| {
                a.status
                    .as_ref()
                    .is_some_and(|s| s.key_thumbprint.is_some())
            })
        })
        .await;
        let mut paying = Paying { env, key, approver };
        paying.approve().await;
        paying
    }

    async fn approve(&mut self) {
        self.approver.approve(&self.env.ns, "pay").await.unwrap();
    }

    async fn uid(&self) -> String {
        self.env.stored_grant("pay").await.uid().unwrap()
    }

    /// `POST /v1/token` for grant `pay` with a fresh proof of `key`.
    async fn token(&self, key: &SigningKey) -> reqwest::Response {
        let url = format!("{}/v1/token", self.env.base);
        let request = dpop::Request {
            method: "POST",
            url: &url,
            access_token: None,
            nonce: None,
        };
        let iat = self.env.clock.now_ms() / 1000;
        let proof = dpop::create(key, &request, iat, &dpop::new_jti()).unwrap();
        self.env
            .http()
            .post(&url)
            .header("DPoP", proof)
            .json(&json!({"grant": format!("{}/pay", self.env.ns)}))
            .send()
            .await
            .unwrap()
    }

    /// Polls the token endpoint until it answers `status` with `code` (the
    /// API's caches follow the apiserver within moments).
    async fn token_until(&self, key: &SigningKey, status: u16, code: Option<&str>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let response = self.token(key).await;
            let got = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_default();
            if got == status && code.is_none_or(|c| body["code"] == c) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "expected {status} {code:?}, still {got} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the shared state says `phase` for the grant.
    async fn state_until(&self, phase: StatePhase) -> agentauth_state::GrantState {
        let uid = self.uid().await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.env.state.get_grant(&uid).await.unwrap();
            if let Some(state) = state.filter(|s| s.phase == phase) {
                return state;
            }
            assert!(Instant::now() < deadline, "the state never said {phase:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the grant's Ready condition has `reason`.
    async fn ready_until(&self, reason: &str) -> CapabilityGrant {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let grant = self.env.stored_grant("pay").await;
            let ready = grant
                .status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, types::READY).cloned());
            if ready.as_ref().is_some_and(|c| c.reason == reason) {
                return grant;
            }
            assert!(
                Instant::now() < deadline,
                "Ready never had reason {reason}: {ready:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn binding(&self) -> Binding {
        let grant = self.env.stored_grant("pay").await;
        let agent: Agent = Api::namespaced(self.env.admin.clone(), &self.env.ns)
            .get("pay-bot")
            .await
            .unwrap();
        let envelope: BehavioralEnvelope = Api::namespaced(self.env.admin.clone(), &self.env.ns)
            .get("limits")
            .await
            .unwrap();
        Binding::of(&grant, Some(&envelope), &agent).unwrap()
    }
}

fn agent_doc(ns: &str, key: &SigningKey) -> Value {
    json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": "pay-bot", "namespace": ns},
        "spec": {"displayName": "Grocery agent", "owner": "owner@example.com",
                 "publicKey": EcPublicJwk::from_key(&key.verifying_key().unwrap())},
    })
}

/// Threat: envelope loosened after approval — an approved grant's envelope is
/// edited to raise maxPerDay; the approval must not carry over to the new limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_envelope_suspends_the_grant_until_it_is_approved_again() {
    let mut p = Paying::new("bind-envelope").await;
    p.env.wait_phase("pay", "Approved").await;
    p.token_until(&p.key, 200, None).await;
    let approved = p.state_until(StatePhase::Approved).await;
    let signed = p.env.stored_grant("pay").await;
    let recorded = signed.status.unwrap().approval.unwrap();
    assert_eq!(
        Some(recorded.envelope_digest.as_str()),
        approved.envelope.as_ref().map(|e| e.digest.as_str())
    );

    // The attack: raise the daily limit a person approved.
    let envelopes: Api<BehavioralEnvelope> = Api::namespaced(p.env.admin.clone(), &p.env.ns);
    let raise = json!({"spec": {"transactions": {"maxPerDay": "100000.00"}}});
    envelopes
        .patch("limits", &PatchParams::default(), &Patch::Merge(&raise))
        .await
        .unwrap();
    // Verifiers are told: not usable (they answer grant_suspended; the
    // verifier's reason-code table covers Suspended → grant_suspended), and
    // every transaction, above the old limit or not, is refused.
    let suspended = p.state_until(StatePhase::Suspended).await;
    assert!(
        suspended.envelope.is_none(),
        "no limits published for a suspended grant"
    );
    let grant = p.ready_until(reasons::ENVELOPE_CHANGED).await;
    assert_eq!(
        grant.status.as_ref().unwrap().phase.map(|p| p.as_str()),
        Some("Approved")
    );
    let ready = conditions::find(&grant.status.as_ref().unwrap().conditions, types::READY).unwrap();
    assert!(
        ready.message.contains("approves it again"),
        "{}",
        ready.message
    );
    let refused = p.token_until(&p.key, 403, Some("grant_suspended")).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("envelope"),
        "{refused}"
    );

    // The approver sees it, with what an approval would now bind.
    let now = p.binding().await;
    let detail = p.approver.detail(&p.env.ns, "pay").await.unwrap();
    assert_eq!(detail["suspended"], true, "{detail}");
    assert_eq!(detail["envelopeDigest"], now.envelope_digest.as_str());
    assert_eq!(
        detail["agentKeyThumbprint"],
        now.agent_key_thumbprint.as_str()
    );
    let limits = detail["envelope"]["limits"].to_string();
    assert!(
        limits.contains("At most 100000.00 EUR per UTC day"),
        "{limits}"
    );
    let listed = p.approver.pending().await.unwrap();
    assert_eq!(listed["grants"][0]["suspended"], true, "{listed}");

    // Re-approval binds the new limits and resumes the grant.
    p.approve().await;
    let resumed = p.state_until(StatePhase::Approved).await;
    assert_eq!(resumed.envelope.unwrap().digest, now.envelope_digest);
    p.ready_until(reasons::APPROVED).await;
    p.token_until(&p.key, 200, None).await;
    let record = p
        .env
        .stored_grant("pay")
        .await
        .status
        .unwrap()
        .approval
        .unwrap();
    assert_eq!(record.envelope_digest, now.envelope_digest);
    assert_ne!(record.nonce, recorded.nonce, "a new ceremony");
}

/// Threat: agent key swapped after approval — the Agent's publicKey is
/// replaced after approval; the new key must get no token and tokens of the
/// old key must be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_agent_key_gets_no_token_until_it_is_approved_again() {
    let mut p = Paying::new("bind-key").await;
    p.env.wait_phase("pay", "Approved").await;
    p.token_until(&p.key, 200, None).await;
    let old_key = p.key.clone();
    let old_state = p.state_until(StatePhase::Approved).await;

    // The attack: put another key on the Agent.
    let new_key = SigningKey::generate();
    let agents: Api<Agent> = Api::namespaced(p.env.admin.clone(), &p.env.ns);
    let swap =
        json!({"spec": {"publicKey": EcPublicJwk::from_key(&new_key.verifying_key().unwrap())}});
    agents
        .patch("pay-bot", &PatchParams::default(), &Patch::Merge(&swap))
        .await
        .unwrap();
    // Tokens of the old key: the state says Suspended (verifiers deny
    // grant_suspended; once re-approved, the old key's cnf.jkt no longer
    // matches: dpop_key_mismatch).
    let suspended = p.state_until(StatePhase::Suspended).await;
    assert_ne!(suspended.agent_jkt, old_state.agent_jkt);
    p.ready_until(reasons::AGENT_KEY_CHANGED).await;
    // The new key gets no token: the approval does not cover it.
    p.token_until(&new_key, 403, Some("grant_suspended")).await;
    // The old key is not the agent's any more: to it the grant is unknown.
    p.token_until(&old_key, 404, Some("grant_unknown")).await;

    let detail = p.approver.detail(&p.env.ns, "pay").await.unwrap();
    let thumbprint = p.binding().await.agent_key_thumbprint;
    assert_eq!(
        detail["agent"]["keyWords"],
        format!("agent key fingerprint: {thumbprint}")
    );
    p.approve().await;
    let resumed = p.state_until(StatePhase::Approved).await;
    assert_eq!(resumed.agent_jkt, thumbprint);
    p.token_until(&new_key, 200, None).await;
    p.token_until(&old_key, 404, Some("grant_unknown")).await;
}

/// Threat: binding moved mid-ceremony — the envelope changes between the
/// approver's begin and finish; the signed challenge covers the old limits,
/// so finishing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_changed_during_the_ceremony_is_refused() {
    let mut p = Paying::new("bind-ceremony").await;
    p.env.wait_phase("pay", "Approved").await;
    let envelopes: Api<BehavioralEnvelope> = Api::namespaced(p.env.admin.clone(), &p.env.ns);
    envelopes
        .patch(
            "limits",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"transactions": {"maxPerDay": "500.00"}}})),
        )
        .await
        .unwrap();
    p.state_until(StatePhase::Suspended).await;
    // Begin, then the envelope moves again, then finish.
    let begun = p.approver.begin(&p.env.ns, "pay", "approve").await.unwrap();
    assert_eq!(
        begun["grant"]["envelopeDigest"],
        p.binding().await.envelope_digest.as_str()
    );
    envelopes
        .patch(
            "limits",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"transactions": {"maxPerDay": "900.00"}}})),
        )
        .await
        .unwrap();
    let mut approver = p.approver;
    refused(
        approver.finish(&p.env.ns, "pay", "approve", &begun).await,
        400,
        "approval_challenge_mismatch",
    );
}
