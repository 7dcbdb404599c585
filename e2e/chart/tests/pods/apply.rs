//! Installing a render for real: the inputs the values files name but the
//! chart does not create (Secrets, a ConfigMap, the volume behind the
//! archive's claim), then every rendered object by server-side apply.

use std::collections::BTreeMap;

use agentauth_testenv::helm::apply_manifest;
use k8s_openapi::api::core::v1::{
    ConfigMap, HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeSpec,
    Secret,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
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
    for (name, keys) in [
        ("agentauth-root-key", &["root-key.pem"][..]),
        // redis.passwordKey: the default, and hostport-values.yaml's.
        ("redis-auth", &["password", "redis-password"]),
        ("agentauth-dpop-nonce", &["dpop-nonce.key"]),
        // signer.vaultTransit.caBundle (vault-transit-values.yaml).
        ("vault-ca", &["ca.crt"]),
        // archiver.store.s3.credentials (gcp-kms-values.yaml).
        ("agentauth-archive-s3", &["credentials"]),
    ] {
        let secret = Secret {
            metadata: meta(name),
            string_data: Some(
                keys.iter()
                    .map(|key| ((*key).to_owned(), "dummy".to_owned()))
                    .collect(),
            ),
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

/// For each PersistentVolumeClaim of a render (the archive's, with store
/// pvc), a PersistentVolume bound to it in advance: kube-controller-manager's
/// PV controller binds the two, as a provisioner would have. A hostPath
/// volume without a StorageClass, as large as the claim asks; no container
/// runs here, so nothing writes to it.
pub async fn create_claimed_volumes(client: &Client, namespace: &str, objects: &[Value]) {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    for claim in objects
        .iter()
        .filter(|o| kind(o) == "PersistentVolumeClaim")
    {
        let size = claim["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .unwrap_or_else(|| panic!("claim {} asks for no storage", name(claim)));
        let volume_name = format!("{namespace}-{}", name(claim));
        let volume = PersistentVolume {
            metadata: meta(&volume_name),
            spec: Some(PersistentVolumeSpec {
                capacity: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(size.to_owned()),
                )])),
                access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                host_path: Some(HostPathVolumeSource {
                    path: format!("/var/lib/agentauth-test/{volume_name}"),
                    type_: Some("DirectoryOrCreate".to_owned()),
                }),
                // Only this claim may have it: each install gets its own.
                claim_ref: Some(ObjectReference {
                    namespace: Some(namespace.to_owned()),
                    name: Some(name(claim).to_owned()),
                    ..ObjectReference::default()
                }),
                persistent_volume_reclaim_policy: Some("Retain".to_owned()),
                ..PersistentVolumeSpec::default()
            }),
            ..PersistentVolume::default()
        };
        volumes
            .create(&PostParams::default(), &volume)
            .await
            .unwrap_or_else(|e| panic!("create PersistentVolume {volume_name}: {e}"));
    }
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
