//! `CapabilityGrant`: what one agent may do at one service provider, for how
//! long, and why — requested by the agent (or applied by a person), decided
//! by a human with a passkey.
//!
//! ```text
//!  create ──▶ Pending ──approve──▶ Approved ──revoked: true──▶ Revoked
//!                │                     └──────expiry─────────▶ Expired
//!                └──────deny──────▶ Denied
//! ```
//!
//! The approval signs the spec's digest and generation, so once a decision
//! is recorded the spec is frozen (a CEL rule on the whole object, and the
//! webhook) except for `revoked`, which can only go from false to true.
//! The status types are in [`crate::grant_status`].

use agentauth_core::ErrorCode;
use agentauth_core::capability::{Capability, MAX_CAPABILITIES};
use agentauth_core::gcra::Period;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::approval_policy::ApprovalPolicy;
use crate::grant_status::CapabilityGrantStatus;
use crate::invalid::{At, Invalid, check_name, check_text};

/// The longest `serviceProvider`, in bytes.
pub const MAX_SERVICE_PROVIDER_LEN: usize = 512;
/// The longest `reason`, in bytes.
pub const MAX_REASON_LEN: usize = 1024;

/// What a CapabilityGrant asks for: an agent, a service provider, the
/// capabilities, an expiry and a reason. Frozen once decided, except for
/// setting revoked.
#[allow(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) repeats keys such as type_ = \"string\" by design"
)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "agentauth.dev",
    version = "v1alpha1",
    kind = "CapabilityGrant",
    namespaced,
    status = "CapabilityGrantStatus",
    derive = "PartialEq",
    shortname = "cgrant",
    shortname = "grant",
    category = "agentauth",
    doc = "What one Agent may do at one service provider, until when, and why. A human \
           approver decides it with a passkey; the decision lands in status.approval and \
           status.phase. Once decided, the spec cannot change except to set revoked: true.",
    printcolumn(name = "Agent", type_ = "string", json_path = ".spec.agentRef.name"),
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.serviceProvider"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Approvals",
        type_ = "string",
        json_path = ".status.approvalProgress",
        description = "Distinct verified approvals out of those required, e.g. 1/2 approved"
    ),
    printcolumn(
        name = "Expires",
        type_ = "string",
        json_path = ".status.expiresAt",
        description = "When the approved grant expires (RFC 3339)"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(FROZEN_REFS).message(FROZEN_MESSAGE),
    validation = Rule::new(FROZEN_CAPABILITIES).message(FROZEN_MESSAGE),
    validation = Rule::new(FROZEN_ACTIONS).message(FROZEN_MESSAGE),
    validation = Rule::new(FROZEN_CONSTRAINTS).message(FROZEN_MESSAGE),
    validation = Rule::new(
        "!has(oldSelf.status) || !has(oldSelf.status.approval) || \
         (has(self.status) && has(self.status.approval))"
    )
    .message("a recorded approval cannot be removed")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.expiresAt) != has(self.duration)",
        "message": "set exactly one of expiresAt (an RFC 3339 time) or duration (e.g. \"8h\")",
    },
    {
        "rule": "!oldSelf.?revoked.orValue(false) || self.?revoked.orValue(false)",
        "message": "a revoked grant stays revoked: revoked cannot go back to false; create a new grant instead",
    },
]))]
pub struct CapabilityGrantSpec {
    /// The Agent, in this namespace, that may use this grant. Cannot change.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "agentRef cannot change: a grant belongs to one agent; create a new grant",
    }]))]
    pub agent_ref: LocalRef,
    /// The service provider the agent may call: the audience (aud) of the
    /// access tokens issued under this grant, e.g. `https://calendar.example.com`.
    /// Cannot change.
    #[schemars(
        length(min = 1, max = MAX_SERVICE_PROVIDER_LEN),
        extend("x-kubernetes-validations" = [
            {
                "rule": "self == oldSelf",
                "message": "serviceProvider cannot change: create a new grant for another provider",
            },
            {
                "rule": "self.matches('^[!-~]+$')",
                "message": "serviceProvider is visible ASCII without spaces, e.g. https://calendar.example.com",
            },
        ])
    )]
    pub service_provider: String,
    /// What the agent may do: 1 to 64 capabilities, each a type (read, write,
    /// delete, transact, custom) on the resources a pattern matches, e.g.
    /// {type: read, resource: "calendars/primary/**"}. A request is allowed
    /// when one capability covers it (and the envelope's limits allow it).
    #[schemars(
        length(max = MAX_CAPABILITIES),
        transform = crate::schema::capabilities,
        extend("x-kubernetes-validations" = [{
            "rule": "size(self) > 0",
            "message": "a grant lists at least one capability",
        }])
    )]
    pub capabilities: Vec<Capability>,
    /// The BehavioralEnvelope, in this namespace, whose limits apply to every
    /// use of this grant. Omitted: no limits beyond the capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_ref: Option<LocalRef>,
    /// When the grant ends, as an RFC 3339 time, e.g. "2026-07-01T00:00:00Z".
    /// Give this or duration, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// How long the grant lasts, counted from its creation, e.g. "8h"; at
    /// most "1d" (use expiresAt for longer). Give this or expiresAt, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::schema::core_rules)]
    pub duration: Option<Period>,
    /// Why the agent needs this, in words for the approver, e.g. "Schedule
    /// the team's weekly planning meetings".
    #[schemars(length(min = 1, max = MAX_REASON_LEN))]
    pub reason: String,
    /// How many distinct approvers must approve this grant, which Approvers
    /// count, and what a denial does, e.g. {required: 2}. Omitted: one
    /// approver. The envelope may set one too; the stricter applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<ApprovalPolicy>,
    /// Set to true to revoke the grant: every verifier refuses it within a
    /// second. Cannot be set back to false. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

/// What a person reads when a decided grant's spec changes.
const FROZEN_MESSAGE: &str = "the spec of a decided grant cannot change, except setting revoked: true; \
                              create a new grant to ask for something else";

/// Whole-object rules: once status records a decision (or leaves Pending),
/// every spec field but `revoked` keeps its value. They share
/// [`FROZEN_MESSAGE`].
///
/// Written with `has()` on both sides rather than CEL optionals: the
/// apiserver estimated `self.spec.?x == oldSelf.spec.?x` as unbounded and
/// refused the CRD (cost over budget by more than 100x); this form is
/// bounded by the fields' `maxLength` and `maxItems`.
macro_rules! once_decided {
    ($($same:tt)+) => {
        concat!(
            "!has(oldSelf.status) || (!has(oldSelf.status.approval) && ",
            "!has(oldSelf.status.approvals) && ",
            "(!has(oldSelf.status.phase) || oldSelf.status.phase == 'Pending')) || (",
            $($same)+,
            ")"
        )
    };
}

/// An optional field of the spec is present in both or neither, and equal.
macro_rules! same_optional {
    ($field:literal) => {
        concat!(
            "has(self.spec.",
            $field,
            ") == has(oldSelf.spec.",
            $field,
            ") && (!has(self.spec.",
            $field,
            ") || self.spec.",
            $field,
            " == oldSelf.spec.",
            $field,
            ")"
        )
    };
}

const FROZEN_REFS: &str = once_decided!(concat!(
    "self.spec.agentRef == oldSelf.spec.agentRef",
    " && self.spec.serviceProvider == oldSelf.spec.serviceProvider",
    " && self.spec.reason == oldSelf.spec.reason && ",
    same_optional!("envelopeRef"),
    " && ",
    same_optional!("expiresAt"),
    " && ",
    same_optional!("duration"),
    " && ",
    same_optional!("approvals")
));

/// The scalar fields of each capability, in order.
const FROZEN_CAPABILITIES: &str = once_decided!(concat!(
    "self.spec.capabilities.map(c, [c.type, c.resource, has(c.name) ? c.name : '', ",
    "has(c.filter) ? c.filter : '', has(c.maxAmount) ? c.maxAmount : '', ",
    "has(c.currency) ? c.currency : '']) == oldSelf.spec.capabilities.map(c, [c.type, ",
    "c.resource, has(c.name) ? c.name : '', has(c.filter) ? c.filter : '', ",
    "has(c.maxAmount) ? c.maxAmount : '', has(c.currency) ? c.currency : ''])"
));

/// The actions of each capability. Absent reads as `['*']`, which no real
/// list can equal (`*` is not a valid action).
const FROZEN_ACTIONS: &str = once_decided!(concat!(
    "self.spec.capabilities.map(c, has(c.actions) ? c.actions : ['*']) == ",
    "oldSelf.spec.capabilities.map(c, has(c.actions) ? c.actions : ['*'])"
));

/// The constraints of each capability: which have them, then their values
/// (`has(c.constraints) ? c.constraints : {}` does not type-check, the field
/// being a free-form object).
const FROZEN_CONSTRAINTS: &str = once_decided!(concat!(
    "self.spec.capabilities.map(c, has(c.constraints)) == ",
    "oldSelf.spec.capabilities.map(c, has(c.constraints)) && ",
    "self.spec.capabilities.filter(c, has(c.constraints)).map(c, c.constraints) == ",
    "oldSelf.spec.capabilities.filter(c, has(c.constraints)).map(c, c.constraints)"
));

/// A reference to another AgentAuth resource in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// The name of the resource (metadata.name), in this namespace.
    #[schemars(
        length(min = 1, max = 253),
        extend("x-kubernetes-validations" = [{
            "rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
            "message": "a name is a Kubernetes object name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
        }])
    )]
    pub name: String,
}

impl LocalRef {
    /// A reference to `name`.
    pub fn new(name: impl Into<String>) -> Self {
        LocalRef { name: name.into() }
    }
}

impl CapabilityGrantSpec {
    /// Checks the spec with core's rules: each capability (custom names,
    /// transact-only amounts fitting the currency, actions, resource
    /// patterns), the references, and exactly one of expiresAt or duration.
    /// Whether the referenced Agent and envelope exist is the reconciler's
    /// question, and whether the spec may change the webhook's.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_name("spec.agentRef.name", &self.agent_ref.name)?;
        let provider = &self.service_provider;
        let visible = |b: u8| b.is_ascii_graphic();
        if provider.is_empty()
            || provider.len() > MAX_SERVICE_PROVIDER_LEN
            || !provider.bytes().all(visible)
        {
            return Err(Invalid::new(
                "spec.serviceProvider",
                ErrorCode::RequestInvalid,
                format!("must be 1 to {MAX_SERVICE_PROVIDER_LEN} visible ASCII characters"),
            ));
        }
        Capability::validate_all(&self.capabilities).at("spec.capabilities")?;
        if let Some(envelope) = &self.envelope_ref {
            check_name("spec.envelopeRef.name", &envelope.name)?;
        }
        if self.expires_at.is_some() == self.duration.is_some() {
            return Err(Invalid::new(
                "spec",
                ErrorCode::RequestInvalid,
                "set exactly one of expiresAt or duration",
            ));
        }
        if let Some(policy) = &self.approvals {
            policy.validate("spec.approvals")?;
        }
        check_text("spec.reason", &self.reason, MAX_REASON_LEN)
    }
}
