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
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use http_body_util::{BodyExt, Limited};

use crate::ext_authz::ExtAuthz;
use crate::problem::Problem;
use crate::verify::{Input, Outcome, Verifier};
use crate::wire::VerifyRequest;

/// The largest `POST /v1/verify` body: a token (≤ 8 KiB), a proof (≤ 2 KiB),
/// a URL (≤ 4 KiB) and an action fit many times over.
pub const MAX_BODY: usize = 64 * 1024;

/// The largest header section a handler reads (names and values).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

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
        .route(ext_authz_prefix, any(crate::ext_authz::handle))
        .route(
            &format!("{ext_authz_prefix}/{{*path}}"),
            any(crate::ext_authz::handle),
        )
        .with_state(app)
}

/// The size of a header section as sent (names, values, `: ` and CRLF).
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
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
                    Outcome::Decision(decision) => json(StatusCode::OK, &decision.to_response()),
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
