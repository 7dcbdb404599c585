//! The `Agent` resource to apply for an agent's key: the SDK generates the
//! key, the agent's owner applies this YAML (or commits it to GitOps), and
//! the operator then accepts proofs of that key.
//!
//! ```yaml
//! apiVersion: agentauth.dev/v1alpha1
//! kind: Agent
//! metadata: {name: calendar-bot, namespace: team-a}
//! spec:
//!   displayName: Calendar bot
//!   owner: dana@example.com
//!   publicKey: {kty: EC, crv: P-256, x: …, y: …}
//! ```

use serde_json::json;

use crate::error::{Error, Result};
use crate::keys::AgentKey;

/// Who an agent is, for its manifest.
#[derive(Clone, Debug)]
pub struct AgentIdentity<'a> {
    /// The namespace of the Agent.
    pub namespace: &'a str,
    /// The name of the Agent.
    pub name: &'a str,
    /// What people see.
    pub display_name: &'a str,
    /// The accountable human (an email address).
    pub owner: &'a str,
    /// What the agent is for.
    pub description: Option<&'a str>,
}

/// The `Agent` YAML for `identity` with `key`'s public key.
pub fn agent_manifest(identity: &AgentIdentity<'_>, key: &AgentKey) -> Result<String> {
    let jwk = key.public_jwk();
    let mut spec = json!({
        "displayName": identity.display_name,
        "owner": identity.owner,
        "publicKey": {"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y},
    });
    if let Some(description) = identity.description {
        spec["description"] = json!(description);
    }
    let agent = json!({
        "apiVersion": "agentauth.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": identity.name, "namespace": identity.namespace},
        "spec": spec,
    });
    serde_saphyr::to_string(&agent).map_err(|e| Error::Protocol(format!("cannot write YAML: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_the_public_key_only() {
        let key = AgentKey::generate().unwrap();
        let identity = AgentIdentity {
            namespace: "team-a",
            name: "calendar-bot",
            display_name: "Calendar bot",
            owner: "dana@example.com",
            description: None,
        };
        let yaml = agent_manifest(&identity, &key).unwrap();
        let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back["kind"], "Agent");
        assert_eq!(back["metadata"]["namespace"], "team-a");
        assert_eq!(back["spec"]["publicKey"]["x"], key.public_jwk().x.as_str());
        assert!(back["spec"]["publicKey"].get("d").is_none());
    }
}
