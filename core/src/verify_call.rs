//! The service provider's side of `POST /v1/verify` (DESIGN §5): the action
//! it asks about and the decision it gets back.
//!
//! Every provider-side client (the SDK's `VerifierClient`, the MCP gateway)
//! sends and reads these, so the wire names live once. The verifier reads the
//! request with its own borrowing, stricter types (`deny_unknown_fields`);
//! here unknown answer fields are ignored, so that a newer verifier adding a
//! field does not break an older provider.

use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// What the provider is about to do (the request's `action`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// `read`, `write`, `delete`, `transact` or `custom`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The concrete resource, e.g. `calendars/primary/events`.
    pub resource: String,
    /// The action, e.g. `create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// For custom: the operation's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For transact: the amount, a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// For transact: the ISO 4217 currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl Action {
    /// `kind` on `resource`.
    pub fn new(kind: &str, resource: &str) -> Action {
        Action {
            kind: kind.to_owned(),
            resource: resource.to_owned(),
            ..Action::default()
        }
    }
}

/// The verifier's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Whether the request may proceed.
    pub allow: bool,
    /// The stable reason code of a denial.
    #[serde(default)]
    pub reason: Option<String>,
    /// A message for a person (denials).
    #[serde(default)]
    pub message: Option<String>,
    /// The agent, `namespace/name`, when known.
    #[serde(default)]
    pub agent: Option<String>,
    /// The grant, `namespace/name`, when known.
    #[serde(default)]
    pub grant: Option<String>,
    /// After `rate_limited`: milliseconds until a retry may be admitted.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// The DPoP nonce to hand the agent (verifier nonces on, RFC 9449 §9):
    /// send it as `DPoP-Nonce`; with reason `use_dpop_nonce`, answer 401
    /// with `WWW-Authenticate: DPoP error="use_dpop_nonce"`.
    #[serde(default)]
    pub dpop_nonce: Option<String>,
}

impl Decision {
    /// The reason as a known code (`None` for an allow, or a code this
    /// build does not know).
    pub fn code(&self) -> Option<ErrorCode> {
        self.reason.as_deref().and_then(ErrorCode::from_wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_leaves_out_what_it_does_not_carry() {
        let json = serde_json::to_value(Action::new("read", "mcp/payments")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "read", "resource": "mcp/payments"})
        );
    }

    #[test]
    fn a_decision_reads_the_verifiers_answer_and_ignores_newer_fields() {
        let decision: Decision = serde_json::from_str(
            r#"{"allow": false, "reason": "rate_limited", "message": "m",
                "retryAfterMs": 600, "rateLimit": null, "revocationWatermarkMs": 1}"#,
        )
        .unwrap();
        assert_eq!(decision.code(), Some(ErrorCode::RateLimited));
        assert_eq!(decision.retry_after_ms, Some(600));
        assert!(!decision.allow);
    }
}
