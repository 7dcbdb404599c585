//! The HTTP/1.1 accept loop of the verifier and the webhook: hyper directly
//! rather than `axum::serve`, so that each service sets its own limits.
//!
//! ```text
//!  accept ─▶ TCP_NODELAY ─▶ handshake (plain, or the webhook's TLS) ─▶ http1 connection
//!           (keep-alive, header read timeout, buffer limit) ─▶ axum Router ─▶ handlers
//!  shutdown ─▶ stop accepting ─▶ in-flight requests finish (at most `drain`)
//! ```
//!
//! A failed accept (EMFILE and friends) waits 10 ms rather than spin. The
//! handshake runs in the connection's own task, so a slow client holds up
//! only itself.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// What happens to an accepted connection before HTTP starts on it.
pub trait Handshake: Clone + Send + 'static {
    /// The stream HTTP runs on.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Turns an accepted connection into the stream HTTP runs on; `None`
    /// drops it (the handshake failed, and was logged).
    fn handshake(
        self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = Option<Self::Stream>> + Send;
}

/// Plain HTTP: no handshake.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl Handshake for Plain {
    type Stream = TcpStream;

    async fn handshake(self, stream: TcpStream, _: SocketAddr) -> Option<TcpStream> {
        Some(stream)
    }
}

/// The limits of one service's connections.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// The largest read buffer of one connection (hyper's default: `None`).
    pub max_buf_size: Option<usize>,
    /// How long in-flight requests may take to finish after shutdown.
    pub drain: Duration,
}

/// Serves `router` on `listener`, each connection after `handshake`, until
/// `shutdown` resolves; then waits for in-flight requests at most
/// `limits.drain`.
pub async fn serve<H: Handshake>(
    listener: TcpListener,
    handshake: H,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    if let Some(max) = limits.max_buf_size {
        builder.max_buf_size(max);
    }
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (handshake, builder, router) = (handshake.clone(), builder.clone(), router.clone());
                // The watcher holds shutdown's drain open from here on,
                // handshake included.
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Some(stream) = handshake.handshake(stream, peer).await else {
                        return;
                    };
                    let service = TowerToHyperService::new(router);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {:?}; closing", limits.drain);
    }
}
