//! Approve or deny: the passkey signs the approval challenge (DESIGN §4.2)
//! and the decision lands in the grant's `status.approval`.
//!
//! ```text
//!  POST …/{approve,deny}/begin ──▶ pending (or suspended, to approve)? scope? not the
//!       agent's owner? RBAC approve?
//!       ──▶ nonce; challenge = SHA-256(JCS{grantUid, generation, specDigest, decision, nonce,
//!                                           envelopeDigest, agentKeyThumbprint})
//!       ──▶ PublicKeyCredentialRequestOptions {challenge, rpId, allowCredentials, UV required}
//!  POST …/{approve,deny}/finish <assertion>
//!       ──▶ the ceremony of this session, for this grant and decision, not timed out
//!       ──▶ grant, Agent, envelope re-read: same uid, generation, specDigest, envelope
//!           digest and agent key thumbprint (else approval_challenge_mismatch); still
//!           undecided or suspended (else 409)
//!       ──▶ scope, owner, not decided by this approver yet, RBAC again
//!       ──▶ decides the grant under its approval policy (N-of-M)? status.approval : status.approvals
//!       ──▶ tally: every recorded decision with the new one (the webhook's own check)
//!       ──▶ merge patch status.approval, or status.approvals + the new entry
//!           (resourceVersion precondition)
//!       ──▶ the passkey's signCount advances; audit event (a counter that cannot
//!           advance: the decision stands and is audited, the answer is 503; [`super::approvers`])
//! ```
//!
//! **Re-approval.** A suspended grant (approved, then its envelope's spec or
//! its agent's key changed) can be approved again: the new record replaces
//! the old one and binds the new values; the webhook verifies it like a
//! first approval, with a fresh sign counter. A denial is never replaced.
//!
//! webauthn-rs cannot sign over a given challenge, so these options are built
//! here and the assertion is checked with the shared verifier of
//! `agentauth-crds`, exactly as the admission webhook checks it.

use std::sync::Arc;

use agentauth_core::approval::{self, ChallengeInput, Decision};
use agentauth_core::{ErrorCode, b64};
use agentauth_crds::approval::Binding;
use agentauth_crds::{Agent, Approval, Approver, BehavioralEnvelope, CapabilityGrant};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use webauthn_rs::prelude::PublicKeyCredential;

use super::ceremony::{self, Ceremony, DecisionChallenge};
use super::guard::LoggedIn;
use super::record::{audit, record_decision, still_signed};
use super::reply::{Body, Refusal, no_store};
use super::scope::{Parties, may_decide};
use super::session::{CEREMONY_TIMEOUT, random_token};
use super::setup::Approvals;
use super::{approvers, placement};

/// `POST grants/{namespace}/{name}/approve/begin`.
pub async fn begin_approve(
    state: State<Arc<Approvals>>,
    session: LoggedIn,
    path: Path<(String, String)>,
) -> Result<Response, Refusal> {
    begin(state, session, path, Decision::Approved).await
}

/// `POST grants/{namespace}/{name}/deny/begin`.
pub async fn begin_deny(
    state: State<Arc<Approvals>>,
    session: LoggedIn,
    path: Path<(String, String)>,
) -> Result<Response, Refusal> {
    begin(state, session, path, Decision::Denied).await
}

/// `POST grants/{namespace}/{name}/approve/finish`.
pub async fn finish_approve(
    state: State<Arc<Approvals>>,
    session: LoggedIn,
    path: Path<(String, String)>,
    body: Body<PublicKeyCredential>,
) -> Result<Response, Refusal> {
    finish(state, session, path, Decision::Approved, body).await
}

/// `POST grants/{namespace}/{name}/deny/finish`.
pub async fn finish_deny(
    state: State<Arc<Approvals>>,
    session: LoggedIn,
    path: Path<(String, String)>,
    body: Body<PublicKeyCredential>,
) -> Result<Response, Refusal> {
    finish(state, session, path, Decision::Denied, body).await
}

/// The grant, its Agent, its envelope and the Approver, read from the apiserver.
async fn parties(
    client: Client,
    approver_name: &str,
    namespace: &str,
    name: &str,
) -> Result<Parties, Refusal> {
    let grant = Api::<CapabilityGrant>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| Refusal::kube("read the grant", &e))?
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::GrantUnknown,
                format!("no grant {namespace}/{name}"),
            )
        })?;
    let agent_name = &grant.spec.agent_ref.name;
    let agent = Api::<Agent>::namespaced(client.clone(), namespace)
        .get_opt(agent_name)
        .await
        .map_err(|e| Refusal::kube("read the grant's Agent", &e))?
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::AgentNotFound,
                format!("the grant's Agent {namespace}/{agent_name} does not exist"),
            )
        })?;
    let envelope = match &grant.spec.envelope_ref {
        None => None,
        Some(r) => Some(
            Api::<BehavioralEnvelope>::namespaced(client.clone(), namespace)
                .get_opt(&r.name)
                .await
                .map_err(|e| Refusal::kube("read the grant's envelope", &e))?
                .ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::EnvelopeNotFound,
                        format!(
                            "the grant's envelope {namespace}/{} does not exist; a grant cannot \
                             be decided without the limits it would run under",
                            r.name
                        ),
                    )
                })?,
        ),
    };
    let approver = approvers::get(client, approver_name).await?;
    Ok(Parties {
        grant,
        agent,
        envelope,
        approver,
    })
}

async fn begin(
    State(approvals): State<Arc<Approvals>>,
    session: LoggedIn,
    Path((namespace, name)): Path<(String, String)>,
    decision: Decision,
) -> Result<Response, Refusal> {
    let ctx = &approvals.ctx;
    let parties = parties(ctx.client.clone(), &session.approver, &namespace, &name).await?;
    may_decide(ctx.client.clone(), &parties, decision).await?;
    let Parties {
        grant,
        agent,
        envelope,
        approver,
    } = parties;
    let pending = DecisionChallenge {
        namespace,
        name,
        uid: grant.uid().unwrap_or_default(),
        generation: grant.metadata.generation.unwrap_or_default(),
        spec_digest: approval::spec_digest(&grant.spec)?,
        binding: Binding::of(&grant, envelope.as_ref(), &agent)?,
        decision,
        nonce: random_token(),
    };
    let options = request_options(&approvals, &approver, &pending)?;
    ceremony::begin(
        &approvals.sessions,
        &session.id,
        Ceremony::Decide(pending),
        ctx.clock.now_ms(),
    )?;
    Ok(no_store(Json(options)))
}

/// The WebAuthn request options over the challenge of `pending`, with the
/// values it binds so the UI can show what is being signed.
fn request_options(
    approvals: &Approvals,
    approver: &Approver,
    pending: &DecisionChallenge,
) -> Result<Value, Refusal> {
    let challenge = approval::challenge(&ChallengeInput {
        grant_uid: pending.uid.clone(),
        generation: pending.generation,
        spec_digest: pending.spec_digest.clone(),
        decision: pending.decision,
        nonce: pending.nonce.clone(),
        envelope_digest: pending.binding.envelope_digest.clone(),
        agent_key_thumbprint: pending.binding.agent_key_thumbprint.clone(),
    })?;
    let allow: Vec<_> = approvers::passkeys(approver)
        .iter()
        .map(|p| json!({"type": "public-key", "id": p.credential_id}))
        .collect();
    Ok(json!({
        "publicKey": {
            "challenge": b64::encode(challenge),
            "rpId": approvals.ctx.relying_party.id,
            "allowCredentials": allow,
            "userVerification": "required",
            "timeout": CEREMONY_TIMEOUT.as_millis() as u64,
        },
        "decision": pending.decision.as_str(),
        "grant": {"namespace": pending.namespace, "name": pending.name, "uid": pending.uid,
                  "generation": pending.generation, "specDigest": pending.spec_digest,
                  "envelopeDigest": pending.binding.envelope_digest,
                  "agentKeyThumbprint": pending.binding.agent_key_thumbprint},
    }))
}

async fn finish(
    State(approvals): State<Arc<Approvals>>,
    session: LoggedIn,
    Path((namespace, name)): Path<(String, String)>,
    decision: Decision,
    Body(credential): Body<PublicKeyCredential>,
) -> Result<Response, Refusal> {
    let ctx = &approvals.ctx;
    let now = ctx.clock.now_ms();
    let pending = ceremony::finish_decide(
        &approvals.sessions,
        &session.id,
        now,
        (&namespace, &name),
        decision,
    )?;
    let parties = parties(ctx.client.clone(), &session.approver, &namespace, &name).await?;
    may_decide(ctx.client.clone(), &parties, decision).await?;
    still_signed(&parties.grant, &pending)?;
    if Binding::of(&parties.grant, parties.envelope.as_ref(), &parties.agent)? != pending.binding {
        return Err(Refusal::new(
            ErrorCode::ApprovalChallengeMismatch,
            "the grant's envelope or its agent's key changed since the ceremony began; read the \
             grant again and decide anew",
        ));
    }
    let record = signed_record(&pending, &parties.approver, &credential, now);
    let placed = placement::verify(&approvals, &parties, &record)?;
    record_decision(
        &approvals,
        parties.grant.clone(),
        &pending,
        &record,
        &placed.tally.policy,
    )
    .await?;
    let advanced = approvers::advance_counter(
        ctx.client.clone(),
        &record.approver,
        &record.credential_id,
        placed.sign_count,
    )
    .await;
    // The decision stands whether or not the counter moved (a decision is
    // final), so its audit event is recorded either way.
    let progress = placed.tally.progress();
    audit(&approvals, &parties.grant, &record, &progress).await;
    advanced.map_err(|mut refused| {
        refused.0.detail = format!(
            "the {} is recorded, but the passkey's sign counter could not be advanced: {}",
            decision.as_str(),
            refused.0.detail
        );
        refused
    })?;
    Ok(no_store(Json(json!({
        "grant": {"namespace": namespace, "name": name},
        "decision": decision.as_str(),
        "approver": record.approver,
        "progress": progress,
        "required": placed.tally.policy.required,
        "approvals": placed.tally.approved.len(),
        "decided": placed.tally.decision.map(Decision::as_str),
    }))))
}

/// The approval record `credential` makes of the ceremony `pending`.
fn signed_record(
    pending: &DecisionChallenge,
    approver: &Approver,
    credential: &PublicKeyCredential,
    now_ms: i64,
) -> Approval {
    Approval {
        approver: approver.name_any(),
        credential_id: b64::encode(credential.raw_id.as_ref()),
        decision: pending.decision,
        nonce: pending.nonce.clone(),
        signed_at: Time(jiff::Timestamp::from_millisecond(now_ms).unwrap_or_default()),
        generation: pending.generation,
        spec_digest: pending.spec_digest.clone(),
        envelope_digest: pending.binding.envelope_digest.clone(),
        agent_key_thumbprint: pending.binding.agent_key_thumbprint.clone(),
        authenticator_data: b64::encode(credential.response.authenticator_data.as_ref()),
        client_data_json: b64::encode(credential.response.client_data_json.as_ref()),
        signature: b64::encode(credential.response.signature.as_ref()),
    }
}
