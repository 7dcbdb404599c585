//! The agent API (DESIGN §4): agents ask for grants and exchange approved
//! grants for DPoP-bound access tokens. Every replica serves it from its own
//! informer caches.
//!
//! | route | what | module |
//! |---|---|---|
//! | `POST /v1/grants` | create a CapabilityGrant (DPoP, idempotent) | [`grants`] |
//! | `GET /v1/grants/{namespace}/{name}` | its status | [`grants`], [`view`] |
//! | `GET /v1/grants/{namespace}/{name}/events` | status changes (SSE) | [`events`] |
//! | `POST /v1/token` | an access token (RFC 9449 §5; server nonces §8) | [`token`], [`issuer`], [`dpop_nonce`] |
//! | `GET /.well-known/jwks.json` | issuing keys with certificates | [`wellknown`] |
//! | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata | [`wellknown`] |
//! | `GET /metrics`, `/healthz`, `/readyz` | observability | [`health`] |
//! | `/approvals/api/…` | the approval API, when mounted | [`crate::approvals`] |
//!
//! ```text
//!  request ─▶ catch panic ─▶ observe (request id, span, latency by route) ─▶ route
//!                                                                  └─ else 404 / 405 problem
//!  handler ─▶ body (415, 413, 400) ─▶ dpop_auth (401, 503) ─▶ caches ─▶ answer | problem
//! ```
//!
//! Every refusal is RFC 9457 problem+json with a stable code ([`problem`]).

pub mod body;
pub mod dpop_auth;
pub mod dpop_nonce;
pub mod events;
pub mod grants;
pub mod health;
pub mod issuer;
pub mod problem;
pub mod token;
pub mod view;
pub mod wellknown;

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use agentauth_core::dpop::Window;
use agentauth_core::dpop::nonce::NonceIssuer;
use agentauth_signer::KeyHierarchy;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use self::problem::ApiError;
use crate::context::Context;

/// The header carrying a request's id, accepted from the caller when sane
/// and returned on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// What every handler of the agent API shares.
#[derive(Clone)]
pub struct ApiState {
    /// Caches, shared state, audit, metrics, clock.
    pub ctx: Arc<Context>,
    /// The keys that sign tokens.
    pub keys: Arc<KeyHierarchy>,
    /// The externally visible base URL, without a trailing `/`: the tokens'
    /// `iss`, and the prefix of every URL a DPoP proof names (`htu`).
    pub public_url: String,
    /// Accepted age and clock skew of DPoP proofs.
    pub dpop_window: Window,
    /// Lifetime of a token when the agent asks for none (capped by the
    /// grant, the envelope and 1 h).
    pub default_token_ttl_secs: i64,
    /// Server nonces the token endpoint requires in proofs (RFC 9449 §8);
    /// `None` (the default): no nonce is required.
    pub dpop_nonce: Option<Arc<NonceIssuer>>,
}

/// The agent API, with its state.
pub fn router(state: ApiState) -> Router {
    router_with_approvals(state, None)
}

/// The agent API, and the approval API under `/approvals/api` when given.
pub fn router_with_approvals(
    state: ApiState,
    approvals: Option<Arc<crate::approvals::Approvals>>,
) -> Router {
    let mut routes = Router::new();
    if let Some(approvals) = approvals {
        routes = routes.nest("/approvals/api", crate::approvals::router(approvals));
    }
    routes
        .route("/v1/grants", post(grants::create))
        .route("/v1/grants/{namespace}/{name}", get(grants::get))
        .route("/v1/grants/{namespace}/{name}/events", get(events::stream))
        .route("/v1/token", post(token::issue))
        .route("/.well-known/jwks.json", get(wellknown::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(wellknown::metadata),
        )
        .route("/metrics", get(health::metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(CatchPanicLayer::custom(panicked))
        .with_state(state)
}

/// Gives each request an id and a span, and measures it by route.
async fn observe(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_request_id(v))
        .map_or_else(next_request_id, str::to_owned);
    let span = tracing::debug_span!("api", request_id = %id, method = %request.method(), route);
    let mut response = next.run(request).instrument(span).await;
    let metrics = &state.ctx.metrics;
    metrics
        .api_latency
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .api_requests
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

fn is_request_id(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `<process prefix>-<counter>`: unique within a process, and across
/// replicas with overwhelming likelihood.
fn next_request_id() -> String {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        nanos ^ std::process::id().rotate_left(16)
    });
    format!("{prefix:08x}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

async fn not_found() -> ApiError {
    ApiError::invalid("no such route").with_status(StatusCode::NOT_FOUND)
}

async fn method_not_allowed() -> ApiError {
    ApiError::invalid("this route does not take this method")
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

/// A handler panicked: answer 500 instead of dropping the connection. A
/// panic is a bug; it is logged with the request's span.
fn panicked(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("an agent API handler panicked");
    ApiError::invalid("internal error while handling the request")
        .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

/// Splits `namespace/name`, both Kubernetes names.
pub fn split_qualified(s: &str) -> Option<(&str, &str)> {
    let (namespace, name) = s.split_once('/')?;
    (is_dns_label(namespace) && is_object_name(name)).then_some((namespace, name))
}

/// A namespace name: an RFC 1123 label.
pub fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An object name: an RFC 1123 subdomain.
pub fn is_object_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        assert_eq!(split_qualified("ns/a.b-c"), Some(("ns", "a.b-c")));
        for bad in [
            "ns", "/a", "ns/", "ns/a/b", "Ns/a", "ns/a..b", "ns/-a", "n s/a",
        ] {
            assert_eq!(split_qualified(bad), None, "{bad}");
        }
    }

    #[test]
    fn request_ids() {
        assert!(is_request_id("abc-123_x.y"));
        assert!(!is_request_id(""));
        assert!(!is_request_id("a b"));
        assert!(!is_request_id(&"a".repeat(65)));
        assert_ne!(next_request_id(), next_request_id());
    }
}
