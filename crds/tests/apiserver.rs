//! The CRDs against a real kube-apiserver (the `agentauth-testenv` control
//! plane, one per test binary, a namespace per test): they are accepted and
//! Established, every example applies, bad objects are refused with the
//! messages the schema promises ([`rejects`]), the `oldSelf` rules hold
//! ([`transitions`]), spec and status are written separately, and kubectl
//! shows the printer columns and field docs ([`kubectl`]).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

#[path = "apiserver/kubectl.rs"]
mod kubectl;
#[path = "apiserver/rejects.rs"]
mod rejects;
#[path = "apiserver/transitions.rs"]
mod transitions;

use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant};
use agentauth_testenv::{ControlPlane, generated_crds_dir, shared};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::{Value, json};

/// The field manager of this test's writes.
const MANAGER: &str = "agentauth-crds-test";

/// A control plane with the CRDs installed, an admin client and a fresh namespace.
pub struct Env {
    /// The control plane of this test binary.
    pub cp: &'static ControlPlane,
    /// An admin client.
    pub client: Client,
    /// This test's namespace.
    pub ns: String,
}

impl Env {
    /// Starts (or joins) the control plane, installs the CRDs, makes a namespace.
    pub async fn new(test: &str) -> Env {
        let cp = shared().await;
        if let Err(e) = cp.install_crds(&generated_crds_dir()).await {
            panic!(
                "installing the CRDs failed: {}\napiserver log:\n{}",
                chain(&e),
                cp.log_tail(20)
            );
        }
        let ns = cp.test_namespace(test).await.unwrap();
        Env {
            cp,
            client: cp.client().unwrap(),
            ns,
        }
    }

    /// The API of a document's kind, in this test's namespace when namespaced.
    pub fn api_for(&self, doc: &Value) -> Api<DynamicObject> {
        let (resource, namespaced) = match doc["kind"].as_str() {
            Some("Agent") => (ApiResource::erase::<Agent>(&()), true),
            Some("BehavioralEnvelope") => (ApiResource::erase::<BehavioralEnvelope>(&()), true),
            Some("CapabilityGrant") => (ApiResource::erase::<CapabilityGrant>(&()), true),
            Some("Approver") => (ApiResource::erase::<Approver>(&()), false),
            other => panic!("no API for kind {other:?}"),
        };
        if namespaced {
            Api::namespaced_with(self.client.clone(), &self.ns, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        }
    }

    /// Server-side applies a document.
    pub async fn apply(&self, doc: &Value) -> Result<DynamicObject, kube::Error> {
        let name = doc["metadata"]["name"].as_str().unwrap();
        let params = PatchParams::apply(MANAGER).force();
        self.api_for(doc)
            .patch(name, &params, &Patch::Apply(doc))
            .await
    }

    /// Creates a document (server dry run: validated, never stored).
    pub async fn dry_create(&self, doc: &Value) -> Result<DynamicObject, kube::Error> {
        let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        let params = PostParams {
            dry_run: true,
            field_manager: None,
        };
        self.api_for(doc).create(&params, &obj).await
    }

    /// Creates a document for real.
    pub async fn create(&self, doc: &Value) -> Result<DynamicObject, kube::Error> {
        let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        self.api_for(doc).create(&PostParams::default(), &obj).await
    }

    /// A JSON merge patch of the main resource (spec, metadata).
    pub async fn patch(&self, doc: &Value, patch: Value) -> Result<DynamicObject, kube::Error> {
        let name = doc["metadata"]["name"].as_str().unwrap();
        let params = PatchParams::default();
        self.api_for(doc)
            .patch(name, &params, &Patch::Merge(patch))
            .await
    }

    /// A JSON merge patch through the status subresource.
    pub async fn patch_status(
        &self,
        doc: &Value,
        patch: Value,
    ) -> Result<DynamicObject, kube::Error> {
        let name = doc["metadata"]["name"].as_str().unwrap();
        let params = PatchParams::default();
        self.api_for(doc)
            .patch_status(name, &params, &Patch::Merge(patch))
            .await
    }
}

pub use agentauth_core::error::chain;

/// The apiserver's message for a refused request, or why there is none.
pub fn refusal(result: Result<DynamicObject, kube::Error>) -> Result<String, String> {
    match result {
        Ok(_) => Err("accepted".into()),
        Err(kube::Error::Api(status)) if status.code == 422 => Ok(status.message),
        Err(e) => Err(format!("failed otherwise: {e}")),
    }
}

/// An example manifest (a path under `examples/`) as JSON.
pub fn example(path: &str) -> Value {
    let path = support::repo_root().join("examples").join(path);
    support::documents(&path).remove(0)
}

/// `doc` with the value at a JSON pointer set (parents must exist).
pub fn set(mut doc: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match target {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(list) => list[key.parse::<usize>().unwrap()] = value,
        _ => panic!("{parent} is not an object or list"),
    }
    doc
}

/// `doc` without the field at a JSON pointer.
pub fn remove(mut doc: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    doc.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key);
    doc
}

#[tokio::test]
async fn crds_are_established_with_their_names() {
    let env = Env::new("crds-established").await;
    let api: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    for crd in agentauth_crds::all_crds() {
        let name = crd.metadata.name.clone().unwrap();
        let stored = api.get(&name).await.unwrap();
        let status = stored.status.unwrap_or_default();
        let established = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{name} is not Established");
        let accepted = status.accepted_names.unwrap();
        assert_eq!(
            accepted.categories,
            Some(vec!["agentauth".to_owned()]),
            "{name}"
        );
        assert_eq!(accepted.short_names, crd.spec.names.short_names, "{name}");
    }
    assert_eq!(CapabilityGrant::group(&()), agentauth_crds::GROUP);
    assert_eq!(CapabilityGrant::version(&()), agentauth_crds::VERSION);
}

#[tokio::test]
async fn every_example_applies() {
    let env = Env::new("examples-apply").await;
    let mut applied = 0;
    for file in support::example_files() {
        for doc in support::documents(&file) {
            let stored = env.apply(&doc).await.unwrap_or_else(|e| {
                panic!(
                    "{} was refused: {e}\n{}",
                    file.display(),
                    env.cp.log_tail(20)
                )
            });
            // What the apiserver stored still says everything the file said.
            let back = serde_json::to_value(&stored).unwrap();
            assert!(
                support::written_back(&doc["spec"], &back["spec"]),
                "{}: stored spec differs: {}",
                file.display(),
                back["spec"]
            );
            applied += 1;
        }
    }
    assert!(applied >= 7, "applied {applied} examples");
}

#[tokio::test]
async fn spec_and_status_are_written_separately() {
    let env = Env::new("spec-status").await;
    let grant = example("calendar-assistant/grant.yaml");
    env.create(&grant).await.unwrap();
    let condition = |type_: &str, reason: &str| {
        json!({"type": type_, "status": "False", "reason": reason, "message": "waiting",
               "lastTransitionTime": "2026-11-28T12:00:00Z"})
    };
    env.patch_status(
        &grant,
        json!({"status": {"phase": "Pending", "observedGeneration": 1,
        "conditions": [condition("Ready", "AwaitingApproval")]}}),
    )
    .await
    .unwrap();

    // A spec update through the main resource: the status part is ignored.
    let updated = env
        .patch(
            &grant,
            json!({"spec": {"reason": "Plan the offsite."}, "status": {"phase": "Approved"}}),
        )
        .await
        .unwrap();
    assert_eq!(updated.data["spec"]["reason"], "Plan the offsite.");
    assert_eq!(
        updated.data["status"]["phase"], "Pending",
        "status moved with a spec update"
    );
    assert_eq!(updated.metadata.generation, Some(2));

    // A status update through the subresource: the spec part is ignored.
    let updated = env
        .patch_status(
            &grant,
            json!({"spec": {"reason": "Sneaky."}, "status": {"observedGeneration": 2}}),
        )
        .await
        .unwrap();
    assert_eq!(updated.data["status"]["observedGeneration"], 2);
    assert_eq!(
        updated.data["spec"]["reason"], "Plan the offsite.",
        "spec moved with a status update"
    );
    assert_eq!(
        updated.metadata.generation,
        Some(2),
        "a status update bumped the generation"
    );

    // Conditions are a list-map: two writers applying different types keep both.
    let api = env.api_for(&grant);
    let name = grant["metadata"]["name"].as_str().unwrap();
    let apply_condition = |manager: &'static str, c: Value| {
        let body = json!({"apiVersion": grant["apiVersion"], "kind": grant["kind"],
                          "status": {"conditions": [c]}});
        let api = api.clone();
        async move {
            api.patch_status(
                name,
                &PatchParams::apply(manager).force(),
                &Patch::Apply(body),
            )
            .await
        }
    };
    apply_condition("operator", condition("Ready", "AwaitingApproval"))
        .await
        .unwrap();
    let both = apply_condition("other-controller", condition("Audited", "Pending"))
        .await
        .unwrap();
    let types: Vec<&str> = both.data["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["Ready", "Audited"],
        "each writer's condition is kept"
    );
}
