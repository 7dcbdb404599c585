//! Reading requests and writing answers, under the limits every handler
//! of the verifier applies: the JSON API ([`crate::routes`]) and the
//! ext_authz front ([`crate::ext_authz`]) both use these, and nothing else
//! of the crate, so that neither module depends on the other for them.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};

/// The largest `POST /v1/verify` body: a token (≤ 8 KiB), a proof (≤ 2 KiB),
/// a URL (≤ 4 KiB) and an action fit many times over.
pub const MAX_BODY: usize = 64 * 1024;

/// The largest header section a handler reads (names and values).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The size of a header section as sent (names, values, `: ` and CRLF).
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
}

/// The whole body, or `None` when it exceeds [`MAX_BODY`] or breaks off.
pub async fn read_body(body: Body) -> Option<Bytes> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// A JSON response with `no-store`.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    // Decisions hold only strings and numbers, which always serialize.
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
