//! Grants as the agent sees them: what it asks with ([`GrantOptions`]) and
//! what the operator answers ([`Grant`], the operator's `GrantView`).

use serde::{Deserialize, Serialize};

/// How a grant request is shaped beyond its provider and capabilities.
#[derive(Clone, Debug, Default)]
pub struct GrantOptions {
    /// The BehavioralEnvelope (in the agent's namespace) that limits it.
    pub envelope: Option<String>,
    /// How long it lasts once approved, e.g. `"8h"` (at most `"1d"`).
    /// Default `"1h"` unless `expires_at` is set.
    pub duration: Option<String>,
    /// When it ends (RFC 3339), instead of a duration.
    pub expires_at: Option<String>,
    /// Why the agent asks, shown to the approver. Default: a sentence naming
    /// the agent and the provider.
    pub reason: Option<String>,
    /// Makes a retried request find the grant the first attempt made
    /// (the `Idempotency-Key` header). Default: a fresh random key.
    pub idempotency_key: Option<String>,
}

/// One condition of a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCondition {
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

/// A grant, as the operator shows it to its agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// The agent, `namespace/name`.
    pub agent: String,
    /// The service provider (the tokens' audience).
    pub service_provider: String,
    /// `Pending`, `Approved`, `Denied`, `Revoked` or `Expired`.
    pub phase: String,
    /// Whether it was revoked.
    #[serde(default)]
    pub revoked: bool,
    /// When it ends, once known (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The operator's conditions.
    #[serde(default)]
    pub conditions: Vec<GrantCondition>,
}

impl Grant {
    /// `namespace/name`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether tokens can be had for it now.
    pub fn is_approved(&self) -> bool {
        self.phase == "Approved" && !self.revoked
    }

    /// Whether it still waits for a human.
    pub fn is_pending(&self) -> bool {
        self.phase == "Pending"
    }

    /// The operator's most telling message: the `Ready` condition's, else
    /// the phase.
    pub fn message(&self) -> String {
        self.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .or_else(|| self.conditions.first())
            .map_or_else(
                || format!("the grant is {}", self.phase),
                |c| c.message.clone(),
            )
    }
}
