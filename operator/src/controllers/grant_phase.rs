//! The CapabilityGrant phase machine, pure: from a grant, the objects it
//! refers to and the time, the phase and conditions to write and what the
//! verifiers must be told.
//!
//! ```text
//!  (new) ──first seen──▶ Pending ──verified approval──▶ Approved ──spec.revoked / deletion──▶ Revoked
//!                          │  └────verified denial────▶ Denied      └──────expiresAt──────────▶ Expired
//!                          └──spec.revoked / deletion / expiresAt──▶ Revoked / Expired
//! ```
//!
//! Each phase change that is a transition (the arrows above) has one audit
//! kind, named by [`transition`]; the controller records it once.
//!
//! Denied, Revoked and Expired are final (the CRD's CEL rules agree). A
//! recorded approval moves a grant only after
//! [`verify_approval`](agentauth_crds::approval::verify_approval) accepts it
//! against the Approver's passkey; one that does not verify leaves the grant
//! Pending with `Approved=False, reason ApprovalInvalid`. An `Approved` phase
//! is verified again on every reconcile, whoever wrote it (a field manager's
//! name proves nothing), and revoked when it does not hold.
//!
//! **Suspension** (DESIGN §13). The approval binds the envelope's spec and
//! the agent's key. When either changes, an Approved grant stays Approved but
//! `Ready=False` with reason `EnvelopeChanged` or `AgentKeyChanged`, and is
//! published as [`Publish::Reapprove`]: verifiers refuse it with
//! `grant_suspended`, the token endpoint issues nothing. It resumes when the
//! approved value is restored, or when an approver records a new approval
//! bound to the new values.

use agentauth_core::approval::Decision;
use agentauth_core::audit::kinds;
use agentauth_crds::approval::quorum;
use agentauth_crds::conditions::{reasons, types};
use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant, GrantPhase};

use super::grant_facts::{Unverified, blocker, grant_expiry_ms, partial, verified, with_progress};
use super::status::Want;
use crate::context::RelyingParty;

mod ending;
#[cfg(test)]
mod tests;

pub use ending::plan_deletion;
use ending::{deny, expire, final_plan, revoke};

/// The finalizer that holds a grant until its shared state is removed.
pub const GRANT_FINALIZER: &str = "agentauth.dev/grant-state";

/// The longest requeue: undecided and approved grants are looked at again
/// at least this often (and exactly at their expiry when it comes sooner).
pub const RESYNC_MS: i64 = 3_600_000;

/// What a grant's plan is computed from.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// The grant.
    pub grant: &'a CapabilityGrant,
    /// Its Agent, when it exists.
    pub agent: Option<&'a Agent>,
    /// Its BehavioralEnvelope, when it names one and it exists.
    pub envelope: Option<&'a BehavioralEnvelope>,
    /// The Approvers its recorded decisions name (`status.approvals` and
    /// `status.approval`), those that exist.
    pub approvers: &'a [&'a Approver],
    /// The relying party approvals are made for.
    pub relying_party: &'a RelyingParty,
    /// Now, in ms since the epoch.
    pub now_ms: i64,
}

/// What the verifiers must be told about a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publish {
    /// Nothing: it has never been usable.
    Nothing,
    /// Approved and usable: its agent key and envelope are known.
    Usable,
    /// Approved, but its agent or envelope is missing or invalid: published
    /// as not usable until they are back (fail closed).
    Suspended,
    /// Approved, but the envelope's spec or the agent's key is no longer the
    /// one approved: published as suspended (`grant_suspended`) until an
    /// approver approves it again or the approved value is back.
    Reapprove,
    /// Final: the phase, and the revocation set with its invalidation.
    Final(GrantPhase),
}

/// Why a grant was revoked: the audit record's `by` detail, in its wire form
/// (`spec.revoked`, `deletion`, `approval_invalid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum RevokedBy {
    /// Someone set `spec.revoked: true`.
    #[serde(rename = "spec.revoked")]
    SpecRevoked,
    /// The grant is being deleted.
    #[serde(rename = "deletion")]
    Deletion,
    /// Its status said Approved, but the recorded decision does not verify
    /// or is a denial.
    #[serde(rename = "approval_invalid")]
    ApprovalInvalid,
}

/// One of the operator's conditions: set anew, or kept as recorded (a final
/// phase keeps what was said when it was reached).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    /// Write this condition.
    Set(Want),
    /// Keep the current condition of this type as it is, or write this one
    /// when there is none.
    Keep(Want),
}

impl Cond {
    /// The condition this would write when there is none yet.
    pub fn want(&self) -> &Want {
        match self {
            Cond::Set(w) | Cond::Keep(w) => w,
        }
    }
}

/// What one reconcile of a grant decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The phase to write.
    pub phase: GrantPhase,
    /// When the grant expires, ms since the epoch.
    pub expires_at_ms: Option<i64>,
    /// The `Ready` condition.
    pub ready: Cond,
    /// The `Approved` condition.
    pub approved: Cond,
    /// What the shared state must say.
    pub publish: Publish,
    /// Why it was revoked, for the audit record.
    pub revoked_by: Option<RevokedBy>,
    /// When to look again, ms from now (`None`: on the next change only).
    pub requeue_after_ms: Option<i64>,
    /// `status.approvalProgress`, e.g. `1/2 approved` (`None`: leave as is).
    pub progress: Option<String>,
}

/// Decides the next status of a grant that is not being deleted.
pub fn plan(i: &Inputs<'_>) -> Plan {
    let grant = i.grant;
    let status = grant.status.as_ref();
    let expires_at_ms = grant_expiry_ms(grant);
    let approval = status.and_then(|s| s.approval.as_ref());
    let base = Plan {
        phase: GrantPhase::Pending,
        expires_at_ms,
        ready: Cond::Set(awaiting_ready()),
        approved: Cond::Set(awaiting()),
        publish: Publish::Nothing,
        revoked_by: None,
        requeue_after_ms: expires_at_ms
            .map(|e| (e - i.now_ms).clamp(0, RESYNC_MS))
            .or(Some(RESYNC_MS)),
        progress: Some(format!(
            "0/{} approved",
            quorum::policy(grant, i.envelope).required
        )),
    };
    let current = status.and_then(|s| s.phase);
    match current {
        // First seen: Pending, and nothing decided in the same step, so that
        // the creation is recorded (and audited) before anything else.
        None => Plan {
            ready: Cond::Set(blocker(i).map_or_else(awaiting_ready, |(reason, m)| {
                Want::no(types::READY, reason, m)
            })),
            requeue_after_ms: None,
            ..base
        },
        Some(phase) if phase.is_final() => {
            let progress = status.and_then(|s| s.approval_progress.clone());
            Plan {
                progress,
                ..final_plan(phase, approval.map(|a| a.approver.as_str()), base)
            }
        }
        Some(_) if grant.spec.revoked => revoke(base, RevokedBy::SpecRevoked, None),
        Some(_) if expires_at_ms.is_some_and(|e| i.now_ms >= e) => expire(base),
        Some(GrantPhase::Approved) => approved(i, base),
        Some(_) => decide(i, base),
    }
}

/// An Approved grant: its decision verified again, whoever wrote the phase;
/// then usable, waiting for its agent or envelope, suspended, or revoked.
fn approved(i: &Inputs<'_>, base: Plan) -> Plan {
    if let Some((reason, message)) = blocker(i) {
        let message = format!("{message}; until then verifiers refuse this grant");
        return Plan {
            phase: GrantPhase::Approved,
            ready: Cond::Set(Want::no(types::READY, reason, message.clone())),
            approved: Cond::Keep(Want::no(types::APPROVED, reason, message)),
            publish: Publish::Suspended,
            ..base
        };
    }
    match verified(i) {
        Ok(t) if t.decision == Some(Decision::Approved) => approve(i, with_progress(base, &t)),
        Ok(t) => revoke(
            base,
            RevokedBy::ApprovalInvalid,
            Some(match t.decision {
                Some(_) => "the recorded decision is a denial".into(),
                None => format!("no decision is recorded ({})", t.progress()),
            }),
        ),
        Err(Unverified::Suspended { reason, message }) => suspend(i, base, reason, message),
        // The Approver may not be in the cache yet: not usable, not final.
        Err(Unverified::Invalid {
            message,
            missing_approver: true,
        }) => Plan {
            phase: GrantPhase::Approved,
            ready: Cond::Set(Want::no(
                types::READY,
                reasons::APPROVAL_INVALID,
                format!("{message}; until it does, verifiers refuse this grant"),
            )),
            approved: Cond::Set(Want::no(
                types::APPROVED,
                reasons::APPROVAL_INVALID,
                message,
            )),
            publish: Publish::Suspended,
            ..base
        },
        Err(Unverified::Invalid { message, .. }) => {
            revoke(base, RevokedBy::ApprovalInvalid, Some(message))
        }
    }
}

/// An Approved grant whose approval covers another envelope spec or agent key.
fn suspend(i: &Inputs<'_>, base: Plan, reason: &'static str, message: String) -> Plan {
    let approval = i.grant.status.as_ref().and_then(|s| s.approval.as_ref());
    let approver = approval.map_or("?", |a| a.approver.as_str());
    Plan {
        phase: GrantPhase::Approved,
        ready: Cond::Set(Want::no(types::READY, reason, message)),
        approved: Cond::Set(Want::no(
            types::APPROVED,
            reason,
            format!(
                "approved by {approver} for the previous value; an approver must approve the \
                 change for the grant to resume"
            ),
        )),
        publish: Publish::Reapprove,
        ..base
    }
}

/// A Pending grant: waits, or takes the verified decision.
fn decide(i: &Inputs<'_>, base: Plan) -> Plan {
    let blocked = blocker(i);
    let pending = |approved: Want| {
        let ready = match &blocked {
            Some((reason, message)) => Want::no(types::READY, reason, message.clone()),
            None if approved.reason == reasons::AWAITING_APPROVAL => awaiting_ready(),
            None => Want::no(types::READY, approved.reason, approved.message.clone()),
        };
        Plan {
            ready: Cond::Set(ready),
            approved: Cond::Set(approved),
            ..base.clone()
        }
    };
    if quorum::recorded(i.grant.status.as_ref()).is_empty() {
        return pending(awaiting());
    }
    if let Some((reason, message)) = &blocked
        && [
            reasons::INVALID,
            reasons::AGENT_NOT_FOUND,
            reasons::ENVELOPE_NOT_FOUND,
        ]
        .contains(reason)
    {
        let message = format!("the recorded decision cannot take effect: {message}");
        return pending(Want::no(types::APPROVED, reason, message));
    }
    match verified(i) {
        Err(Unverified::Invalid { message, .. }) => pending(Want::no(
            types::APPROVED,
            reasons::APPROVAL_INVALID,
            message,
        )),
        Err(Unverified::Suspended { reason, message }) => {
            pending(Want::no(types::APPROVED, reason, message))
        }
        Ok(t) => match t.decision {
            Some(Decision::Denied) => deny(with_progress(base, &t), &t.denied.join(", ")),
            Some(Decision::Approved) => approve(i, with_progress(base, &t)),
            None => Plan {
                progress: Some(t.progress()),
                ..pending(partial(&t))
            },
        },
    }
}

/// A verified approval: usable, or suspended while its agent or envelope is not.
fn approve(i: &Inputs<'_>, base: Plan) -> Plan {
    let entries = quorum::recorded(i.grant.status.as_ref());
    let approvers: Vec<&str> = entries
        .iter()
        .filter(|(_, a)| a.decision == Decision::Approved)
        .map(|(_, a)| a.approver.as_str())
        .collect();
    let message = match approvers.as_slice() {
        [] => "approved by ?; the passkey signature verified".to_owned(),
        [one] => format!("approved by {one}; the passkey signature verified"),
        many => format!(
            "approved by {} ({}); every passkey signature verified",
            many.join(", "),
            base.progress.as_deref().unwrap_or_default()
        ),
    };
    let approved = Want::yes(types::APPROVED, reasons::APPROVED, message);
    let (ready, publish) = match blocker(i) {
        Some((reason, message)) => (
            Want::no(
                types::READY,
                reason,
                format!("{message}; until then verifiers refuse this grant"),
            ),
            Publish::Suspended,
        ),
        None => (
            Want::yes(
                types::READY,
                reasons::APPROVED,
                "approved and in effect until it expires",
            ),
            Publish::Usable,
        ),
    };
    Plan {
        phase: GrantPhase::Approved,
        ready: Cond::Set(ready),
        approved: Cond::Set(approved),
        publish,
        ..base
    }
}

/// The audit kind of the transition `from` → `to`, if it is one.
pub fn transition(from: Option<GrantPhase>, to: GrantPhase) -> Option<&'static str> {
    match (from, to) {
        (None, GrantPhase::Pending) => Some(kinds::GRANT_CREATED),
        (Some(GrantPhase::Pending), GrantPhase::Approved) => Some(kinds::GRANT_APPROVED),
        (Some(GrantPhase::Pending), GrantPhase::Denied) => Some(kinds::GRANT_DENIED),
        (Some(from), GrantPhase::Revoked) if from != GrantPhase::Revoked => {
            Some(kinds::GRANT_REVOKED)
        }
        (Some(from), GrantPhase::Expired) if from != GrantPhase::Expired => {
            Some(kinds::GRANT_EXPIRED)
        }
        _ => None,
    }
}

fn awaiting_ready() -> Want {
    Want::no(
        types::READY,
        reasons::AWAITING_APPROVAL,
        "waiting for an approver to decide",
    )
}

fn awaiting() -> Want {
    Want::no(
        types::APPROVED,
        reasons::AWAITING_APPROVAL,
        "waiting for an approver to decide with their passkey",
    )
}
