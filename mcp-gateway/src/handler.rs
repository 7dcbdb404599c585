//! One MCP request through the gateway:
//!
//! ```text
//!  POST/GET/DELETE <public path>
//!   ─▶ Authorization: DPoP <token> present?      no ─▶ 401 + challenge (resource_metadata)
//!   ─▶ POST: one JSON-RPC message?               no ─▶ 400 JSON-RPC error (-32700/-32600/-32602)
//!   ─▶ action: tools/call → tool map, else the session action
//!                                 unknown tool / bad argument ─▶ JSON-RPC error, data.code
//!   ─▶ verifier POST /v1/verify (one call: the proof is single-use)
//!        unreachable                       ─▶ 503, fail closed
//!        token_* / dpop_* / use_dpop_nonce ─▶ 401 + challenge with the error
//!        other refusal                     ─▶ JSON-RPC error (HTTP 200), data.code = the stable code
//!                                              (a notification or response: 403 problem+json)
//!   ─▶ allowed: a Mcp-Session-Id must be one this agent was given (else 404, [`crate::sessions`]);
//!      forwarded to the MCP server without the credentials; the answer streamed back
//! ```
//!
//! Every verifier decision (allowed or refused) is audited by the verifier;
//! a call refused here before the verifier is asked (no credentials,
//! malformed, a tool the map lacks) is logged at info with its reason.

use agentauth_core::ErrorCode;
use agentauth_core::problem::Problem;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::challenge::Challenge;
use crate::jsonrpc::{self, Kind, Message};
use crate::mapping::{self, Action};
use crate::metrics::Outcome;
use crate::server::Gateway;
use crate::verify::{Decision, VerifyError};

/// The MCP endpoint: POST (messages), GET (the server's SSE stream),
/// DELETE (end the session).
pub async fn mcp(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !matches!(parts.method, Method::POST | Method::GET | Method::DELETE) {
        return problem(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestInvalid,
            "the MCP endpoint takes POST, GET and DELETE",
        );
    }
    let (authorization, dpop) = match credentials(&gateway, &parts.headers) {
        Ok(credentials) => credentials,
        Err(response) => {
            gateway
                .metrics
                .count(Outcome::RefusedAtGateway, "no_credentials");
            return *response;
        }
    };
    let body = match axum::body::to_bytes(body, gateway.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            gateway
                .metrics
                .count(Outcome::RefusedAtGateway, "malformed");
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::InputTooLarge,
                "the body is larger than the gateway accepts (--max-body-bytes)",
            );
        }
    };
    let (message, action) = if parts.method == Method::POST {
        match decode_and_map(&gateway, &body) {
            Ok(found) => found,
            Err((reason, response)) => {
                gateway.metrics.count(Outcome::RefusedAtGateway, reason);
                return *response;
            }
        }
    } else {
        (None, mapping::session_action(&gateway.map))
    };
    let method = parts.method.as_str();
    let started = std::time::Instant::now();
    let decision = gateway
        .verifier
        .verify(authorization, dpop, method, &gateway.url, &action)
        .await;
    gateway.metrics.verified_in(started.elapsed());
    let decision = match decision {
        Ok(decision) => decision,
        Err(error) => {
            gateway
                .metrics
                .count(Outcome::Unavailable, "state_unavailable");
            return verify_failed(&gateway, &error, message.as_ref());
        }
    };
    if !decision.allow {
        let reason = decision.reason.as_deref().unwrap_or_default();
        gateway.metrics.count(Outcome::Refused, reason);
        return refused(&gateway, &decision, message.as_ref(), &action);
    }
    allowed(&gateway, parts, body, message.as_ref(), &decision, &action).await
}

/// An allowed request: the session check, then the MCP server.
async fn allowed(
    gateway: &Gateway,
    parts: axum::http::request::Parts,
    body: Bytes,
    message: Option<&Message>,
    decision: &Decision,
    action: &Action,
) -> Response {
    let agent = decision.agent.as_deref().unwrap_or_default();
    let session = parts
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(session) = &session
        && !gateway.sessions.owned_by(session, agent)
    {
        tracing::info!(agent, "refused: a session id this agent was not given");
        gateway
            .metrics
            .count(Outcome::RefusedAtGateway, "session_unknown");
        let id = message.and_then(|m| m.id.clone()).unwrap_or(Value::Null);
        let text = "session not found (the MCP spec's 404): start a new session with initialize";
        let reply = jsonrpc::error(id, jsonrpc::INVALID_REQUEST, text, None);
        return (StatusCode::NOT_FOUND, axum::Json(reply)).into_response();
    }
    gateway.metrics.count(Outcome::Allowed, "");
    tracing::debug!(agent, resource = %action.resource, "allowed");
    let tools_list = message.and_then(|m| match (&m.kind, &m.id) {
        (Kind::Other { method }, Some(id)) if method == "tools/list" => Some((id, &gateway.map)),
        _ => None,
    });
    let ending = parts.method == Method::DELETE;
    let response = crate::proxy::forward(
        &gateway.upstream_http,
        &gateway.upstream,
        parts.method,
        &parts.headers,
        body,
        tools_list,
    )
    .await;
    if response.status().is_success() {
        match &session {
            Some(session) if ending => gateway.sessions.close(session),
            Some(_) => {}
            None => {
                if let Some(new) = response
                    .headers()
                    .get("mcp-session-id")
                    .and_then(|v| v.to_str().ok())
                {
                    gateway.sessions.open(new, agent);
                }
            }
        }
    }
    response
}

/// The `Authorization` (scheme DPoP) and `DPoP` header values, or the 401.
fn credentials<'h>(
    gateway: &Gateway,
    headers: &'h HeaderMap,
) -> Result<(&'h str, &'h str), Box<Response>> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(authorization), None) = (values.next(), values.next()) else {
        let missing = headers.get(AUTHORIZATION).is_none();
        let (challenge, detail) = if missing {
            (
                Challenge::Missing,
                "this MCP server needs an AgentAuth access token: Authorization: DPoP <token> and a DPoP proof",
            )
        } else {
            (
                Challenge::InvalidToken,
                "send exactly one Authorization header",
            )
        };
        tracing::info!(reason = detail, "refused before verification");
        return Err(Box::new(gateway.resource.unauthorized(
            challenge,
            ErrorCode::TokenMalformed,
            detail,
            None,
        )));
    };
    let authorization = authorization.to_str().unwrap_or_default();
    let scheme_ok = authorization
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("dpop "));
    if !scheme_ok {
        let detail = "the token must be sent as Authorization: DPoP <token> (it is DPoP-bound; Bearer is not accepted)";
        return Err(Box::new(gateway.resource.unauthorized(
            Challenge::InvalidToken,
            ErrorCode::TokenMalformed,
            detail,
            None,
        )));
    }
    let dpop = headers
        .get("dpop")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Ok((authorization, dpop))
}

/// A refusal before verification: its reason (for the metrics) and answer.
type Refused = (&'static str, Box<Response>);

/// The message and its action, or the reason (for the metrics) and the
/// JSON-RPC error that refuses it.
fn decode_and_map(gateway: &Gateway, body: &Bytes) -> Result<(Option<Message>, Action), Refused> {
    let (message, _) = match jsonrpc::decode(body) {
        Ok(decoded) => decoded,
        Err(error) => {
            tracing::info!(%error, "refused before verification: malformed message");
            let reply = jsonrpc::error(
                jsonrpc::best_effort_id(body),
                error.rpc_code(),
                &error.to_string(),
                None,
            );
            return Err((
                "malformed",
                Box::new((StatusCode::BAD_REQUEST, axum::Json(reply)).into_response()),
            ));
        }
    };
    let action = match &message.kind {
        Kind::ToolCall { name, arguments } => mapping::tool_action(&gateway.map, name, arguments),
        Kind::Other { .. } | Kind::Response => Ok(mapping::session_action(&gateway.map)),
    };
    match action {
        Ok(action) => Ok((Some(message), action)),
        Err(unmapped) => {
            tracing::info!(code = unmapped.code.as_str(), message = %unmapped.message, "refused before verification");
            let data = json!({"code": unmapped.code.as_str(), "message": unmapped.message});
            let id = message.id.clone().unwrap_or(Value::Null);
            let reply = jsonrpc::error(id, jsonrpc::REFUSED, &unmapped.message, Some(data));
            Err((
                unmapped.code.as_str(),
                Box::new((StatusCode::OK, axum::Json(reply)).into_response()),
            ))
        }
    }
}

/// A refusal by the verifier.
fn refused(
    gateway: &Gateway,
    decision: &Decision,
    message: Option<&Message>,
    action: &Action,
) -> Response {
    let code = decision
        .reason
        .clone()
        .unwrap_or_else(|| ErrorCode::CapabilityNotGranted.as_str().to_owned());
    let known = ErrorCode::from_wire(&code).unwrap_or(ErrorCode::CapabilityNotGranted);
    let detail = decision
        .message
        .clone()
        .unwrap_or_else(|| known.default_message().to_owned());
    if let Some(challenge) = Challenge::for_code(&code) {
        return gateway.resource.unauthorized(
            challenge,
            known,
            &detail,
            decision.dpop_nonce.as_deref(),
        );
    }
    let next = next_step(known, action);
    let text = format!("refused by AgentAuth ({code}): {detail}; {next}");
    match message.and_then(|m| m.id.clone()) {
        Some(id) => {
            let mut data = json!({"code": code, "message": detail, "next": next});
            if let Some(grant) = &decision.grant {
                data["grant"] = json!(grant);
            }
            if let Some(retry) = decision.retry_after_ms {
                data["retryAfterMs"] = json!(retry);
            }
            (
                StatusCode::OK,
                axum::Json(jsonrpc::error(id, jsonrpc::REFUSED, &text, Some(data))),
            )
                .into_response()
        }
        None => problem(StatusCode::FORBIDDEN, known, &text),
    }
}

/// What the agent can do about a refusal.
fn next_step(code: ErrorCode, action: &Action) -> String {
    match code {
        ErrorCode::CapabilityNotGranted => format!(
            "request a grant with capability {} {} for this MCP server and have it approved",
            action.kind, action.resource
        ),
        ErrorCode::RateLimited => "wait retryAfterMs before calling again; the envelope's rate limit is what a person approved".into(),
        ErrorCode::GrantRevoked | ErrorCode::GrantExpired | ErrorCode::GrantNotApproved | ErrorCode::GrantSuspended => {
            "request a new grant (or ask the approver to approve it again)".into()
        }
        ErrorCode::StateUnavailable => "retry later".into(),
        _ => "change the call to fit the grant and its envelope, or request a grant that covers it".into(),
    }
}

/// No decision: fail closed.
fn verify_failed(gateway: &Gateway, error: &VerifyError, message: Option<&Message>) -> Response {
    tracing::warn!(%error, "no decision");
    match error {
        VerifyError::Malformed { code, detail } => match Challenge::for_code(code) {
            Some(challenge) => {
                let known = ErrorCode::from_wire(code).unwrap_or(ErrorCode::TokenMalformed);
                gateway
                    .resource
                    .unauthorized(challenge, known, detail, None)
            }
            None => problem(
                StatusCode::BAD_REQUEST,
                ErrorCode::from_wire(code).unwrap_or(ErrorCode::RequestInvalid),
                detail,
            ),
        },
        VerifyError::Unreachable(_) => {
            let text =
                "the AgentAuth verifier could not be asked, so nothing is allowed; retry later";
            let id = message.and_then(|m| m.id.clone()).unwrap_or(Value::Null);
            let data = json!({"code": ErrorCode::StateUnavailable.as_str(), "message": text});
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(jsonrpc::error(id, jsonrpc::REFUSED, text, Some(data))),
            )
                .into_response()
        }
    }
}

/// A problem+json response.
pub fn problem(status: StatusCode, code: ErrorCode, detail: &str) -> Response {
    let body = Problem::new(code, status.as_u16(), detail).to_json();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}
