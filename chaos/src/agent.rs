//! An agent of the experiments: its SDK client, key, approved grant and
//! token, and the `/v1/verify` bodies the load sends for it (a fresh DPoP
//! proof each, optionally with a shifted `iat` for the clock-skew experiment).

use std::time::{SystemTime, UNIX_EPOCH};

use agentauth::{AgentAuthClient, AgentKey};

use crate::system::AUDIENCE;

/// An agent with an approved grant and a token for [`AUDIENCE`].
pub struct AgentHandle {
    /// The Agent's name (in [`crate::system::AGENTS_NAMESPACE`]).
    pub name: String,
    /// Its SDK client (through the front).
    pub client: AgentAuthClient,
    /// Its DPoP key.
    pub key: AgentKey,
    /// Its approved grant's name.
    pub grant: String,
    /// Its access token.
    pub token: String,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("name", &self.name)
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    /// What the load needs of it: its key and token.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            key: self.key.clone(),
            token: self.token.clone(),
        }
    }
}

/// An agent's DPoP key and access token: enough to make requests.
#[derive(Clone)]
pub struct Credentials {
    /// The DPoP key.
    pub key: AgentKey,
    /// The access token bound to it.
    pub token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key", &self.key.thumbprint())
            .finish_non_exhaustive()
    }
}

/// A `/v1/verify` body for `agent` reading `resource` with a fresh DPoP proof
/// whose `iat` is `skew_secs` off this machine's clock.
pub fn verify_body(agent: &Credentials, resource: &str, skew_secs: i64) -> serde_json::Value {
    let url = format!("{AUDIENCE}/{resource}");
    let request = agentauth_core::dpop::Request {
        method: "GET",
        url: &url,
        access_token: Some(&agent.token),
        nonce: None,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let proof = agentauth_core::dpop::create(
        agent.key.signing_key(),
        &request,
        now + skew_secs,
        &agentauth_core::dpop::new_jti(),
    )
    .unwrap_or_default();
    serde_json::json!({
        "audience": AUDIENCE,
        "token": format!("DPoP {}", agent.token),
        "dpop": proof,
        "method": "GET",
        "url": url,
        "action": {"type": "read", "resource": resource},
    })
}
