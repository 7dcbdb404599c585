//! N-of-M: where a new decision goes and what the grant's recorded
//! decisions come to with it, for the approval API's `finish`.
//!
//! ```text
//!  recorded decisions + the new one ──counted under the policy──▶ an outcome?
//!     yes (or a re-approval) ──▶ status.approval      no ──▶ appended to status.approvals
//!  then tally(): every entry verified, the new one with a fresh sign counter
//! ```
//!
//! The placement is counted without verification; the tally that follows
//! (the admission webhook's own check) refuses anything that does not hold.

use agentauth_core::approval::Decision;
use agentauth_crds::approval::quorum::{self, Parties as QuorumParties};
use agentauth_crds::approval::{CounterCheck, Tally, tally};
use agentauth_crds::approval_policy::Policy;
use agentauth_crds::{Approval, Approver, CapabilityGrantStatus};
use kube::ResourceExt;

use super::reply::Refusal;
use super::scope::Parties;
use super::setup::Approvals;

/// What the grant's recorded decisions come to with a new one, placed
/// where it goes (see [`is_deciding`]).
pub struct Placed {
    /// Every recorded decision with the new one, verified and counted.
    pub tally: Tally,
    /// The passkey's sign counter in the new assertion.
    pub sign_count: u32,
}

/// Verifies `record` as the admission webhook will, before it is written,
/// together with every decision already recorded (N-of-M, [`tally`]): a
/// refusal here is one the apiserver would give, with a clearer message.
/// The record decides the grant when the counts with it give an outcome
/// under the grant's approval policy; else it waits in `status.approvals`.
pub fn verify(
    approvals: &Approvals,
    parties: &Parties,
    record: &Approval,
) -> Result<Placed, Refusal> {
    let rp = &approvals.ctx.relying_party;
    let approvers = [&parties.approver];
    let mut signed = parties.grant.clone();
    let status = signed
        .status
        .get_or_insert_with(CapabilityGrantStatus::default);
    let policy = quorum::policy(&parties.grant, parties.envelope.as_ref());
    let deciding = is_deciding(&policy, status, record);
    if deciding {
        status.approval = Some(record.clone());
    } else {
        status.approvals.push(record.clone());
    }
    let entries = quorum::recorded(signed.status.as_ref());
    let last = entries.len().saturating_sub(1);
    let named: Vec<String> = entries.iter().map(|(_, a)| a.approver.clone()).collect();
    let others = others(approvals, &named, &parties.approver);
    let all: Vec<&Approver> = approvers.into_iter().chain(others.iter()).collect();
    let tally = tally(
        &signed,
        &QuorumParties {
            envelope: parties.envelope.as_ref(),
            agent: &parties.agent,
            approvers: &all,
            rp_id: &rp.id,
            origins: &rp.origins,
        },
        &|i| {
            if i == last {
                CounterCheck::Fresh
            } else {
                CounterCheck::Recorded
            }
        },
    )?;
    let sign_count = tally.sign_counts.last().map_or(0, |(_, count)| *count);
    Ok(Placed { tally, sign_count })
}

/// Whether `record` is the deciding one on a grant whose status is
/// `status`: a re-approval (it replaces the recorded decision), or the
/// counts with it give an outcome under `policy`.
pub fn is_deciding(policy: &Policy, status: &CapabilityGrantStatus, record: &Approval) -> bool {
    if status.approval.is_some() {
        return true;
    }
    let mut tentative = status.clone();
    tentative.approvals.push(record.clone());
    decides(policy, &tentative)
}

/// Whether the decisions in `status` decide the grant under `policy`,
/// counted without verification (the verification that follows, and the
/// webhook's, refuse anything that does not hold).
fn decides(policy: &Policy, status: &CapabilityGrantStatus) -> bool {
    let entries = quorum::recorded(Some(status));
    let distinct = |decision: Decision| {
        let mut names: Vec<&str> = entries
            .iter()
            .filter(|(_, a)| a.decision == decision)
            .map(|(_, a)| a.approver.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    };
    let tally = Tally {
        policy: policy.clone(),
        approved: distinct(Decision::Approved)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        denied: distinct(Decision::Denied)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        decision: None,
        sign_counts: Vec::new(),
    };
    tally.outcome().is_some()
}

/// The Approvers named by earlier decisions, other than `me`, from the
/// operator's informer cache (the webhook reads them again when the record
/// is written).
fn others(approvals: &Approvals, named: &[String], me: &Approver) -> Vec<Approver> {
    let me = me.name_any();
    named
        .iter()
        .filter(|n| **n != me)
        .filter_map(|n| approvals.ctx.caches.approver(n))
        .map(|a| a.as_ref().clone())
        .collect()
}
