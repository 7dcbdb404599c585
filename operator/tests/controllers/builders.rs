//! Fixture builders: agents, envelopes, grants, and decisions signed by a
//! software passkey.

#![allow(dead_code)]

use agentauth_core::approval::Decision;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::webauthn::SoftAuthenticator;
use agentauth_crds::approval::{Binding, SoftDecision, sign_with_soft_authenticator};
use agentauth_crds::{Agent, AgentSpec, Approval, BehavioralEnvelope, CapabilityGrant};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use crate::support::{ORIGIN, RP_ID};

/// Signs `decision` on `grant`, bound to `binding`, with a software passkey.
pub fn sign(
    grant: &CapabilityGrant,
    binding: &Binding,
    approver: &str,
    passkey: &mut SoftAuthenticator,
    decision: Decision,
) -> Approval {
    sign_with_soft_authenticator(
        grant,
        binding,
        passkey,
        &SoftDecision {
            approver,
            credential_id: "cred-1",
            decision,
            nonce: "nonce-0123456789abcdef",
            rp_id: RP_ID,
            origin: ORIGIN,
            signed_at: Time(k8s_openapi::jiff::Timestamp::now()),
        },
    )
    .unwrap()
}

/// An Agent with a fresh P-256 key.
pub fn mk_agent(name: &str, owner: &str) -> Agent {
    let key = SoftAuthenticator::new().public_key().unwrap();
    Agent::new(
        name,
        AgentSpec {
            display_name: "Calendar assistant".into(),
            owner: owner.into(),
            public_key: EcPublicJwk::from_key(&key),
            description: None,
        },
    )
}

/// A BehavioralEnvelope of 10 requests per minute.
pub fn mk_envelope(name: &str) -> BehavioralEnvelope {
    serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1",
        "kind": "BehavioralEnvelope",
        "metadata": {"name": name},
        "spec": {"rateLimits": [{"requests": 10, "period": "1m", "burst": 5}], "maxTokenTtl": "5m"},
    }))
    .unwrap()
}

/// A grant of agent `assistant` under envelope `limits`, lasting `duration`.
pub fn mk_grant(name: &str, duration: &str) -> CapabilityGrant {
    mk_grant_with(name, json!({"duration": duration}))
}

/// A grant of agent `assistant` under envelope `limits`, with `extra` spec fields.
pub fn mk_grant_with(name: &str, extra: Value) -> CapabilityGrant {
    let mut spec = json!({
        "agentRef": {"name": "assistant"},
        "serviceProvider": "https://calendar.example.com",
        "capabilities": [{"type": "read", "resource": "calendars/primary/**"}],
        "envelopeRef": {"name": "limits"},
        "reason": "Schedule the team's weekly planning",
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1",
        "kind": "CapabilityGrant",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}
