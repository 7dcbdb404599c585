//! `/healthz`, `/readyz` and `/metrics` (DESIGN §12).
//!
//! Live while the process serves HTTP. Ready when every informer cache has
//! been filled once (the token path reads only them) and the shared state
//! answers a read within a second (replay checks and revocations need it:
//! a replica that cannot reach it refuses tokens, so it should get no
//! traffic).

use std::time::Duration;

use agentauth_core::ErrorCode;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;

use super::ApiState;
use super::problem::ApiError;

/// How long `/readyz` waits for the shared state.
const STATE_TIMEOUT: Duration = Duration::from_secs(1);

/// Handles `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Handles `GET /readyz`.
pub async fn readyz(State(state): State<ApiState>) -> Response {
    let caches = &state.ctx.caches;
    let synced = [
        caches.agents.wait_until_ready().now_or_never(),
        caches.grants.wait_until_ready().now_or_never(),
        caches.envelopes.wait_until_ready().now_or_never(),
        caches.approvers.wait_until_ready().now_or_never(),
    ]
    .iter()
    .all(|ready| matches!(ready, Some(Ok(()))));
    if !synced {
        return not_ready("the informer caches are not filled yet");
    }
    let probe = state.ctx.state.is_revoked("readyz-probe");
    match tokio::time::timeout(STATE_TIMEOUT, probe).await {
        Ok(Ok(_)) => "ok\n".into_response(),
        Ok(Err(e)) => not_ready(&format!("the shared state does not answer: {e}")),
        Err(_) => not_ready("the shared state did not answer within a second"),
    }
}

fn not_ready(why: &str) -> Response {
    ApiError::new(ErrorCode::StateUnavailable, why)
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
        .into_response()
}

/// Handles `GET /metrics` (Prometheus text format).
pub async fn metrics(State(state): State<ApiState>) -> Response {
    crate::cache_gauges::refresh(&state.ctx.caches, &state.ctx.metrics);
    let mut response = state.ctx.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
