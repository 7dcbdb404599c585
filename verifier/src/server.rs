//! Starts one verifier:
//!
//! ```text
//!  config ─▶ shared state (Redis | in-process) ──────────┐
//!         ─▶ root key + JWKS (fetched now, refreshed) ───┼─▶ Verifier ─▶ router ─▶ http (hyper)
//!         ─▶ grant cache ◀── invalidation listener task ─┤
//!         ─▶ audit producer (writer task) ───────────────┘
//! ```
//!
//! [`run`] is what `agentauth verifier` calls. [`serve`] takes the state,
//! the clock and a bound listener, so tests run several verifiers in one
//! process on one Redis with an injected clock.
//!
//! Shutdown (the future resolves): stop accepting, finish in-flight
//! requests, stop the background tasks, flush the audit queue (at most 5 s).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agentauth_core::dpop;
use agentauth_core::token::Expectations;
use agentauth_state::{InProcessState, RedisState, SharedState, StateError};
use tokio::net::TcpListener;

use crate::audit::AuditSink;
use crate::config::VerifierConfig;
use crate::ext_authz::ExtAuthz;
use crate::grant_cache::GrantCache;
use crate::keys::{JwksOrigin, KeyError, KeySource, parse_root};
use crate::metrics::Metrics;
use crate::route_map::RouteMap;
use crate::routes::{App, router};
use crate::token_cache::TokenCache;
use crate::verify::{Parts, Settings, Verifier};
use crate::{Clock, SystemClock};

/// Why the verifier could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A flag had a bad value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The root key or a JWKS file could not be loaded.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The shared state could not be set up.
    #[error("failed to set up the shared state: {0}")]
    State(#[from] StateError),
    /// The metrics registry could not be built.
    #[error("failed to register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The listen address could not be bound.
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// What [`serve`] runs on besides the configuration.
pub struct Dependencies {
    /// The shared state.
    pub state: Arc<dyn SharedState>,
    /// The clock of every time check (tokens, proofs, windows, expiry).
    pub clock: Arc<dyn Clock>,
}

/// Runs the verifier until `shutdown` resolves.
pub async fn run(
    config: VerifierConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate().map_err(ServerError::Config)?;
    let state: Arc<dyn SharedState> = match config.redis.config() {
        Some(mut redis) => {
            redis.hot_timeout = config.state_timeout.duration();
            // Lazy: the verifier may start while Redis is down (it denies
            // with state_unavailable and is not ready until Redis answers).
            Arc::new(RedisState::new(redis)?)
        }
        None => Arc::new(InProcessState::new()),
    };
    let addr = config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })?;
    let deps = Dependencies {
        state,
        clock: Arc::new(SystemClock),
    };
    serve(config, deps, listener, shutdown).await
}

/// Serves on `listener` with the given state and clock until `shutdown`.
pub async fn serve(
    config: VerifierConfig,
    deps: Dependencies,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.validate().map_err(ServerError::Config)?;
    let Dependencies { state, clock } = deps;
    let metrics = Metrics::new()?;
    let keys = Arc::new(key_source(&config, clock.clone(), metrics.clone()).await?);
    let routes = route_map(&config)?;
    let ext_authz = ExtAuthz::new(&config, routes).map_err(ServerError::Config)?;

    let grants = Arc::new(GrantCache::new(
        config.grant_cache_ttl.duration(),
        clock.clone(),
        metrics.clone(),
    ));
    let listening = tokio::spawn(grants.clone().listen(state.clone()));
    let refreshing = tokio::spawn(
        keys.clone()
            .refresh_periodically(config.jwks_refresh.duration()),
    );
    let identity = config.identity.clone().unwrap_or_else(|| {
        // Unique per process, so two verifiers never share an audit chain.
        agentauth_service::identity::default_identity(&["HOSTNAME"], "verifier")
    });
    let audit = AuditSink::start(
        format!("verifier/{identity}"),
        state.clone(),
        clock.clone(),
        metrics.clone(),
        config.audit_queue,
    );
    let settings = settings(&config)?;
    let verifier = Arc::new(Verifier::new(Parts {
        settings,
        keys,
        tokens: TokenCache::new(config.token_cache_size),
        grants,
        state,
        clock,
        metrics,
        audit: audit.clone(),
    }));
    let app = Arc::new(App {
        verifier,
        ext_authz,
    });
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, identity, issuer = %config.issuer, "verifier serving");
    crate::http::serve(listener, router(app, &config.ext_authz_prefix), shutdown).await;

    listening.abort();
    refreshing.abort();
    if tokio::time::timeout(Duration::from_secs(5), audit.flush())
        .await
        .is_err()
    {
        tracing::warn!("audit events still queued at shutdown were not written");
    }
    Ok(())
}

/// The `--route-map` file, parsed; `None` in direct header mode (the mesh
/// sets the action headers).
fn route_map(config: &VerifierConfig) -> Result<Option<RouteMap>, ServerError> {
    let Some(path) = &config.route_map else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServerError::Config(format!("--route-map {}: {e}", path.display())))?;
    RouteMap::parse(&text)
        .map(Some)
        .map_err(|e| ServerError::Config(format!("--route-map {}: {e}", path.display())))
}

/// What the checks expect of tokens and proofs, from the flags.
fn settings(config: &VerifierConfig) -> Result<Settings, ServerError> {
    let skew = secs(config.clock_skew.as_millis());
    Ok(Settings {
        expectations: config
            .audiences
            .iter()
            .map(|audience| Expectations {
                issuer: config.issuer.clone(),
                audience: audience.clone(),
                leeway_secs: skew,
            })
            .collect(),
        dpop_window: dpop::Window {
            max_age_secs: secs(config.dpop_window.as_millis()),
            max_skew_secs: skew,
        },
        dpop_nonce: match &config.dpop_nonce_key_file {
            Some(path) => {
                let period = secs(config.dpop_nonce_period.as_millis());
                let issuer = crate::dpop_nonce::load(path, period).map_err(ServerError::Config)?;
                Some(Arc::new(issuer))
            }
            None => None,
        },
    })
}

async fn key_source(
    config: &VerifierConfig,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
) -> Result<KeySource, ServerError> {
    let root_json = match (&config.root_jwk, &config.root_jwk_file) {
        (Some(json), _) => json.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| ServerError::Config(format!("--root-jwk-file {}: {e}", path.display())))?,
        (None, None) => return Err(ServerError::Config("no root key".into())),
    };
    let root = parse_root(&root_json)?;
    let origin = match (&config.jwks_url, &config.jwks_file) {
        (Some(url), _) => JwksOrigin::Url(url.clone()),
        (None, Some(path)) => JwksOrigin::File(path.clone()),
        (None, None) => return Err(ServerError::Config("no JWKS source".into())),
    };
    let is_file = matches!(origin, JwksOrigin::File(_));
    let keys = KeySource::new(
        root,
        config.issuer.clone(),
        origin,
        config.jwks_min_interval.duration(),
        clock,
        metrics,
    );
    match keys.refresh().await {
        Ok(()) => {}
        // A file is configuration: a bad one stops the start.
        Err(error) if is_file => return Err(error.into()),
        // The operator may start after the verifier: retry in the background.
        Err(error) => tracing::warn!(%error, "JWKS not loaded yet; retrying in the background"),
    }
    Ok(keys)
}

fn secs(ms: u64) -> i64 {
    i64::try_from(ms / 1000).unwrap_or(i64::MAX)
}
