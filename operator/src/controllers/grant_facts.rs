//! What the grant phase machine ([`super::grant_phase`]) reads off a grant
//! and the objects it refers to: its expiry, whether its agent and envelope
//! make it usable, and its recorded decision verified.
//!
//! The recorded decision is verified on every reconcile, whoever wrote the
//! phase: `metadata.managedFields` names a field manager any client may
//! claim, so it proves nothing about who wrote `status.phase`.

use agentauth_core::ErrorCode;
use agentauth_crds::approval::quorum::Parties;
use agentauth_crds::approval::{Binding, Changed, CounterCheck, Tally, tally};
use agentauth_crds::conditions::{reasons, types};
use agentauth_crds::{Agent, CapabilityGrant};
use kube::ResourceExt;

use super::grant_phase::{Inputs, Plan};
use super::status::Want;

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

/// Why a recorded decision does not take effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Unverified {
    /// It does not verify (or names an Approver this operator does not know
    /// of, `missing_approver`); the message says why.
    Invalid {
        /// What failed, for the Approved condition.
        message: String,
        /// The Approver is not in the cache: perhaps not seen yet, so the
        /// refusal must not be final.
        missing_approver: bool,
    },
    /// A genuine approval of another envelope spec or agent key than the
    /// current ones: the grant waits for a new approval.
    Suspended {
        /// [`reasons::ENVELOPE_CHANGED`] or [`reasons::AGENT_KEY_CHANGED`].
        reason: &'static str,
        /// What changed and how to resume, for the Ready condition.
        message: String,
    },
}

/// Every recorded decision (`status.approvals`, then `status.approval`),
/// each verified against its approver's passkey and the current envelope
/// and agent key, counted per distinct approver under the grant's approval
/// policy; `Err` says why they do not count. A grant with nothing recorded
/// is an empty tally.
pub(super) fn verified(i: &Inputs<'_>) -> Result<Tally, Unverified> {
    let invalid = |message: String| Unverified::Invalid {
        message,
        missing_approver: false,
    };
    let agent = i.agent.ok_or_else(|| {
        invalid(
            "the grant's agent does not exist, so separation of duties cannot be checked".into(),
        )
    })?;
    let rp = i.relying_party;
    let parties = Parties {
        envelope: i.envelope,
        agent,
        approvers: i.approvers,
        rp_id: &rp.id,
        origins: &rp.origins,
    };
    tally(i.grant, &parties, &|_| CounterCheck::Recorded).map_err(|e| match e.code {
        ErrorCode::ApproverNotFound => Unverified::Invalid {
            message: e.message,
            missing_approver: true,
        },
        ErrorCode::GrantSuspended => {
            let recorded = i.grant.status.as_ref().and_then(|s| s.approval.as_ref());
            let changed = Binding::of(i.grant, i.envelope, agent)
                .ok()
                .zip(recorded)
                .and_then(|(now, a)| Binding::recorded(a).changed(&now));
            suspended(i.grant, changed.unwrap_or(Changed::Both))
        }
        code => invalid(format!(
            "the recorded decision does not verify ({code}): {e}; it cannot be replaced, so \
             delete this grant and request a new one"
        )),
    })
}

/// The suspension of a genuine approval whose envelope or agent key changed.
fn suspended(grant: &CapabilityGrant, changed: Changed) -> Unverified {
    let namespace = grant.namespace().unwrap_or_default();
    let envelope = grant
        .spec
        .envelope_ref
        .as_ref()
        .map_or_else(String::new, |r| format!("envelope {namespace}/{}", r.name));
    let agent = format!("agent {namespace}/{}", grant.spec.agent_ref.name);
    let (reason, what) = match changed {
        Changed::Envelope => (
            reasons::ENVELOPE_CHANGED,
            format!("the spec of {envelope} changed"),
        ),
        Changed::AgentKey => (
            reasons::AGENT_KEY_CHANGED,
            format!("the key of {agent} changed"),
        ),
        Changed::Both => (
            reasons::ENVELOPE_CHANGED,
            format!("the spec of {envelope} and the key of {agent} changed"),
        ),
    };
    Unverified::Suspended {
        reason,
        message: format!(
            "suspended: {what} after the approval was signed; verifiers refuse this grant \
             (grant_suspended) until an approver approves it again in the approval UI, or the \
             approved value is restored"
        ),
    }
}

/// `base` with the verified progress of `tally`.
pub(super) fn with_progress(base: Plan, tally: &Tally) -> Plan {
    Plan {
        progress: Some(tally.progress()),
        ..base
    }
}

/// The Approved condition of a grant with some, not enough, approvals.
pub(super) fn partial(tally: &Tally) -> Want {
    let missing = tally.required().saturating_sub(tally.approved.len());
    let by = if tally.approved.is_empty() {
        String::new()
    } else {
        format!(" (by {})", tally.approved.join(", "))
    };
    Want::no(
        types::APPROVED,
        reasons::AWAITING_APPROVAL,
        format!(
            "{}{by}: waiting for {missing} more distinct approver{} with their passkey",
            tally.progress(),
            if missing == 1 { "" } else { "s" }
        ),
    )
}
