//! How the API shows a grant to its agent: [`GrantView`], the body of
//! `GET /v1/grants/{namespace}/{name}`, of `POST /v1/grants` and of each
//! status event.
//!
//! ```text
//!  {"namespace": "team-a", "name": "mailer-3f9c0a1b2c3d4e5f", "uid": "…",
//!   "agent": "team-a/mailer", "serviceProvider": "https://mail.example.com",
//!   "phase": "Pending", "revoked": false, "expiresAt": "2026-07-01T00:00:00Z",
//!   "conditions": [{"type": "Ready", "status": "False", "reason": "AwaitingApproval",
//!                   "message": "…"}]}
//! ```
//!
//! The spec and the approval record are left out: the phase, expiry and
//! conditions are what an agent waits on.

use agentauth_crds::{CapabilityGrant, GrantPhase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

/// One condition of a grant, as the API shows it.
#[derive(Debug, Serialize)]
pub struct ConditionView {
    /// `Ready`, `Approved`, …
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// What a person can do about it.
    pub message: String,
}

/// A grant as the API shows it to its agent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its `metadata.uid`.
    pub uid: String,
    /// The agent, `namespace/name`.
    pub agent: String,
    /// The audience of its tokens.
    pub service_provider: String,
    /// `Pending`, `Approved`, `Denied`, `Revoked` or `Expired`.
    pub phase: &'static str,
    /// Whether `spec.revoked` is set.
    pub revoked: bool,
    /// When it stops working, once known (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The operator's conditions.
    pub conditions: Vec<ConditionView>,
}

impl GrantView {
    /// The view of `grant`.
    pub fn of(grant: &CapabilityGrant) -> Self {
        let status = grant.status.as_ref();
        let namespace = grant.metadata.namespace.clone().unwrap_or_default();
        GrantView {
            agent: format!("{namespace}/{}", grant.spec.agent_ref.name),
            namespace,
            name: grant.metadata.name.clone().unwrap_or_default(),
            uid: grant.metadata.uid.clone().unwrap_or_default(),
            service_provider: grant.spec.service_provider.clone(),
            phase: phase(grant).as_str(),
            revoked: grant.spec.revoked,
            expires_at: status
                .and_then(|s| s.expires_at.clone())
                .or_else(|| grant.spec.expires_at.clone()),
            conditions: status
                .map(|s| {
                    s.conditions
                        .iter()
                        .map(|c| ConditionView {
                            type_: c.type_.clone(),
                            status: c.status.clone(),
                            reason: c.reason.clone(),
                            message: c.message.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The grant's phase; `Pending` until the operator has written one.
pub fn phase(grant: &CapabilityGrant) -> GrantPhase {
    grant
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(GrantPhase::Pending)
}
