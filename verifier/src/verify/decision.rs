//! What a verification takes and gives: [`Input`] in, [`Outcome`] out.

use agentauth_core::ErrorCode;
use agentauth_state::consume::RateLimitStatus;

use crate::problem::Problem;
use crate::wire::{self, Action};
use serde::Serialize;

/// What a verification is about: the agent's request as the service
/// provider (or Envoy) saw it.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The access token, bare or `DPoP <token>`.
    pub token: &'a str,
    /// The DPoP proof, if the request carried one.
    pub dpop: Option<&'a str>,
    /// The HTTP method.
    pub method: &'a str,
    /// The absolute URL.
    pub url: &'a str,
    /// What the provider is about to do.
    pub action: &'a Action,
    /// Which configured audience asks (`None`: the first).
    pub audience: Option<&'a str>,
}

/// The answer to a readable request, serialized as the JSON answer of
/// `POST /v1/verify` (and the body of an ext_authz denial) as it is: the
/// wire form is this type, not a copy of it ([`crate::wire`] shows it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Whether the request may proceed.
    pub allow: bool,
    /// The stable code of a denial; `null` when allowed.
    pub reason: Option<ErrorCode>,
    /// A message for a person (denials only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The agent, `namespace/name`, when known.
    pub agent: Option<String>,
    /// The grant, `namespace/name`, when known.
    pub grant: Option<String>,
    /// The tightest rate limit after an allowed request, when the envelope
    /// has one.
    #[serde(serialize_with = "wire::serialize_rate_limit")]
    pub rate_limit: Option<RateLimitStatus>,
    /// How long to wait before retrying (`rate_limited`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The time of the newest revocation state this verifier had seen when
    /// it answered, ms since the epoch (0: none yet).
    #[serde(rename = "revocationWatermarkMs")]
    pub watermark_ms: i64,
    /// The DPoP nonce the agent must use from now on (server nonces on,
    /// RFC 9449 §9): with a `use_dpop_nonce` denial, or an allow whose nonce
    /// is about to expire. The provider hands it to the agent as
    /// `DPoP-Nonce` (with a 401 and `WWW-Authenticate: DPoP
    /// error="use_dpop_nonce"` for that denial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_nonce: Option<String>,
}

/// A decision, or a request that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Allow or deny (HTTP 200).
    Decision(Decision),
    /// Unreadable (HTTP 400 problem+json).
    Invalid(Problem),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The wire form of `POST /v1/verify` answers, member by member, as
    /// providers and the SDKs parse it.
    #[test]
    fn decisions_serialize_as_the_documented_answer() {
        let allow = Decision {
            allow: true,
            reason: None,
            message: None,
            agent: Some("team-a/buyer".into()),
            grant: Some("team-a/groceries".into()),
            rate_limit: Some(RateLimitStatus {
                limit: 1,
                remaining: 9,
                reset_ms: 6000,
            }),
            retry_after_ms: None,
            watermark_ms: 1_764_000_000_000,
            dpop_nonce: None,
        };
        assert_eq!(
            serde_json::to_string(&allow).unwrap(),
            r#"{"allow":true,"reason":null,"agent":"team-a/buyer","grant":"team-a/groceries","rateLimit":{"remaining":9,"resetMs":6000},"revocationWatermarkMs":1764000000000}"#
        );
        let deny = Decision {
            allow: false,
            reason: Some(ErrorCode::RateLimited),
            message: Some("slow down".into()),
            agent: None,
            grant: None,
            rate_limit: None,
            retry_after_ms: Some(600),
            watermark_ms: 0,
            dpop_nonce: Some("n".into()),
        };
        assert_eq!(
            serde_json::to_string(&deny).unwrap(),
            r#"{"allow":false,"reason":"rate_limited","message":"slow down","agent":null,"grant":null,"rateLimit":null,"retryAfterMs":600,"revocationWatermarkMs":0,"dpopNonce":"n"}"#
        );
    }
}
