//! The Envoy `ext_authz` HTTP service, so that a provider behind Envoy or
//! Istio needs no code.
//!
//! ```text
//!  agent ──▶ Envoy ──(method, <prefix><path>, Host, Authorization, DPoP,
//!                      x-forwarded-proto, action headers)──▶ verifier
//!            ◀── 200 allow  (x-agentauth-agent, x-agentauth-grant,
//!                            x-agentauth-revocation-watermark)
//!            ◀── 403 deny   (x-agentauth-reason: <code>; JSON body as /v1/verify)
//!            ◀── 400/401 problem+json: nothing to decide on
//! ```
//!
//! The URL the proof must name is `<x-forwarded-proto or --ext-authz-scheme>://<Host><path>`.
//! The action comes from the configured headers when the type header is
//! present, else from the route map. Those headers must be set by the mesh
//! (Envoy `authorization_request.headers_to_add` overrides the client's),
//! never passed through from the agent: an agent must not name its own action.

use std::sync::Arc;
use std::time::Instant;

use agentauth_core::ErrorCode;
use agentauth_core::capability::CapabilityType;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, HOST, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::config::VerifierConfig;
use crate::problem::Problem;
use crate::route_map::RouteMap;
use crate::routes::{App, MAX_HEADER_BYTES, header_bytes, json};
use crate::verify::{Decision, Input, Outcome};
use crate::wire::Action;

/// The header carrying the reason code of a denial.
pub const REASON_HEADER: &str = "x-agentauth-reason";

/// How the ext_authz front reads requests.
#[derive(Debug)]
pub struct ExtAuthz {
    prefix: String,
    scheme: String,
    kind: HeaderName,
    resource: HeaderName,
    action: HeaderName,
    name: HeaderName,
    amount: HeaderName,
    currency: HeaderName,
    routes: RouteMap,
}

impl ExtAuthz {
    /// From the configuration, with `routes` loaded from `--route-map`.
    pub fn new(config: &VerifierConfig, routes: RouteMap) -> Result<Self, String> {
        let header = |flag: &str, name: &str| {
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("{flag} {name:?} is not a header name"))
        };
        Ok(ExtAuthz {
            prefix: config.ext_authz_prefix.clone(),
            scheme: config.ext_authz_scheme.clone(),
            kind: header("--action-type-header", &config.action_type_header)?,
            resource: header("--resource-header", &config.resource_header)?,
            action: header("--action-header", &config.action_header)?,
            name: header("--name-header", &config.name_header)?,
            amount: header("--amount-header", &config.amount_header)?,
            currency: header("--currency-header", &config.currency_header)?,
            routes,
        })
    }

    /// The action of a request: from the headers, else the route map.
    fn action(&self, headers: &HeaderMap, method: &str, path: &str) -> Result<Action, Problem> {
        let invalid = |m: String| Problem::bad_request(ErrorCode::RequestInvalid, m);
        let text = |name: &HeaderName| -> Result<Option<String>, Problem> {
            headers
                .get(name)
                .map(|v| {
                    v.to_str()
                        .map(str::to_owned)
                        .map_err(|_| invalid(format!("header {name} is not visible ASCII")))
                })
                .transpose()
        };
        let (amount, currency) = (text(&self.amount)?, text(&self.currency)?);
        if let Some(kind) = text(&self.kind)? {
            let kind: CapabilityType = serde_json::from_value(serde_json::Value::String(kind))
                .map_err(|_| invalid(format!("header {} names no action type", self.kind)))?;
            let resource = text(&self.resource)?
                .ok_or_else(|| invalid(format!("header {} is missing", self.resource)))?;
            return Ok(Action {
                kind,
                resource,
                action: text(&self.action)?,
                name: text(&self.name)?,
                amount,
                currency,
            });
        }
        let matched = self.routes.find(method, path).ok_or_else(|| {
            invalid(format!(
                "no action header ({}) and no route for this request",
                self.kind
            ))
        })?;
        Ok(Action {
            kind: matched.route.kind,
            resource: matched.resource,
            action: matched.route.action.clone(),
            name: matched.route.name.clone(),
            amount,
            currency,
        })
    }
}

/// Handles every method under the ext_authz prefix.
pub async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let started = Instant::now();
    // Envoy sends no body unless told to; only the head is read.
    let (head, _body) = request.into_parts();
    let response = match decide(&app, &head).await {
        Ok(response) => response,
        Err(problem) => {
            app.verifier.metrics().invalid(problem.code);
            problem.into_response()
        }
    };
    app.verifier
        .metrics()
        .latency
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn decide(app: &App, request: &Parts) -> Result<Response, Problem> {
    let ext = &app.ext_authz;
    let headers = &request.headers;
    let invalid = |m: &str| Problem::bad_request(ErrorCode::RequestInvalid, m);
    if header_bytes(headers) > MAX_HEADER_BYTES {
        return Err(Problem::bad_request(
            ErrorCode::InputTooLarge,
            "the header section is larger than 32 KiB",
        ));
    }
    let path = request
        .uri
        .path()
        .strip_prefix(ext.prefix.as_str())
        .unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    let method = request.method.as_str();
    let value = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = value(&HOST).or_else(|| request.uri.authority().map(|a| a.as_str()));
    let host = host.ok_or_else(|| invalid("no Host header"))?;
    let scheme = match value(&HeaderName::from_static("x-forwarded-proto")) {
        Some(proto @ ("http" | "https")) => proto,
        _ => ext.scheme.as_str(),
    };
    let url = format!("{scheme}://{host}{path}");
    let Some(token) = headers.get(AUTHORIZATION) else {
        let mut problem = invalid("no access token: send Authorization: DPoP <token>");
        problem.status = StatusCode::UNAUTHORIZED;
        return Err(problem);
    };
    let token = token.to_str().map_err(|_| {
        Problem::bad_request(
            ErrorCode::TokenMalformed,
            "Authorization is not visible ASCII",
        )
    })?;
    let dpop = value(&HeaderName::from_static("dpop"));
    let audience = value(&HeaderName::from_static("x-agentauth-audience"));
    let action = ext.action(headers, method, path)?;
    let input = Input {
        token,
        dpop,
        method,
        url: &url,
        action: &action,
        audience,
    };
    match app.verifier.verify(&input).await {
        Outcome::Decision(decision) => Ok(answer(&decision)),
        Outcome::Invalid(problem) => Err(problem),
    }
}

fn answer(decision: &Decision) -> Response {
    let (status, reason) = match decision.reason {
        None => (StatusCode::OK, None),
        Some(code) => (StatusCode::FORBIDDEN, Some(code)),
    };
    let mut response = if decision.allow {
        StatusCode::OK.into_response()
    } else {
        json(status, &decision.to_response())
    };
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set(
        "x-agentauth-revocation-watermark",
        &decision.watermark_ms.to_string(),
    );
    if let Some(agent) = &decision.agent {
        set("x-agentauth-agent", agent);
    }
    if let Some(grant) = &decision.grant {
        set("x-agentauth-grant", grant);
    }
    if let Some(code) = reason {
        set(REASON_HEADER, code.as_str());
        if code.as_str().starts_with("dpop_") {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("DPoP algs=\"ES256\", error=\"invalid_dpop_proof\""),
            );
        }
    }
    if let Some(retry_ms) = decision.retry_after_ms
        && let Ok(value) = HeaderValue::from_str(&retry_ms.div_ceil(1000).to_string())
    {
        headers.insert(RETRY_AFTER, value);
    }
    response
}
