//! `Approver` (cluster-scoped): a human who may decide grants, which grants
//! (namespaces, and optionally a label selector), and the passkeys they
//! decide with.
//!
//! Passkeys are enrolled through the approval API with a one-time enrollment
//! token an admin creates, and land in `status.passkeys`; the webhook checks
//! every approval against them. An approver never approves a grant for an
//! agent it owns (the webhook compares `spec.email` with `Agent.spec.owner`).

use agentauth_core::ErrorCode;
use agentauth_core::jwk::EcPublicJwk;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agent::MAX_DISPLAY_NAME_LEN;
use crate::invalid::{At, Invalid, check_text};

/// The most namespaces one approver's scope may list.
pub const MAX_SCOPE_NAMESPACES: usize = 256;
/// The most passkeys one approver may register.
pub const MAX_PASSKEYS: usize = 16;
/// The scope entry that means every namespace.
pub const ALL_NAMESPACES: &str = "*";

/// Who an Approver is and which grants they may decide.
#[allow(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) repeats keys such as type_ = \"string\" by design"
)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "agentauth.dev",
    version = "v1alpha1",
    kind = "Approver",
    status = "ApproverStatus",
    derive = "PartialEq",
    shortname = "apprv",
    category = "agentauth",
    doc = "A human who may approve or deny CapabilityGrants, within a scope of namespaces \
           (and optionally grant labels), with the passkeys listed in status.passkeys. \
           Cluster-scoped.",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName"
    ),
    printcolumn(name = "Email", type_ = "string", json_path = ".spec.email"),
    printcolumn(
        name = "Namespaces",
        type_ = "string",
        json_path = ".spec.scope.namespaces"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ApproverSpec {
    /// The approver's name as people know it, shown in the approval UI and in
    /// audit records, e.g. "Dana Fischer".
    #[schemars(length(min = 1, max = MAX_DISPLAY_NAME_LEN))]
    pub display_name: String,
    /// The approver's email address; they may not approve grants for agents
    /// whose spec.owner is this address.
    #[schemars(length(min = 3, max = 254), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[^@ ]+@[^@ ]+$')",
        "message": "email is an address like dana@example.com",
    }]))]
    pub email: String,
    /// Which grants this approver may decide.
    pub scope: ApproverScope,
}

/// Which grants an approver may decide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApproverScope {
    /// The namespaces whose grants this approver may decide, or ["*"] for
    /// every namespace.
    #[schemars(
        length(min = 1, max = MAX_SCOPE_NAMESPACES),
        inner(length(min = 1, max = 63)),
        extend(
            "x-kubernetes-list-type" = "set",
            "x-kubernetes-validations" = [
                {
                    "rule": "self.all(n, n == '*' || n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",
                    "message": "each entry is a namespace name (lower-case letters, digits and '-') or \"*\"",
                },
                {
                    "rule": "!self.exists(n, n == '*') || size(self) == 1",
                    "message": "\"*\" (every namespace) stands alone in scope.namespaces",
                },
            ],
        )
    )]
    pub namespaces: Vec<String>,
    /// Narrows the scope to grants whose labels match, e.g. matchLabels:
    /// {team: payments}. Omitted: every grant in those namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_selector: Option<LabelSelector>,
}

/// An Approver's registered passkeys and conditions, written by the approval
/// API (passkeys) and the operator (conditions).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApproverStatus {
    /// The passkeys this approver decides with, one per credential id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = MAX_PASSKEYS),
        extend(
            "x-kubernetes-list-type" = "map",
            "x-kubernetes-list-map-keys" = ["credentialId"],
        )
    )]
    pub passkeys: Vec<Passkey>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observations of the approver, one per type: Ready says whether they
    /// can approve (a valid spec and at least one passkey).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// A registered passkey (a WebAuthn credential with an ES256 key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Passkey {
    /// The WebAuthn credential id, base64url.
    #[schemars(length(min = 1, max = 1400))]
    pub credential_id: String,
    /// The credential's public key (EC P-256), from its COSE key.
    #[schemars(transform = crate::schema::public_key)]
    pub public_key: EcPublicJwk,
    /// The authenticator's signature counter at the last accepted approval;
    /// an assertion must show a larger one (0 for authenticators without one).
    pub sign_count: u32,
    /// When the passkey was enrolled.
    pub created_at: Time,
}

impl ApproverSpec {
    /// Checks the texts, the email's shape and the scope's namespaces.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_text("spec.displayName", &self.display_name, MAX_DISPLAY_NAME_LEN)?;
        let email_ok = self.email.len() <= 254
            && self.email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            })
            && !self
                .email
                .bytes()
                .any(|b| b == b' ' || b.is_ascii_control());
        if !email_ok {
            return Err(Invalid::new(
                "spec.email",
                ErrorCode::RequestInvalid,
                "must be an email address like dana@example.com",
            ));
        }
        let namespaces = &self.scope.namespaces;
        if namespaces.is_empty() || namespaces.len() > MAX_SCOPE_NAMESPACES {
            return Err(Invalid::new(
                "spec.scope.namespaces",
                ErrorCode::RequestInvalid,
                format!("lists 1 to {MAX_SCOPE_NAMESPACES} namespaces, or [\"*\"]"),
            ));
        }
        if namespaces.iter().any(|n| n == ALL_NAMESPACES) && namespaces.len() > 1 {
            return Err(Invalid::new(
                "spec.scope.namespaces",
                ErrorCode::RequestInvalid,
                "\"*\" (every namespace) stands alone",
            ));
        }
        for (i, ns) in namespaces.iter().enumerate() {
            if ns != ALL_NAMESPACES {
                check_label(&format!("spec.scope.namespaces[{i}]"), ns)?;
            }
        }
        Ok(())
    }

    /// Whether this approver's scope covers `namespace` (labels are checked
    /// by the caller, which has the grant).
    pub fn covers_namespace(&self, namespace: &str) -> bool {
        self.scope
            .namespaces
            .iter()
            .any(|n| n == ALL_NAMESPACES || n == namespace)
    }
}

impl Passkey {
    /// Checks the public key is a usable P-256 key.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.public_key.to_public_key().at("publicKey").map(|_| ())
    }
}

/// A namespace name: an RFC 1123 label (lower-case alphanumerics and '-',
/// starting and ending alphanumeric, at most 63 bytes).
fn check_label(field: &str, s: &str) -> Result<(), Invalid> {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| alnum(b) || b == b'-')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum);
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            ErrorCode::RequestInvalid,
            "is not a namespace name (lower-case letters, digits and '-', at most 63)",
        ))
    }
}
