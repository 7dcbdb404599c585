//! The JSON of `POST /v1/verify` (DESIGN §5).
//!
//! ```text
//!  request  {"token": "<access token, or 'DPoP <token>'>", "dpop": "<proof>",
//!            "method": "POST", "url": "https://shop.example/orders",
//!            "action": {"type": "transact", "resource": "orders/eu",
//!                       "action"?: "create", "name"?: "…", "amount"?: "12.50", "currency"?: "EUR"},
//!            "audience"?: "shop.example"}
//!  response {"allow": true, "reason": null, "agent": "team-a/buyer", "grant": "team-a/groceries",
//!            "rateLimit": {"remaining": 9, "resetMs": 6000}, "revocationWatermarkMs": 1764…}
//!           {"allow": false, "reason": "rate_limited", "message": "…", "retryAfterMs": 600, …}
//!           {"allow": false, "reason": "use_dpop_nonce", "dpopNonce": "<nonce>", …}   (server nonces on)
//! ```
//!
//! Unknown fields, duplicate keys and wrong JSON types are refused (400
//! `json_invalid`): a typo must not silently drop a check. Amounts and
//! currencies stay strings here so that a bad one is a decision
//! (`amount_invalid`, `currency_unknown`), not a malformed request.

use std::borrow::Cow;

use agentauth_core::capability::CapabilityType;
use agentauth_state::consume::RateLimitStatus;
use serde::{Deserialize, Serialize};

/// The body of `POST /v1/verify`. Strings borrow from the body when they
/// hold no escapes (tokens, proofs and URLs never do), so reading a request
/// copies nothing but the action.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest<'a> {
    /// The access token, bare or as the `Authorization` value `DPoP <token>`.
    #[serde(borrow)]
    pub token: Cow<'a, str>,
    /// The `DPoP` header of the request; absent or empty when there was none.
    #[serde(default, borrow)]
    pub dpop: Option<Cow<'a, str>>,
    /// The HTTP method of the agent's request.
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    /// The absolute URL of the agent's request.
    #[serde(borrow)]
    pub url: Cow<'a, str>,
    /// What the service provider is about to do.
    pub action: Action,
    /// Which configured audience (service provider) is asking.
    #[serde(default, borrow)]
    pub audience: Option<Cow<'a, str>>,
}

/// The action of a verification request.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The operation type.
    #[serde(rename = "type")]
    pub kind: CapabilityType,
    /// The concrete resource, e.g. `orders/eu/42`.
    pub resource: String,
    /// The action, e.g. `get`.
    #[serde(default)]
    pub action: Option<String>,
    /// For custom: the provider-defined operation name.
    #[serde(default)]
    pub name: Option<String>,
    /// For transact: the amount as a decimal string.
    #[serde(default)]
    pub amount: Option<String>,
    /// For transact: the ISO 4217 currency.
    #[serde(default)]
    pub currency: Option<String>,
}

/// The rate limit left after an allowed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Requests the tightest limit would still admit now.
    pub remaining: u32,
    /// Milliseconds until its full burst is back.
    pub reset_ms: u64,
}

/// Serializes a decision's rate limit as [`RateLimit`] (the wire leaves out
/// which limit of the envelope it is).
pub fn serialize_rate_limit<S: serde::Serializer>(
    status: &Option<RateLimitStatus>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    status
        .map(|r| RateLimit {
            remaining: r.remaining,
            reset_ms: r.reset_ms,
        })
        .serialize(serializer)
}
