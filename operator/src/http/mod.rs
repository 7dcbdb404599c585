//! The operator's HTTP/1.1 accept loop: hyper directly rather than
//! `axum::serve`, so that a slow or stalled client cannot hold a connection
//! (or the whole server) forever.
//!
//! ```text
//!  connection cap (semaphore) ─▶ accept ─▶ TCP_NODELAY
//!    ─▶ http1 connection (keep-alive, header read deadline, header size limit)
//!    ─▶ request body wrapped in a read deadline ([`deadline`]) ─▶ axum Router
//!  shutdown ─▶ stop accepting ─▶ in-flight requests finish (at most 10 s)
//! ```
//!
//! Three limits, each closing one way to tie the server up (issue 12 item 6):
//!
//! - **header read deadline**: a connection whose next request's header
//!   section is not complete in time is closed — both a client trickling
//!   header bytes (slowloris) and an idle keep-alive connection;
//! - **body read deadline**: a handler reading the body gets an error once
//!   the deadline after the header section has passed; the agent and
//!   approval APIs answer it with a 408 `request_timeout` problem;
//! - **connection cap**: at most `max_connections` connections are served at
//!   once; beyond that new ones wait in the listen backlog until one closes,
//!   which the two deadlines guarantee happens for idle or slow ones.

pub mod deadline;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use self::deadline::DeadlineBody;

/// The largest header section of a request (hyper answers 431 beyond it).
/// The API's headers are a DPoP proof, a session cookie and a few short
/// ones: a few KiB.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The largest read buffer of one connection. One read may fill the buffer
/// past the header limit before hyper checks it, hence twice that.
const MAX_BUF: usize = 2 * MAX_HEADER_BYTES;

/// How long in-flight requests may take to finish after shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// How often reaching the connection cap is logged, at most.
const CAP_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The limits every connection is served with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// The longest a request's header section may take to arrive (counted
    /// from the first byte read for it, or from the end of the previous
    /// request on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// The longest reading a request's whole body may take, counted from
    /// the end of its header section.
    pub body_read_timeout: Duration,
    /// The most connections served at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    /// 10 s to send the header section, 10 s to send the body (64 KiB at
    /// most: ample on any link a client would use), 1024 connections.
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` resolves,
/// then lets in-flight requests finish (at most 10 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let body_timeout = limits.body_read_timeout;
    let router = router.layer(axum::middleware::map_request(
        move |request: Request| async move {
            request.map(|body| Body::new(DeadlineBody::new(body, body_timeout)))
        },
    ));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut cap_logged: Option<Instant> = None;
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // The permit is taken before accepting: at the cap, new connections
        // wait in the kernel's backlog rather than in memory here.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        if permits.available_permits() == 0
            && cap_logged.is_none_or(|at| at.elapsed() >= CAP_LOG_INTERVAL)
        {
            cap_logged = Some(Instant::now());
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection cap reached; new connections wait until one closes"
            );
        }
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // EMFILE and friends: wait a little rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN:?}; closing");
    }
}
