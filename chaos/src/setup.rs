//! The one-off steps of starting the system: the services' flags, the root
//! key, what the cluster must hold (namespaces, Approver, RBAC) and the
//! approver's enrolled passkey.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentauth_soft_passkey::SoftApprover;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::Error;
use crate::front::Front;
use crate::system::{
    AGENTS_NAMESPACE, APPROVER, AUDIENCE, FIELD_MANAGER, Options, SYSTEM_NAMESPACE,
};

/// The approver's e-mail: the user RBAC lets approve grants.
const APPROVER_EMAIL: &str = "dana.fischer@example.com";

fn os(args: Vec<String>) -> Vec<OsString> {
    args.into_iter().map(OsString::from).collect()
}

pub(crate) fn operator_args(
    front: &Front,
    port: u16,
    name: &str,
    root_key: &Path,
    redis_url: &str,
    options: &Options,
) -> Vec<OsString> {
    os(vec![
        "operator".to_owned(),
        format!("--listen=127.0.0.1:{port}"),
        format!("--public-url={}", front.url()),
        format!("--root-key-file={}", root_key.display()),
        format!("--identity={name}"),
        format!("--lease-namespace={SYSTEM_NAMESPACE}"),
        format!("--lease-duration={}ms", options.lease_duration.as_millis()),
        "--rp-id=localhost".to_owned(),
        format!("--approval-origin=http://localhost:{}", front.port()),
        format!("--redis-url={redis_url}"),
    ])
}

pub(crate) fn verifier_args(
    front: &Front,
    port: u16,
    name: &str,
    root_jwk: &Path,
    redis_url: &str,
    options: &Options,
) -> Vec<OsString> {
    os(vec![
        "verifier".to_owned(),
        format!("--listen=127.0.0.1:{port}"),
        format!("--issuer={}", front.url()),
        format!("--audience={AUDIENCE}"),
        format!("--jwks-url={}/.well-known/jwks.json", front.url()),
        format!("--root-jwk-file={}", root_jwk.display()),
        format!("--identity={name}"),
        format!("--redis-url={redis_url}"),
        format!("--state-timeout={}ms", options.state_timeout.as_millis()),
    ])
}

/// `agentauth root-key generate`: the key file for both operators and the
/// public JWK the verifiers pin.
pub(crate) fn generate_root_key(binary: &Path, key: &Path, jwk: &Path) -> Result<(), Error> {
    let output = std::process::Command::new(binary)
        .args(["root-key", "generate"])
        .arg(key)
        .output()
        .map_err(|e| Error::io("run agentauth root-key generate", e))?;
    if !output.status.success() {
        return Err(Error::Other(format!(
            "agentauth root-key generate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    std::fs::write(jwk, &output.stdout).map_err(|e| Error::io("write root.jwk", e))
}

/// Namespaces, the Approver, and the RBAC that lets it approve grants in
/// the agents' namespace (the approval API asks with a SubjectAccessReview).
pub(crate) async fn prepare_cluster(client: &Client) -> Result<(), Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let objects = [
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": SYSTEM_NAMESPACE}}),
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": AGENTS_NAMESPACE}}),
        serde_json::json!({"apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver",
            "metadata": {"name": APPROVER},
            "spec": {"displayName": "Dana Fischer", "email": APPROVER_EMAIL,
                     "scope": {"namespaces": [AGENTS_NAMESPACE]}}}),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "agentauth-chaos-approver"},
            "rules": [{"apiGroups": ["agentauth.dev"], "resources": ["capabilitygrants"],
                       "verbs": ["approve", "get", "list", "watch"]}]}),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "dana-fischer-approves", "namespace": AGENTS_NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "agentauth-chaos-approver"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": APPROVER_EMAIL}]}),
    ];
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .map_err(|source| Error::Kube {
            step: "discover the API",
            source,
        })?;
    for object in objects {
        let object: kube::api::DynamicObject =
            serde_json::from_value(object).map_err(|e| Error::Other(e.to_string()))?;
        let gvk = object
            .types
            .as_ref()
            .map(kube::api::GroupVersionKind::try_from)
            .transpose()
            .map_err(|e| Error::Other(e.to_string()))?
            .ok_or_else(|| Error::Other("an object without a kind".to_owned()))?;
        let (resource, capabilities) = discovery
            .resolve_gvk(&gvk)
            .ok_or_else(|| Error::Other(format!("unknown kind {gvk:?}")))?;
        let api: Api<kube::api::DynamicObject> =
            match (capabilities.scope, object.metadata.namespace.as_deref()) {
                (kube::discovery::Scope::Namespaced, Some(ns)) => {
                    Api::namespaced_with(client.clone(), ns, &resource)
                }
                _ => Api::all_with(client.clone(), &resource),
            };
        let name = object.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(|source| Error::Kube {
                step: "prepare the cluster",
                source,
            })?;
    }
    Ok(())
}

/// An enrollment token (as an admin hands one out) ─▶ a software passkey
/// enrolled for the approver and logged in, through the front.
pub(crate) async fn enroll_approver(client: &Client, front: &Front) -> Result<SoftApprover, Error> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let token = agentauth_operator::approvals::tokens::create(
        client.clone(),
        SYSTEM_NAMESPACE,
        APPROVER,
        Duration::from_secs(600),
        now_ms,
    )
    .await
    .map_err(|e| Error::Approver {
        step: "create an enrollment token",
        message: e.to_string(),
    })?;
    let approver_error = |step| {
        move |e: agentauth_soft_passkey::SoftPasskeyError| Error::Approver {
            step,
            message: e.to_string(),
        }
    };
    let mut passkey =
        SoftApprover::new(&front.url(), &format!("http://localhost:{}", front.port()))
            .map_err(approver_error("create the passkey"))?;
    passkey
        .enroll(APPROVER, &token)
        .await
        .map_err(approver_error("enroll"))?;
    passkey
        .login(APPROVER)
        .await
        .map_err(approver_error("log in"))?;
    Ok(passkey)
}
