//! How the approval API answers: a [`Refusal`] is problem+json with the
//! stable code of the failed check (and the HTTP status this API gives that
//! code), a [`Body`] reads a JSON request or refuses it, and [`no_store`]
//! keeps every answer out of caches (they carry CSRF tokens and grants).
//!
//! A leaf: it imports nothing else from the approval API, so every other
//! module can build its answers here without depending on one another.

use agentauth_core::ErrorCode;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::api::problem::ApiError;
use crate::http::deadline::is_body_deadline;

/// The largest request body the approval API reads (a WebAuthn response is
/// a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// The stable code of a refusal, left on the response so that the outcome
/// counter can label it without parsing the body.
#[derive(Clone, Copy, Debug)]
pub struct Outcome(pub ErrorCode);

/// A refusal of the approval API: problem+json, counted by code.
#[derive(Debug)]
pub struct Refusal(pub ApiError);

impl Refusal {
    /// A refusal with the code's usual status in this API ([`status_for`]).
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Refusal(ApiError::new(code, detail).with_status(status_for(code)))
    }

    /// The same refusal with another HTTP status.
    #[must_use]
    pub fn with_status(self, status: StatusCode) -> Self {
        Refusal(self.0.with_status(status))
    }

    /// The Kubernetes API failed: fail closed.
    pub fn kube(what: &str, e: &kube::Error) -> Self {
        Refusal::new(
            ErrorCode::StateUnavailable,
            format!("failed to {what}: {e}"),
        )
    }
}

impl From<agentauth_core::Error> for Refusal {
    fn from(e: agentauth_core::Error) -> Self {
        Refusal::new(e.code, e.message)
    }
}

impl From<agentauth_crds::Invalid> for Refusal {
    fn from(e: agentauth_crds::Invalid) -> Self {
        Refusal::new(e.code, format!("{}: {}", e.field, e.message))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let code = self.0.code;
        let mut response = self.0.into_response();
        response.extensions_mut().insert(Outcome(code));
        response
    }
}

/// A JSON request body; a malformed, oversized or too slow one is a
/// [`Refusal`] (`json_invalid`, `input_too_large`, `request_invalid`,
/// `request_timeout` past the server's body read deadline), counted like any.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request(request: Request, state: &S) -> Result<Self, Refusal> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(JsonRejection::BytesRejection(e)) if is_body_deadline(&e) => Err(Refusal::new(
                ErrorCode::RequestTimeout,
                "the request body did not arrive in time; send the whole request at once, \
                 without pausing, and retry",
            )),
            Err(JsonRejection::BytesRejection(_)) => Err(Refusal::new(
                ErrorCode::InputTooLarge,
                format!("the body is larger than {MAX_BODY} bytes or could not be read"),
            )),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(Refusal::new(
                ErrorCode::RequestInvalid,
                "the body must be application/json",
            )),
            Err(e) => Err(Refusal::new(ErrorCode::JsonInvalid, e.body_text())),
        }
    }
}

/// The HTTP status of a code in this API.
pub fn status_for(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::SessionInvalid => StatusCode::UNAUTHORIZED,
        C::CsrfInvalid
        | C::CrossSiteRequest
        | C::ApproverOutOfScope
        | C::ApproverOwnsAgent
        | C::ApproverNotAuthorized
        | C::EnrollmentTokenInvalid => StatusCode::FORBIDDEN,
        C::GrantUnknown | C::ApproverNotFound | C::AgentNotFound => StatusCode::NOT_FOUND,
        C::DecisionImmutable | C::GrantNotApproved | C::ApprovalDuplicate => StatusCode::CONFLICT,
        C::InputTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        C::StateUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// An answer that no cache may keep.
pub fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::http::deadline::DeadlineBody;
    use axum::body::Bytes;
    use futures::{StreamExt, stream};
    use std::time::Duration;

    fn request(body: axum::body::Body) -> Request {
        axum::http::Request::post("/approvals/api/login/begin")
            .header("content-type", "application/json")
            .body(body)
            .unwrap()
    }

    /// Threat: slowloris / resource exhaustion on the operator's API (issue
    /// 12 item 6): a body that stalls past the read deadline is refused with
    /// 408 `request_timeout`, not read forever nor reported as too large.
    #[tokio::test]
    async fn a_body_past_its_deadline_is_a_timeout() {
        let first = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{\"a\""))]);
        let stalled = axum::body::Body::from_stream(first.chain(stream::pending()));
        let body = axum::body::Body::new(DeadlineBody::new(stalled, Duration::from_millis(100)));
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            Body::<serde_json::Value>::from_request(request(body), &()),
        );
        let Err(Refusal(refusal)) = read.await.unwrap() else {
            panic!("a stalled body was accepted");
        };
        assert_eq!(refusal.code, ErrorCode::RequestTimeout, "{refusal:?}");
        assert_eq!(refusal.status, StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn a_body_within_its_deadline_is_read() {
        let body = axum::body::Body::new(DeadlineBody::new(
            axum::body::Body::from(r#"{"a": 1}"#),
            Duration::from_secs(10),
        ));
        let Ok(Body(value)) = Body::<serde_json::Value>::from_request(request(body), &()).await
        else {
            panic!("a complete body was refused");
        };
        assert_eq!(value["a"], 1);
    }
}
