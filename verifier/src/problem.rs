//! RFC 9457 problem details for requests the verifier cannot read. Decisions
//! (allow or deny) are never problems: they are HTTP 200 with a JSON body
//! (or 200/403 in ext_authz mode).
//!
//! ```text
//!  HTTP/1.1 400 Bad Request
//!  Content-Type: application/problem+json
//!
//!  {"type": "https://agentauth.dev/errors/json_invalid",
//!   "title": "the JSON is malformed or has the wrong shape",
//!   "status": 400,
//!   "detail": "duplicate field `token` at line 1 column 31",
//!   "code": "json_invalid"}
//! ```
//!
//! Most problems are a 400, whatever the code (`request_invalid`,
//! `json_invalid`, `input_too_large`, `token_malformed`): the caller's
//! request, not the agent's authority, is at fault. The exceptions set
//! [`Problem::status`] themselves:
//!
//! | status | when |
//! |---|---|
//! | 401 | ext_authz: no `Authorization` header, or more than one `Authorization` or `DPoP` header |
//! | 500 | ext_authz: the verifier serves several audiences and none is configured for the request |
//! | 503 | `/readyz`: no signing key trusted yet, not subscribed to invalidations, or the shared state does not answer |

use agentauth_core::{Error, ErrorCode};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use agentauth_core::problem::{PROBLEM_JSON, TYPE_BASE};

/// A request the verifier could not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The HTTP status: 400, except the cases in the module docs.
    pub status: StatusCode,
    /// The stable code.
    pub code: ErrorCode,
    /// What was wrong with this request.
    pub detail: String,
}

impl Problem {
    /// A 400 with `code`.
    pub fn bad_request(code: ErrorCode, detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::BAD_REQUEST,
            code,
            detail: detail.into(),
        }
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        Problem::bad_request(e.code, e.message)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let json =
            agentauth_core::problem::Problem::new(self.code, self.status.as_u16(), &self.detail)
                .to_json();
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
