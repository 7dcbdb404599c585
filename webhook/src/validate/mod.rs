//! The admission decisions: for each AgentAuth resource, what the CRD schema
//! (and its CEL rules, which the apiserver applies *before* calling this
//! webhook) cannot say.
//!
//! | resource | write | checked here |
//! |---|---|---|
//! | Agent | create, spec change | `AgentSpec::validate` (the key is a point on P-256, texts) |
//! | Agent | `status` | `keyThumbprint`: only the operator, and only the thumbprint of `spec.publicKey` |
//! | BehavioralEnvelope | create, spec change | `validate` (known time zones, currencies, amounts that fit them, per-transaction ≤ per-day, GCRA bounds) |
//! | CapabilityGrant | create, spec change | `validate`; the Agent and the envelope exist in the namespace |
//! | CapabilityGrant | update of a decided grant | spec frozen except `revoked` false → true (with CEL) |
//! | CapabilityGrant | `status` | `approval`, `phase`, `expiresAt` written only by the operator; a recorded decision never changes; a new approval verifies ([`verify_new_approval`](agentauth_crds::approval::verify_new_approval)): passkey signature over the recomputed challenge, user verification, sign counter, approver scope, separation of duties |
//! | Approver | create, spec change | `validate` (email, scope) |
//! | Approver | `status` | `passkeys` written only by the operator; a registered passkey keeps its key, and its counter never goes back |
//!
//! The status checks run on main-resource writes too: there they are no-ops
//! (with the status subresource the apiserver keeps the stored status), but
//! if the CRDs were ever installed without it, status would not become
//! writable by anyone.
//!
//! The checks are the `crds` crate's functions, the ones the operator's
//! reconcilers use: one implementation. Writes that touch only metadata
//! (labels, finalizers) and revocations are never refused for a spec that
//! newer rules would reject, so a grant can always be revoked and deleted.

mod agent;
mod approver;
mod envelope;
mod grant;
#[cfg(test)]
mod tests;

use agentauth_core::ErrorCode;
use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant, GROUP, VERSION};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, Operation};
use serde::de::DeserializeOwned;

use crate::denial::{Code, Denial};
use crate::lookup::Lookup;

/// What the webhook enforces beyond the objects themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The operator's Kubernetes username: the only writer of approvals,
    /// grant phases and expiries, passkeys and key thumbprints.
    pub operator_username: String,
    /// The WebAuthn relying party id of approvals.
    pub rp_id: String,
    /// The approval UI's origins.
    pub origins: Vec<String>,
}

/// The resources this webhook validates, as metric labels (`<plural>` or
/// `<plural>/status`); anything else is counted as `other`.
pub const RESOURCE_LABELS: &[&str] = &[
    "agents",
    "agents/status",
    "behavioralenvelopes",
    "behavioralenvelopes/status",
    "capabilitygrants",
    "capabilitygrants/status",
    "approvers",
    "approvers/status",
];

/// The decision on one admission request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The resource, one of [`RESOURCE_LABELS`] or `other`.
    pub resource: &'static str,
    /// Allowed, or why not.
    pub result: Result<(), Denial>,
}

/// Decides admission requests with a [`Policy`], reading referenced objects
/// through a [`Lookup`].
#[derive(Debug)]
pub struct Validator<L> {
    policy: Policy,
    lookup: L,
}

/// One create or update, with the objects typed.
#[derive(Debug)]
pub(crate) struct Write<'a, T> {
    /// Whether this is a write of the status subresource.
    pub(crate) status: bool,
    /// Who writes (`request.userInfo.username`).
    pub(crate) username: &'a str,
    /// The object as it would be stored.
    pub(crate) new: T,
    /// The stored object (updates only).
    pub(crate) old: Option<T>,
}

impl<L: Lookup> Validator<L> {
    /// A validator enforcing `policy`.
    pub fn new(policy: Policy, lookup: L) -> Self {
        Validator { policy, lookup }
    }

    /// The policy it enforces.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(crate) fn lookup(&self) -> &L {
        &self.lookup
    }

    /// Whether `username` is the operator's.
    pub(crate) fn is_operator(&self, username: &str) -> bool {
        username == self.policy.operator_username
    }

    /// Decides one admission request. Requests outside `agentauth.dev`, and
    /// operations other than CREATE and UPDATE, are allowed: there is nothing
    /// to say about them.
    pub async fn admit(&self, request: &AdmissionRequest<DynamicObject>) -> Outcome {
        let resource = resource_label(request);
        Outcome {
            resource,
            result: self.check(request).await,
        }
    }

    async fn check(&self, request: &AdmissionRequest<DynamicObject>) -> Result<(), Denial> {
        if request.resource.group != GROUP
            || !matches!(request.operation, Operation::Create | Operation::Update)
        {
            return Ok(());
        }
        if request.resource.version != VERSION {
            return Err(Denial::core(
                ErrorCode::RequestInvalid,
                "apiVersion",
                format!(
                    "this webhook validates {GROUP}/{VERSION}, not {GROUP}/{}; upgrade the webhook",
                    request.resource.version
                ),
            ));
        }
        let status = match request.sub_resource.as_deref() {
            None | Some("") => false,
            Some("status") => true,
            Some(other) => {
                return Err(Denial::core(
                    ErrorCode::RequestInvalid,
                    "subresource",
                    format!("AgentAuth resources have no {other:?} subresource"),
                ));
            }
        };
        match request.resource.resource.as_str() {
            "agents" => agent::check(self, &typed::<Agent>(request, status)?),
            "behavioralenvelopes" => {
                envelope::check(&typed::<BehavioralEnvelope>(request, status)?)
            }
            "capabilitygrants" => {
                grant::check(self, &typed::<CapabilityGrant>(request, status)?).await
            }
            "approvers" => approver::check(self, &typed::<Approver>(request, status)?),
            other => Err(Denial::core(
                ErrorCode::RequestInvalid,
                "resource",
                format!("this webhook does not know the resource {GROUP}/{other}; upgrade it"),
            )),
        }
    }
}

/// The metric label of a request's resource.
fn resource_label(request: &AdmissionRequest<DynamicObject>) -> &'static str {
    if request.resource.group != GROUP {
        return "other";
    }
    let wanted = match request.sub_resource.as_deref() {
        None | Some("") => request.resource.resource.clone(),
        Some(sub) => format!("{}/{sub}", request.resource.resource),
    };
    RESOURCE_LABELS
        .iter()
        .find(|r| **r == wanted)
        .copied()
        .unwrap_or("other")
}

/// The request's objects as `T`. The apiserver has already checked them
/// against the schema, so a failure here means the webhook and the CRDs
/// disagree: refuse rather than guess.
fn typed<'a, T: DeserializeOwned>(
    request: &'a AdmissionRequest<DynamicObject>,
    status: bool,
) -> Result<Write<'a, T>, Denial> {
    let new = parse(request.object.as_ref(), "object")?;
    let old = match request.operation {
        Operation::Update => Some(parse(request.old_object.as_ref(), "oldObject")?),
        _ => None,
    };
    Ok(Write {
        status,
        username: request.user_info.username.as_deref().unwrap_or_default(),
        new,
        old,
    })
}

fn parse<T: DeserializeOwned>(object: Option<&DynamicObject>, which: &str) -> Result<T, Denial> {
    let invalid = |message: String| Denial::core(ErrorCode::RequestInvalid, which, message);
    let object = object.ok_or_else(|| invalid(format!("the AdmissionReview has no {which}")))?;
    let value = serde_json::to_value(object).map_err(|e| invalid(e.to_string()))?;
    serde_json::from_value(value.clone()).map_err(|e| {
        unknown_currency(&value, "").unwrap_or_else(|| {
            invalid(format!(
                "the {which} does not match this webhook's {GROUP}/{VERSION} types ({e}); \
                 are the CRDs and the webhook the same release?"
            ))
        })
    })
}

/// The first `currency` field (at any depth) that is not a known ISO 4217
/// code. Currencies are checked while parsing, so an unknown one fails the
/// typed parse; this names the field and core's code (`currency_unknown`)
/// rather than a bare parse error. The schema cannot say it: `^[A-Z]{3}$`
/// admits `XYZ`.
fn unknown_currency(value: &serde_json::Value, path: &str) -> Option<Denial> {
    use serde_json::Value;
    match value {
        Value::Object(map) => map.iter().find_map(|(key, v)| {
            let at = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match (key.as_str(), v) {
                ("currency", Value::String(code)) => {
                    agentauth_core::money::Currency::from_code(code)
                        .err()
                        .map(|e| Denial::core(e.code, at, e.message))
                }
                _ => unknown_currency(v, &at),
            }
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| unknown_currency(v, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Refuses a change to an authority-bearing status field by anyone but the
/// operator.
pub(crate) fn operator_only<L: Lookup>(
    validator: &Validator<L>,
    username: &str,
    field: &str,
) -> Result<(), Denial> {
    if validator.is_operator(username) {
        return Ok(());
    }
    Err(Denial::new(
        Code::StatusWriterForbidden,
        field,
        format!(
            "only the AgentAuth operator ({}) writes {field}; {} may not change it",
            validator.policy.operator_username,
            if username.is_empty() {
                "an anonymous user"
            } else {
                username
            }
        ),
    ))
}
