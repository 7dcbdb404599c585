//! Passing an allowed MCP request to the MCP server and its answer back,
//! SSE streams included, as they arrive.
//!
//! Headers are passed by allow-list, in both directions: the agent's
//! `Authorization` and `DPoP` never reach the MCP server (the MCP spec
//! forbids passing tokens through; the server needs no credentials of its
//! own here), and hop-by-hop or cookie headers are not relayed.
//!
//! One answer is not streamed: a `tools/list` answer is read whole (at most
//! 8 MiB) so that tools the map lacks can be left out of it.

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::toolmap::ToolMap;

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

/// The largest `tools/list` answer read whole to be filtered.
const MAX_TOOL_LIST_BYTES: usize = 8 * 1024 * 1024;

/// Sends `method` with `headers` (filtered) and `body` to `upstream`;
/// streams the answer back. With `tools_list` (the request's id and the
/// tool map), the answer to a `tools/list` is read whole and keeps only
/// the tools the map names ([`crate::tool_filter`]).
pub async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    method: Method,
    headers: &HeaderMap,
    body: axum::body::Bytes,
    tools_list: Option<(&serde_json::Value, &ToolMap)>,
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
            return unavailable();
        }
    };
    let status = upstream_response.status();
    let mut out = HeaderMap::new();
    for name in RESPONSE_HEADERS {
        for value in upstream_response.headers().get_all(*name) {
            out.append(*name, value.clone());
        }
    }
    let body = match tools_list {
        None => Body::from_stream(upstream_response.bytes_stream()),
        Some((id, map)) => match filtered(upstream_response, id, map, &out).await {
            Some(body) => body,
            None => return unavailable(),
        },
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = out;
    response
}

/// The `tools/list` answer, read whole (bounded) and filtered; `None` when
/// it could not be read.
async fn filtered(
    mut upstream: reqwest::Response,
    id: &serde_json::Value,
    map: &ToolMap,
    headers: &HeaderMap,
) -> Option<Body> {
    let mut bytes = Vec::new();
    loop {
        match upstream.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() <= MAX_TOOL_LIST_BYTES => {
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Ok(Some(_)) | Err(_) => {
                tracing::warn!("the MCP server's tools/list answer was unreadable or too large");
                return None;
            }
        }
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let known = |name: &str| map.tools.contains_key(name);
    let body = crate::tool_filter::filter(content_type, &bytes, id, &known).unwrap_or(bytes);
    Some(Body::from(body))
}

/// 502: the MCP server did not answer (usably).
fn unavailable() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        axum::Json(crate::jsonrpc::error(
            serde_json::Value::Null,
            -32603,
            "the MCP server behind the gateway did not answer; retry later",
            None,
        )),
    )
        .into_response()
}
