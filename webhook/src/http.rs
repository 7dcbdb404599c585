//! The HTTPS endpoints and their accept loop.
//!
//! ```text
//!  accept ─▶ TLS handshake (10 s) ─▶ http1 connection ─▶ POST /validate   AdmissionReview
//!                                                      ├▶ POST /mutate     AdmissionReview (Agent creator)
//!                                                      ├▶ GET  /healthz    the process answers
//!                                                      ├▶ GET  /readyz     serving, not stopping
//!                                                      └▶ GET  /metrics    Prometheus text
//!  shutdown ─▶ not ready ─▶ stop accepting ─▶ in-flight reviews finish (at most 10 s)
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentauth_service::http::{Handshake, Limits};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::lookup::Lookup;
use crate::metrics::Metrics;
use crate::review;
use crate::validate::Validator;

/// The largest review accepted: an object and its old version, each at most
/// etcd's 1.5 MiB, with room for the envelope around them.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// How long a TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// How long in-flight requests may take to finish after shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// What the handlers share.
pub(crate) struct AppState<L> {
    pub(crate) validator: Validator<L>,
    pub(crate) metrics: Metrics,
    pub(crate) ready: AtomicBool,
}

/// The webhook's routes.
pub(crate) fn router<L: Lookup>(state: Arc<AppState<L>>) -> Router {
    Router::new()
        .route("/validate", post(validate::<L>))
        .route("/mutate", post(mutate::<L>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<L>))
        .route("/metrics", get(metrics::<L>))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn validate<L: Lookup>(State(state): State<Arc<AppState<L>>>, body: Bytes) -> Response {
    match review::handle(&state.validator, &state.metrics, &body).await {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(bad) => {
            tracing::warn!(%bad, "refused a malformed admission review");
            (StatusCode::BAD_REQUEST, bad.to_string()).into_response()
        }
    }
}

async fn mutate<L: Lookup>(State(state): State<Arc<AppState<L>>>, body: Bytes) -> Response {
    match review::handle_mutation(&state.metrics, &body) {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(bad) => {
            tracing::warn!(%bad, "refused a malformed admission review");
            (StatusCode::BAD_REQUEST, bad.to_string()).into_response()
        }
    }
}

async fn readyz<L: Lookup>(State(state): State<Arc<AppState<L>>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response()
    }
}

async fn metrics<L: Lookup>(State(state): State<Arc<AppState<L>>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The TLS handshake of each connection, at most [`HANDSHAKE`].
#[derive(Clone)]
struct Tls(TlsAcceptor);

impl Handshake for Tls {
    type Stream = TlsStream<TcpStream>;

    async fn handshake(self, stream: TcpStream, peer: SocketAddr) -> Option<Self::Stream> {
        match tokio::time::timeout(HANDSHAKE, self.0.accept(stream)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, with
/// the shared accept loop ([`agentauth_service::http::serve`]).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        max_buf_size: None,
        drain: DRAIN,
    };
    agentauth_service::http::serve(listener, Tls(tls), router, limits, shutdown).await;
}
