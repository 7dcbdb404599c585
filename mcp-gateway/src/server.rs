//! Starts one gateway: loads the tool map, builds the clients, serves.
//!
//! ```text
//!  config ─▶ validate ─▶ tool map (refused at startup if malformed)
//!         ─▶ Gateway { resource facts, verifier client, upstream client } ─▶ router ─▶ http (hyper)
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{any, get};
use tokio::net::TcpListener;

use crate::challenge::{Resource, WELL_KNOWN};
use crate::config::{GatewayConfig, HttpUrl};
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::toolmap::{ToolMap, ToolMapError};
use crate::verify::VerifierClient;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A flag had a bad value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The tool map could not be loaded.
    #[error(transparent)]
    ToolMap(#[from] ToolMapError),
    /// The metrics registry could not be built.
    #[error("failed to register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// An HTTP client could not be built.
    #[error("failed to build an HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The listen address could not be bound.
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Everything a request needs.
#[derive(Debug)]
pub struct Gateway {
    /// The public facts (metadata, challenges).
    pub resource: Resource,
    /// The public URL of the MCP endpoint: what DPoP proofs are made for.
    pub url: String,
    /// The tool map.
    pub map: ToolMap,
    /// The verifier.
    pub verifier: VerifierClient,
    /// The MCP server's endpoint.
    pub upstream: String,
    /// The client of the MCP server.
    pub upstream_http: reqwest::Client,
    /// The largest POST body.
    pub max_body_bytes: usize,
    /// The metrics.
    pub metrics: Metrics,
    /// Which agent each MCP session belongs to.
    pub sessions: Sessions,
}

impl Gateway {
    /// Builds the gateway from checked flags.
    pub fn new(config: &GatewayConfig) -> Result<Gateway, GatewayError> {
        config.validate().map_err(GatewayError::Config)?;
        let public =
            HttpUrl::parse(&config.public_url, "public-url").map_err(GatewayError::Config)?;
        let map = ToolMap::load(&config.tool_map)?;
        let audience = config.audience.clone().unwrap_or_else(|| public.full());
        let metadata_path = if public.path == "/" {
            String::new()
        } else {
            public.path.clone()
        };
        let mut scopes: Vec<String> = std::iter::once(&map.session)
            .chain(map.tools.values())
            .map(|r| r.rule.kind.as_str().to_owned())
            .collect();
        scopes.sort();
        scopes.dedup();
        let resource = Resource {
            resource: public.full(),
            metadata_url: format!("{}{WELL_KNOWN}{metadata_path}", public.origin),
            authorization_server: config.authorization_server.trim_end_matches('/').to_owned(),
            audience: audience.clone(),
            scopes,
        };
        // No overall timeout: an SSE stream stays open as long as the
        // session; only connecting is bounded.
        let upstream_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()?;
        Ok(Gateway {
            resource,
            url: public.full(),
            map,
            verifier: VerifierClient::new(&config.verifier_url, &audience)?,
            upstream: config.upstream.clone(),
            upstream_http,
            max_body_bytes: config.max_body_bytes,
            metrics: Metrics::new()?,
            sessions: Sessions::default(),
        })
    }
}

/// The routes: the MCP endpoint at the public URL's path, the metadata at
/// both RFC 9728 places, health.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let path = HttpUrl::parse(&gateway.url, "public-url")
        .map(|u| u.path)
        .unwrap_or_else(|_| "/".into());
    let metadata = {
        let gateway = gateway.clone();
        move || async move { gateway.resource.metadata_response() }
    };
    let metrics = {
        let gateway = gateway.clone();
        move || async move { gateway.metrics.render() }
    };
    let mut router = Router::new()
        .route(WELL_KNOWN, get(metadata.clone()))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));
    if path != "/" {
        router = router.route(&format!("{WELL_KNOWN}{path}"), get(metadata));
    }
    router
        .route(&path, any(crate::handler::mcp))
        .with_state(gateway)
}

/// Runs the gateway until `shutdown` resolves.
pub async fn run(
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let gateway = Arc::new(Gateway::new(&config)?);
    let addr = config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Listen { addr, source })?;
    serve(gateway, listener, shutdown).await;
    Ok(())
}

/// Serves `gateway` on `listener` until `shutdown`.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, resource = %gateway.resource.resource, upstream = %gateway.upstream, tools = gateway.map.tools.len(), "mcp gateway serving");
    let limits = agentauth_service::http::Limits {
        header_read_timeout: Duration::from_secs(10),
        max_buf_size: None,
        drain: Duration::from_secs(10),
    };
    agentauth_service::http::serve(
        listener,
        agentauth_service::http::Plain,
        router(gateway),
        limits,
        shutdown,
    )
    .await;
}
