//! Starting the webhook:
//!
//! ```text
//!  config ─▶ certificate (files | self-signed CA + cert ─▶ print / write the CA bundle)
//!         ─▶ kube client ─▶ KubeLookup ─▶ Validator(policy) ─┐
//!         ─▶ bind the listen address ─────────────────────────┴▶ serve HTTPS until shutdown
//! ```
//!
//! [`run`] is the `agentauth webhook` command. Tests and `agentauth dev` use
//! [`Server::bind`] with a client of their own, read the bound address and
//! CA bundle, register the webhook
//! ([`registration`](crate::registration)), then [`Server::serve`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::{TlsSource, WebhookConfig};
use crate::http::{AppState, router};
use crate::lookup::KubeLookup;
use crate::metrics::Metrics;
use crate::tls::{FileCert, FixedCert, SelfSigned, TlsError, server_config};
use crate::validate::{Policy, Validator};

/// Why the webhook could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A flag had a bad value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No Kubernetes cluster could be reached.
    #[error("failed to connect to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The serving certificate could not be loaded or generated.
    #[error("failed to set up TLS: {0}")]
    Tls(#[from] TlsError),
    /// The metrics registry could not be built.
    #[error("failed to register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The CA bundle could not be written.
    #[error("failed to write the CA bundle to {path}: {source}")]
    CaBundle {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A webhook bound to its address, not serving yet.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    tls: TlsAcceptor,
    state: Arc<AppState<KubeLookup>>,
    ca_bundle: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads or generates the certificate, binds `config.listen`, and
    /// prepares to read referenced objects with `client`. With
    /// `--self-signed` and `--ca-bundle-out`, the CA bundle is written now.
    pub async fn bind(config: &WebhookConfig, client: kube::Client) -> Result<Self, ServerError> {
        config.validate().map_err(ServerError::Config)?;
        let (resolver, ca_bundle): (Arc<dyn rustls::server::ResolvesServerCert>, _) =
            match config.tls_source().map_err(ServerError::Config)? {
                TlsSource::Files { cert, key } => (Arc::new(FileCert::load(&cert, &key)?), None),
                TlsSource::SelfSigned { dns_names } => {
                    let generated = SelfSigned::generate(&dns_names)?;
                    let fixed = FixedCert(generated.certified_key()?);
                    (Arc::new(fixed), Some(generated.ca_pem))
                }
            };
        if let (Some(path), Some(ca)) = (&config.ca_bundle_out, &ca_bundle) {
            std::fs::write(path, ca).map_err(|source| ServerError::CaBundle {
                path: path.clone(),
                source,
            })?;
        }
        let tls = TlsAcceptor::from(server_config(resolver)?);
        let policy = Policy {
            operator_username: config.operator_username.trim().to_owned(),
            rp_id: config.rp.rp_id.clone(),
            origins: config.rp.approval_origins.clone(),
        };
        let state = Arc::new(AppState {
            validator: Validator::new(policy, KubeLookup::new(client)),
            metrics: Metrics::new()?,
            ready: AtomicBool::new(false),
        });
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        Ok(Server {
            listener,
            addr,
            tls,
            state,
            ca_bundle,
        })
    }

    /// The bound address (the real port when `--listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The self-signed CA certificate (PEM) the apiserver must trust, for
    /// `clientConfig.caBundle`; `None` with certificate files.
    pub fn ca_bundle(&self) -> Option<&str> {
        self.ca_bundle.as_deref()
    }

    /// Serves until `shutdown` resolves, then lets in-flight reviews finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let state = self.state.clone();
        let stopping = async move {
            shutdown.await;
            state.ready.store(false, Ordering::Relaxed);
        };
        self.state.ready.store(true, Ordering::Relaxed);
        tracing::info!(addr = %self.addr, "webhook serving");
        crate::http::serve(self.listener, self.tls, router(self.state), stopping).await;
        Ok(())
    }
}

/// Runs `agentauth webhook` until `shutdown` resolves: connects to the
/// cluster (in-cluster config or `KUBECONFIG`), prints the self-signed CA
/// bundle when there is one, and serves.
pub async fn run(
    config: WebhookConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // A bad flag is reported before any attempt to reach a cluster.
    config.validate().map_err(ServerError::Config)?;
    // kube builds its TLS configuration from the process default provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = kube::Client::try_default().await?;
    let server = Server::bind(&config, client).await?;
    if let Some(ca) = server.ca_bundle() {
        // stdout, so `agentauth webhook --self-signed > ca.pem` works too.
        println!("{ca}");
        tracing::info!("self-signed: the CA bundle above is the caBundle to register");
    }
    server.serve(shutdown).await
}
