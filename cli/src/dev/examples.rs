//! Applies the examples (`examples/`: the approver, the agents and their
//! envelopes, the MCP example's included) with server-side apply, through the webhook like any other
//! write. The example grants are left out: the walk-through requests its
//! own, so the only grant a newcomer sees is the one they asked for.
//!
//! The approval API asks Kubernetes RBAC whether a person may `approve` a
//! grant (a SubjectAccessReview for the Approver's email), so the example
//! approver also gets that verb in the examples namespace — what a cluster
//! admin would bind in a real cluster.
//!
//! The files are built into the binary: a path of the build machine's
//! checkout would send a copied binary looking for files it cannot find.

use agentauth_crds::{Agent, Approver, BehavioralEnvelope};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};

use super::DevError;
use super::cluster::{EXAMPLES_NAMESPACE, FIELD_MANAGER};

/// `(path, contents)` of a file under `examples/`, read at build time.
macro_rules! example {
    ($file:literal) => {
        (
            concat!("examples/", $file),
            include_str!(concat!("../../../examples/", $file)),
        )
    };
}

/// One example file: its path in the repository and its contents.
pub type Example = (&'static str, &'static str);

/// The example files applied, as they were when the binary was built.
pub const FILES: &[Example] = &[
    example!("approvers.yaml"),
    example!("calendar-assistant/agent.yaml"),
    example!("calendar-assistant/envelope.yaml"),
    example!("shopping-agent/agent.yaml"),
    example!("shopping-agent/envelope.yaml"),
    example!("mcp-payments/agent.yaml"),
    example!("mcp-payments/envelope.yaml"),
];

/// One applied object, `Kind namespace/name` for the banner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The object's kind.
    pub kind: String,
    /// `namespace/name`, or `name` for a cluster-scoped object.
    pub name: String,
}

/// Applies `files` (normally [`FILES`]); namespaced objects go into the
/// examples namespace.
pub async fn apply(client: &Client, files: &[Example]) -> Result<Vec<Applied>, DevError> {
    let mut applied = Vec::new();
    for &(path, text) in files {
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(text).map_err(|e| DevError::Example {
                path,
                message: e.to_string(),
            })?;
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            applied.push(apply_one(client, path, doc).await?);
        }
    }
    Ok(applied)
}

async fn apply_one(
    client: &Client,
    path: &'static str,
    doc: serde_json::Value,
) -> Result<Applied, DevError> {
    let invalid = |message: String| DevError::Example { path, message };
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    let name = doc["metadata"]["name"]
        .as_str()
        .ok_or_else(|| invalid("the object has no metadata.name".into()))?
        .to_owned();
    let (resource, namespaced) = match kind.as_str() {
        "Agent" => (ApiResource::erase::<Agent>(&()), true),
        "BehavioralEnvelope" => (ApiResource::erase::<BehavioralEnvelope>(&()), true),
        "Approver" => (ApiResource::erase::<Approver>(&()), false),
        other => return Err(invalid(format!("unexpected kind {other:?}"))),
    };
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), EXAMPLES_NAMESPACE, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&doc),
    )
    .await
    .map_err(|e| invalid(format!("the apiserver refused {kind} {name}: {e}")))?;
    Ok(Applied {
        name: if namespaced {
            format!("{EXAMPLES_NAMESPACE}/{name}")
        } else {
            name
        },
        kind,
    })
}

/// The example Approver (`examples/approvers.yaml`).
pub const EXAMPLE_APPROVER: &str = "dana-fischer";

/// The ClusterRole with the `approve` verb on grants.
pub const APPROVER_ROLE: &str = "agentauth-dev-approver";

/// Lets the example approver (`spec.email` of `approvers.yaml`) approve
/// grants in the examples namespace.
pub async fn allow_example_approver(client: &Client) -> Result<Applied, DevError> {
    let kube_error = |e| DevError::Kube {
        step: "let the example approver approve grants (RBAC)",
        source: e,
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let role = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": APPROVER_ROLE},
        "rules": [{"apiGroups": [agentauth_crds::GROUP], "resources": ["capabilitygrants"],
                   "verbs": ["approve", "get", "list", "watch"]}],
    });
    Api::<ClusterRole>::all(client.clone())
        .patch(APPROVER_ROLE, &params, &Patch::Apply(&role))
        .await
        .map_err(kube_error)?;
    let name = "dana-fischer-approves";
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": EXAMPLES_NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": APPROVER_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": "dana.fischer@example.com"}],
    });
    Api::<RoleBinding>::namespaced(client.clone(), EXAMPLES_NAMESPACE)
        .patch(name, &params, &Patch::Apply(&binding))
        .await
        .map_err(kube_error)?;
    Ok(Applied {
        kind: "RoleBinding".into(),
        name: format!("{EXAMPLES_NAMESPACE}/{name}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn every_built_in_example_is_an_object_apply_knows() {
        for &(path, text) in super::FILES {
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).unwrap();
            assert!(docs.iter().any(|d| !d.is_null()), "{path} is empty");
            for doc in docs.iter().filter(|d| !d.is_null()) {
                let kind = doc["kind"].as_str().unwrap_or_default();
                assert!(
                    ["Agent", "BehavioralEnvelope", "Approver"].contains(&kind),
                    "{path}: {kind}"
                );
                assert!(doc["metadata"]["name"].is_string(), "{path}: no name");
            }
        }
    }
}
