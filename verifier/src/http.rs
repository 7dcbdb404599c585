//! The HTTP/1.1 accept loop: hyper directly rather than `axum::serve`, so
//! that the verifier sets its own limits.
//!
//! ```text
//!  accept ─▶ TCP_NODELAY ─▶ http1 connection (keep-alive, header read timeout,
//!                           buffer limit) ─▶ axum Router ─▶ handlers
//!  shutdown ─▶ stop accepting ─▶ in-flight requests finish (at most 10 s)
//! ```
//!
//! The read buffer may grow to [`MAX_BUF`] so that an oversized header
//! section (up to 2 MiB) still reaches the handlers, which refuse it with a
//! problem+json 400 instead of hyper's bare 431. Beyond that hyper answers
//! 431 itself.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// The largest read buffer of one connection.
pub(crate) const MAX_BUF: usize = 2 * 1024 * 1024 + 64 * 1024;

/// How long in-flight requests may take to finish after shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // EMFILE and friends: wait a little rather than spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN:?}; closing");
    }
}
