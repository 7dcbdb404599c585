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
//! Every problem is a 400, whatever the code (`request_invalid`,
//! `json_invalid`, `input_too_large`, `token_malformed`): the caller's
//! request, not the agent's authority, is at fault.

use agentauth_core::{Error, ErrorCode};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Prefix of every problem `type` URI; the code follows.
pub const TYPE_BASE: &str = "https://agentauth.dev/errors/";

/// The media type of problem documents (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The longest `detail` sent; parser messages may echo input.
const MAX_DETAIL_LEN: usize = 512;

/// A request the verifier could not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The HTTP status (400 unless a probe says otherwise).
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

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    code: &'static str,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let detail = match self.detail.char_indices().nth(MAX_DETAIL_LEN) {
            Some((cut, _)) => &self.detail[..cut],
            None => self.detail.as_str(),
        };
        let body = Body {
            type_: format!("{TYPE_BASE}{}", self.code.as_str()),
            title: self.code.default_message(),
            status: self.status.as_u16(),
            detail,
            code: self.code.as_str(),
        };
        // Strings and numbers always serialize; an empty body still has the status.
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
