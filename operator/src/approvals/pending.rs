//! What an approver reads before deciding: the pending grants within their
//! scope, and one grant with everything a person must see — the agent and
//! its owner, the provider, each capability in plain words ([`super::words`]),
//! the envelope's limits, the agent's key fingerprint, the expiry and the
//! reason. Served from the informer caches.
//!
//! Suspended grants are listed too: approved, but the envelope's spec or the
//! agent's key changed since (DESIGN §13), so the approval no longer covers
//! what would be enforced; an approver may approve the new values.

use std::sync::Arc;

use agentauth_core::ErrorCode;
use agentauth_core::approval::Decision;
use agentauth_crds::approval::{owns, quorum};
use agentauth_crds::{Approver, BehavioralEnvelope, CapabilityGrant, GrantPhase};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::guard::LoggedIn;
use super::reply::{Refusal, no_store};
use super::scope::{
    Standing, binding_now, in_scope, is_pending, is_suspended, out_of_scope, standing,
};
use super::setup::Approvals;
use super::{approvers, words};

/// The cached envelope `grant` names, if it names one and it exists.
fn cached_envelope(
    approvals: &Approvals,
    grant: &CapabilityGrant,
) -> Option<Arc<BehavioralEnvelope>> {
    let namespace = grant.namespace().unwrap_or_default();
    let reference = grant.spec.envelope_ref.as_ref()?;
    approvals.ctx.caches.envelope(&namespace, &reference.name)
}

fn summary(approvals: &Approvals, approver: &Approver, grant: &CapabilityGrant) -> Value {
    let namespace = grant.namespace().unwrap_or_default();
    let agent = approvals
        .ctx
        .caches
        .agent(&namespace, &grant.spec.agent_ref.name);
    let envelope = cached_envelope(approvals, grant);
    json!({
        "namespace": namespace,
        "name": grant.name_any(),
        "agent": grant.spec.agent_ref.name,
        "agentOwner": agent.as_ref().map(|a| a.spec.owner.clone()),
        "serviceProvider": grant.spec.service_provider,
        "reason": grant.spec.reason,
        "capabilities": grant.spec.capabilities.iter().map(words::capability).collect::<Vec<_>>(),
        "createdAt": grant.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()),
        "ownsAgent": agent.as_ref().is_some_and(|a| owns(a, approver)),
        "suspended": is_suspended(grant, envelope.as_deref(), agent.as_deref()),
        "quorum": quorum_view(grant, envelope.as_deref(), approver),
    })
}

/// N-of-M progress for the UI: how many distinct approvers are required,
/// who approved or denied so far, and what this approver decided. Counted
/// from the recorded entries, each of which the webhook verified when it
/// was written (the operator's verified count is `status.approvalProgress`).
fn quorum_view(
    grant: &CapabilityGrant,
    envelope: Option<&BehavioralEnvelope>,
    approver: &Approver,
) -> Value {
    let policy = quorum::policy(grant, envelope);
    let entries = quorum::recorded(grant.status.as_ref());
    let by = |decision: Decision| -> Vec<&str> {
        entries
            .iter()
            .filter(|(_, a)| a.decision == decision)
            .map(|(_, a)| a.approver.as_str())
            .collect()
    };
    let (approved, denied) = (by(Decision::Approved), by(Decision::Denied));
    let mine = approver.name_any();
    let yours = entries
        .iter()
        .find(|(_, a)| a.approver == mine)
        .map(|(_, a)| a.decision.as_str());
    let mut progress = format!("{}/{} approved", approved.len(), policy.required);
    if !denied.is_empty() {
        progress.push_str(&format!(", {} denied", denied.len()));
    }
    json!({
        "required": policy.required,
        "approvedBy": approved,
        "deniedBy": denied,
        "denial": policy.denial,
        "progress": progress,
        "yourDecision": yours,
    })
}

/// `GET grants`: the pending grants within the approver's scope, oldest first.
pub async fn list(
    State(approvals): State<Arc<Approvals>>,
    session: LoggedIn,
) -> Result<Response, Refusal> {
    let approver = approvers::logged_in(&approvals.ctx.caches, &session.approver)?;
    let mut grants: Vec<Arc<CapabilityGrant>> = approvals
        .ctx
        .caches
        .grants
        .state()
        .into_iter()
        .filter(|g| in_scope(&approver, g) && (is_pending(g) || suspended(&approvals, g)))
        .collect();
    grants.sort_by_key(|g| (g.metadata.creation_timestamp.clone(), g.name_any()));
    let items: Vec<Value> = grants
        .iter()
        .map(|g| summary(&approvals, &approver, g))
        .collect();
    Ok(no_store(Json(json!({"grants": items}))))
}

fn suspended(approvals: &Approvals, grant: &CapabilityGrant) -> bool {
    let namespace = grant.namespace().unwrap_or_default();
    let agent = approvals
        .ctx
        .caches
        .agent(&namespace, &grant.spec.agent_ref.name);
    let envelope = cached_envelope(approvals, grant);
    is_suspended(grant, envelope.as_deref(), agent.as_deref())
}

/// `GET grants/{namespace}/{name}`: one grant as a person must read it.
pub async fn detail(
    State(approvals): State<Arc<Approvals>>,
    session: LoggedIn,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let approver = approvers::logged_in(&approvals.ctx.caches, &session.approver)?;
    let caches = &approvals.ctx.caches;
    let grant = caches.grant(&namespace, &name).ok_or_else(|| {
        Refusal::new(
            ErrorCode::GrantUnknown,
            format!("no grant {namespace}/{name}"),
        )
    })?;
    if !in_scope(&approver, &grant) {
        return Err(out_of_scope(&approver, &namespace, &name));
    }
    let agent = caches.agent(&namespace, &grant.spec.agent_ref.name);
    let envelope = grant
        .spec
        .envelope_ref
        .as_ref()
        .map(|r| (r.name.clone(), caches.envelope(&namespace, &r.name)));
    let spec = &grant.spec;
    let capabilities: Vec<Value> = spec
        .capabilities
        .iter()
        .map(|c| json!({"words": words::capability(c), "capability": c}))
        .collect();
    let status = grant.status.as_ref();
    let found = envelope.as_ref().and_then(|(_, e)| e.clone());
    let now = binding_now(&grant, found.as_deref(), agent.as_deref());
    let suspended = is_suspended(&grant, found.as_deref(), agent.as_deref());
    let body = json!({
        "namespace": namespace,
        "name": name,
        "uid": grant.uid(),
        "generation": grant.metadata.generation,
        "phase": status.and_then(|s| s.phase).map_or("Pending", GrantPhase::as_str),
        "pending": is_pending(&grant),
        "suspended": suspended,
        "revoked": spec.revoked,
        // Whether `POST …/revoke` would take an approval back ([`super::revoke`]).
        "revocable": standing(&grant) == Standing::Revocable,
        // What an approval signed now binds (DESIGN §13): the envelope's
        // spec digest ("" without an envelope) and the agent key's RFC 7638
        // thumbprint; null while the agent or envelope is missing.
        "envelopeDigest": now.as_ref().map(|b| b.envelope_digest.clone()),
        "agentKeyThumbprint": now.as_ref().map(|b| b.agent_key_thumbprint.clone()),
        "agent": {
            "name": spec.agent_ref.name,
            "displayName": agent.as_ref().map(|a| a.spec.display_name.clone()),
            "owner": agent.as_ref().map(|a| a.spec.owner.clone()),
            "description": agent.as_ref().and_then(|a| a.spec.description.clone()),
            "keyWords": now.as_ref().map(|b| words::agent_key(&b.agent_key_thumbprint)),
        },
        "serviceProvider": spec.service_provider,
        "capabilities": capabilities,
        "envelope": envelope.map(|(name, found)| json!({
            "name": name,
            "found": found.is_some(),
            "limits": found.as_ref().map(|e| words::envelope(&e.spec)),
        })),
        "expiresAt": spec.expires_at.as_ref().map(|t| t.0.to_string()),
        "duration": spec.duration,
        "reason": spec.reason,
        "approval": status.and_then(|s| s.approval.as_ref()),
        "approvals": status.map(|s| s.approvals.clone()).unwrap_or_default(),
        "quorum": quorum_view(&grant, found.as_deref(), &approver),
        "ownsAgent": agent.as_ref().is_some_and(|a| owns(a, &approver)),
    });
    Ok(no_store(Json(body)))
}
