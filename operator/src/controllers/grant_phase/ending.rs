//! The final phases of a grant (Revoked, Denied, Expired): reached once,
//! kept as they were written, and what a deletion makes of a grant.

use agentauth_crds::conditions::{reasons, types};
use agentauth_crds::{CapabilityGrant, GrantPhase};

use super::super::grant_facts::grant_expiry_ms;
use super::super::status::Want;
use super::{Cond, Plan, Publish, RevokedBy};

pub(super) fn revoke(base: Plan, by: RevokedBy, invalid: Option<String>) -> Plan {
    let (message, approved) = match invalid {
        Some(why) => (
            format!("revoked: status said Approved but {why}"),
            Cond::Set(Want::no(types::APPROVED, reasons::APPROVAL_INVALID, why)),
        ),
        None => (
            revoked_message(by),
            Cond::Keep(not_decided(reasons::REVOKED)),
        ),
    };
    Plan {
        phase: GrantPhase::Revoked,
        ready: Cond::Set(Want::no(types::READY, reasons::REVOKED, message)),
        approved,
        publish: Publish::Final(GrantPhase::Revoked),
        revoked_by: Some(by),
        requeue_after_ms: None,
        ..base
    }
}

/// A verified denial: final.
pub(super) fn deny(base: Plan, approver: &str) -> Plan {
    let message = denied_message(approver);
    Plan {
        phase: GrantPhase::Denied,
        ready: Cond::Set(Want::no(types::READY, reasons::DENIED, message.clone())),
        approved: Cond::Set(Want::no(types::APPROVED, reasons::DENIED, message)),
        publish: Publish::Final(GrantPhase::Denied),
        requeue_after_ms: None,
        ..base
    }
}

pub(super) fn expire(base: Plan) -> Plan {
    Plan {
        phase: GrantPhase::Expired,
        ready: Cond::Set(Want::no(
            types::READY,
            reasons::EXPIRED,
            "expired; request a new grant to continue",
        )),
        approved: Cond::Keep(not_decided(reasons::EXPIRED)),
        publish: Publish::Final(GrantPhase::Expired),
        requeue_after_ms: None,
        ..base
    }
}

/// A final phase stays, and so do its conditions as they were written when
/// it was reached.
pub(super) fn final_plan(phase: GrantPhase, approver: Option<&str>, base: Plan) -> Plan {
    let mut plan = match phase {
        GrantPhase::Revoked => revoke(base, RevokedBy::SpecRevoked, None),
        GrantPhase::Expired => expire(base),
        _ => deny(base, approver.unwrap_or("an approver")),
    };
    plan.ready = Cond::Keep(plan.ready.want().clone());
    plan.approved = Cond::Keep(plan.approved.want().clone());
    plan.revoked_by = None;
    plan
}

/// The plan of a grant being deleted: Revoked unless already final or never seen.
pub fn plan_deletion(grant: &CapabilityGrant) -> Option<Plan> {
    let phase = grant.status.as_ref().and_then(|s| s.phase)?;
    if phase.is_final() {
        return None;
    }
    let expires_at_ms = grant_expiry_ms(grant);
    let base = Plan {
        phase,
        expires_at_ms,
        ready: Cond::Set(Want::no(types::READY, reasons::REVOKED, "")),
        approved: Cond::Keep(not_decided(reasons::REVOKED)),
        publish: Publish::Nothing,
        revoked_by: None,
        requeue_after_ms: None,
        progress: grant
            .status
            .as_ref()
            .and_then(|s| s.approval_progress.clone()),
    };
    Some(revoke(base, RevokedBy::Deletion, None))
}

fn not_decided(reason: &'static str) -> Want {
    Want::no(types::APPROVED, reason, "no verified approval took effect")
}

fn denied_message(approver: &str) -> String {
    format!("denied by {approver}; request a new grant to ask again")
}

fn revoked_message(by: RevokedBy) -> String {
    match by {
        RevokedBy::Deletion => "revoked: the grant is being deleted".into(),
        RevokedBy::SpecRevoked | RevokedBy::ApprovalInvalid => {
            "revoked (spec.revoked: true); verifiers refuse it".into()
        }
    }
}
