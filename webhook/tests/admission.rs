//! The webhook against a real kube-apiserver: one webhook per test binary,
//! registered with a `ValidatingWebhookConfiguration` and called by the
//! apiserver over TLS on loopback; a namespace per test. Each table reads
//! as `accepts(...)` / `rejects(..., "code: field")` rows, a refusal
//! matched by the stable code its message starts with, never by its prose
//! (the apiserver's own CEL refusals, which have no code, by their message):
//! what the schema cannot refuse ([`specs`]), forged approvals
//! ([`approvals`]), status fields only the operator may write ([`status`]),
//! and who answers for an Agent ([`owners`]).
//!
//! Not here: "approver lacks the RBAC verb `approve`" is the approval API's
//! check (a SubjectAccessReview for the approver's identity), not the
//! webhook's; and "webhook down" stops the webhook, so it has its own test
//! binary (`fail_closed.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

#[path = "admission/approvals.rs"]
mod approvals;
#[path = "admission/owners.rs"]
mod owners;
#[path = "admission/specs.rs"]
mod specs;
#[path = "admission/status.rs"]
mod status;

use std::sync::Arc;

use agentauth_core::approval::Decision;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::webauthn::SoftAuthenticator;
use agentauth_crds::approval::{Binding, SoftDecision, sign_with_soft_authenticator};
use agentauth_crds::{Agent, Approval, BehavioralEnvelope, CapabilityGrant};
use agentauth_testenv::{ControlPlane, generated_crds_dir, shared};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

use support::{OPERATOR, ORIGIN, RP_ID, Webhook};

/// The webhook of this test binary.
static WEBHOOK: OnceCell<Webhook> = OnceCell::const_new();

/// A control plane with the CRDs and the webhook, clients, and a namespace.
pub struct Env {
    /// The control plane of this test binary.
    pub cp: &'static ControlPlane,
    /// The webhook.
    pub webhook: &'static Webhook,
    /// An admin client (user `admin`, `system:masters`).
    pub admin: Client,
    /// The operator's identity (impersonated, in `system:masters` so RBAC
    /// is no obstacle: the webhook's username check is what matters).
    pub operator: Client,
    /// Another cluster admin, not the operator.
    pub mallory: Client,
    /// This test's namespace (reviewed by the webhook).
    pub ns: String,
}

impl Env {
    /// Starts (or joins) the control plane and the webhook, makes a namespace.
    pub async fn new(test: &str) -> Env {
        let cp = shared().await;
        cp.install_crds(&generated_crds_dir()).await.unwrap();
        let webhook = WEBHOOK
            .get_or_init(|| Webhook::start(cp, "agentauth-webhook-admission"))
            .await;
        let ns = support::namespace(cp, test).await;
        Env {
            cp,
            webhook,
            admin: cp.client().unwrap(),
            operator: cp.client_as(OPERATOR, &["system:masters"]).unwrap(),
            mallory: cp.client_as("mallory", &["system:masters"]).unwrap(),
            ns,
        }
    }

    /// Creates a document as the admin.
    pub async fn create(&self, doc: &Value) -> Result<DynamicObject, kube::Error> {
        let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        support::api_for(self.admin.clone(), doc)
            .create(&PostParams::default(), &obj)
            .await
    }

    /// A JSON merge patch of a document's main resource, as `client`.
    pub async fn patch(
        &self,
        client: &Client,
        doc: &Value,
        patch: Value,
    ) -> Result<DynamicObject, kube::Error> {
        let name = doc["metadata"]["name"].as_str().unwrap();
        support::api_for(client.clone(), doc)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
    }

    /// A JSON merge patch through the status subresource, as `client`.
    pub async fn patch_status(
        &self,
        client: &Client,
        doc: &Value,
        patch: Value,
    ) -> Result<DynamicObject, kube::Error> {
        let name = doc["metadata"]["name"].as_str().unwrap();
        support::api_for(client.clone(), doc)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
    }

    /// What an approval of `grant` binds now: its envelope's spec digest and
    /// its agent key's thumbprint, as stored.
    pub async fn binding(&self, grant: &CapabilityGrant) -> Binding {
        let agent: Agent = Api::namespaced(self.admin.clone(), &self.ns)
            .get(&grant.spec.agent_ref.name)
            .await
            .unwrap();
        let envelope: Option<BehavioralEnvelope> = match &grant.spec.envelope_ref {
            Some(r) => Api::namespaced(self.admin.clone(), &self.ns)
                .get_opt(&r.name)
                .await
                .unwrap(),
            None => None,
        };
        Binding::of(grant, envelope.as_ref(), &agent).unwrap()
    }

    /// The stored grant `name`.
    pub async fn grant(&self, name: &str) -> CapabilityGrant {
        Api::namespaced(self.admin.clone(), &self.ns)
            .get(name)
            .await
            .unwrap()
    }
}

/// An Agent owned by `owner`.
pub fn mk_agent(ns: &str, name: &str, owner: &str) -> Value {
    let key = SoftAuthenticator::new().public_key().unwrap();
    json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"displayName": "Calendar assistant", "owner": owner,
                 "publicKey": EcPublicJwk::from_key(&key)},
    })
}

/// An Approver (cluster-scoped) deciding grants in `namespaces`.
pub fn mk_approver(name: &str, namespaces: &[&str]) -> Value {
    json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver",
        "metadata": {"name": name},
        "spec": {"displayName": "Dana Fischer", "email": format!("{name}@example.com"),
                 "scope": {"namespaces": namespaces}},
    })
}

/// The status patch registering `auth` as passkey `cred-1` with `sign_count`.
pub fn passkey_status(auth: &SoftAuthenticator, sign_count: u32) -> Value {
    json!({"status": {"passkeys": [{
        "credentialId": "cred-1",
        "publicKey": EcPublicJwk::from_key(&auth.public_key().unwrap()),
        "signCount": sign_count,
        "createdAt": "2026-01-01T00:00:00Z",
    }]}})
}

/// A read-only grant of `agent`'s, optionally under `envelope`.
pub fn mk_grant(ns: &str, name: &str, agent: &str, envelope: Option<&str>) -> Value {
    let mut grant = json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "CapabilityGrant",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"agentRef": {"name": agent}, "serviceProvider": "https://calendar.example.com",
                 "capabilities": [{"type": "read", "resource": "calendars/primary/**"}],
                 "duration": "8h", "reason": "Schedule the team's weekly planning"},
    });
    if let Some(envelope) = envelope {
        grant["spec"]["envelopeRef"] = json!({"name": envelope});
    }
    grant
}

/// `approver`'s decision on `grant` as it is now, bound to `binding`
/// (see [`Env::binding`]), signed with `auth`.
pub fn sign(
    grant: &CapabilityGrant,
    binding: &Binding,
    auth: &mut SoftAuthenticator,
    approver: &str,
    decision: Decision,
) -> Approval {
    let signed_at = Time(k8s_openapi::jiff::Timestamp::now());
    sign_with_soft_authenticator(
        grant,
        binding,
        auth,
        &SoftDecision {
            approver,
            credential_id: "cred-1",
            decision,
            nonce: "nonce-0123456789abcdef",
            rp_id: RP_ID,
            origin: ORIGIN,
            signed_at,
        },
    )
    .unwrap()
}

/// GET `path` from the webhook over TLS, trusting only its CA.
async fn https_get(webhook: &Webhook, path: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(webhook.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(webhook.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn health_and_metrics_are_served_over_tls() {
    let env = Env::new("metrics").await;
    let bad = support::envelope_doc(&env.ns, "mars", "Mars/Olympus");
    assert!(env.create(&bad).await.is_err());
    let health = https_get(env.webhook, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = https_get(env.webhook, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let metrics = https_get(env.webhook, "/metrics").await;
    let line = r#"agentauth_admissions_total{reason="time_zone_unknown",resource="behavioralenvelopes",verdict="denied"}"#;
    assert!(metrics.contains(line), "{metrics}");
    assert!(
        metrics.contains("agentauth_admission_duration_seconds_bucket"),
        "{metrics}"
    );
}
