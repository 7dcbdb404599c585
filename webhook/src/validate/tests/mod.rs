//! The admission decisions on hand-made reviews, through the same entry the
//! HTTP handler uses ([`crate::review::handle`]). The real-apiserver tests
//! (`webhook/tests/`) cover what the apiserver does; these cover what it
//! never lets through to the webhook (CEL refuses first) and malformed input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agents;
mod grants;
mod others;

use agentauth_core::approval::Decision;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::webauthn::SoftAuthenticator;
use agentauth_crds::approval::{Binding, SoftDecision, sign_with_soft_authenticator};
use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use crate::lookup::{Lookup, LookupError};
use crate::metrics::Metrics;
use crate::review::{BadReview, handle};
use crate::validate::{Policy, Validator};

pub(super) const OPERATOR: &str = "system:serviceaccount:agentauth-system:agentauth-operator";
pub(super) const NS: &str = "team-a";
pub(super) const RP: &str = "localhost";
pub(super) const ORIGIN: &str = "http://localhost:8080";

#[derive(Default)]
pub(super) struct Fake {
    pub(super) agents: Vec<Agent>,
    pub(super) envelopes: Vec<BehavioralEnvelope>,
    pub(super) approvers: Vec<Approver>,
    pub(super) down: bool,
}

impl Fake {
    fn result<T: Clone>(&self, found: Option<&T>, what: &str) -> Result<Option<T>, LookupError> {
        if self.down {
            return Err(LookupError {
                what: what.into(),
                message: "connection refused".into(),
            });
        }
        Ok(found.cloned())
    }
}

pub(super) fn named<'a, K: kube::ResourceExt>(list: &'a [K], name: &str) -> Option<&'a K> {
    list.iter().find(|k| k.name_any() == name)
}

impl Lookup for Fake {
    async fn agent(&self, _: &str, name: &str) -> Result<Option<Agent>, LookupError> {
        self.result(named(&self.agents, name), "Agent")
    }
    async fn envelope(
        &self,
        _: &str,
        name: &str,
    ) -> Result<Option<BehavioralEnvelope>, LookupError> {
        self.result(named(&self.envelopes, name), "BehavioralEnvelope")
    }
    async fn approver(&self, name: &str) -> Result<Option<Approver>, LookupError> {
        self.result(named(&self.approvers, name), "Approver")
    }
}

pub(super) fn validator(fake: Fake) -> Validator<Fake> {
    Validator::new(
        Policy {
            operator_username: OPERATOR.into(),
            rp_id: RP.into(),
            origins: vec![ORIGIN.into()],
        },
        fake,
    )
}

/// A review body for `resource` (`plural` or `plural/status`).
pub(super) fn body(resource: &str, user: &str, object: &Value, old: Option<&Value>) -> Vec<u8> {
    let (plural, sub) = resource
        .split_once('/')
        .map_or((resource, None), |(p, s)| (p, Some(s)));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0c9a8d74-0000-4000-8000-000000000001",
            "kind": {"group": "agentauth.dev", "version": "v1alpha1", "kind": "X"},
            "resource": {"group": "agentauth.dev", "version": "v1alpha1", "resource": plural},
            "subResource": sub,
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": if old.is_some() { "UPDATE" } else { "CREATE" },
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": false,
        }
    })
    .to_string()
    .into_bytes()
}

/// `None` when allowed, else the denial message.
pub(super) async fn decide(v: &Validator<Fake>, body: &[u8]) -> Option<String> {
    let review = handle(v, &Metrics::new().unwrap(), body).await.unwrap();
    let response = review.response.expect("a response");
    assert_eq!(response.uid, "0c9a8d74-0000-4000-8000-000000000001");
    (!response.allowed).then_some(response.result.message)
}

pub(super) fn accepts(outcome: Option<String>) {
    assert_eq!(outcome, None);
}

pub(super) fn rejects(outcome: Option<String>, message: &str) {
    let got = outcome.expect("refused");
    assert!(got.contains(message), "{got:?} lacks {message:?}");
}

pub(super) fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap()
}

/// The fixture agent's key: one per test process, so an approval's binding
/// to it holds across calls of [`agent`].
fn agent_key() -> EcPublicJwk {
    static KEY: std::sync::OnceLock<EcPublicJwk> = std::sync::OnceLock::new();
    KEY.get_or_init(|| EcPublicJwk::from_key(&SoftAuthenticator::new().public_key().unwrap()))
        .clone()
}

pub(super) fn agent(owner: &str) -> Agent {
    let mut a: Agent = serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": "assistant", "namespace": NS},
        "spec": {"displayName": "Assistant", "owner": owner,
                 "publicKey": agent_key()},
    }))
    .unwrap();
    a.metadata.uid = Some("agent-uid".into());
    a
}

pub(super) fn approver(auth: &SoftAuthenticator, sign_count: u32) -> Approver {
    serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver",
        "metadata": {"name": "dana"},
        "spec": {"displayName": "Dana", "email": "dana@example.com", "scope": {"namespaces": [NS]}},
        "status": {"passkeys": [{
            "credentialId": "cred-1",
            "publicKey": EcPublicJwk::from_key(&auth.public_key().unwrap()),
            "signCount": sign_count,
            "createdAt": "2026-01-01T00:00:00Z",
        }]},
    }))
    .unwrap()
}

pub(super) fn grant() -> CapabilityGrant {
    serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "CapabilityGrant",
        "metadata": {"name": "plan", "namespace": NS, "uid": "grant-uid-1", "generation": 1},
        "spec": {"agentRef": {"name": "assistant"}, "serviceProvider": "https://cal.example.com",
                 "capabilities": [{"type": "read", "resource": "calendars/**"}],
                 "duration": "8h", "reason": "Plan meetings"},
    }))
    .unwrap()
}

pub(super) fn approved(
    grant: &CapabilityGrant,
    auth: &mut SoftAuthenticator,
    decision: Decision,
) -> CapabilityGrant {
    // The fixture agent's key (see [`agent`]); no envelope.
    let binding = Binding::of(grant, None, &agent("sam@example.com")).unwrap();
    let approval = sign_with_soft_authenticator(
        grant,
        &binding,
        auth,
        &SoftDecision {
            approver: "dana",
            credential_id: "cred-1",
            decision,
            nonce: "nonce-0123456789abcdef",
            rp_id: RP,
            origin: ORIGIN,
            signed_at: Time(k8s_openapi::jiff::Timestamp::from_second(1_780_000_000).unwrap()),
        },
    )
    .unwrap();
    let mut decided = grant.clone();
    decided.status = Some(agentauth_crds::CapabilityGrantStatus {
        approval: Some(approval),
        ..Default::default()
    });
    decided
}
