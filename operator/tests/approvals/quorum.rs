//! N-of-M approvals against the real apiserver, webhook, controllers,
//! approval API and token endpoint: a grant that needs two approvers is
//! Approved only at the second distinct approval, each approver counts once,
//! a forged or duplicate co-signature written straight into the status is
//! refused by the webhook, an owner never counts, and one denial ends the
//! grant unless the policy counts denials.

use std::time::{Duration, Instant};

use agentauth_core::approval::{self, ChallengeInput, Decision};
use agentauth_core::b64;
use agentauth_core::dpop;
use agentauth_core::es256::SigningKey;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_crds::approval::Binding;
use agentauth_crds::conditions::{self, types};
use agentauth_crds::{Agent, Approval, BehavioralEnvelope, CapabilityGrant};
use agentauth_operator::clock::Clock;
use agentauth_soft_passkey::SoftApprover;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::*;

/// An agent `pay-bot` (owned by olga@example.com) holding `key`, envelope
/// `limits`, grant `pay` (transact orders/**), and logged-in approvers.
struct Quorum {
    env: Env,
    key: SigningKey,
}

impl Quorum {
    /// The world, with `envelope_policy` on the envelope and `grant_policy`
    /// on the grant (`Value::Null`: none).
    async fn new(prefix: &str, envelope_policy: Value, grant_policy: Value) -> Quorum {
        let env = Env::new(prefix).await;
        let key = SigningKey::generate();
        env.create(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": "pay-bot", "namespace": env.ns},
            "spec": {"displayName": "Grocery agent", "owner": "olga@example.com",
                     "publicKey": EcPublicJwk::from_key(&key.verifying_key().unwrap())},
        }))
        .await;
        let mut envelope = json!({"transactions": {"currency": "EUR",
            "maxPerTransaction": "100.00", "maxPerDay": "100.00"}});
        if !envelope_policy.is_null() {
            envelope["approvals"] = envelope_policy;
        }
        env.create(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "BehavioralEnvelope",
            "metadata": {"name": "limits", "namespace": env.ns},
            "spec": envelope,
        }))
        .await;
        let mut spec = json!({"agentRef": {"name": "pay-bot"},
            "serviceProvider": "https://shop.example.com",
            "capabilities": [{"type": "transact", "resource": "orders/**",
                              "maxAmount": "500.00", "currency": "EUR"}],
            "envelopeRef": {"name": "limits"},
            "duration": "8h", "reason": "Pay for the team's groceries"});
        if !grant_policy.is_null() {
            spec["approvals"] = grant_policy;
        }
        env.create(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "CapabilityGrant",
            "metadata": {"name": "pay", "namespace": env.ns},
            "spec": spec,
        }))
        .await;
        let ns = env.ns.clone();
        env.wait(|c| {
            c.agent(&ns, "pay-bot").is_some_and(|a| {
                a.status
                    .as_ref()
                    .is_some_and(|s| s.key_thumbprint.is_some())
            }) && c.grant(&ns, "pay").is_some()
        })
        .await;
        Quorum { env, key }
    }

    /// A logged-in approver allowed to approve in this namespace.
    async fn approver(&self, prefix: &str) -> (SoftApprover, String) {
        let (passkey, name, email) = self.env.logged_in(prefix, &[self.env.ns.as_str()]).await;
        self.env.allow_approve(&email).await;
        (passkey, name)
    }

    /// Waits until the stored grant's `status.approvalProgress` is `want`.
    async fn progress_until(&self, want: &str) -> CapabilityGrant {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let grant = self.env.stored_grant("pay").await;
            let now = grant
                .status
                .as_ref()
                .and_then(|s| s.approval_progress.clone());
            if now.as_deref() == Some(want) {
                return grant;
            }
            assert!(
                Instant::now() < deadline,
                "progress stayed {now:?}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST /v1/token` for grant `pay`: the HTTP status and the body.
    async fn token(&self) -> (u16, Value) {
        let url = format!("{}/v1/token", self.env.base);
        let request = dpop::Request {
            method: "POST",
            url: &url,
            access_token: None,
            nonce: None,
        };
        let iat = self.env.clock.now_ms() / 1000;
        let proof = dpop::create(&self.key, &request, iat, &dpop::new_jti()).unwrap();
        let response = self
            .env
            .http()
            .post(&url)
            .header("DPoP", proof)
            .json(&json!({"grant": format!("{}/pay", self.env.ns)}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// The values an approval of `pay` binds now.
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

    /// A record of `decision` on `pay` naming `approver` and `credential_id`,
    /// signed by `passkey` over the genuine challenge (a forgery when the
    /// passkey is not that credential).
    async fn record(
        &self,
        passkey: &mut SoftApprover,
        approver: &str,
        credential_id: &str,
        decision: Decision,
    ) -> Approval {
        let grant = self.env.stored_grant("pay").await;
        let binding = self.binding().await;
        let nonce = format!("direct-write-nonce-{approver}");
        let spec_digest = approval::spec_digest(&grant.spec).unwrap();
        let generation = grant.metadata.generation.unwrap();
        let challenge = approval::challenge(&ChallengeInput {
            grant_uid: grant.uid().unwrap(),
            generation,
            spec_digest: spec_digest.clone(),
            decision,
            nonce: nonce.clone(),
            envelope_digest: binding.envelope_digest.clone(),
            agent_key_thumbprint: binding.agent_key_thumbprint.clone(),
        })
        .unwrap();
        let options = json!({"publicKey": {"challenge": b64::encode(challenge), "rpId": RP_ID}});
        let signed = passkey.assertion(&options).unwrap();
        let field = |name: &str| signed["response"][name].as_str().unwrap().to_owned();
        Approval {
            approver: approver.to_owned(),
            credential_id: credential_id.to_owned(),
            decision,
            nonce,
            signed_at: Time(jiff::Timestamp::now()),
            generation,
            spec_digest,
            envelope_digest: binding.envelope_digest,
            agent_key_thumbprint: binding.agent_key_thumbprint,
            authenticator_data: field("authenticatorData"),
            client_data_json: field("clientDataJSON"),
            signature: field("signature"),
        }
    }

    /// Writes `status` straight into the grant as the operator's identity
    /// (the only writer the webhook admits), bypassing the approval API;
    /// the refusal's message when the apiserver refuses.
    async fn write_status(&self, status: Value) -> Result<(), String> {
        let operator = self
            .env
            .cp
            .client_as(OPERATOR, &["system:masters"])
            .unwrap();
        let api: Api<CapabilityGrant> = Api::namespaced(operator, &self.env.ns);
        api.patch_status(
            "pay",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

fn approved_message(grant: &CapabilityGrant) -> String {
    let status = grant.status.as_ref().unwrap();
    conditions::find(&status.conditions, types::APPROVED)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Threat: one approver alone unlocking a grant that needs two — the grant
/// (here through its envelope's policy) stays Pending at 1/2 and no token is
/// issued (`grant_not_approved`) until a second, distinct approver approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_two_is_approved_only_at_the_second_approval() {
    let q = Quorum::new("quorum", json!({"required": 2}), Value::Null).await;
    let (mut dana, dana_name) = q.approver("dana").await;
    let (mut carol, carol_name) = q.approver("carol").await;
    q.progress_until("0/2 approved").await;

    dana.approve(&q.env.ns, "pay").await.unwrap();
    let grant = q.progress_until("1/2 approved").await;
    let status = grant.status.as_ref().unwrap();
    assert_eq!(status.phase.map(|p| p.as_str()), Some("Pending"));
    assert!(status.approval.is_none(), "one approval does not decide");
    assert_eq!(status.approvals.len(), 1);
    assert_eq!(status.approvals[0].approver, dana_name);
    let message = approved_message(&grant);
    assert!(message.contains("1/2 approved"), "{message}");
    let (code, body) = q.token().await;
    assert!((400..500).contains(&code), "{code} {body}");
    assert_eq!(body["code"], "grant_not_approved", "{body}");
    // Dana's history lists her co-signature, the grant still Pending.
    let history = dana.history().await.unwrap();
    let mine = history["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "pay")
        .cloned()
        .unwrap_or_else(|| panic!("pay is not in dana's history: {history}"));
    assert_eq!(
        (mine["decision"].as_str(), mine["phase"].as_str()),
        (Some("Approved"), Some("Pending"))
    );
    // Carol sees the grant waiting, with Dana's approval counted.
    let listed = carol.pending().await.unwrap();
    let row = listed["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "pay")
        .cloned()
        .unwrap_or_else(|| panic!("pay is not pending for carol: {listed}"));
    assert_eq!(row["quorum"]["progress"], "1/2 approved", "{row}");
    assert_eq!(row["quorum"]["yourDecision"], Value::Null, "{row}");

    carol.approve(&q.env.ns, "pay").await.unwrap();
    let grant = q.env.wait_phase("pay", "Approved").await;
    let status = grant.status.as_ref().unwrap();
    assert_eq!(status.approval.as_ref().unwrap().approver, carol_name);
    q.progress_until("2/2 approved").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = q.token().await;
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no token at 2/2: {code} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each approval is its own audit event; the quorum is the phase change.
    q.env.ctx.audit.flush().await;
    let events = q.env.state.audit_events(0, 1000);
    let recorded = events
        .iter()
        .filter(|(_, e)| {
            e.kind == "approval_recorded"
                && e.grant.as_deref() == Some(&format!("{}/pay", q.env.ns))
        })
        .count();
    assert_eq!(recorded, 2, "one approval_recorded per approver");
    // Reaching the quorum is the grant_approved transition, naming both.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = q.env.state.audit_events(0, 1000);
        let approved = events.iter().find(|(_, e)| {
            e.kind == "grant_approved" && e.grant.as_deref() == Some(&format!("{}/pay", q.env.ns))
        });
        if let Some((_, e)) = approved {
            assert_eq!(
                e.details["approvers"],
                json!([dana_name, carol_name]),
                "{e:?}"
            );
            assert_eq!(e.details["approvalProgress"], "2/2 approved", "{e:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no grant_approved event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Threat: one person approving twice to reach a quorum of two — again with
/// the same passkey, with a second passkey, or as a second Approver carrying
/// the same email; each is refused `approval_duplicate` and the grant stays
/// at 1/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_approver_twice_counts_once() {
    let q = Quorum::new("twice", Value::Null, json!({"required": 2})).await;
    let (mut dana, dana_name) = q.approver("dana").await;
    dana.approve(&q.env.ns, "pay").await.unwrap();
    q.progress_until("1/2 approved").await;

    // The same passkey again: the API says so.
    match dana.approve(&q.env.ns, "pay").await {
        Err(agentauth_soft_passkey::SoftPasskeyError::Refused {
            status,
            code,
            message,
        }) => {
            assert_eq!(
                (status, code.as_str()),
                (409, "approval_duplicate"),
                "{message}"
            );
            assert!(
                message.contains("already approved by you; 1/2 approved"),
                "{message}"
            );
        }
        other => panic!("expected approval_duplicate, got {other:?}"),
    }
    // A second passkey of the same approver.
    let token = q.env.token(&dana_name, Duration::from_secs(3600)).await;
    let mut second = q.env.passkey();
    second.enroll(&dana_name, &token).await.unwrap();
    second.login(&dana_name).await.unwrap();
    refused(
        second.approve(&q.env.ns, "pay").await,
        409,
        "approval_duplicate",
    );
    // Written straight into the status, the webhook refuses it too.
    let first = q.env.stored_grant("pay").await.status.unwrap().approvals[0].clone();
    let second_id = second.credential_id();
    let again = q
        .record(&mut second, &dana_name, &second_id, Decision::Approved)
        .await;
    let refusal = q
        .write_status(json!({"approval": again}))
        .await
        .unwrap_err();
    assert!(refusal.contains("approval_duplicate"), "{refusal}");
    let copy = q
        .write_status(json!({"approvals": [first.clone(), first]}))
        .await
        .unwrap_err();
    assert!(copy.contains("approval_duplicate"), "{copy}");
    // Another Approver object with Dana's email is still Dana.
    let alias = format!("dana-alias-{}", q.env.ns);
    let dana_email = q.env.stored_approver(&dana_name).await.spec.email;
    q.env
        .create(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver",
            "metadata": {"name": alias},
            "spec": {"displayName": "Dana again", "email": dana_email,
                     "scope": {"namespaces": [q.env.ns]}},
        }))
        .await;
    q.env.wait(|c| c.approver(&alias).is_some()).await;
    let token = q.env.token(&alias, Duration::from_secs(3600)).await;
    let mut third = q.env.passkey();
    third.enroll(&alias, &token).await.unwrap();
    third.login(&alias).await.unwrap();
    refused(
        third.approve(&q.env.ns, "pay").await,
        409,
        "approval_duplicate",
    );

    let grant = q.progress_until("1/2 approved").await;
    let status = grant.status.unwrap();
    assert_eq!(status.phase.map(|p| p.as_str()), Some("Pending"));
    assert_eq!(status.approvals.len(), 1);
    assert!(status.approval.is_none());
}

/// Threat: a forged co-signature — a second entry whose signature was made
/// by another passkey than the one it names, written straight into the
/// status as the operator's identity; the webhook refuses it
/// (`approval_signature_invalid`) as a co-signature and as the deciding
/// record, and the grant stays at 1/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_second_signature_is_refused() {
    let q = Quorum::new("forged", json!({"required": 2}), Value::Null).await;
    let (mut dana, _) = q.approver("dana").await;
    let (carol, carol_name) = q.approver("carol").await;
    dana.approve(&q.env.ns, "pay").await.unwrap();
    q.progress_until("1/2 approved").await;
    let first = q.env.stored_grant("pay").await.status.unwrap().approvals[0].clone();

    // Carol's name and passkey id, Dana's signature.
    let forged = q
        .record(
            &mut dana,
            &carol_name,
            &carol.credential_id(),
            Decision::Approved,
        )
        .await;
    let as_decision = q
        .write_status(json!({"approval": forged}))
        .await
        .unwrap_err();
    assert!(
        as_decision.contains("approval_signature_invalid"),
        "{as_decision}"
    );
    let as_co_signature = q
        .write_status(json!({"approvals": [first, forged]}))
        .await
        .unwrap_err();
    assert!(
        as_co_signature.contains("approval_signature_invalid"),
        "{as_co_signature}"
    );
    // A deciding record with no co-signature at all claims a quorum of one.
    let (mut erin, erin_name) = q.approver("erin").await;
    let erin_id = erin.credential_id();
    let alone = q
        .record(&mut erin, &erin_name, &erin_id, Decision::Approved)
        .await;
    let unrelated = q
        .write_status(json!({"approvals": [], "approval": alone}))
        .await;
    assert!(
        unrelated.is_err(),
        "removing the recorded approval is refused"
    );

    let grant = q.progress_until("1/2 approved").await;
    assert_eq!(
        grant.status.unwrap().phase.map(|p| p.as_str()),
        Some("Pending")
    );
}

/// Threat: the agent's owner among the approvers — the owner's genuine
/// passkey signature, written straight into the status as the second
/// approval, is refused (`approval_invalid`: owns the agent), as is the
/// owner through the approval API (`approver_owns_agent`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_among_the_approvers_never_counts() {
    let q = Quorum::new("owner-quorum", Value::Null, json!({"required": 2})).await;
    let (mut dana, _) = q.approver("dana").await;
    // Olga owns pay-bot (its spec.owner is her email).
    let olga = format!("olga-{}", q.env.ns);
    q.env
        .create(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver",
            "metadata": {"name": olga},
            "spec": {"displayName": "Olga", "email": "olga@example.com",
                     "scope": {"namespaces": [q.env.ns]}},
        }))
        .await;
    q.env.wait(|c| c.approver(&olga).is_some()).await;
    let token = q.env.token(&olga, Duration::from_secs(3600)).await;
    let mut owner = q.env.passkey();
    owner.enroll(&olga, &token).await.unwrap();
    owner.login(&olga).await.unwrap();
    q.env.allow_approve("olga@example.com").await;

    dana.approve(&q.env.ns, "pay").await.unwrap();
    q.progress_until("1/2 approved").await;
    refused(
        owner.approve(&q.env.ns, "pay").await,
        403,
        "approver_owns_agent",
    );
    let owner_id = owner.credential_id();
    let genuine = q
        .record(&mut owner, &olga, &owner_id, Decision::Approved)
        .await;
    let refusal = q
        .write_status(json!({"approval": genuine}))
        .await
        .unwrap_err();
    assert!(refusal.contains("approval_invalid"), "{refusal}");
    assert!(refusal.contains("owns agent"), "{refusal}");
    let grant = q.progress_until("1/2 approved").await;
    assert_eq!(
        grant.status.unwrap().phase.map(|p| p.as_str()),
        Some("Pending")
    );
}

/// A denial after one approval ends a 2-of-2 grant (Denied, the default
/// Veto); with `denial: Quorum` it is counted instead, and the grant is
/// approved by two others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_after_one_approval_ends_the_grant_unless_denials_are_counted() {
    let q = Quorum::new("veto", Value::Null, json!({"required": 2})).await;
    let (mut dana, _) = q.approver("dana").await;
    let (mut carol, carol_name) = q.approver("carol").await;
    dana.approve(&q.env.ns, "pay").await.unwrap();
    q.progress_until("1/2 approved").await;
    carol.deny(&q.env.ns, "pay").await.unwrap();
    let grant = q.env.wait_phase("pay", "Denied").await;
    let status = grant.status.as_ref().unwrap();
    assert_eq!(status.approval.as_ref().unwrap().approver, carol_name);
    assert_eq!(status.approval.as_ref().unwrap().decision, Decision::Denied);

    let q = Quorum::new(
        "count",
        Value::Null,
        json!({"required": 2, "denial": "Quorum"}),
    )
    .await;
    let (mut dana, _) = q.approver("dana").await;
    let (mut carol, _) = q.approver("carol").await;
    let (mut erin, _) = q.approver("erin").await;
    dana.approve(&q.env.ns, "pay").await.unwrap();
    carol.deny(&q.env.ns, "pay").await.unwrap();
    let grant = q.progress_until("1/2 approved, 1 denied").await;
    let status = grant.status.as_ref().unwrap();
    assert_eq!(status.phase.map(|p| p.as_str()), Some("Pending"));
    assert_eq!(status.approvals.len(), 2);
    erin.approve(&q.env.ns, "pay").await.unwrap();
    q.env.wait_phase("pay", "Approved").await;
    q.progress_until("2/2 approved, 1 denied").await;
}
