//! `Agent`: who an agent is — a name in a namespace, the accountable human,
//! and the P-256 key the agent proves possession of in every DPoP proof.
//!
//! The operator computes the key's RFC 7638 thumbprint into
//! `status.keyThumbprint`; the agent API compares a proof's key with it, and
//! tokens are bound to it (`cnf.jkt`).

use agentauth_core::jwk::EcPublicJwk;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::invalid::{At, Invalid, check_text};

/// The longest display name, in bytes.
pub const MAX_DISPLAY_NAME_LEN: usize = 128;
/// The longest owner, in bytes (the longest email address).
pub const MAX_OWNER_LEN: usize = 254;
/// The longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// The desired state of an Agent: its name for people, the human who answers
/// for it, and its public key.
#[allow(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) repeats keys such as type_ = \"string\" by design"
)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "agentauth.dev",
    version = "v1alpha1",
    kind = "Agent",
    namespaced,
    status = "AgentStatus",
    derive = "PartialEq",
    shortname = "ag",
    category = "agentauth",
    doc = "An AI agent known to AgentAuth: who it is, which human answers for it, and the \
           P-256 public key it signs its DPoP proofs with. CapabilityGrants in the same \
           namespace name it in spec.agentRef.",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName"
    ),
    printcolumn(name = "Owner", type_ = "string", json_path = ".spec.owner"),
    printcolumn(
        name = "Thumbprint",
        type_ = "string",
        json_path = ".status.keyThumbprint",
        description = "RFC 7638 thumbprint of the agent's public key"
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
pub struct AgentSpec {
    /// A human-readable name shown to approvers, e.g. "Calendar assistant".
    #[schemars(length(min = 1, max = MAX_DISPLAY_NAME_LEN))]
    pub display_name: String,
    /// The human accountable for this agent, usually an email address. An
    /// approver never approves grants for an agent it owns.
    #[schemars(length(min = 1, max = MAX_OWNER_LEN))]
    pub owner: String,
    /// The agent's public key as a JWK: EC, curve P-256, coordinates x and y
    /// in base64url. The agent signs every DPoP proof with the private half,
    /// which never leaves the agent. Changing it takes effect for new tokens.
    #[schemars(transform = crate::schema::public_key)]
    pub public_key: EcPublicJwk,
    /// What the agent does, for the people who approve its grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DESCRIPTION_LEN))]
    pub description: Option<String>,
}

/// What the operator observed about an Agent: its key's thumbprint and
/// conditions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// The metadata.generation this status describes; older than the
    /// resource's generation means the operator has not caught up yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The RFC 7638 SHA-256 thumbprint of spec.publicKey (base64url). Access
    /// tokens are bound to it (cnf.jkt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub key_thumbprint: Option<String>,
    /// Observations of the agent, one per type: Ready says whether its key is
    /// usable, with a reason and a message saying what to do when it is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::conditions::schema")]
    pub conditions: Vec<Condition>,
}

impl AgentSpec {
    /// Checks what the schema cannot: the key is a valid public P-256 point
    /// (not just well-formed strings) and the texts have no control characters.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_text("spec.displayName", &self.display_name, MAX_DISPLAY_NAME_LEN)?;
        check_text("spec.owner", &self.owner, MAX_OWNER_LEN)?;
        if let Some(description) = &self.description {
            check_text("spec.description", description, MAX_DESCRIPTION_LEN)?;
        }
        self.public_key.to_public_key().at("spec.publicKey")?;
        Ok(())
    }

    /// The RFC 7638 thumbprint of the public key, for `status.keyThumbprint`.
    pub fn key_thumbprint(&self) -> Result<String, Invalid> {
        Ok(self
            .public_key
            .to_public_key()
            .at("spec.publicKey")?
            .thumbprint)
    }
}
