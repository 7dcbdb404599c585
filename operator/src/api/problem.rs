//! RFC 9457 problem details: how every refusal of the agent API looks on the
//! wire.
//!
//! ```text
//!  HTTP/1.1 401 Unauthorized
//!  Content-Type: application/problem+json
//!  Cache-Control: no-store
//!  WWW-Authenticate: DPoP algs="ES256", error="invalid_dpop_proof"   (DPoP refusals only)
//!
//!  {"type": "https://agentauth.dev/errors/dpop_replayed",
//!   "title": "the DPoP proof was already used",          the code's default message
//!   "status": 401,
//!   "detail": "the proof's jti was seen before",          this occurrence, for a person
//!   "code": "dpop_replayed"}                              the stable code (DESIGN §5)
//! ```
//!
//! The HTTP status follows from the code ([`status_for`]) unless a handler
//! sets one (a 404 for an unknown route, 415 for a wrong content type, 409 for
//! a reused idempotency key: the core enum has no code of its own for those,
//! so they carry `request_invalid` and differ by status).

use agentauth_core::{Error, ErrorCode};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use agentauth_core::problem::{PROBLEM_JSON, TYPE_BASE};

/// A refusal of an agent API request: a stable code, an HTTP status and a
/// message for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code (DESIGN §5).
    pub code: ErrorCode,
    /// What went wrong in this request.
    pub detail: String,
}

impl ApiError {
    /// A refusal with `code`'s usual status.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            status: status_for(code),
            code,
            detail: detail.into(),
        }
    }

    /// The same refusal with another HTTP status.
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// A malformed request (`request_invalid`, 400).
    pub fn invalid(detail: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::RequestInvalid, detail)
    }

    /// The shared state (or the Kubernetes API) did not answer: fail closed.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::StateUnavailable, detail)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::new(e.code, e.message)
    }
}

/// The HTTP status of a code, when the handler does not choose one.
pub fn status_for(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::DpopMissing
        | C::DpopInvalid
        | C::DpopReplayed
        | C::DpopKeyMismatch
        | C::DpopMethodMismatch
        | C::DpopUrlMismatch
        | C::DpopStale
        | C::DpopAthMismatch
        | C::DpopNonceInvalid => StatusCode::UNAUTHORIZED,
        C::GrantNotApproved
        | C::GrantSuspended
        | C::GrantRevoked
        | C::GrantExpired
        | C::EnvelopeInvalid => StatusCode::FORBIDDEN,
        C::GrantUnknown => StatusCode::NOT_FOUND,
        C::InputTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        C::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        C::StateUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        C::SigningFailed | C::TokenClaimsInvalid | C::KeyCertificateInvalid => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Whether a code is a refusal of the DPoP proof (RFC 9449 §7.1 challenge).
fn is_dpop(code: ErrorCode) -> bool {
    code.as_str().starts_with("dpop_")
}

/// The body of a refusal: problem+json, plus the OAuth `error` and
/// `error_description` members (RFC 6749 §5.2) for `use_dpop_nonce`, which
/// OAuth clients look for by that name (RFC 9449 §8).
fn body(problem: &agentauth_core::problem::Problem, code: ErrorCode) -> Vec<u8> {
    if code != ErrorCode::UseDpopNonce {
        return problem.to_json();
    }
    match serde_json::to_value(problem) {
        Ok(serde_json::Value::Object(mut members)) => {
            members.insert("error".into(), code.as_str().into());
            members.insert("error_description".into(), problem.detail.clone().into());
            serde_json::to_vec(&members).unwrap_or_else(|_| problem.to_json())
        }
        _ => problem.to_json(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem =
            agentauth_core::problem::Problem::new(self.code, self.status.as_u16(), &self.detail);
        let body = body(&problem, self.code);
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED && is_dpop(self.code) {
            let challenge = if self.code == ErrorCode::DpopMissing {
                "DPoP algs=\"ES256\""
            } else {
                "DPoP algs=\"ES256\", error=\"invalid_dpop_proof\""
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn codes_map_to_statuses() {
        assert_eq!(
            status_for(ErrorCode::DpopReplayed),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status_for(ErrorCode::GrantRevoked), StatusCode::FORBIDDEN);
        assert_eq!(status_for(ErrorCode::GrantUnknown), StatusCode::NOT_FOUND);
        assert_eq!(
            status_for(ErrorCode::StateUnavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_for(ErrorCode::RequestInvalid),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_for(ErrorCode::InputTooLarge),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn use_dpop_nonce_is_a_400_with_the_oauth_error_member() {
        let problem = agentauth_core::problem::Problem::new(ErrorCode::UseDpopNonce, 400, "d");
        assert_eq!(status_for(ErrorCode::UseDpopNonce), StatusCode::BAD_REQUEST);
        let json: serde_json::Value =
            serde_json::from_slice(&body(&problem, ErrorCode::UseDpopNonce)).unwrap();
        assert_eq!(json["error"], "use_dpop_nonce");
        assert_eq!(json["code"], "use_dpop_nonce");
        assert_eq!(json["error_description"], "d");
        let other = agentauth_core::problem::Problem::new(ErrorCode::DpopReplayed, 401, "d");
        let json: serde_json::Value =
            serde_json::from_slice(&body(&other, ErrorCode::DpopReplayed)).unwrap();
        assert!(json.get("error").is_none());
    }

    #[test]
    fn long_details_are_cut_on_a_character_boundary() {
        use agentauth_core::problem::MAX_DETAIL_LEN;
        let e = ApiError::invalid("é".repeat(MAX_DETAIL_LEN + 10));
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            HeaderValue::from_static(PROBLEM_JSON)
        );
    }
}
