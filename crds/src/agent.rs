//! `Agent`: who an agent is — a name in a namespace, the accountable human,
//! and the P-256 key the agent proves possession of in every DPoP proof.
//!
//! The operator computes the key's RFC 7638 thumbprint into
//! `status.keyThumbprint`; the agent API compares a proof's key with it, and
//! tokens are bound to it (`cnf.jkt`).
//!
//! **Who answers for an agent.** `spec.owner` is the accountable human,
//! written by whoever creates the Agent, so it proves nothing about who that
//! was. The creator is recorded apart from it: the admission webhook's
//! mutating endpoint sets the [`CREATED_BY_ANNOTATION`] annotation to the
//! creating request's Kubernetes username, its validating endpoint refuses a
//! created-by that is not the creator's and any later change to it or to
//! `spec.owner` (which CEL also freezes). Separation of duties
//! ([`is_owned_by`](Agent::is_owned_by)) counts both as the agent's owners.

use agentauth_core::jwk::EcPublicJwk;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::invalid::{At, Invalid, check_text};

/// The annotation holding the Kubernetes username that created the Agent
/// (`userInfo.username` of the CREATE request), set by the admission webhook
/// and never changed afterwards.
pub const CREATED_BY_ANNOTATION: &str = "agentauth.dev/created-by";

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
    /// approver never approves grants for an agent it owns, nor for one it
    /// created (annotation agentauth.dev/created-by). Cannot change: create a
    /// new Agent for another owner.
    #[schemars(
        length(min = 1, max = MAX_OWNER_LEN),
        extend("x-kubernetes-validations" = [{
            "rule": "self == oldSelf",
            "message": "owner cannot change: separation of duties is decided against it; create a new Agent for another owner",
        }])
    )]
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

impl Agent {
    /// The Kubernetes username that created this Agent, as the admission
    /// webhook recorded it; `None` for an Agent created where the webhook
    /// does not review (its creator is then unknown).
    pub fn created_by(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CREATED_BY_ANNOTATION))
            .map(|user| user.trim())
            .filter(|user| !user.is_empty())
    }

    /// Whether a person known by `identities` (an Approver's email and name)
    /// answers for this agent: one of them is `spec.owner`, or the user who
    /// created it. Compared ignoring ASCII case, as mail systems compare
    /// addresses. A creator's username is also compared without the prefix an
    /// authenticator may put before the name (`oidc:`, `https://issuer#`), so
    /// `oidc:dana@example.com` is Dana; a false match only ever refuses an
    /// approval, never allows one.
    pub fn is_owned_by<'a>(&self, identities: impl IntoIterator<Item = &'a str>) -> bool {
        let owner = self.spec.owner.trim();
        let creator = self.created_by();
        let bare_creator = creator.map(|user| {
            user.rsplit_once([':', '#'])
                .map_or(user, |(_, name)| name)
                .trim()
        });
        identities
            .into_iter()
            .map(str::trim)
            .filter(|identity| !identity.is_empty())
            .any(|identity| {
                [Some(owner), creator, bare_creator]
                    .into_iter()
                    .flatten()
                    .any(|known| known.eq_ignore_ascii_case(identity))
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn agent(owner: &str, created_by: Option<&str>) -> Agent {
        let mut agent: Agent = serde_json::from_value(serde_json::json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": "assistant", "namespace": "team-a"},
            "spec": {"displayName": "Assistant", "owner": owner,
                     "publicKey": {"kty": "EC", "crv": "P-256",
                                   "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                                   "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}},
        }))
        .unwrap();
        if let Some(user) = created_by {
            agent.metadata.annotations = Some(
                [(CREATED_BY_ANNOTATION.to_owned(), user.to_owned())]
                    .into_iter()
                    .collect(),
            );
        }
        agent
    }

    /// Threat: owner laundering — an approver creates an Agent naming someone
    /// else as owner, to approve its grants; the creator counts as an owner.
    #[test]
    fn the_creator_owns_the_agent_whatever_spec_owner_says() {
        let laundered = agent("bob@example.com", Some("dana@example.com"));
        assert!(laundered.is_owned_by(["dana@example.com", "dana"]));
        assert!(laundered.is_owned_by(["DANA@Example.com"]));
        assert!(laundered.is_owned_by(["bob@example.com"]));
        assert!(!laundered.is_owned_by(["carol@example.com", "carol"]));
        // The name an authenticator prefixes is still the person.
        for prefixed in [
            "oidc:dana@example.com",
            "https://issuer.example#dana@example.com",
        ] {
            assert!(agent("bob@example.com", Some(prefixed)).is_owned_by(["dana@example.com"]));
        }
        // A service account's name is compared as a name.
        let by_operator = agent(
            "bob@example.com",
            Some("system:serviceaccount:agentauth-system:agentauth-operator"),
        );
        assert!(!by_operator.is_owned_by(["dana@example.com", "dana"]));
    }

    #[test]
    fn without_a_recorded_creator_only_the_owner_counts() {
        let legacy = agent(" Bob@Example.com ", None);
        assert_eq!(legacy.created_by(), None);
        assert!(legacy.is_owned_by(["bob@example.com"]));
        assert!(!legacy.is_owned_by(["dana@example.com", ""]));
        let blank = agent("bob@example.com", Some("  "));
        assert_eq!(blank.created_by(), None);
        // An empty identity matches nothing, even an empty owner.
        assert!(!agent("bob", None).is_owned_by(["", "  "]));
    }
}
