//! The HTTP surface of the verifier.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/verify` | the JSON API ([`crate::wire`]); 200 for decisions, 400 problem+json otherwise |
//! | `<prefix>/**` (any method) | the Envoy ext_authz HTTP service ([`crate::ext_authz`]) |
//! | `GET /healthz` | live while serving |
//! | `GET /readyz` | ready when a key is trusted, invalidations arrive and the state answers |
//! | `GET /metrics` | Prometheus text |
//!
//! Handlers take the raw request: no extractor or middleware layers on the
//! hot path (DESIGN §11), the body read under a hard limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_core::ErrorCode;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

pub use crate::body::{MAX_BODY, MAX_HEADER_BYTES};
use crate::body::{header_bytes, json, read_body};
use crate::ext_authz::ExtAuthz;
use crate::problem::Problem;
use crate::verify::{Input, Outcome, Verifier};
use crate::wire::VerifyRequest;

/// What every handler shares.
#[derive(Debug)]
pub struct App {
    /// The decision maker.
    pub verifier: Arc<Verifier>,
    /// The ext_authz front.
    pub ext_authz: ExtAuthz,
}

/// The router, with the ext_authz service under `ext_authz_prefix`.
pub fn router(app: Arc<App>, ext_authz_prefix: &str) -> Router {
    Router::new()
        .route("/v1/verify", post(verify))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(ext_authz_prefix, any(ext_authz))
        .route(&format!("{ext_authz_prefix}/{{*path}}"), any(ext_authz))
        .with_state(app)
}

/// Handles every method under the ext_authz prefix.
async fn ext_authz(State(app): State<Arc<App>>, request: Request) -> Response {
    crate::ext_authz::handle(&app.verifier, &app.ext_authz, request).await
}

/// Handles `POST /v1/verify`.
async fn verify(State(app): State<Arc<App>>, request: Request) -> Response {
    let started = Instant::now();
    let verifier = &app.verifier;
    let response = match read_request(request).await {
        Err(problem) => {
            verifier.metrics().invalid(problem.code);
            problem.into_response()
        }
        Ok(bytes) => match serde_json::from_slice::<VerifyRequest<'_>>(&bytes) {
            Err(e) => {
                verifier.metrics().invalid(ErrorCode::JsonInvalid);
                let detail = format!("invalid verification request: {e}");
                Problem::bad_request(ErrorCode::JsonInvalid, detail).into_response()
            }
            Ok(body) => {
                let input = Input {
                    token: &body.token,
                    dpop: body.dpop.as_deref(),
                    method: &body.method,
                    url: &body.url,
                    action: &body.action,
                    audience: body.audience.as_deref(),
                };
                match verifier.verify(&input).await {
                    Outcome::Decision(decision) => json(StatusCode::OK, &decision),
                    Outcome::Invalid(problem) => problem.into_response(),
                }
            }
        },
    };
    verifier
        .metrics()
        .latency
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The body of a verification request, checked for size.
async fn read_request(request: Request) -> Result<Bytes, Problem> {
    let too_large = |what: &str| Problem::bad_request(ErrorCode::InputTooLarge, what);
    if header_bytes(request.headers()) > MAX_HEADER_BYTES {
        return Err(too_large("the header section is larger than 32 KiB"));
    }
    read_body(request.into_body())
        .await
        .ok_or_else(|| too_large("the body is larger than 64 KiB"))
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// How long `/readyz` waits for the shared state.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let verifier = &app.verifier;
    let not_ready = |why: &str| {
        let mut problem = Problem::bad_request(ErrorCode::StateUnavailable, why);
        problem.status = StatusCode::SERVICE_UNAVAILABLE;
        problem.into_response()
    };
    if !verifier.keys().has_keys() {
        return not_ready("no token-signing key is trusted yet (JWKS not loaded)");
    }
    if !verifier.grants().is_live() {
        return not_ready("not subscribed to grant invalidations yet");
    }
    match tokio::time::timeout(READY_TIMEOUT, verifier.state().is_revoked("readyz-probe")).await {
        Ok(Ok(_)) => "ok\n".into_response(),
        Ok(Err(error)) => not_ready(&format!("the shared state does not answer: {error}")),
        Err(_) => not_ready("the shared state did not answer within a second"),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let verifier = &app.verifier;
    let entries = i64::try_from(verifier.token_cache_len()).unwrap_or(i64::MAX);
    verifier.metrics().token_cache_entries.set(entries);
    let mut response = verifier.metrics().render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
