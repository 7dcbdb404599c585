//! The mutating endpoint: it records who created an Agent.
//!
//! ```text
//!  CREATE Agent ──▶ POST /mutate ──▶ JSONPatch: metadata.annotations["agentauth.dev/created-by"] = userInfo.username
//!                                   (whatever the client sent there is overwritten)
//!  UPDATE Agent that drops the annotation ──▶ JSONPatch: put the stored value back
//!  UPDATE Agent that changes it ──▶ no patch: the validating endpoint refuses it (created_by_invalid)
//! ```
//!
//! `spec.owner` is free text chosen by whoever creates the Agent, so
//! separation of duties ([`owns`](agentauth_crds::approval::owns)) also needs
//! the creator, and only admission knows it: the apiserver authenticated the
//! request and names the user in `userInfo`. A validating webhook cannot
//! write it down, hence this endpoint. The validating endpoint checks the
//! result again (a CREATE whose annotation is not its creator is refused),
//! so a cluster where this endpoint is not registered refuses Agents rather
//! than storing them with a creator the client chose.
//!
//! Why an UPDATE that drops the annotation gets it back instead of a refusal:
//! tools drop annotations they did not write without meaning to — `kubectl
//! replace` with the original manifest, and server-side apply, which counts
//! this annotation as the creating manager's field and removes it when that
//! manager applies again without it. Restoring keeps those workflows working;
//! a *different* value is never an accident and is refused.

use agentauth_core::ErrorCode;
use agentauth_crds::agent::CREATED_BY_ANNOTATION;
use agentauth_crds::{GROUP, VERSION};
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, Operation};
use serde_json::{Value, json};

use crate::denial::Denial;

/// What the mutating endpoint does to one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    /// Nothing to change (not an Agent, or the annotation is already right).
    Unchanged,
    /// Apply this JSONPatch.
    Patch(Patch),
}

/// The patch for one admission request: only CREATE and UPDATE of
/// `agents.agentauth.dev` (not its status) are changed.
pub fn mutation(request: &AdmissionRequest<DynamicObject>) -> Result<Mutation, Denial> {
    let is_agent = request.resource.group == GROUP
        && request.resource.version == VERSION
        && request.resource.resource == "agents"
        && request.sub_resource.as_deref().is_none_or(str::is_empty);
    if !is_agent {
        return Ok(Mutation::Unchanged);
    }
    let object = request.object.as_ref();
    let current = object.and_then(created_by);
    let wanted = match request.operation {
        Operation::Create => {
            let username = request.user_info.username.as_deref().unwrap_or_default();
            if username.trim().is_empty() {
                return Err(Denial::new(
                    ErrorCode::CreatedByInvalid,
                    field(),
                    "the apiserver named no user for this request, so its creator cannot be \
                     recorded; create the Agent as an authenticated user",
                ));
            }
            username.to_owned()
        }
        Operation::Update => {
            match (current, request.old_object.as_ref().and_then(created_by)) {
                // Dropped: put the stored creator back.
                (None, Some(stored)) => stored.to_owned(),
                // Kept, changed (the validating endpoint refuses it), or an
                // Agent from before the creator was recorded.
                _ => return Ok(Mutation::Unchanged),
            }
        }
        _ => return Ok(Mutation::Unchanged),
    };
    if current == Some(wanted.as_str()) {
        return Ok(Mutation::Unchanged);
    }
    let has_annotations = object
        .and_then(|o| o.metadata.annotations.as_ref())
        .is_some();
    Ok(Mutation::Patch(set_created_by(has_annotations, &wanted)))
}

/// The JSONPatch that sets the created-by annotation to `username`. An
/// `add` replaces an existing member (RFC 6902 §4.1), but needs the parent:
/// without `metadata.annotations` the whole map is added.
pub fn set_created_by(has_annotations: bool, username: &str) -> Patch {
    let (path, value) = if has_annotations {
        (
            PointerBuf::from_tokens(["metadata", "annotations", CREATED_BY_ANNOTATION]),
            Value::String(username.to_owned()),
        )
    } else {
        (
            PointerBuf::from_tokens(["metadata", "annotations"]),
            json!({ CREATED_BY_ANNOTATION: username }),
        )
    };
    Patch(vec![PatchOperation::Add(AddOperation { path, value })])
}

/// The field path of the annotation, as denials name it.
pub(crate) fn field() -> String {
    format!("metadata.annotations[{CREATED_BY_ANNOTATION}]")
}

fn created_by(object: &DynamicObject) -> Option<&str> {
    object
        .metadata
        .annotations
        .as_ref()?
        .get(CREATED_BY_ANNOTATION)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn request(
        operation: &str,
        user: &str,
        object: Value,
        old: Option<Value>,
    ) -> AdmissionRequest<DynamicObject> {
        let review: kube::core::admission::AdmissionReview<DynamicObject> =
            serde_json::from_value(json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "u-1",
                    "kind": {"group": "agentauth.dev", "version": "v1alpha1", "kind": "Agent"},
                    "resource": {"group": "agentauth.dev", "version": "v1alpha1", "resource": "agents"},
                    "name": "assistant", "namespace": "team-a",
                    "operation": operation,
                    "userInfo": {"username": user},
                    "object": object, "oldObject": old, "dryRun": false,
                }
            }))
            .unwrap();
        review.try_into().unwrap()
    }

    fn agent(annotations: Option<Value>) -> Value {
        let mut metadata = json!({"name": "assistant", "namespace": "team-a"});
        if let Some(a) = annotations {
            metadata["annotations"] = a;
        }
        json!({"apiVersion": "agentauth.dev/v1alpha1", "kind": "Agent", "metadata": metadata,
               "spec": {"displayName": "A", "owner": "bob@example.com"}})
    }

    /// Applies the mutation to `object` as the apiserver would.
    fn applied(request: &AdmissionRequest<DynamicObject>, object: &Value) -> Value {
        let mut object = object.clone();
        match mutation(request).unwrap() {
            Mutation::Unchanged => {}
            Mutation::Patch(patch) => json_patch::patch(&mut object, &patch).unwrap(),
        }
        object
    }

    fn creator(object: &Value) -> &Value {
        &object["metadata"]["annotations"][CREATED_BY_ANNOTATION]
    }

    /// Threat: forged creator — a client sends its own created-by annotation
    /// naming someone else; the creator's username overwrites it.
    #[test]
    fn a_create_records_the_creator_over_whatever_the_client_sent() {
        let plain = agent(None);
        let r = request("CREATE", "dana@example.com", plain.clone(), None);
        assert_eq!(creator(&applied(&r, &plain)), "dana@example.com");
        let patch = serde_json::to_value(match mutation(&r).unwrap() {
            Mutation::Patch(p) => p,
            Mutation::Unchanged => panic!("no patch"),
        })
        .unwrap();
        assert_eq!(
            patch,
            json!([{"op": "add", "path": "/metadata/annotations",
                    "value": {"agentauth.dev/created-by": "dana@example.com"}}])
        );

        let forged = agent(Some(
            json!({"team": "x", CREATED_BY_ANNOTATION: "bob@example.com"}),
        ));
        let r = request("CREATE", "dana@example.com", forged.clone(), None);
        let stored = applied(&r, &forged);
        assert_eq!(creator(&stored), "dana@example.com");
        assert_eq!(stored["metadata"]["annotations"]["team"], "x");
        let Mutation::Patch(patch) = mutation(&r).unwrap() else {
            panic!("no patch")
        };
        // `/` in the key is escaped as `~1` (RFC 6901).
        assert_eq!(
            serde_json::to_value(patch).unwrap()[0]["path"],
            "/metadata/annotations/agentauth.dev~1created-by"
        );

        let right = agent(Some(json!({CREATED_BY_ANNOTATION: "dana@example.com"})));
        let r = request("CREATE", "dana@example.com", right, None);
        assert_eq!(mutation(&r).unwrap(), Mutation::Unchanged);
        let anonymous = request("CREATE", "", agent(None), None);
        assert_eq!(
            mutation(&anonymous).unwrap_err().code,
            ErrorCode::CreatedByInvalid
        );
    }

    #[test]
    fn an_update_that_drops_the_creator_gets_it_back_and_a_change_is_left_to_refuse() {
        let stored = agent(Some(json!({CREATED_BY_ANNOTATION: "dana@example.com"})));
        let dropped = agent(None);
        let r = request("UPDATE", "ci-bot", dropped.clone(), Some(stored.clone()));
        assert_eq!(creator(&applied(&r, &dropped)), "dana@example.com");
        let changed = agent(Some(json!({CREATED_BY_ANNOTATION: "bob@example.com"})));
        let r = request("UPDATE", "dana@example.com", changed, Some(stored.clone()));
        assert_eq!(mutation(&r).unwrap(), Mutation::Unchanged);
        // An Agent from before the creator was recorded stays without one.
        let r = request("UPDATE", "dana@example.com", agent(None), Some(agent(None)));
        assert_eq!(mutation(&r).unwrap(), Mutation::Unchanged);
        // Other resources and the status subresource are never patched.
        let mut status = request("CREATE", "dana@example.com", agent(None), None);
        status.sub_resource = Some("status".into());
        assert_eq!(mutation(&status).unwrap(), Mutation::Unchanged);
        let mut grant = request("CREATE", "dana@example.com", agent(None), None);
        grant.resource.resource = "capabilitygrants".into();
        assert_eq!(mutation(&grant).unwrap(), Mutation::Unchanged);
    }
}
