//! What a verification takes and gives: [`Input`] in, [`Outcome`] out.

use agentauth_core::ErrorCode;
use agentauth_state::consume::RateLimitStatus;

use crate::problem::Problem;
use crate::wire::{self, Action, VerifyResponse};

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

/// The answer to a readable request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allow: bool,
    /// The code of a denial.
    pub reason: Option<ErrorCode>,
    /// A message for a person (denials).
    pub message: Option<String>,
    /// The agent, `namespace/name`, when known.
    pub agent: Option<String>,
    /// The grant, `namespace/name`, when known.
    pub grant: Option<String>,
    /// The tightest rate limit after an allowed request.
    pub rate_limit: Option<RateLimitStatus>,
    /// How long to wait before retrying (rate limited).
    pub retry_after_ms: Option<u64>,
    /// The revocation watermark when the answer was made, ms.
    pub watermark_ms: i64,
    /// The DPoP nonce the agent must use from now on (server nonces on):
    /// with a `use_dpop_nonce` denial, or an allow whose nonce is about to
    /// expire. The provider hands it to the agent as `DPoP-Nonce`.
    pub dpop_nonce: Option<String>,
}

impl Decision {
    /// The JSON answer.
    pub fn to_response(&self) -> VerifyResponse {
        VerifyResponse {
            allow: self.allow,
            reason: self.reason.map(|c| c.as_str().to_owned()),
            message: self.message.clone(),
            agent: self.agent.clone(),
            grant: self.grant.clone(),
            rate_limit: self.rate_limit.map(|r| wire::RateLimit {
                remaining: r.remaining,
                reset_ms: r.reset_ms,
            }),
            retry_after_ms: self.retry_after_ms,
            revocation_watermark_ms: self.watermark_ms,
            dpop_nonce: self.dpop_nonce.clone(),
        }
    }
}

/// A decision, or a request that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Allow or deny (HTTP 200).
    Decision(Decision),
    /// Unreadable (HTTP 400 problem+json).
    Invalid(Problem),
}
