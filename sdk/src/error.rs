//! The SDK's errors: one typed [`Error`] for everything an agent can meet,
//! carrying the server's stable code (DESIGN §5) when a server refused.
//!
//! ```text
//!  operator / provider answers 4xx, 5xx with problem+json ─▶ Error::Server { status, code, message }
//!  a human denied (or revoked, or the grant expired)      ─▶ Error::Denied { grant, phase, message }
//!  no decision within the wait                            ─▶ Error::Timeout
//!  key file unsafe or unreadable                          ─▶ Error::Key
//!  bad URL, missing agent identity, relative request URL  ─▶ Error::Config
//!  connection refused, TLS, reset                         ─▶ Error::Transport
//!  an answer the SDK cannot read                          ─▶ Error::Protocol
//! ```
//!
//! [`Error::code`] gives the stable [`ErrorCode`] when there is one, so an
//! agent branches on codes, never on message text.

use std::fmt;
use std::time::Duration;

use agentauth_core::ErrorCode;
use agentauth_core::problem::Problem;

/// A stable error code as a server sent it: one this version knows, or the
/// raw string of a newer server's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Code {
    /// A code of [`ErrorCode`].
    Known(ErrorCode),
    /// A code this SDK version does not know.
    Unknown(String),
}

impl Code {
    /// Parses a wire code.
    pub fn parse(s: &str) -> Code {
        ErrorCode::from_wire(s).map_or_else(|| Code::Unknown(s.to_owned()), Code::Known)
    }

    /// The wire form.
    pub fn as_str(&self) -> &str {
        match self {
            Code::Known(code) => code.as_str(),
            Code::Unknown(s) => s,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in the SDK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A server (operator, verifier or service provider) refused with a
    /// stable code.
    #[error("the server refused ({status} {code}): {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The stable code.
        code: Code,
        /// What went wrong, from the server.
        message: String,
    },
    /// The grant will not be usable: a human denied it, or it was revoked,
    /// expired or deleted.
    #[error("grant {grant} is {phase}: {message}")]
    Denied {
        /// `namespace/name` of the grant.
        grant: String,
        /// `Denied`, `Revoked`, `Expired` or `Deleted`.
        phase: String,
        /// What the operator says about it.
        message: String,
    },
    /// No grant is known for this service provider.
    #[error(
        "no grant is known for service provider {provider:?}: call request_grant (or use_grant) first"
    )]
    NoGrant {
        /// The service provider.
        provider: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// The agent key could not be generated, read, written or trusted.
    #[error("agent key: {0}")]
    Key(String),
    /// The SDK was set up wrongly.
    #[error("configuration: {0}")]
    Config(String),
    /// The network failed (connection refused, TLS, reset, …).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// A server answered something the SDK cannot read.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl Error {
    /// The stable code, when the error has one this version knows.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server {
                code: Code::Known(code),
                ..
            } => Some(*code),
            Error::Denied { phase, .. } => Some(match phase.as_str() {
                "Revoked" => ErrorCode::GrantRevoked,
                "Expired" => ErrorCode::GrantExpired,
                "Deleted" => ErrorCode::GrantUnknown,
                _ => ErrorCode::GrantNotApproved,
            }),
            _ => None,
        }
    }

    /// The stable code as a string (also for codes this version does not
    /// know), or the kind of a local error: `timeout`, `key`, `config`,
    /// `transport`, `protocol`, `no_grant`.
    pub fn code_str(&self) -> String {
        match self {
            Error::Server { code, .. } => code.as_str().to_owned(),
            Error::Denied { .. } => self
                .code()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            Error::NoGrant { .. } => "no_grant".into(),
            Error::Timeout { .. } => "timeout".into(),
            Error::Key(_) => "key".into(),
            Error::Config(_) => "config".into(),
            Error::Transport(_) => "transport".into(),
            Error::Protocol(_) => "protocol".into(),
        }
    }

    /// The message for a person, without the code.
    pub fn message(&self) -> String {
        match self {
            Error::Server { message, .. } | Error::Denied { message, .. } => message.clone(),
            Error::Key(m) | Error::Config(m) | Error::Protocol(m) => m.clone(),
            other => other.to_string(),
        }
    }

    /// Whether retrying the same call later may succeed (the server was
    /// unavailable, rate limited, or the network failed).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Server { status, code, .. } => {
                *status >= 500
                    || matches!(
                        code,
                        Code::Known(ErrorCode::RateLimited | ErrorCode::StateUnavailable)
                    )
            }
            Error::Transport(_) | Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The error of a non-success answer: its problem+json body when it has
    /// one, else the status alone.
    pub fn from_body(status: u16, body: &[u8]) -> Error {
        match serde_json::from_slice::<Problem>(body) {
            Ok(problem) => Error::Server {
                status,
                code: Code::parse(&problem.code),
                message: if problem.detail.is_empty() {
                    problem.title
                } else {
                    problem.detail
                },
            },
            Err(_) => Error::Protocol(format!(
                "HTTP {status} without a problem+json body: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
        }
    }
}

/// Turns a non-success `response` into [`Error::Server`] (from its RFC 9457
/// body); passes a success through. For an agent reading a service
/// provider's answer the same way the SDK reads the operator's.
pub async fn check_response(response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await?;
    Err(Error::from_body(status.as_u16(), &body))
}

/// Result with the SDK [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_bodies_map_to_typed_codes() {
        let body = Problem::new(ErrorCode::CapabilityNotGranted, 403, "not granted").to_json();
        let e = Error::from_body(403, &body);
        assert_eq!(e.code(), Some(ErrorCode::CapabilityNotGranted));
        assert_eq!(e.code_str(), "capability_not_granted");
        assert_eq!(e.message(), "not granted");
        assert!(!e.is_retryable());
        assert!(matches!(e, Error::Server { status: 403, .. }));
    }

    #[test]
    fn unknown_codes_are_kept_raw() {
        let body = br#"{"type":"https://agentauth.dev/errors/new_thing","title":"t","status":409,"detail":"d","code":"new_thing"}"#;
        let e = Error::from_body(409, body);
        assert_eq!(e.code(), None);
        assert_eq!(e.code_str(), "new_thing");
        assert!(matches!(e, Error::Server { code: Code::Unknown(ref s), .. } if s == "new_thing"));
    }

    #[test]
    fn non_problem_bodies_are_protocol_errors_and_retryability_follows_codes() {
        assert!(matches!(
            Error::from_body(502, b"<html>bad gateway</html>"),
            Error::Protocol(_)
        ));
        let unavailable = Problem::new(ErrorCode::StateUnavailable, 503, "").to_json();
        let e = Error::from_body(503, &unavailable);
        assert!(e.is_retryable());
        assert_eq!(e.message(), ErrorCode::StateUnavailable.default_message());
        let denied = Error::Denied {
            grant: "ns/g".into(),
            phase: "Revoked".into(),
            message: "m".into(),
        };
        assert_eq!(denied.code(), Some(ErrorCode::GrantRevoked));
    }
}
