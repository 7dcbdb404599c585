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
//! The path is normalized as DPoP `htu` is (one normalization, core's
//! [`agentauth_core::htu`]) before the route map sees it, and ambiguous
//! paths are refused ([`crate::route_map::route_path`]).
//!
//! What the request does and for which audience come from configuration
//! only (the `action` module): with `--route-map`, the matched route (its amount and
//! currency from the sources it names); without one, the action headers,
//! which the mesh must set (Envoy `headers_to_add` overrides the client's)
//! and strip when a client sends them (see the README). The audience is the
//! route's, else `--ext-authz-audience`, else the single `--audience`;
//! never a request header. A request with two `DPoP` or two
//! `Authorization` headers is refused (RFC 9449 §4.3).

mod action;

use std::time::Instant;

use agentauth_core::ErrorCode;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{HOST, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::body::{MAX_HEADER_BYTES, header_bytes, json, read_body};
use crate::config::VerifierConfig;
use crate::problem::Problem;
use crate::route_map::{RouteMap, route_path};
use crate::verify::{Decision, Input, Outcome, Verifier};
use action::{ActionHeaders, single};

/// The header carrying the reason code of a denial.
pub const REASON_HEADER: &str = "x-agentauth-reason";

/// How the ext_authz front reads requests.
#[derive(Debug)]
pub struct ExtAuthz {
    prefix: String,
    scheme: String,
    headers: ActionHeaders,
    routes: Option<RouteMap>,
    /// The listener's audience: `--ext-authz-audience`, else the only
    /// `--audience`.
    audience: Option<String>,
    audiences: Vec<String>,
}

impl ExtAuthz {
    /// From the configuration, with `routes` loaded from `--route-map`
    /// (`None`: direct header mode).
    pub fn new(config: &VerifierConfig, routes: Option<RouteMap>) -> Result<Self, String> {
        let header = |flag: &str, name: &str| {
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("{flag} {name:?} is not a header name"))
        };
        let known = |aud: &str, what: &str| {
            if config.audiences.iter().any(|a| a == aud) {
                Ok(())
            } else {
                Err(format!(
                    "{what} {aud:?} is not one of --audience ({})",
                    config.audiences.join(", ")
                ))
            }
        };
        if let Some(aud) = &config.ext_authz_audience {
            known(aud, "--ext-authz-audience")?;
        }
        if let Some(routes) = &routes {
            for aud in routes.audiences() {
                known(aud, "the route map's audience")?;
            }
        }
        let audience =
            config
                .ext_authz_audience
                .clone()
                .or_else(|| match config.audiences.as_slice() {
                    [only] => Some(only.clone()),
                    _ => None,
                });
        if audience.is_none() {
            tracing::warn!(
                "ext_authz has no audience for requests whose route names none: \
                 set --ext-authz-audience; until then those requests are refused"
            );
        }
        Ok(ExtAuthz {
            prefix: config.ext_authz_prefix.clone(),
            scheme: config.ext_authz_scheme.clone(),
            headers: ActionHeaders {
                kind: header("--action-type-header", &config.action_type_header)?,
                resource: header("--resource-header", &config.resource_header)?,
                action: header("--action-header", &config.action_header)?,
                name: header("--name-header", &config.name_header)?,
                amount: header("--amount-header", &config.amount_header)?,
                currency: header("--currency-header", &config.currency_header)?,
            },
            routes,
            audience,
            audiences: config.audiences.clone(),
        })
    }
}

/// Handles every method under the ext_authz prefix (the router's handler
/// passes its shared parts).
pub async fn handle(verifier: &Verifier, ext: &ExtAuthz, request: Request) -> Response {
    let started = Instant::now();
    // The body is read only when a route takes its amount from it.
    let (head, body) = request.into_parts();
    let response = match decide(verifier, ext, &head, body).await {
        Ok(response) => response,
        Err(problem) => {
            verifier.metrics().invalid(problem.code);
            problem.into_response()
        }
    };
    verifier
        .metrics()
        .latency
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn decide(
    verifier: &Verifier,
    ext: &ExtAuthz,
    request: &Parts,
    body: Body,
) -> Result<Response, Problem> {
    let headers = &request.headers;
    if header_bytes(headers) > MAX_HEADER_BYTES {
        return Err(Problem::bad_request(
            ErrorCode::InputTooLarge,
            "the header section is larger than 32 KiB",
        ));
    }
    let raw = request
        .uri
        .path()
        .strip_prefix(ext.prefix.as_str())
        .unwrap_or("/");
    let path = route_path(raw)?;
    let method = request.method.as_str();
    let url = proof_url(ext, request, &path)?;
    let token = access_token(headers)?;
    // RFC 9449 §4.3: not more than one DPoP header.
    let dpop = single(headers, "dpop").map_err(|p| Problem {
        status: StatusCode::UNAUTHORIZED,
        code: ErrorCode::DpopInvalid,
        detail: format!("{} (RFC 9449 §4.3: exactly one DPoP header)", p.detail),
    })?;
    let (action, route_audience) = match &ext.routes {
        None => (action::from_headers(&ext.headers, headers)?, None),
        Some(routes) => {
            let matched = action::route(routes, method, &path)?;
            let route_audience = matched.route.audience.as_deref();
            let bytes = if action::needs_body(&matched) {
                Some(read_body(body).await.ok_or_else(|| {
                    Problem::bad_request(ErrorCode::InputTooLarge, "the body is larger than 64 KiB")
                })?)
            } else {
                None
            };
            (
                action::from_route(matched, headers, bytes.as_deref())?,
                route_audience,
            )
        }
    };
    let audience = action::audience(route_audience, ext.audience.as_deref(), &ext.audiences)?;
    let input = Input {
        token,
        dpop,
        method,
        url: &url,
        action: &action,
        audience: Some(audience),
    };
    match verifier.verify(&input).await {
        Outcome::Decision(decision) => Ok(answer(&decision)),
        Outcome::Invalid(problem) => Err(problem),
    }
}

/// The URL the proof must name: `<x-forwarded-proto or --ext-authz-scheme>://<Host><path>`.
fn proof_url(ext: &ExtAuthz, request: &Parts, path: &str) -> Result<String, Problem> {
    let headers = &request.headers;
    let host =
        single(headers, HOST.as_str())?.or_else(|| request.uri.authority().map(|a| a.as_str()));
    let host =
        host.ok_or_else(|| Problem::bad_request(ErrorCode::RequestInvalid, "no Host header"))?;
    let scheme = match single(headers, "x-forwarded-proto")? {
        Some(proto @ ("http" | "https")) => proto,
        _ => ext.scheme.as_str(),
    };
    Ok(format!("{scheme}://{host}{path}"))
}

/// The one `Authorization` header; its absence or a second one is a 401.
fn access_token(headers: &HeaderMap) -> Result<&str, Problem> {
    match single(headers, "authorization") {
        Ok(Some(token)) => Ok(token),
        Ok(None) => {
            let mut problem = Problem::bad_request(
                ErrorCode::RequestInvalid,
                "no access token: send Authorization: DPoP <token>",
            );
            problem.status = StatusCode::UNAUTHORIZED;
            Err(problem)
        }
        Err(problem) => {
            let mut problem = Problem {
                code: ErrorCode::TokenMalformed,
                ..problem
            };
            problem.status = StatusCode::UNAUTHORIZED;
            Err(problem)
        }
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
        json(status, decision)
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
    crate::dpop_nonce::challenge(decision, &mut response);
    response
}
