//! What the grant phase machine ([`super::grant_phase`]) reads off a grant
//! and the objects it refers to: its expiry, who wrote its phase, whether
//! its agent and envelope make it usable, and its recorded decision verified.

use agentauth_crds::approval::{VerifiedApproval, verify_approval};
use agentauth_crds::conditions::{reasons, types};
use agentauth_crds::{Agent, CapabilityGrant};
use kube::ResourceExt;

use super::grant_phase::Inputs;
use super::status::FIELD_MANAGER;

/// When a grant expires, ms since the epoch: `spec.expiresAt`, or its
/// creation time plus `spec.duration`. Both are fixed once the grant exists
/// (the spec is frozen once decided), so every replica and every restart
/// computes the same instant and no status writer can move it.
pub fn grant_expiry_ms(grant: &CapabilityGrant) -> Option<i64> {
    if let Some(at) = &grant.spec.expires_at {
        return Some(at.0.as_millisecond());
    }
    let duration = i64::try_from(grant.spec.duration?.as_millis()).ok()?;
    let created = grant
        .metadata
        .creation_timestamp
        .as_ref()?
        .0
        .as_millisecond();
    created.checked_add(duration)
}

/// Whether this operator alone set the current `status.phase` (per
/// `metadata.managedFields`): then it was verified before it was written.
pub fn phase_set_by_operator(grant: &CapabilityGrant) -> bool {
    let entries = grant.metadata.managed_fields.as_deref().unwrap_or_default();
    let mut owners = entries.iter().filter(|e| {
        e.fields_v1
            .as_ref()
            .is_some_and(|f| f.0.get("f:status").and_then(|s| s.get("f:phase")).is_some())
    });
    let mut any = false;
    owners.all(|e| {
        any = true;
        e.manager.as_deref() == Some(FIELD_MANAGER) && e.operation.as_deref() == Some("Apply")
    }) && any
}

/// The usable thumbprint of an agent: its `status.keyThumbprint`, when the
/// status describes the current spec and the agent is Ready.
pub fn agent_thumbprint(agent: &Agent) -> Option<&str> {
    let status = agent.status.as_ref()?;
    let current = status.observed_generation == agent.metadata.generation;
    let ready = agentauth_crds::conditions::find(&status.conditions, types::READY)
        .is_some_and(|c| c.status == "True");
    status
        .key_thumbprint
        .as_deref()
        .filter(|_| current && ready)
}

/// Why the grant cannot be used even when approved: its spec, its agent or
/// its envelope.
pub(super) fn blocker(i: &Inputs<'_>) -> Option<(&'static str, String)> {
    let grant = i.grant;
    let namespace = grant.namespace().unwrap_or_default();
    if let Err(e) = grant.spec.validate() {
        return Some((reasons::INVALID, format!("the spec is invalid: {e}")));
    }
    if grant_expiry_ms(grant).is_none() {
        return Some((
            reasons::INVALID,
            "the expiry cannot be computed from spec.expiresAt or spec.duration".into(),
        ));
    }
    let agent_name = &grant.spec.agent_ref.name;
    let Some(agent) = i.agent else {
        return Some((
            reasons::AGENT_NOT_FOUND,
            format!(
                "agent {agent_name} does not exist in namespace {namespace}; create it or fix spec.agentRef"
            ),
        ));
    };
    if agent_thumbprint(agent).is_none() {
        return Some((
            reasons::AGENT_NOT_READY,
            format!(
                "agent {agent_name} is not ready (see its Ready condition): its key is not usable yet"
            ),
        ));
    }
    let envelope_ref = grant.spec.envelope_ref.as_ref()?;
    let Some(envelope) = i.envelope else {
        return Some((
            reasons::ENVELOPE_NOT_FOUND,
            format!(
                "envelope {} does not exist in namespace {namespace}; create it or fix spec.envelopeRef",
                envelope_ref.name
            ),
        ));
    };
    if let Err(e) = envelope.spec.validate() {
        return Some((
            reasons::INVALID,
            format!("envelope {} is invalid: {e}", envelope_ref.name),
        ));
    }
    None
}

/// The recorded decision, verified; `Err` says why it does not count.
pub(super) fn verified(i: &Inputs<'_>) -> Result<VerifiedApproval, String> {
    let approval = i
        .grant
        .status
        .as_ref()
        .and_then(|s| s.approval.as_ref())
        .ok_or("no decision is recorded")?;
    let agent = i
        .agent
        .ok_or("the grant's agent does not exist, so separation of duties cannot be checked")?;
    let approver = i
        .approver
        .ok_or_else(|| format!("approver {} does not exist", approval.approver))?;
    verify_approval(i.grant, agent, approver, &i.relying_party.id, &i.relying_party.origins).map_err(|e| {
        format!(
            "the recorded decision does not verify ({}): {e}; it cannot be replaced, so delete this grant and request a new one",
            e.code
        )
    })
}
