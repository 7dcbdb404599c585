//! Which requests a rate limit counts. Without `appliesTo` a limit counts
//! every request of the grant; with it, only actions of its `type` on a
//! resource its `resource` pattern matches, so one envelope can hold a limit
//! per tool or per operation ("3 payments an hour") that a person reads and
//! approves like any other limit.

use serde::{Deserialize, Serialize};

use crate::capability::{CapabilityType, Resource, ResourcePattern};
use crate::error::{Error, ErrorCode, Result};

/// The requests a rate limit counts: those matching every field set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AppliesTo {
    /// Only actions of this type (`read`, `write`, `delete`, `transact`,
    /// `custom`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CapabilityType>,
    /// Only actions on a resource this pattern matches (`*` one segment,
    /// `**` any number), e.g. `payments/**`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourcePattern>,
}

impl AppliesTo {
    /// At least one field is set: an empty selector would read as "some
    /// requests" and count them all.
    pub fn validate(&self) -> Result<()> {
        if self.kind.is_none() && self.resource.is_none() {
            return Err(Error::new(
                ErrorCode::EnvelopeInvalid,
                "rate limit appliesTo names a type, a resource pattern or both \
                 (leave it out to count every request)",
            ));
        }
        Ok(())
    }

    /// Whether an action of `kind` on `resource` is counted.
    pub fn matches(&self, kind: CapabilityType, resource: &str) -> bool {
        let kind_ok = self.kind.is_none_or(|k| k == kind);
        let resource_ok = match &self.resource {
            None => true,
            // A resource that is not a valid concrete resource is refused
            // by the capability check first; counting it is the safe side.
            Some(pattern) => Resource::parse(resource).map_or(true, |r| pattern.matches(&r)),
        };
        kind_ok && resource_ok
    }

    /// In words, for the approval screen: "transact on payments/**".
    pub fn describe(&self) -> String {
        match (&self.kind, &self.resource) {
            (Some(kind), Some(resource)) => format!("{kind} on {resource}"),
            (Some(kind), None) => format!("{kind} on any resource"),
            (None, Some(resource)) => format!("any action on {resource}"),
            (None, None) => "every request".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sel(json: &str) -> AppliesTo {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn matches_by_type_and_pattern() {
        let pay = sel(r#"{"type": "transact", "resource": "payments/**"}"#);
        assert!(pay.matches(CapabilityType::Transact, "payments/EUR"));
        assert!(!pay.matches(CapabilityType::Read, "payments/EUR"));
        assert!(!pay.matches(CapabilityType::Transact, "orders/1"));
        assert!(sel(r#"{"type": "read"}"#).matches(CapabilityType::Read, "x/y"));
        assert!(sel(r#"{"resource": "accounts/*"}"#).matches(CapabilityType::Delete, "accounts/a"));
        assert!(
            pay.matches(CapabilityType::Transact, "payments/*"),
            "an invalid resource counts"
        );
        assert_eq!(pay.describe(), "transact on payments/**");
    }

    #[test]
    fn refuses_empty_and_malformed_selectors() {
        assert!(sel("{}").validate().is_err());
        assert!(serde_json::from_str::<AppliesTo>(r#"{"resource": "a//b"}"#).is_err());
        assert!(serde_json::from_str::<AppliesTo>(r#"{"type": "fly"}"#).is_err());
        assert!(serde_json::from_str::<AppliesTo>(r#"{"typo": "read"}"#).is_err());
    }
}
