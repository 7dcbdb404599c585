//! The gateway's metrics at `/metrics` (DESIGN §12): what happened to each
//! MCP request, and how long the verifier took to decide.
//!
//! ```text
//!  agentauth_mcp_gateway_requests_total{outcome, reason}
//!    outcome: allowed | refused (the verifier) | refused_at_gateway | unavailable
//!    reason:  the stable code (or no_credentials, malformed, session_unknown, "" when allowed)
//!  agentauth_mcp_gateway_verify_seconds (histogram)
//! ```
//!
//! Label values come from a closed set (known codes; anything else is
//! `other`), never from what a client sent.

use agentauth_core::ErrorCode;
use agentauth_service::metrics::Register;
use prometheus::{Histogram, IntCounterVec, Registry};

/// What happened to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to the MCP server.
    Allowed,
    /// The verifier refused it.
    Refused,
    /// Refused before the verifier was asked.
    RefusedAtGateway,
    /// No decision (the verifier could not be asked); refused.
    Unavailable,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Refused => "refused",
            Outcome::RefusedAtGateway => "refused_at_gateway",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// The registry and its metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    verify_seconds: Histogram,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let r = Register(&registry);
        let requests = r.counter_vec(
            "agentauth_mcp_gateway_requests_total",
            "MCP requests by outcome and reason",
            &["outcome", "reason"],
        )?;
        let verify_seconds = r.histogram(
            "agentauth_mcp_gateway_verify_seconds",
            "Time the node-local verifier took to decide one MCP request",
            vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
            ],
        )?;
        Ok(Metrics {
            registry,
            requests,
            verify_seconds,
        })
    }

    /// Counts one request; `reason` is a wire code or a gateway reason.
    pub fn count(&self, outcome: Outcome, reason: &str) {
        let reason = match reason {
            "" | "no_credentials" | "malformed" | "session_unknown" => reason,
            code => ErrorCode::from_wire(code).map_or("other", ErrorCode::as_str),
        };
        self.requests
            .with_label_values(&[outcome.label(), reason])
            .inc();
    }

    /// Records one verifier call's duration.
    pub fn verified_in(&self, elapsed: std::time::Duration) {
        self.verify_seconds.observe(elapsed.as_secs_f64());
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        agentauth_service::metrics::render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn labels_come_from_a_closed_set() {
        let m = Metrics::new().unwrap();
        m.count(Outcome::Refused, "rate_limited");
        m.count(Outcome::Refused, "made_up_by_a_client");
        m.count(Outcome::Allowed, "");
        let text = m.render();
        assert!(
            text.contains(r#"outcome="refused",reason="rate_limited"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"outcome="refused",reason="other"} 1"#),
            "{text}"
        );
        assert!(!text.contains("made_up"), "{text}");
    }
}
