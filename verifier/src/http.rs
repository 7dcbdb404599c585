//! The verifier's HTTP/1.1 limits, for the shared accept loop
//! ([`agentauth_service::http::serve`]): plain HTTP, keep-alive, a 10 s
//! header read timeout, and in-flight requests drained for at most 10 s at
//! shutdown.
//!
//! The read buffer may grow to [`MAX_BUF`] so that an oversized header
//! section (up to 2 MiB) still reaches the handlers, which refuse it with a
//! problem+json 400 instead of hyper's bare 431. Beyond that hyper answers
//! 431 itself.

use std::future::Future;
use std::time::Duration;

use agentauth_service::http::{Limits, Plain};
use axum::Router;
use tokio::net::TcpListener;

/// The largest read buffer of one connection.
pub(crate) const MAX_BUF: usize = 2 * 1024 * 1024 + 64 * 1024;

const LIMITS: Limits = Limits {
    header_read_timeout: Duration::from_secs(10),
    max_buf_size: Some(MAX_BUF),
    drain: Duration::from_secs(10),
};

/// Serves `router` on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    agentauth_service::http::serve(listener, Plain, router, LIMITS, shutdown).await;
}
