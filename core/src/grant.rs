//! A grant's lifecycle phase, defined once for the two places it is written:
//! the `CapabilityGrant` status (Kubernetes, the source of truth) and the
//! shared state the verifiers read (Redis or in-process).
//!
//! ```text
//!  CRD status:   Pending ─▶ Approved ─▶ Revoked | Expired      Pending ─▶ Denied
//!  shared state: the same, plus Suspended (an Approved grant whose envelope
//!                or agent key changed after the approval was signed)
//! ```
//!
//! Both write the variant names (`"Approved"`, …) as they are; the CRD's
//! schema lists every phase but [`GrantPhase::Suspended`], which only the
//! shared state holds: a suspended grant's status stays `Approved`, with
//! `Ready=False`.

use serde::{Deserialize, Serialize};

/// Where a grant stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum GrantPhase {
    /// Waiting for a human decision.
    Pending,
    /// Approved: tokens may be issued until it expires or is revoked.
    Approved,
    /// Denied by a human, for good.
    Denied,
    /// Revoked (spec.revoked: true, deletion, or an approval that does not
    /// verify); verifiers refuse it.
    Revoked,
    /// Past its expiry; verifiers refuse it.
    Expired,
    /// Shared state only: approved, but the envelope's spec or the agent's
    /// key changed after the approval was signed; refused
    /// (`grant_suspended`) until the old values are back or an approver
    /// approves the new ones.
    Suspended,
}

impl GrantPhase {
    /// The wire form, e.g. `"Approved"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            GrantPhase::Pending => "Pending",
            GrantPhase::Approved => "Approved",
            GrantPhase::Denied => "Denied",
            GrantPhase::Revoked => "Revoked",
            GrantPhase::Expired => "Expired",
            GrantPhase::Suspended => "Suspended",
        }
    }

    /// Denied, Revoked and Expired are final: a grant never leaves them.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            GrantPhase::Denied | GrantPhase::Revoked | GrantPhase::Expired
        )
    }
}

#[cfg(test)]
mod tests {
    use super::GrantPhase;

    /// Redis values and CRD status strings are the variant names; `as_str`
    /// says the same.
    #[test]
    fn the_wire_form_is_the_variant_name() {
        for phase in [
            GrantPhase::Pending,
            GrantPhase::Approved,
            GrantPhase::Denied,
            GrantPhase::Revoked,
            GrantPhase::Expired,
            GrantPhase::Suspended,
        ] {
            let wire = serde_json::to_value(phase).ok();
            assert_eq!(wire, Some(serde_json::json!(phase.as_str())));
            assert_eq!(format!("{phase:?}"), phase.as_str());
        }
    }
}
