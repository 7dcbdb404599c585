//! Installing a render for real: the inputs the values files name but the
//! chart does not create, then every rendered object by server-side apply.

use std::collections::BTreeMap;

use agentauth_testenv::helm::apply_manifest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PatchParams, PostParams};
use kube::discovery::Discovery;
use serde_json::Value;

/// The field manager of this test's applies.
const FIELD_MANAGER: &str = "agentauth-pods-test";

/// Kinds applied after everything else. Their failurePolicy is Fail and
/// nothing answers them here (no container runs), so from then on the
/// apiserver refuses writes of the agentauth.dev resources they cover; this
/// test writes none, and the objects themselves are still created for real.
const APPLIED_LAST: [&str; 2] = [
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// The Secrets and ConfigMap the ci values files reference by name
/// (`existingSecret`, `routeMapConfigMap`), with dummy content: no container
/// reads them, but a real install has them, and an absent one would be a
/// different cluster from the one documented.
pub async fn create_referenced_inputs(client: &Client, namespace: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for (name, key) in [
        ("agentauth-root-key", "root-key.pem"),
        ("redis-auth", "redis-password"),
        ("agentauth-dpop-nonce", "dpop-nonce.key"),
    ] {
        let secret = Secret {
            metadata: meta(name),
            string_data: Some(BTreeMap::from([(key.to_owned(), "dummy".to_owned())])),
            ..Secret::default()
        };
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap_or_else(|e| panic!("create Secret {namespace}/{name}: {e}"));
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let routes = ConfigMap {
        metadata: meta("shop-routes"),
        data: Some(BTreeMap::from([(
            "routes.yaml".to_owned(),
            "routes: []\n".to_owned(),
        )])),
        ..ConfigMap::default()
    };
    config_maps
        .create(&PostParams::default(), &routes)
        .await
        .unwrap_or_else(|e| panic!("create ConfigMap {namespace}/shop-routes: {e}"));
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

/// Server-side applies every object of a render, in helm's order, the
/// webhook configurations last; panics naming the first object refused.
pub async fn apply_all(client: &Client, objects: &[Value]) {
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let (last, first): (Vec<&Value>, Vec<&Value>) = objects
        .iter()
        .partition(|o| APPLIED_LAST.contains(&kind(o)));
    for object in first.into_iter().chain(last) {
        apply_manifest(client, &discovery, object, &params)
            .await
            .unwrap_or_else(|e| {
                panic!("apply {} {}: {e}", kind(object), name(object));
            });
    }
}

/// `kind` of a rendered object.
pub fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

/// `metadata.name` of a rendered object.
pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}
