//! `agentauth archiver`: connects Redis, the store and the root key, serves
//! `/metrics` and `/healthz`, and runs the [`Archiver`] until shutdown.

use std::future::Future;
use std::sync::Arc;

use agentauth_state::RedisState;
use axum::Router;
use axum::routing::get;

use crate::config::ArchiverArgs;
use crate::{Archiver, Metrics};

/// Why the archiver could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A flag is wrong.
    #[error("{0}")]
    Config(String),
    /// Redis could not be set up.
    #[error("Redis: {0}")]
    State(#[from] agentauth_state::StateError),
    /// The store could not be opened.
    #[error("the archive store: {0}")]
    Store(#[from] crate::StoreError),
    /// The root key could not be opened.
    #[error("the checkpoint key: {0}")]
    Signer(#[from] agentauth_signer::SignerError),
    /// The metrics listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The archiver stopped on a conflict it must not paper over.
    #[error(transparent)]
    Archiver(#[from] crate::archiver::ArchiverError),
}

/// Runs the archiver until `shutdown` completes.
pub async fn run(
    args: ArchiverArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    args.validate().map_err(ServerError::Config)?;
    let metrics = Metrics::new().map_err(|e| ServerError::Config(e.to_string()))?;
    let Some(mut redis) = args.redis.config() else {
        return Err(ServerError::Config("--redis-url is required".into()));
    };
    // The archiver moves pages of up to a thousand entries per call.
    redis.write_timeout = std::time::Duration::from_secs(5);
    let state = Arc::new(RedisState::new(redis)?);
    let store = args.store.open().await?;
    let signer = args.root.open().await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: args.listen,
            source,
        })?;
    tracing::info!(
        listen = %args.listen,
        store = store.describe(),
        key = signer.key_id(),
        "archiver started"
    );
    let routes = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get({
                let metrics = metrics.clone();
                move || {
                    let metrics = metrics.clone();
                    async move { metrics.render() }
                }
            }),
        );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let serve = tokio::spawn({
        let mut stop = stop_rx.clone();
        async move {
            let _ = axum::serve(listener, routes)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        }
    });
    let archiver = Archiver::new(state, store, signer, args.archiver_config(), metrics);
    let mut stop = stop_rx;
    let signal = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let outcome = archiver
        .run(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    signal.abort();
    serve.abort();
    tracing::info!("archiver stopped");
    outcome.map_err(ServerError::from)
}
