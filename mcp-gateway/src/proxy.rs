//! Passing an allowed MCP request to the MCP server and its answer back,
//! SSE streams included, as they arrive.
//!
//! Headers are passed by allow-list, in both directions: the agent's
//! `Authorization` and `DPoP` never reach the MCP server (the MCP spec
//! forbids passing tokens through; the server needs no credentials of its
//! own here), and hop-by-hop or cookie headers are not relayed.

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// Request headers the MCP server may see.
const REQUEST_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// Response headers the agent may see.
const RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "mcp-session-id",
    "mcp-protocol-version",
];

/// Sends `method` with `headers` (filtered) and `body` to `upstream`;
/// streams the answer back.
pub async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    method: Method,
    headers: &HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut request = http.request(method, upstream);
    for name in REQUEST_HEADERS {
        for value in headers.get_all(*name) {
            request = request.header(*name, value);
        }
    }
    if !body.is_empty() {
        request = request.body(body);
    }
    let upstream_response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, "the MCP server did not answer");
            return (
                StatusCode::BAD_GATEWAY,
                axum::Json(crate::jsonrpc::error(
                    serde_json::Value::Null,
                    -32603,
                    "the MCP server behind the gateway did not answer; retry later",
                    None,
                )),
            )
                .into_response();
        }
    };
    let status = upstream_response.status();
    let mut out = HeaderMap::new();
    for name in RESPONSE_HEADERS {
        for value in upstream_response.headers().get_all(*name) {
            out.append(*name, value.clone());
        }
    }
    let body = Body::from_stream(upstream_response.bytes_stream());
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = out;
    response
}
