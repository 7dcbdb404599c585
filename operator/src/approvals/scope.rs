//! Who may act on which grant, and where a grant stands: the checks every
//! handler that shows, decides or revokes a grant shares.
//!
//! ```text
//!  in_scope     spec.scope.namespaces and grantSelector cover the grant          (403 approver_out_of_scope)
//!  is_pending   no decision, not revoked, not being deleted
//!  is_suspended approved, but the envelope's spec or the agent's key moved since (DESIGN §13)
//!  standing     revocable, already revoked, or without an approval to take back
//!  may_decide   pending (or suspended, to approve) ─▶ in scope ─▶ not the agent's owner
//!               ─▶ RBAC `approve` ([`super::rbac`])                               (409, 403 approver_*)
//!  may_revoke   in scope ─▶ RBAC `approve`
//! ```
//!
//! The predicates are pure over the objects passed in, so the pages served
//! from the informer caches and the decisions read from the apiserver apply
//! exactly the same rules.

use std::collections::BTreeMap;

use agentauth_core::ErrorCode;
use agentauth_core::approval::Decision;
use agentauth_crds::approval::{Binding, owns, quorum};
use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant, GrantPhase};
use kube::core::{Selector, SelectorExt};
use kube::{Client, ResourceExt};

use super::rbac;
use super::reply::Refusal;

/// Whether `approver`'s scope covers `grant`: its namespace, and its labels
/// when the scope has a grant selector (a selector that does not parse
/// matches nothing).
pub fn in_scope(approver: &Approver, grant: &CapabilityGrant) -> bool {
    let namespace = grant.namespace().unwrap_or_default();
    if !approver.spec.covers_namespace(&namespace) {
        return false;
    }
    match &approver.spec.scope.grant_selector {
        None => true,
        Some(selector) => {
            let labels: BTreeMap<String, String> = grant.labels().clone();
            Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(&labels))
        }
    }
}

/// Whether the grant still waits for a decision.
pub fn is_pending(grant: &CapabilityGrant) -> bool {
    let status = grant.status.as_ref();
    !grant.spec.revoked
        && grant.metadata.deletion_timestamp.is_none()
        && status.is_none_or(|s| {
            s.approval.is_none() && s.phase.is_none_or(|p| p == GrantPhase::Pending)
        })
}

/// Whether an approved grant is suspended: its recorded approval covers
/// another envelope spec or agent key than `envelope` and `agent` now, so an
/// approver may approve it again (a denial stays final).
pub fn is_suspended(
    grant: &CapabilityGrant,
    envelope: Option<&BehavioralEnvelope>,
    agent: Option<&Agent>,
) -> bool {
    let Some(status) = grant.status.as_ref() else {
        return false;
    };
    let Some(approval) = status.approval.as_ref() else {
        return false;
    };
    let live = !grant.spec.revoked && grant.metadata.deletion_timestamp.is_none();
    let approved = approval.decision == Decision::Approved
        && status
            .phase
            .is_none_or(|p| p == GrantPhase::Approved || p == GrantPhase::Pending);
    let moved = agent
        .and_then(|a| Binding::of(grant, envelope, a).ok())
        .is_some_and(|now| Binding::recorded(approval).changed(&now).is_some());
    live && approved && moved
}

/// What the approval of `grant` would bind now: its envelope's digest and
/// its agent's key thumbprint, when the agent (and a named envelope) exist.
pub fn binding_now(
    grant: &CapabilityGrant,
    envelope: Option<&BehavioralEnvelope>,
    agent: Option<&Agent>,
) -> Option<Binding> {
    agent.and_then(|a| Binding::of(grant, envelope, a).ok())
}

/// Where a grant stands for a revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Approved (possibly suspended, or its phase not moved yet): may be revoked.
    Revocable,
    /// `spec.revoked` is already set, its phase is Revoked, or it is being
    /// deleted (which revokes it too).
    AlreadyRevoked,
    /// Pending, denied or expired: there is no approval to take back.
    NotApproved,
}

/// Where `grant` stands for a revocation.
pub fn standing(grant: &CapabilityGrant) -> Standing {
    let status = grant.status.as_ref();
    let phase = status.and_then(|s| s.phase);
    if grant.spec.revoked
        || grant.metadata.deletion_timestamp.is_some()
        || phase == Some(GrantPhase::Revoked)
    {
        return Standing::AlreadyRevoked;
    }
    let approved = status
        .and_then(|s| s.approval.as_ref())
        .is_some_and(|a| a.decision == Decision::Approved);
    let ended = matches!(phase, Some(GrantPhase::Denied | GrantPhase::Expired));
    if approved && !ended {
        Standing::Revocable
    } else {
        Standing::NotApproved
    }
}

/// Everything a decision is about, read from the apiserver.
pub struct Parties {
    /// The grant to decide.
    pub grant: CapabilityGrant,
    /// The grant's Agent.
    pub agent: Agent,
    /// The envelope the grant names, when it names one.
    pub envelope: Option<BehavioralEnvelope>,
    /// The Approver deciding.
    pub approver: Approver,
}

/// The checks of begin and finish: undecided, in scope, not the agent's
/// owner, and RBAC `approve` for the approver's identity.
pub async fn may_decide(
    client: Client,
    parties: &Parties,
    decision: Decision,
) -> Result<(), Refusal> {
    let Parties {
        grant,
        agent,
        envelope,
        approver,
    } = parties;
    let namespace = grant.namespace().unwrap_or_default();
    let name = grant.name_any();
    let reapproval =
        decision == Decision::Approved && is_suspended(grant, envelope.as_ref(), Some(agent));
    if !is_pending(grant) && !reapproval {
        return Err(Refusal::new(
            ErrorCode::DecisionImmutable,
            format!(
                "grant {namespace}/{name} is already decided, revoked or being deleted (a \
                 suspended grant can only be approved again, never denied: revoke it instead)"
            ),
        ));
    }
    if !in_scope(approver, grant) {
        return Err(out_of_scope(approver, &namespace, &name));
    }
    if !reapproval {
        not_yet_decided_by(grant, envelope.as_ref(), approver)?;
    } else if quorum::policy(grant, envelope.as_ref()).required > 1 {
        // Its co-signatures bind the old values too, and one approver
        // cannot renew them: fail closed, the grant stays suspended.
        return Err(Refusal::new(
            ErrorCode::DecisionImmutable,
            format!(
                "grant {namespace}/{name} needs several approvers and is suspended; it cannot \
                 be approved again by one approver — revoke it and request a new grant"
            ),
        ));
    }
    if owns(agent, approver) {
        return Err(Refusal::new(
            ErrorCode::ApproverOwnsAgent,
            format!(
                "approver {} owns agent {} (spec.owner {:?}); another approver must decide",
                approver.name_any(),
                agent.name_any(),
                agent.spec.owner
            ),
        ));
    }
    rbac::require_approve(client, approver, &namespace, &name).await
}

/// N-of-M: refuses an approver who already recorded a decision on `grant`
/// (each approver counts once: 409 `approval_duplicate`, with the progress)
/// or whom the approval policy's `from` selectors do not admit.
fn not_yet_decided_by(
    grant: &CapabilityGrant,
    envelope: Option<&BehavioralEnvelope>,
    approver: &Approver,
) -> Result<(), Refusal> {
    let policy = quorum::policy(grant, envelope);
    let name = approver.name_any();
    let entries = quorum::recorded(grant.status.as_ref());
    if let Some((_, mine)) = entries.iter().find(|(_, a)| a.approver == name) {
        let approved = entries
            .iter()
            .filter(|(_, a)| a.decision == Decision::Approved)
            .count();
        let verb = match mine.decision {
            Decision::Approved => "approved",
            Decision::Denied => "denied",
        };
        return Err(Refusal::new(
            ErrorCode::ApprovalDuplicate,
            format!(
                "already {verb} by you; {approved}/{} approved — another approver must decide",
                policy.required
            ),
        ));
    }
    if !policy.admits(approver) {
        return Err(Refusal::new(
            ErrorCode::ApproverOutOfScope,
            format!(
                "approver {name} is not among the approvers this grant's approval policy \
                 (spec.approvals.from, or its envelope's) selects"
            ),
        ));
    }
    Ok(())
}

/// The checks before a revocation: in scope, then RBAC `approve`. Unlike a
/// decision, the agent's owner may revoke its grants: separation of duties
/// keeps an owner from granting its agent authority, and a revocation only
/// takes authority away.
pub async fn may_revoke(
    client: Client,
    approver: &Approver,
    grant: &CapabilityGrant,
) -> Result<(), Refusal> {
    let namespace = grant.namespace().unwrap_or_default();
    let name = grant.name_any();
    if !in_scope(approver, grant) {
        return Err(out_of_scope(approver, &namespace, &name));
    }
    rbac::require_approve(client, approver, &namespace, &name).await
}

/// The refusal for a grant outside the approver's scope.
pub fn out_of_scope(approver: &Approver, namespace: &str, name: &str) -> Refusal {
    Refusal::new(
        ErrorCode::ApproverOutOfScope,
        format!(
            "grant {namespace}/{name} is outside the scope of approver {} \
             (spec.scope.namespaces, spec.scope.grantSelector)",
            approver.name_any()
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::{Value, json};

    fn grant(revoked: bool, phase: Option<&str>, decision: Option<&str>) -> CapabilityGrant {
        let approval: Value = match decision {
            None => Value::Null,
            Some(d) => json!({
                "approver": "dana", "credentialId": "AQID", "decision": d, "nonce": "n",
                "signedAt": "2026-12-07T10:00:00Z", "generation": 1, "specDigest": "s",
                "envelopeDigest": "", "agentKeyThumbprint": "t", "authenticatorData": "a",
                "clientDataJSON": "c", "signature": "g",
            }),
        };
        serde_json::from_value(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "CapabilityGrant",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"agentRef": {"name": "a"}, "serviceProvider": "https://p.example",
                     "capabilities": [{"type": "read", "resource": "x"}], "reason": "r",
                     "revoked": revoked},
            "status": {"phase": phase, "approval": approval},
        }))
        .unwrap()
    }

    #[test]
    fn only_an_approved_grant_is_revocable() {
        use Standing as S;
        let table = [
            (false, Some("Approved"), Some("Approved"), S::Revocable),
            // Recorded, the controller has not moved the phase yet.
            (false, Some("Pending"), Some("Approved"), S::Revocable),
            (false, None, None, S::NotApproved),
            (false, Some("Pending"), None, S::NotApproved),
            (false, Some("Denied"), Some("Denied"), S::NotApproved),
            (false, Some("Expired"), Some("Approved"), S::NotApproved),
            (true, Some("Approved"), Some("Approved"), S::AlreadyRevoked),
            (false, Some("Revoked"), Some("Approved"), S::AlreadyRevoked),
        ];
        for (revoked, phase, decision, want) in table {
            let got = standing(&grant(revoked, phase, decision));
            assert_eq!(got, want, "revoked {revoked}, {phase:?}, {decision:?}");
        }
    }
}
