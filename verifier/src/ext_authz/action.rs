//! What an ext_authz request asks to do, and for which audience, from
//! configured sources only.
//!
//! ```text
//!  --route-map given ─▶ route (normalized path) ─▶ type, resource, action, name: the route
//!                                                  amount, currency: the route's sources
//!                                                  audience: route.audience | --ext-authz-audience | the one --audience
//!  no route map      ─▶ the action headers (set by the mesh; see the README's Envoy config)
//!                                                  audience: --ext-authz-audience | the one --audience
//! ```
//!
//! With a route map, the action headers are not read at all: an agent that
//! sends `x-agentauth-amount: 0` or `x-agentauth-action-type: read` itself
//! changes nothing. The audience never comes from the request: a header
//! naming it would let an agent present a token for another provider.

use agentauth_core::ErrorCode;
use agentauth_core::capability::CapabilityType;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use serde_json::Value;

use crate::problem::Problem;
use crate::route_map::{Matched, RouteMap, Source};
use crate::wire::Action;

/// The header names of direct header mode.
#[derive(Debug)]
pub(super) struct ActionHeaders {
    pub kind: HeaderName,
    pub resource: HeaderName,
    pub action: HeaderName,
    pub name: HeaderName,
    pub amount: HeaderName,
    pub currency: HeaderName,
}

/// The one value of header `name`, refusing a repeated one (which of two
/// values a backend would use is not ours to guess).
pub(super) fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Problem> {
    let invalid = |m: String| Problem::bad_request(ErrorCode::RequestInvalid, m);
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(invalid(format!("more than one {name} header"))),
        (Some(value), None) => value
            .to_str()
            .map(Some)
            .map_err(|_| invalid(format!("header {name} is not visible ASCII"))),
    }
}

/// The action of a request in direct header mode.
pub(super) fn from_headers(h: &ActionHeaders, headers: &HeaderMap) -> Result<Action, Problem> {
    let invalid = |m: String| Problem::bad_request(ErrorCode::RequestInvalid, m);
    let text = |name: &HeaderName| single(headers, name.as_str()).map(|v| v.map(str::to_owned));
    let kind = text(&h.kind)?.ok_or_else(|| {
        invalid(format!(
            "no action: the mesh must set {} (there is no --route-map)",
            h.kind
        ))
    })?;
    let kind: CapabilityType = serde_json::from_value(Value::String(kind))
        .map_err(|_| invalid(format!("header {} names no action type", h.kind)))?;
    let resource =
        text(&h.resource)?.ok_or_else(|| invalid(format!("header {} is missing", h.resource)))?;
    Ok(Action {
        kind,
        resource,
        action: text(&h.action)?,
        name: text(&h.name)?,
        amount: text(&h.amount)?,
        currency: text(&h.currency)?,
    })
}

/// Whether a matched route needs the request body.
pub(super) fn needs_body(matched: &Matched<'_>) -> bool {
    let body = |s: &Option<Source>| matches!(s, Some(Source::Body(_)));
    body(&matched.route.amount) || body(&matched.route.currency)
}

/// The action of a request in route-map mode; `body` is the request body
/// when the route reads it.
pub(super) fn from_route(
    matched: Matched<'_>,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Result<Action, Problem> {
    let route = matched.route;
    let json = match body {
        Some(bytes) => Some(serde_json::from_slice::<Value>(bytes).map_err(|e| {
            Problem::bad_request(
                ErrorCode::RequestInvalid,
                format!(
                    "the route reads the JSON body, which does not parse ({e}); \
                     Envoy must send it whole (with_request_body, allow_partial_message: false)"
                ),
            )
        })?),
        None => None,
    };
    let read = |source: &Option<Source>| -> Result<Option<String>, Problem> {
        source
            .as_ref()
            .map(|s| from_source(s, headers, json.as_ref()))
            .transpose()
    };
    Ok(Action {
        kind: route.kind,
        resource: matched.resource,
        action: route.action.clone(),
        name: route.name.clone(),
        amount: read(&route.amount)?,
        currency: read(&route.currency)?,
    })
}

fn from_source(
    source: &Source,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Result<String, Problem> {
    let invalid = |m: String| Problem::bad_request(ErrorCode::RequestInvalid, m);
    match source {
        Source::Value(value) => Ok(value.clone()),
        Source::Header(name) => single(headers, &name.to_ascii_lowercase())?
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("header {name} (set by the mesh) is missing"))),
        Source::Body(pointer) => match body.and_then(|b| b.pointer(pointer)) {
            Some(Value::String(s)) => Ok(s.clone()),
            // A JSON number as written (serde_json keeps integers exact; a
            // fraction is re-printed in its shortest form, which parses to
            // the same decimal or is refused as `amount_invalid`).
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(invalid(format!(
                "the JSON body has no string or number at {pointer}"
            ))),
        },
    }
}

/// The audience of a request: the route's, else the listener's.
pub(super) fn audience<'a>(
    route: Option<&'a str>,
    listener: Option<&'a str>,
    audiences: &[String],
) -> Result<&'a str, Problem> {
    route.or(listener).ok_or_else(|| Problem {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: ErrorCode::RequestInvalid,
        detail: format!(
            "this verifier answers for several audiences ({}) and ext_authz has none configured \
             for this request: set --ext-authz-audience (AGENTAUTH_EXT_AUTHZ_AUDIENCE) or \
             `audience` on the route in --route-map",
            audiences.join(", ")
        ),
    })
}

/// The route of a request, when a route map is configured.
pub(super) fn route<'r>(
    routes: &'r RouteMap,
    method: &str,
    path: &str,
) -> Result<Matched<'r>, Problem> {
    routes.find(method, path).ok_or_else(|| {
        Problem::bad_request(
            ErrorCode::RequestInvalid,
            format!("no route of --route-map matches {method} {path}"),
        )
    })
}
