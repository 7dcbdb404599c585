//! `POST /v1/verify` (DESIGN §5) as a service provider sends it: the
//! agent's `Authorization` and `DPoP` headers of one request (a proof made
//! for that request by the agent's key, bound to the token by `ath`), its
//! method and URL, and the action about to be performed.

use agentauth::AgentKey;
use serde_json::{Value, json};

/// The path of the verifier API.
pub const VERIFY_PATH: &str = "/v1/verify";

/// What a verifier decided, or why there was no decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `allow: true`.
    Allow,
    /// `allow: false` with its stable reason code.
    Deny(String),
    /// No decision: transport failure, a non-200 status, an unreadable body.
    Error(String),
}

/// The action a request performs.
#[derive(Clone, Debug)]
pub enum Action {
    /// `read` on a resource.
    Read(String),
    /// `transact` on a resource, amount in minor units of EUR.
    Pay(String, u32),
}

impl Action {
    fn to_json(&self) -> Value {
        match self {
            Action::Read(resource) => json!({"type": "read", "resource": resource}),
            Action::Pay(resource, cents) => json!({
                "type": "transact", "resource": resource,
                "amount": format!("{}.{:02}", cents / 100, cents % 100), "currency": "EUR",
            }),
        }
    }

    /// The HTTP method of the agent's request.
    fn method(&self) -> &'static str {
        match self {
            Action::Read(_) => "GET",
            Action::Pay(..) => "POST",
        }
    }

    fn resource(&self) -> &str {
        match self {
            Action::Read(r) | Action::Pay(r, _) => r,
        }
    }
}

/// The body of a verification of `action` at `audience` with `token`,
/// carrying a fresh proof of `key`.
pub fn verify_body(
    key: &AgentKey,
    token: &str,
    audience: &str,
    action: &Action,
) -> Result<String, String> {
    let url = format!("{audience}/{}", action.resource());
    let headers =
        agentauth::auth::headers_for(key, token, action.method(), &url).map_err(|e| e.message())?;
    Ok(json!({
        "audience": audience,
        "token": headers.authorization,
        "dpop": headers.dpop,
        "method": action.method(),
        "url": url,
        "action": action.to_json(),
    })
    .to_string())
}

/// The outcome of an answer with `status` and `body`.
pub fn outcome(status: u16, body: &[u8]) -> Outcome {
    if status != 200 {
        return Outcome::Error(format!("http_{status}"));
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Outcome::Error("body_unreadable".into());
    };
    match value["allow"].as_bool() {
        Some(true) => Outcome::Allow,
        Some(false) => Outcome::Deny(value["reason"].as_str().unwrap_or("no_reason").to_owned()),
        None => Outcome::Error("no_decision".into()),
    }
}
