//! The objects the token path reads, in reflector stores filled by hand
//! (no apiserver): an Agent, an approved CapabilityGrant and its
//! BehavioralEnvelope.

use agentauth_core::es256::SigningKey;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_crds::{Agent, AgentSpec, BehavioralEnvelope, CapabilityGrant};
use agentauth_operator::cache::Caches;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use serde_json::json;

use super::{NAMESPACE, SERVICE_PROVIDER};

/// Reflector stores holding an Agent, its envelope and an approved grant.
pub fn caches(agent_key: &SigningKey) -> (Caches, impl Sized) {
    let spec = AgentSpec {
        display_name: "Shopping assistant".into(),
        owner: "owner@example.com".into(),
        public_key: EcPublicJwk::from_key(&agent_key.verifying_key().unwrap()),
        description: None,
    };
    let mut agent = Agent::new("shopper", spec);
    agent.metadata.namespace = Some(NAMESPACE.into());
    agent.metadata.generation = Some(1);
    agent.status = Some(
        serde_json::from_value(json!({
            "keyThumbprint": agent.spec.key_thumbprint().unwrap(), "observedGeneration": 1,
        }))
        .unwrap(),
    );
    let envelope: BehavioralEnvelope = serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "BehavioralEnvelope",
        "metadata": {"name": "limits", "namespace": NAMESPACE},
        "spec": {
            "rateLimits": [{"requests": 100, "period": "1s", "burst": 200}],
            "transactions": {"currency": "EUR", "maxPerTransaction": "50.00", "maxPerDay": "500.00"},
            "maxTokenTtl": "10m",
        },
    }))
    .unwrap();
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(8);
    let grant: CapabilityGrant = serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "CapabilityGrant",
        "metadata": {
            "name": "g", "namespace": NAMESPACE, "uid": "0b9b7c4e-bench", "generation": 1,
            "creationTimestamp": jiff::Timestamp::now().to_string(),
        },
        "spec": {
            "agentRef": {"name": "shopper"}, "serviceProvider": SERVICE_PROVIDER,
            "capabilities": [
                {"type": "read", "resource": "catalog/**"},
                {"type": "transact", "resource": "orders/*", "maxAmount": "50.00", "currency": "EUR"},
            ],
            "envelopeRef": {"name": "limits"}, "duration": "8h", "reason": "buy groceries",
        },
        "status": {
            "phase": "Approved", "expiresAt": expires.to_string(),
            "approval": {
                "approver": "alice", "credentialId": "Y3JlZA", "decision": "Approved",
                "nonce": "bm9uY2Utbm9uY2Utbm9uY2U", "signedAt": jiff::Timestamp::now().to_string(),
                "generation": 1, "specDigest": "A".repeat(43), "authenticatorData": "AAAA",
                "clientDataJSON": "e30", "signature": "MEUCIQ",
            },
        },
    }))
    .unwrap();
    let (agents, a) = filled(agent);
    let (grants, g) = filled(grant);
    let (envelopes, e) = filled(envelope);
    let (approvers, mut p) = reflector::store();
    p.apply_watcher_event(&watcher::Event::InitDone);
    let caches = Caches {
        agents,
        grants,
        envelopes,
        approvers,
        verified: Default::default(),
    };
    (caches, (a, g, e, p))
}

/// A ready store holding `object`, and its writer.
fn filled<K>(object: K) -> (reflector::Store<K>, Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitApply(object));
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (store, writer)
}
