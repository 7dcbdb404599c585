//! Starts one operator replica:
//!
//! ```text
//!  config ─▶ kube client ─▶ caches (watches) ─┐
//!          ─▶ shared state (Redis | in-process) ├─▶ Context ─┬─▶ agent API (every replica)
//!          ─▶ audit producer chain              │            └─▶ controllers (leader only)
//!          ─▶ root signer ─▶ key hierarchy ─────┘
//! ```
//!
//! Once it has a client, [`crate::preflight`] checks that the apiserver serves the
//! AgentAuth resources; without them `run` fails at once with an error that
//! says how to install the CRDs.
//!
//! The HTTP server ([`crate::http`]) bounds how long a client may take to
//! send a request and how many connections are served at once.
//!
//! Shutdown (the future passed in resolves): the HTTP server stops accepting,
//! finishes in-flight requests, the controllers stop, and the audit queue is
//! flushed before `run` returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agentauth_signer::hierarchy::{HierarchyConfig, KeyHierarchy};
use agentauth_signer::{Signer, SignerError};
use agentauth_state::{InProcessState, RedisState, SharedState, StateError};

use crate::api::{ApiState, router_with_approvals};
use crate::approvals::{Approvals, ApprovalsConfig};
use crate::audit::AuditSink;
use crate::cache::Caches;
use crate::clock::{Clock, SystemClock};
use crate::config::{OperatorConfig, SigningMode};
use crate::context::{Context, RelyingParty};
use crate::leader::{self, LeaseConfig};
use crate::metered_signer::MeteredSigner;
use crate::metrics::Metrics;

/// Why the operator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A flag had a bad value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No Kubernetes cluster could be reached.
    #[error("failed to connect to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The apiserver does not serve the AgentAuth resources (or could not
    /// say).
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    /// The shared state could not be reached.
    #[error("failed to connect to the shared state: {0}")]
    State(#[from] StateError),
    /// The signing key could not be loaded or certified.
    #[error("failed to set up the signing key: {0}")]
    Signer(#[from] SignerError),
    /// The metrics registry could not be built.
    #[error("failed to register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The watches ended before the caches were filled.
    #[error("the informer caches stopped before they were ready")]
    Caches,
    /// The listen address could not be bound.
    #[error("failed to serve on {addr}: {source}")]
    Serve {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Runs the operator until `shutdown` resolves.
pub async fn run(
    config: OperatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate().map_err(ServerError::Config)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let metrics = Metrics::new()?;
    let client = kube::Client::try_default().await?;
    // Before anything else starts: without the CRDs the watches would retry
    // forever and the operator would never become ready.
    crate::preflight::require_crds(&client).await?;
    let identity = config.identity.clone().unwrap_or_else(|| {
        // Unique per process, so two replicas on one host (or a restarted
        // one) never share a Lease identity.
        agentauth_service::identity::default_identity(&["HOSTNAME"], "operator")
    });
    let Started { ctx, audit, keys } =
        start_context(&config, &client, &identity, clock.clone(), metrics).await?;

    let approvals = Approvals::new(
        ctx.clone(),
        ApprovalsConfig {
            session_ttl: config.approval_session_ttl.duration(),
            session_idle: config.approval_session_idle.duration(),
            secure_cookies: config.secure_cookies(),
            token_namespace: config.lease_namespace.clone(),
        },
    )
    .map_err(|e| ServerError::Config(e.to_string()))?;

    let rotation = (!keys.is_direct()).then(|| {
        let (keys, clock) = (keys.clone(), clock.clone());
        tokio::spawn(async move {
            keys.rotate_periodically(move || clock.now_secs(), Duration::from_secs(60))
                .await;
        })
    });
    let lease = LeaseConfig {
        namespace: config.lease_namespace.clone(),
        name: config.lease_name.clone(),
        identity: identity.clone(),
        lease_duration: config.lease_duration(),
    };
    let (leading, elector) = leader::spawn(client, lease, clock.clone());
    let controllers = tokio::spawn(crate::controllers::run_while_leader(ctx.clone(), leading));

    let api = api_router(&config, ctx, keys, approvals)?;
    let addr = config.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Serve { addr, source })?;
    tracing::info!(%addr, identity, public_url = %config.public_url, "operator serving");
    crate::http::serve(listener, api, config.http_limits(), shutdown).await;

    controllers.abort();
    // The controllers own the election's receiver: once they are gone the
    // elector releases the Lease, so the next replica need not wait it out.
    let _ = controllers.await;
    let _ = tokio::time::timeout(Duration::from_secs(3), elector).await;
    if let Some(rotation) = rotation {
        rotation.abort();
    }
    audit.flush().await;
    Ok(())
}

/// What the operator's parts share, once started.
struct Started {
    ctx: Arc<Context>,
    audit: AuditSink,
    keys: Arc<KeyHierarchy>,
}

/// Connects the shared state, resumes this replica's audit chain, opens
/// the key hierarchy and fills the informer caches, in that order.
async fn start_context(
    config: &OperatorConfig,
    client: &kube::Client,
    identity: &str,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
) -> Result<Started, ServerError> {
    let state: Arc<dyn SharedState> = match config.redis.config() {
        Some(redis) => Arc::new(RedisState::connect(redis).await?),
        None => Arc::new(InProcessState::new()),
    };
    let audit = AuditSink::start(
        &format!("operator/{identity}"),
        state.clone(),
        clock.clone(),
        metrics.clone(),
    )
    .await?;
    let keys = Arc::new(key_hierarchy(config, clock.as_ref(), &metrics).await?);
    let caches = Caches::start(client)
        .await
        .map_err(|_| ServerError::Caches)?;
    let ctx = Arc::new(Context {
        client: client.clone(),
        caches,
        state,
        audit: audit.clone(),
        metrics,
        clock,
        relying_party: RelyingParty {
            id: config.rp.rp_id.clone(),
            origins: config.rp.approval_origins.clone(),
        },
    });
    Ok(Started { ctx, audit, keys })
}

/// The agent and approval APIs, and the approval UI's files beside them
/// on the same origin.
fn api_router(
    config: &OperatorConfig,
    ctx: Arc<Context>,
    keys: Arc<KeyHierarchy>,
    approvals: Arc<Approvals>,
) -> Result<axum::Router, ServerError> {
    let dpop_nonce = match &config.dpop_nonce_key_file {
        Some(path) => {
            let period = secs(config.dpop_nonce_period.as_millis());
            let issuer = crate::api::dpop_nonce::load(path, period).map_err(ServerError::Config)?;
            tracing::info!(
                period_secs = period,
                "the token endpoint requires DPoP nonces"
            );
            Some(Arc::new(issuer))
        }
        None => None,
    };
    let api = router_with_approvals(
        ApiState {
            ctx,
            keys,
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            dpop_window: agentauth_core::dpop::Window {
                max_age_secs: secs(config.dpop_window.as_millis()),
                max_skew_secs: secs(config.dpop_window.as_millis()),
            },
            default_token_ttl_secs: secs(config.token_ttl.as_millis()),
            dpop_nonce,
        },
        Some(approvals),
    );
    Ok(match &config.ui_dir {
        Some(dir) => api.merge(crate::approvals::assets::router(dir.clone())),
        None => api,
    })
}

async fn key_hierarchy(
    config: &OperatorConfig,
    clock: &dyn Clock,
    metrics: &Metrics,
) -> Result<KeyHierarchy, ServerError> {
    let root = config.root.open().await?;
    let root: Arc<dyn Signer> = Arc::new(MeteredSigner::new(root, "root", metrics.clone()));
    Ok(match config.signing_mode {
        SigningMode::Direct => KeyHierarchy::direct(root),
        SigningMode::Hierarchy => {
            let mut hierarchy = HierarchyConfig::new(config.public_url.trim_end_matches('/'));
            hierarchy.rotation_interval = config.key_rotation.duration();
            hierarchy.validity = config.key_validity.duration();
            KeyHierarchy::certified(root, hierarchy, clock.now_secs()).await?
        }
    })
}

fn secs(ms: u64) -> i64 {
    i64::try_from(ms / 1000).unwrap_or(i64::MAX)
}
