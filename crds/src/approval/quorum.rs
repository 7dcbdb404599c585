//! N-of-M approvals: every recorded decision of a grant verified, counted
//! once per distinct approver, and the outcome the policy gives them.
//!
//! ```text
//!  status.approvals[0..n] ++ status.approval  (entries, in recording order)
//!     each ──▶ verify_record (signature, challenge, scope, owner, binding)
//!          ──▶ admitted by spec.approvals.from (and the envelope's)     else approver_out_of_scope
//!          ──▶ new Approver name, email and credential id               else approval_duplicate
//!  Tally {approved, denied} ──▶ Policy::of(grant, envelope) ──▶ outcome
//!     status.approval present: its decision must be what the counts give, else approval_quorum_not_met
//! ```
//!
//! With the default policy (one approver) `status.approvals` is empty and
//! this is exactly the single-approval check, so one code path serves both.
//! Any entry that does not verify fails the whole tally: a forged
//! co-signature is not silently skipped, it is refused with its own code.

use std::collections::BTreeSet;

use agentauth_core::ErrorCode;
use agentauth_core::approval::Decision;
use kube::ResourceExt;

use super::{CounterCheck, Record, verify_record};
use crate::approval_policy::{DenialRule, Policy};
use crate::invalid::Invalid;
use crate::{
    Agent, Approval, Approver, BehavioralEnvelope, CapabilityGrant, CapabilityGrantStatus,
};

/// The field path of `status.approval`.
pub const DECISION_AT: &str = "status.approval";

/// The recorded decisions of `status`, in recording order, with their field
/// paths: the entries of `status.approvals`, then `status.approval`.
pub fn recorded(status: Option<&CapabilityGrantStatus>) -> Vec<(String, &Approval)> {
    let Some(status) = status else {
        return Vec::new();
    };
    let mut entries: Vec<(String, &Approval)> = status
        .approvals
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("status.approvals[{i}]"), a))
        .collect();
    if let Some(approval) = &status.approval {
        entries.push((DECISION_AT.to_owned(), approval));
    }
    entries
}

/// The policy in force for `grant` under `envelope`.
pub fn policy(grant: &CapabilityGrant, envelope: Option<&BehavioralEnvelope>) -> Policy {
    Policy::of(
        grant.spec.approvals.as_ref(),
        envelope.and_then(|e| e.spec.approvals.as_ref()),
    )
}

/// The verified decisions of a grant, counted per distinct approver.
#[derive(Clone, Debug, PartialEq)]
pub struct Tally {
    /// The policy they were counted under.
    pub policy: Policy,
    /// The Approvers who approved, in recording order.
    pub approved: Vec<String>,
    /// The Approvers who denied, in recording order.
    pub denied: Vec<String>,
    /// The decision `status.approval` records, consistent with the counts.
    pub decision: Option<Decision>,
    /// The largest sign counter of each verified entry, by credential id
    /// (the approval API advances the passkey's stored counter with it).
    pub sign_counts: Vec<(String, u32)>,
}

impl Tally {
    /// What the counts give under the policy, whatever `status.approval` says.
    pub fn outcome(&self) -> Option<Decision> {
        let required = self.required();
        if self.approved.len() >= required {
            return Some(Decision::Approved);
        }
        let denied = match self.policy.denial {
            DenialRule::Veto => !self.denied.is_empty(),
            DenialRule::Quorum => self.denied.len() >= required,
        };
        denied.then_some(Decision::Denied)
    }

    /// Distinct approvals needed, as a count.
    pub fn required(&self) -> usize {
        usize::try_from(self.policy.required).unwrap_or(usize::MAX)
    }

    /// Progress for people, e.g. `1/2 approved` (with `, 1 denied` when a
    /// counted denial is recorded).
    pub fn progress(&self) -> String {
        let mut text = format!("{}/{} approved", self.approved.len(), self.policy.required);
        if !self.denied.is_empty() {
            text.push_str(&format!(", {} denied", self.denied.len()));
        }
        text
    }

    /// Whether `approver` (by name) has a decision recorded.
    pub fn has_decided(&self, approver: &str) -> bool {
        self.approved
            .iter()
            .chain(&self.denied)
            .any(|a| a == approver)
    }
}

/// The objects every entry is verified against.
#[derive(Clone, Copy)]
pub struct Parties<'a> {
    /// The grant's envelope, when it names one.
    pub envelope: Option<&'a BehavioralEnvelope>,
    /// The grant's Agent.
    pub agent: &'a Agent,
    /// The Approvers the entries name (others may be included).
    pub approvers: &'a [&'a Approver],
    /// The relying party id.
    pub rp_id: &'a str,
    /// The approval UI's origins.
    pub origins: &'a [String],
}

/// Verifies every recorded decision of `grant` and counts them. `counter`
/// says, by entry index (see [`recorded`]), whether that entry is being
/// recorded now ([`CounterCheck::Fresh`]) or was earlier. Refuses with the
/// failing entry's code: its own verification's, `approver_not_found`,
/// `approver_out_of_scope` (not admitted by the policy's `from`),
/// `approval_duplicate` (an approver, email or passkey already counted), or
/// `approval_quorum_not_met` (`status.approval` claims a decision the counts
/// do not give).
pub fn tally(
    grant: &CapabilityGrant,
    parties: &Parties<'_>,
    counter: &dyn Fn(usize) -> CounterCheck,
) -> Result<Tally, Invalid> {
    let policy = policy(grant, parties.envelope);
    let mut seen = Seen::default();
    let mut tally = Tally {
        policy,
        approved: Vec::new(),
        denied: Vec::new(),
        decision: None,
        sign_counts: Vec::new(),
    };
    let entries = recorded(grant.status.as_ref());
    for (i, (at, approval)) in entries.iter().enumerate() {
        let approver = parties
            .approvers
            .iter()
            .find(|a| a.name_any() == approval.approver)
            .ok_or_else(|| {
                Invalid::new(
                    format!("{at}.approver"),
                    ErrorCode::ApproverNotFound,
                    format!("approver {} does not exist", approval.approver),
                )
            })?;
        // Before the signature: a copied entry is named for what it is.
        seen.add(approver, approval, at, &tally)?;
        let record = Record { approval, at };
        let verified = verify_record(
            grant,
            record,
            parties.envelope,
            parties.agent,
            approver,
            parties.rp_id,
            parties.origins,
            counter(i),
        )?;
        admitted(&tally.policy, approver, at)?;
        match verified.decision {
            Decision::Approved => tally.approved.push(verified.approver),
            Decision::Denied => tally.denied.push(verified.approver),
        }
        tally
            .sign_counts
            .push((verified.credential_id, verified.sign_count));
    }
    tally.decision = consistent(&tally, grant)?;
    Ok(tally)
}

/// The decision `status.approval` records, when the counts give exactly it;
/// a quorum reached among the co-signatures alone is refused too (the
/// deciding entry belongs in `status.approval`, where the phase rules read it).
fn consistent(tally: &Tally, grant: &CapabilityGrant) -> Result<Option<Decision>, Invalid> {
    let recorded = grant
        .status
        .as_ref()
        .and_then(|s| s.approval.as_ref())
        .map(|a| a.decision);
    let outcome = tally.outcome();
    if recorded == outcome {
        return Ok(recorded);
    }
    let message = match recorded {
        Some(decision) => format!(
            "status.approval records {} but the distinct verified decisions are {}; the grant \
             needs {} distinct approvers{}",
            decision.as_str(),
            tally.progress(),
            tally.policy.required,
            match tally.policy.denial {
                DenialRule::Veto => "",
                DenialRule::Quorum => " (and as many to deny it)",
            }
        ),
        None => format!(
            "the recorded co-signatures already decide the grant ({}); the deciding record \
             belongs in status.approval",
            tally.progress()
        ),
    };
    Err(Invalid::new(
        DECISION_AT,
        ErrorCode::ApprovalQuorumNotMet,
        message,
    ))
}

/// Refuses an approver the policy's `from` selectors do not admit.
fn admitted(policy: &Policy, approver: &Approver, at: &str) -> Result<(), Invalid> {
    if policy.admits(approver) {
        return Ok(());
    }
    Err(Invalid::new(
        format!("{at}.approver"),
        ErrorCode::ApproverOutOfScope,
        format!(
            "approver {} is not among the approvers spec.approvals.from (of the grant or its \
             envelope) selects, so it cannot decide this grant",
            approver.name_any()
        ),
    ))
}

/// The identities and passkeys already counted.
#[derive(Default)]
struct Seen {
    names: BTreeSet<String>,
    emails: BTreeSet<String>,
    credentials: BTreeSet<String>,
}

impl Seen {
    /// Counts `approver` and its passkey once; a repeat is `approval_duplicate`.
    fn add(
        &mut self,
        approver: &Approver,
        approval: &Approval,
        at: &str,
        tally: &Tally,
    ) -> Result<(), Invalid> {
        let name = approver.name_any();
        let email = approver.spec.email.to_ascii_lowercase();
        let repeat = if self.names.contains(&name) {
            Some(format!("approver {name} has already decided this grant"))
        } else if self.emails.contains(&email) {
            Some(format!(
                "another Approver with the email {} has already decided this grant",
                approver.spec.email
            ))
        } else if self.credentials.contains(&approval.credential_id) {
            Some(format!(
                "passkey {} has already been used on this grant",
                approval.credential_id
            ))
        } else {
            None
        };
        if let Some(repeat) = repeat {
            return Err(Invalid::new(
                at,
                ErrorCode::ApprovalDuplicate,
                format!(
                    "{repeat}; each approver counts once ({} so far)",
                    tally.progress()
                ),
            ));
        }
        self.names.insert(name);
        self.emails.insert(email);
        self.credentials.insert(approval.credential_id.clone());
        Ok(())
    }
}
