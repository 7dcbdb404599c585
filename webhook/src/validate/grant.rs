//! CapabilityGrant: the spec (valid, its Agent and envelope exist, frozen
//! once decided) and the status (who may record a decision, and whether the
//! recorded passkey assertion is genuine).
//!
//! ```text
//!  spec write ──▶ decided? ──yes──▶ only revoked false→true may change
//!                   │ no
//!                   ▼
//!            changed beyond revoked? ──▶ validate() ──▶ Agent exists ──▶ envelope exists
//!
//!  status write ──▶ approval(s)/phase/expiresAt changed? ──▶ writer is the operator
//!               ──▶ approval or approvals changed? ──▶ approvals only appended, before a decision
//!                                        ──▶ approval: none recorded before (a decision never
//!                                        changes), or a re-approval: Approved replaced by
//!                                        Approved bound to another envelope digest / agent key
//!                                    ──▶ grant not revoked or final
//!                                    ──▶ every named Approver, the Agent (and envelope) exist
//!                                    ──▶ tally: EVERY recorded entry verified (signature,
//!                                        challenge, UV, counter — fresh for this patch's
//!                                        entries —, scope, separation of duties, binding),
//!                                        distinct approvers and passkeys, approval policy's
//!                                        `from`, and a deciding approval only at the quorum
//! ```

use agentauth_core::ErrorCode;
use agentauth_core::approval::Decision;
use agentauth_crds::approval::quorum::{self, Parties};
use agentauth_crds::approval::{Binding, CounterCheck, tally};
use agentauth_crds::{
    Agent, Approver, BehavioralEnvelope, CapabilityGrant, CapabilityGrantSpec,
    CapabilityGrantStatus, GrantPhase,
};
use kube::ResourceExt;

use super::{Validator, Write, operator_only};
use crate::denial::{Code, Denial};
use crate::lookup::Lookup;

/// Checks one write of a CapabilityGrant.
pub(super) async fn check<L: Lookup>(
    validator: &Validator<L>,
    write: &Write<'_, CapabilityGrant>,
) -> Result<(), Denial> {
    if !write.status {
        spec(validator, write).await?;
    }
    // Always: a no-op on the main resource while the CRD has its status
    // subresource (the apiserver keeps the stored status), a guard if not.
    status(validator, write).await
}

async fn spec<L: Lookup>(
    validator: &Validator<L>,
    write: &Write<'_, CapabilityGrant>,
) -> Result<(), Denial> {
    let new = &write.new.spec;
    let old = write.old.as_ref();
    if let Some(old) = old {
        if is_decided(old) {
            frozen(&old.spec, new)?;
        }
        // Metadata-only writes and revocations always pass: a grant can be
        // revoked and its finalizers removed even if newer rules would
        // refuse its spec, or its Agent is gone.
        let mut unrevoked = new.clone();
        unrevoked.revoked = old.spec.revoked;
        if unrevoked == old.spec {
            return Ok(());
        }
    }
    new.validate()?;
    let namespace = write.new.namespace().unwrap_or_default();
    if old.is_none_or(|o| o.spec.agent_ref != new.agent_ref) {
        let name = &new.agent_ref.name;
        let agent = validator
            .lookup()
            .agent(&namespace, name)
            .await
            .map_err(|e| unavailable("spec.agentRef.name", e))?;
        if agent.is_none() {
            return Err(Denial::new(
                Code::AgentNotFound,
                "spec.agentRef.name",
                format!("there is no Agent {name:?} in namespace {namespace}; create it first"),
            ));
        }
    }
    if let Some(envelope) = &new.envelope_ref
        && old.is_none_or(|o| o.spec.envelope_ref.as_ref() != Some(envelope))
    {
        let name = &envelope.name;
        let found = validator
            .lookup()
            .envelope(&namespace, name)
            .await
            .map_err(|e| unavailable("spec.envelopeRef.name", e))?;
        if found.is_none() {
            return Err(Denial::new(
                Code::EnvelopeNotFound,
                "spec.envelopeRef.name",
                format!(
                    "there is no BehavioralEnvelope {name:?} in namespace {namespace}; \
                     create it first"
                ),
            ));
        }
    }
    Ok(())
}

/// A decision (or an N-of-M co-signature, which signed the spec too) is
/// recorded, or the grant left Pending.
fn is_decided(grant: &CapabilityGrant) -> bool {
    grant.status.as_ref().is_some_and(|s| {
        s.approval.is_some()
            || !s.approvals.is_empty()
            || s.phase.is_some_and(|p| p != GrantPhase::Pending)
    })
}

/// Once decided, only `revoked` may change, and only from false to true.
fn frozen(old: &CapabilityGrantSpec, new: &CapabilityGrantSpec) -> Result<(), Denial> {
    if old.revoked && !new.revoked {
        return Err(Denial::new(
            Code::SpecImmutable,
            "spec.revoked",
            "a revoked grant stays revoked; create a new grant instead",
        ));
    }
    let changed = changed_fields(old, new);
    if changed.is_empty() {
        return Ok(());
    }
    Err(Denial::new(
        Code::SpecImmutable,
        changed.join(", "),
        "the spec of a decided grant cannot change, except setting revoked: true (the \
         approver signed this exact spec); create a new grant to ask for something else",
    ))
}

/// The spec fields (`spec.<name>`) that differ, `revoked` aside.
fn changed_fields(old: &CapabilityGrantSpec, new: &CapabilityGrantSpec) -> Vec<String> {
    let as_map = |spec: &CapabilityGrantSpec| match serde_json::to_value(spec) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (as_map(old), as_map(new));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| *k != "revoked" && old.get(*k) != new.get(*k))
        .map(|k| format!("spec.{k}"))
        .collect()
}

async fn status<L: Lookup>(
    validator: &Validator<L>,
    write: &Write<'_, CapabilityGrant>,
) -> Result<(), Denial> {
    let empty = CapabilityGrantStatus::default();
    let new = write.new.status.as_ref().unwrap_or(&empty);
    let old = write
        .old
        .as_ref()
        .and_then(|o| o.status.as_ref())
        .unwrap_or(&empty);
    // The fields the operator and the verifiers act on.
    let authority = [
        ("status.approval", old.approval != new.approval),
        ("status.approvals", old.approvals != new.approvals),
        ("status.phase", old.phase != new.phase),
        ("status.expiresAt", old.expires_at != new.expires_at),
    ];
    for (field, changed) in authority {
        if changed {
            operator_only(validator, write.username, field)?;
        }
    }
    if old.approval == new.approval && old.approvals == new.approvals {
        return Ok(());
    }
    appended_only(old, new)?;
    if old.approval != new.approval {
        let Some(approval) = &new.approval else {
            return Err(immutable());
        };
        // Re-approval of a suspended grant (DESIGN §13): an approval replaced
        // by an approval bound to another envelope spec or agent key. It is
        // then verified below exactly like a first one.
        if let Some(old) = &old.approval {
            let reapproval = old.decision == Decision::Approved
                && approval.decision == Decision::Approved
                && Binding::recorded(old) != Binding::recorded(approval);
            if !reapproval {
                return Err(immutable());
            }
        }
    }
    refuse_undecidable(&write.new, old)?;
    verify_all(validator, &write.new, old, new).await
}

/// `status.approvals` only grows, keeps its entries as they were, and only
/// while no decision is recorded: a co-signature is never changed, removed
/// or added after the grant was decided.
fn appended_only(old: &CapabilityGrantStatus, new: &CapabilityGrantStatus) -> Result<(), Denial> {
    if old.approvals == new.approvals {
        return Ok(());
    }
    let kept = new.approvals.len() >= old.approvals.len()
        && new
            .approvals
            .iter()
            .zip(&old.approvals)
            .all(|(n, o)| n == o);
    if !kept || old.approval.is_some() {
        return Err(Denial::new(
            Code::DecisionImmutable,
            "status.approvals",
            "recorded approvals are only appended to, never changed or removed, and not after \
             the grant is decided",
        ));
    }
    Ok(())
}

/// Every recorded decision verified and counted ([`tally`]): each entry's
/// signature, challenge, scope and binding, distinct approvers and passkeys,
/// and a deciding `status.approval` only at the quorum. Entries written by
/// this patch are checked with a fresh sign counter, earlier ones as
/// recorded.
async fn verify_all<L: Lookup>(
    validator: &Validator<L>,
    grant: &CapabilityGrant,
    old: &CapabilityGrantStatus,
    new: &CapabilityGrantStatus,
) -> Result<(), Denial> {
    let entries = quorum::recorded(Some(new));
    let mut names: Vec<String> = entries.iter().map(|(_, a)| a.approver.clone()).collect();
    names.sort();
    names.dedup();
    let (agent, envelope) = parties(validator, grant).await?;
    let mut approvers = Vec::with_capacity(names.len());
    for name in &names {
        approvers.push(approver(validator, name).await?);
    }
    let approvers: Vec<&Approver> = approvers.iter().collect();
    let policy = validator.policy();
    let first_new = old.approvals.len();
    let co_signatures = new.approvals.len();
    let decision_changed = old.approval != new.approval;
    tally(
        grant,
        &Parties {
            envelope: envelope.as_ref(),
            agent: &agent,
            approvers: &approvers,
            rp_id: &policy.rp_id,
            origins: &policy.origins,
        },
        &|i| {
            let fresh = if i < co_signatures {
                i >= first_new
            } else {
                decision_changed
            };
            if fresh {
                CounterCheck::Fresh
            } else {
                CounterCheck::Recorded
            }
        },
    )?;
    Ok(())
}

/// The Approver `name`; a missing one is refused, a lookup that fails is
/// `state_unavailable`.
async fn approver<L: Lookup>(validator: &Validator<L>, name: &str) -> Result<Approver, Denial> {
    validator
        .lookup()
        .approver(name)
        .await
        .map_err(|e| unavailable("status.approval.approver", e))?
        .ok_or_else(|| {
            Denial::new(
                Code::ApproverNotFound,
                "status.approval.approver",
                format!("there is no Approver {name:?}"),
            )
        })
}

/// The agent and envelope a decision on `grant` is verified against; a
/// missing agent is refused, a lookup that fails is `state_unavailable`.
async fn parties<L: Lookup>(
    validator: &Validator<L>,
    grant: &CapabilityGrant,
) -> Result<(Agent, Option<BehavioralEnvelope>), Denial> {
    let namespace = grant.namespace().unwrap_or_default();
    let agent_name = &grant.spec.agent_ref.name;
    let agent = validator
        .lookup()
        .agent(&namespace, agent_name)
        .await
        .map_err(|e| unavailable("spec.agentRef.name", e))?
        .ok_or_else(|| {
            Denial::new(
                Code::AgentNotFound,
                "spec.agentRef.name",
                format!(
                    "there is no Agent {agent_name:?} in namespace {namespace}: a grant of an \
                     unknown agent cannot be decided"
                ),
            )
        })?;
    let envelope = match &grant.spec.envelope_ref {
        None => None,
        Some(r) => validator
            .lookup()
            .envelope(&namespace, &r.name)
            .await
            .map_err(|e| unavailable("spec.envelopeRef.name", e))?,
    };
    Ok((agent, envelope))
}

fn immutable() -> Denial {
    Denial::new(
        Code::DecisionImmutable,
        "status.approval",
        "a recorded decision never changes and is never removed; a new decision needs a new \
         grant (an approved grant whose envelope or agent key changed may only be approved again)",
    )
}

/// A revoked or expired grant cannot be decided any more.
fn refuse_undecidable(grant: &CapabilityGrant, old: &CapabilityGrantStatus) -> Result<(), Denial> {
    let phase = old.phase.unwrap_or(GrantPhase::Pending);
    if grant.spec.revoked || phase == GrantPhase::Revoked {
        return Err(Denial::core(
            ErrorCode::GrantRevoked,
            "status.approval",
            "the grant is revoked; a revoked grant cannot be decided",
        ));
    }
    if phase == GrantPhase::Expired {
        return Err(Denial::core(
            ErrorCode::GrantExpired,
            "status.approval",
            "the grant has expired; an expired grant cannot be decided",
        ));
    }
    Ok(())
}

/// A read the webhook needed failed: refuse (fail closed) and say why.
fn unavailable(field: &str, error: crate::lookup::LookupError) -> Denial {
    Denial::core(
        ErrorCode::StateUnavailable,
        field,
        format!("{error}; try again"),
    )
}
