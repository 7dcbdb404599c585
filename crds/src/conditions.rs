//! Condition types and reasons of every AgentAuth resource, and the schema of
//! a `conditions` list.
//!
//! Conditions are the standard `metav1.Condition`, kept as a list-map keyed
//! by `type` so that server-side apply merges each writer's conditions
//! instead of replacing the list: the operator owns the types below and keeps
//! any other writer's. `reason` is one of the constants here (CamelCase, as
//! the apiserver requires); `message` says in words what a person can do.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{Schema, SchemaGenerator};
use serde_json::json;

/// Condition types.
pub mod types {
    /// The resource is valid and in effect: the agent's key is usable, the
    /// envelope's limits apply, the grant can be used, the approver can approve.
    pub const READY: &str = "Ready";
    /// A grant carries a verified human decision to approve it.
    pub const APPROVED: &str = "Approved";
}

/// Condition reasons.
pub mod reasons {
    /// The spec passed validation and is in effect.
    pub const VALID: &str = "Valid";
    /// The spec failed validation; the message names the field.
    pub const INVALID: &str = "Invalid";
    /// An agent's public key is not a usable EC P-256 key.
    pub const KEY_INVALID: &str = "KeyInvalid";
    /// A grant waits for a human decision.
    pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
    /// A human approved the grant and the signature verified.
    pub const APPROVED: &str = "Approved";
    /// A human denied the grant.
    pub const DENIED: &str = "Denied";
    /// The grant was revoked (`spec.revoked: true`).
    pub const REVOKED: &str = "Revoked";
    /// The grant's expiry has passed.
    pub const EXPIRED: &str = "Expired";
    /// A grant names an Agent that does not exist in its namespace.
    pub const AGENT_NOT_FOUND: &str = "AgentNotFound";
    /// A grant names an Agent that is not Ready.
    pub const AGENT_NOT_READY: &str = "AgentNotReady";
    /// A grant names a BehavioralEnvelope that does not exist in its namespace.
    pub const ENVELOPE_NOT_FOUND: &str = "EnvelopeNotFound";
    /// The recorded approval does not verify against the approver's passkey.
    pub const APPROVAL_INVALID: &str = "ApprovalInvalid";
    /// An approved grant's envelope spec changed after the approval was
    /// signed: suspended until an approver approves it again (or the
    /// envelope is put back).
    pub const ENVELOPE_CHANGED: &str = "EnvelopeChanged";
    /// An approved grant's agent key changed after the approval was signed:
    /// suspended until an approver approves it again (or the key is put back).
    pub const AGENT_KEY_CHANGED: &str = "AgentKeyChanged";
    /// An approver has no registered passkey yet.
    pub const NO_PASSKEY: &str = "NoPasskey";
    /// An approver has at least one registered passkey.
    pub const PASSKEY_REGISTERED: &str = "PasskeyRegistered";
}

/// The most conditions one status may hold: the operator writes two types,
/// the rest leaves room for other controllers.
pub const MAX_CONDITIONS: u64 = 16;

/// The schema of a `conditions` field: a list of `metav1.Condition` that is a
/// list-map keyed by `type`.
pub fn schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    if let Some(object) = schema.as_object_mut() {
        object.insert("x-kubernetes-list-type".into(), "map".into());
        object.insert("x-kubernetes-list-map-keys".into(), json!(["type"]));
        object.insert("maxItems".into(), MAX_CONDITIONS.into());
    }
    schema
}

/// The condition of `type_` in a list, if there is one.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}
