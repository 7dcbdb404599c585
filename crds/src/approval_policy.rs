//! N-of-M approvals: how many distinct approvers a grant needs, which
//! Approvers count, and what one denial does.
//!
//! ```text
//!  CapabilityGrant.spec.approvals ─┐
//!                                  ├─▶ Policy::of (the stricter of the two) ─▶ quorum tally
//!  BehavioralEnvelope.spec.approvals┘   required = max, from = both, denial = Veto if either
//! ```
//!
//! The policy sits in the specs, so it is part of what every approver signs:
//! the grant's in the spec digest, the envelope's in the envelope digest
//! (DESIGN §13). Neither set: one approver, any in scope, a denial ends the
//! grant — the behaviour before N-of-M.

use agentauth_core::ErrorCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Approver;
use crate::invalid::Invalid;

/// The most approvers a policy may require. Each approval is a passkey
/// ceremony by a different person and a ~2 KiB record in the grant's status;
/// five covers every "four eyes" or "two of three officers" rule we know of
/// while keeping a status far below etcd's object limit.
pub const MAX_REQUIRED_APPROVALS: u32 = 5;

/// How many distinct approvers must approve a grant, and who counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicy {
    /// How many distinct approvers (different Approvers, different emails,
    /// different passkeys, none owning the agent) must approve before the
    /// grant is Approved: 1 to 5. When the grant and its envelope both set
    /// this, the larger number applies.
    #[schemars(range(min = 1, max = MAX_REQUIRED_APPROVALS))]
    pub required: u32,
    /// Only Approvers whose labels this selector matches count toward the
    /// quorum, e.g. {matchLabels: {team: finance}}. Omitted: every Approver
    /// whose scope covers the grant. When the grant and its envelope both
    /// set one, an approver must match both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<LabelSelector>,
    /// What a denial does: Veto (the default) ends the grant (Denied) at the
    /// first denial; Quorum denies it only when `required` distinct
    /// approvers deny it, a single denial being recorded and counted. When
    /// the grant and its envelope disagree, Veto applies.
    #[serde(default, skip_serializing_if = "DenialRule::is_veto")]
    pub denial: DenialRule,
}

/// What one approver's denial does to a grant that needs several approvals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DenialRule {
    /// Any one denial ends the grant (Denied).
    #[default]
    Veto,
    /// The grant is Denied only when as many distinct approvers deny it as
    /// `required` approvers would have to approve it.
    Quorum,
}

impl DenialRule {
    /// Whether this is the default, [`DenialRule::Veto`].
    pub fn is_veto(&self) -> bool {
        *self == DenialRule::Veto
    }
}

impl ApprovalPolicy {
    /// Checks what the schema also checks (for objects the apiserver did
    /// not see: the agent API, tests): `required` in 1..=5 and a selector
    /// that parses.
    pub fn validate(&self, at: &str) -> Result<(), Invalid> {
        if !(1..=MAX_REQUIRED_APPROVALS).contains(&self.required) {
            return Err(Invalid::new(
                format!("{at}.required"),
                ErrorCode::RequestInvalid,
                format!(
                    "required is the number of distinct approvers, 1 to \
                     {MAX_REQUIRED_APPROVALS}; got {}",
                    self.required
                ),
            ));
        }
        if let Some(from) = &self.from
            && Selector::try_from(from.clone()).is_err()
        {
            return Err(Invalid::new(
                format!("{at}.from"),
                ErrorCode::RequestInvalid,
                "from is a label selector over Approvers (matchLabels / matchExpressions) and \
                 this one does not parse",
            ));
        }
        Ok(())
    }
}

/// The policy in force for one grant: its own and its envelope's, the
/// stricter of each part.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Distinct approvals needed.
    pub required: u32,
    /// Selectors an approver's labels must all match.
    pub from: Vec<LabelSelector>,
    /// What a denial does.
    pub denial: DenialRule,
}

impl Default for Policy {
    /// One approver, any in scope, a denial is final.
    fn default() -> Self {
        Policy {
            required: 1,
            from: Vec::new(),
            denial: DenialRule::Veto,
        }
    }
}

impl Policy {
    /// The policy of a grant whose spec says `grant` and whose envelope says
    /// `envelope`: the larger `required`, both selectors, and Veto unless
    /// every policy set says Quorum. A `required` out of range is clamped to
    /// 1..=5 (the schema refuses it; this keeps a bad object from lowering
    /// the bar).
    pub fn of(grant: Option<&ApprovalPolicy>, envelope: Option<&ApprovalPolicy>) -> Policy {
        let set: Vec<&ApprovalPolicy> = [grant, envelope].into_iter().flatten().collect();
        if set.is_empty() {
            return Policy::default();
        }
        Policy {
            required: set
                .iter()
                .map(|p| p.required.clamp(1, MAX_REQUIRED_APPROVALS))
                .max()
                .unwrap_or(1),
            from: set.iter().filter_map(|p| p.from.clone()).collect(),
            denial: if set.iter().all(|p| p.denial == DenialRule::Quorum) {
                DenialRule::Quorum
            } else {
                DenialRule::Veto
            },
        }
    }

    /// Whether `approver` may count toward this policy's quorum: its labels
    /// match every `from` selector (one that does not parse matches nothing).
    pub fn admits(&self, approver: &Approver) -> bool {
        let labels = approver.labels();
        self.from
            .iter()
            .all(|selector| Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(labels)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(required: u32, denial: DenialRule) -> ApprovalPolicy {
        ApprovalPolicy {
            required,
            from: None,
            denial,
        }
    }

    #[test]
    fn neither_set_is_one_approver_with_veto() {
        assert_eq!(Policy::of(None, None), Policy::default());
    }

    #[test]
    fn the_stricter_of_grant_and_envelope_wins() {
        let grant = policy(1, DenialRule::Quorum);
        let envelope = policy(3, DenialRule::Veto);
        let p = Policy::of(Some(&grant), Some(&envelope));
        assert_eq!((p.required, p.denial), (3, DenialRule::Veto));
        let p = Policy::of(Some(&policy(2, DenialRule::Quorum)), None);
        assert_eq!((p.required, p.denial), (2, DenialRule::Quorum));
    }

    #[test]
    fn required_out_of_range_is_refused_and_never_lowers_the_bar() {
        assert!(
            policy(0, DenialRule::Veto)
                .validate("spec.approvals")
                .is_err()
        );
        let too_many = policy(MAX_REQUIRED_APPROVALS + 1, DenialRule::Veto);
        let err = too_many.validate("spec.approvals").unwrap_err();
        assert!(err.to_string().contains("1 to 5"), "{err}");
        assert_eq!(
            Policy::of(Some(&policy(0, DenialRule::Veto)), None).required,
            1
        );
    }
}
