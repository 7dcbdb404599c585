//! The status of a `CapabilityGrant`: its phase, the recorded human decision
//! and the raw WebAuthn assertion that proves it.
//!
//! The approval API writes `approval`; the webhook verifies the assertion
//! against the approver's passkey before the write is admitted, and the
//! operator verifies it again before it publishes the grant as usable or
//! issues a token. Like cert-manager's approvals, a decision once recorded
//! never changes — CEL rules below make the apiserver refuse any status update
//! that would alter or drop it, or move a grant out of a final phase. One
//! exception: an approval also binds the envelope's spec and the agent's key
//! (DESIGN §13); when either changes the grant is suspended, and an approver
//! may then record a new approval bound to the new values (re-approval). A
//! denial is final.
//!
//! **N-of-M.** A grant that needs several approvers (`spec.approvals`, or its
//! envelope's) collects the approvals (and counted denials) that do not yet
//! decide it in `approvals`, appended to and never changed; the record that
//! reaches the quorum, or the denial that ends it, is `approval` as always.
//! `approval` stays the one decision so that every rule and reader of "the
//! decision" (the phase rules below, history, revocation) is unchanged, and
//! a one-approver grant writes exactly what it did before. Every entry of
//! both is verified by [`crate::approval::tally`].

use agentauth_core::approval::{Decision, NONCE_MAX_LEN, NONCE_MIN_LEN};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a grant stands; defined in core, together with the shared state's
/// `Suspended`, which a status never holds.
pub use agentauth_core::grant::GrantPhase;

/// Where a CapabilityGrant stands: its phase, the recorded human decision,
/// its expiry and conditions. Written by the operator (phase, expiresAt,
/// conditions) and the approval API (approval), never by hand.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.?phase.orValue('') != 'Approved' || (has(self.approval) && self.approval.decision == 'Approved')",
        "message": "phase Approved needs a recorded approval whose decision is Approved",
    },
    {
        "rule": "self.?phase.orValue('') != 'Denied' || (has(self.approval) && self.approval.decision == 'Denied')",
        "message": "phase Denied needs a recorded approval whose decision is Denied",
    },
    {
        "rule": concat!(
            "!has(oldSelf.approval) || (has(self.approval) && (self.approval == oldSelf.approval || (",
            "oldSelf.approval.decision == 'Approved' && self.approval.decision == 'Approved' && ",
            "has(self.approval.envelopeDigest) && has(self.approval.agentKeyThumbprint) && (",
            "!has(oldSelf.approval.envelopeDigest) || !has(oldSelf.approval.agentKeyThumbprint) || ",
            "self.approval.envelopeDigest != oldSelf.approval.envelopeDigest || ",
            "self.approval.agentKeyThumbprint != oldSelf.approval.agentKeyThumbprint))))",
        ),
        "message": "a recorded approval never changes and is never removed, except that an approval \
                    may be replaced by a new approval bound to a changed envelope or agent key \
                    (re-approval of a suspended grant); a Denied decision is final",
    },
    {
        "rule": "!has(oldSelf.approvals) || (has(self.approvals) && size(self.approvals) >= size(oldSelf.approvals))",
        "message": "recorded approvals are never removed; the webhook also refuses changing one",
    },
    {
        "rule": "!has(oldSelf.phase) || !(oldSelf.phase in ['Denied', 'Revoked', 'Expired']) || (has(self.phase) && self.phase == oldSelf.phase)",
        "message": "a Denied, Revoked or Expired grant keeps its phase",
    },
    {
        "rule": "oldSelf.?phase.orValue('') != 'Approved' || self.?phase.orValue('') in ['Approved', 'Revoked', 'Expired']",
        "message": "an Approved grant can only become Revoked or Expired",
    },
]))]
pub struct CapabilityGrantStatus {
    /// Where the grant stands: Pending (waiting for a human), Approved,
    /// Denied, Revoked or Expired. Denied, Revoked and Expired are final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = status_phase)]
    pub phase: Option<GrantPhase>,
    /// The human decision and the passkey assertion that proves it. Written
    /// by the approval API; never changes afterwards, except that a suspended
    /// grant (its envelope or agent key changed) may be approved again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Approvals and counted denials recorded before the decision, when the
    /// grant needs several approvers (spec.approvals or its envelope's):
    /// one entry per distinct approver, each a signed passkey assertion
    /// verified exactly like `approval`. Written by the approval API,
    /// appended to, never changed; the entry that reaches the quorum (or
    /// the denial that ends the grant) goes to `approval` instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RECORDED_APPROVALS))]
    pub approvals: Vec<Approval>,
    /// How far the grant is from its quorum, e.g. "1/2 approved": distinct
    /// verified approvals out of those required. Written by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub approval_progress: Option<String>,
    /// When the approved grant stops working: spec.expiresAt, or the approval
    /// time plus spec.duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observations of the grant, one per type: Ready (usable now, or why
    /// not, e.g. AgentNotFound) and Approved (a verified human approval).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// A schemars transform for `status.phase`: every phase but `Suspended`,
/// which only the shared state holds (a suspended grant's status stays
/// `Approved`, with `Ready=False`), so the apiserver refuses it here.
fn status_phase(schema: &mut schemars::Schema) {
    if let Some(object) = schema.as_object_mut() {
        drop_suspended(object);
    }
}

/// Removes `Suspended` from `schema` at any depth: from an `enum`, and the
/// `{"const": "Suspended"}` alternative schemars writes for the variant.
fn drop_suspended(schema: &mut serde_json::Map<String, Value>) {
    let suspended = Value::from(GrantPhase::Suspended.as_str());
    if let Some(Value::Array(phases)) = schema.get_mut("enum") {
        phases.retain(|p| *p != suspended);
    }
    for sub in schema.values_mut() {
        match sub {
            Value::Object(sub) => drop_suspended(sub),
            Value::Array(subs) => {
                subs.retain(|s| s.get("const") != Some(&suspended));
                subs.iter_mut()
                    .filter_map(Value::as_object_mut)
                    .for_each(drop_suspended);
            }
            _ => {}
        }
    }
}

/// The most entries `status.approvals` holds: with the largest quorum
/// ([`MAX_REQUIRED_APPROVALS`](crate::approval_policy::MAX_REQUIRED_APPROVALS)
/// = 5) and counted denials, at most 4 approvals and 4 denials precede the
/// deciding record.
pub const MAX_RECORDED_APPROVALS: u32 = 8;

/// A human decision on a grant, with the WebAuthn assertion that signed it.
///
/// The passkey signed `authenticatorData || SHA-256(clientDataJSON)`, and
/// clientDataJSON's challenge is the approval challenge over the grant's uid,
/// `generation`, `specDigest`, `decision`, `nonce`, `envelopeDigest` and
/// `agentKeyThumbprint` (DESIGN §4.2, §13), so the record can be re-verified
/// by anyone who has the approver's public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The name of the Approver (cluster-scoped) who decided.
    #[schemars(length(min = 1, max = 253))]
    pub approver: String,
    /// The passkey used, by its WebAuthn credential id (base64url).
    #[schemars(length(min = 1, max = 1400))]
    pub credential_id: String,
    /// The decision: Approved or Denied.
    pub decision: Decision,
    /// The approval API's one-time nonce for this ceremony.
    #[schemars(length(min = NONCE_MIN_LEN, max = NONCE_MAX_LEN))]
    pub nonce: String,
    /// When the passkey signed (RFC 3339).
    pub signed_at: Time,
    /// The metadata.generation of the grant that was signed.
    #[schemars(range(min = 1))]
    pub generation: i64,
    /// base64url(SHA-256(JCS(spec))) of the spec that was signed.
    #[schemars(length(min = 43, max = 43))]
    pub spec_digest: String,
    /// base64url(SHA-256(JCS(envelope.spec))) of the BehavioralEnvelope's
    /// spec the approver was shown, or "" when the grant names no envelope.
    /// When the envelope's spec changes, the grant is suspended until an
    /// approver approves it again.
    #[serde(default)]
    #[schemars(
        length(max = 43),
        extend("x-kubernetes-validations" = [{
            "rule": "self == '' || self.matches('^[A-Za-z0-9_-]{43}$')",
            "message": "envelopeDigest is a base64url SHA-256 digest (43 characters), or empty when the grant names no envelope",
        }])
    )]
    pub envelope_digest: String,
    /// The RFC 7638 thumbprint of the Agent's spec.publicKey the approver
    /// was shown. When the agent's key changes, the grant is suspended until
    /// an approver approves it again. Required by the webhook and the
    /// operator for every approval (a record without it does not verify).
    #[serde(default)]
    #[schemars(
        length(max = 43),
        extend("x-kubernetes-validations" = [{
            "rule": "self == '' || self.matches('^[A-Za-z0-9_-]{43}$')",
            "message": "agentKeyThumbprint is the RFC 7638 thumbprint of the agent's key (43 base64url characters); empty only in approvals recorded before approvals bound the key, which no longer verify",
        }])
    )]
    pub agent_key_thumbprint: String,
    /// The WebAuthn authenticatorData, base64url, as the authenticator returned it.
    #[schemars(length(min = 1, max = 2048))]
    pub authenticator_data: String,
    /// The WebAuthn clientDataJSON, base64url, as the browser returned it.
    #[serde(rename = "clientDataJSON")]
    #[schemars(length(min = 1, max = 4096))]
    pub client_data_json: String,
    /// The assertion signature (ASN.1 DER ECDSA), base64url.
    #[schemars(length(min = 1, max = 256))]
    pub signature: String,
}
