//! The Kubernetes side of `agentauth dev`: which cluster, and what it must
//! hold before the services start.
//!
//! ```text
//!  current kubeconfig answers /version within 3 s (and no --local)?
//!     yes ─▶ use it                  no ─▶ local etcd + kube-apiserver (agentauth-testenv)
//!  ─▶ <state>/kubeconfig (admin)  +  <state>/operator.kubeconfig (same credentials,
//!     impersonating the operator's service account, group system:masters)
//!  ─▶ CRDs (server-side apply, wait for Established) ─▶ namespaces agentauth-system, agents
//! ```
//!
//! The operator runs under its own identity — the service account name the
//! Helm chart uses — so the webhook can tell its status writes from a
//! person's, exactly as in a cluster: `kubectl` with the admin kubeconfig
//! cannot forge an approval.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentauth_testenv::ControlPlane;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

use super::DevError;

/// The field manager of everything `agentauth dev` applies.
pub const FIELD_MANAGER: &str = "agentauth-dev";

/// The namespace of the operator's Lease.
pub const SYSTEM_NAMESPACE: &str = "agentauth-system";

/// The namespace the examples live in.
pub const EXAMPLES_NAMESPACE: &str = "agents";

/// The identity the operator runs as (the Helm chart's service account).
pub const OPERATOR_USERNAME: &str = agentauth_webhook::config::DEFAULT_OPERATOR_USERNAME;

/// How long an existing cluster may take to answer before the local one is used.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one CRD may take to become `Established`.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

/// The cluster the dev run uses.
pub struct Cluster {
    /// The admin kubeconfig (a copy in the state folder for a local cluster).
    pub kubeconfig: PathBuf,
    /// The operator's kubeconfig (impersonating [`OPERATOR_USERNAME`]).
    pub operator_kubeconfig: PathBuf,
    /// The apiserver URL.
    pub server: String,
    /// The local control plane, when this run started it (stopped on drop).
    pub local: Option<ControlPlane>,
    /// The apiserver log of a local control plane, for the `apiserver` prefix.
    pub apiserver_log: Option<PathBuf>,
    config: Config,
}

impl Cluster {
    /// A fresh admin client.
    pub fn client(&self) -> Result<Client, DevError> {
        Client::try_from(self.config.clone()).map_err(|e| DevError::Kube {
            step: "build a Kubernetes client",
            source: e,
        })
    }

    /// Whether the apiserver can call a webhook on this machine's loopback
    /// address: only when it runs on this machine itself.
    pub fn reaches_loopback(&self) -> bool {
        let host = self
            .server
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        ["127.", "localhost", "[::1]"]
            .iter()
            .any(|p| host.starts_with(p))
    }

    /// Stops a local control plane (blocking for up to a few seconds).
    pub async fn stop(&mut self) {
        if let Some(local) = self.local.take() {
            let _ = tokio::task::spawn_blocking(move || drop(local)).await;
        }
    }
}

/// Connects to the current kubeconfig's cluster if it answers (and `local`
/// is false), else starts the local control plane; writes both kubeconfigs
/// into `state_dir`.
pub async fn connect(state_dir: &Path, local: bool) -> Result<Cluster, DevError> {
    ensure_crypto_provider();
    let admin_path = state_dir.join("kubeconfig");
    let operator_path = state_dir.join("operator.kubeconfig");
    if !local && let Some((kubeconfig, config)) = existing().await {
        let source = std::env::var_os("KUBECONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::home_dir().map(|h| h.join(".kube/config")))
            .unwrap_or_else(|| admin_path.clone());
        write_operator_kubeconfig(kubeconfig, &operator_path)?;
        return Ok(Cluster {
            kubeconfig: source,
            operator_kubeconfig: operator_path,
            server: config
                .cluster_url
                .to_string()
                .trim_end_matches('/')
                .to_owned(),
            local: None,
            apiserver_log: None,
            config,
        });
    }
    let control_plane = ControlPlane::start()
        .await
        .map_err(DevError::ControlPlane)?;
    let text = std::fs::read_to_string(control_plane.kubeconfig_path()).map_err(|e| {
        DevError::io(
            "read the local kubeconfig",
            control_plane.kubeconfig_path(),
            e,
        )
    })?;
    write_private(&admin_path, text.as_bytes())?;
    let kubeconfig = Kubeconfig::read_from(&admin_path).map_err(|e| DevError::Kubeconfig {
        path: admin_path.clone(),
        message: e.to_string(),
    })?;
    write_operator_kubeconfig(kubeconfig.clone(), &operator_path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| DevError::Kubeconfig {
            path: admin_path.clone(),
            message: e.to_string(),
        })?;
    let apiserver_log = control_plane.apiserver_log_path();
    Ok(Cluster {
        kubeconfig: admin_path,
        operator_kubeconfig: operator_path,
        server: control_plane.server_url().trim_end_matches('/').to_owned(),
        local: Some(control_plane),
        apiserver_log,
        config,
    })
}

/// The current kubeconfig and its configuration, if its cluster answers.
async fn existing() -> Option<(Kubeconfig, Config)> {
    let kubeconfig = Kubeconfig::read().ok()?;
    let config = Config::from_custom_kubeconfig(kubeconfig.clone(), &KubeConfigOptions::default())
        .await
        .ok()?;
    let client = Client::try_from(config.clone()).ok()?;
    match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => Some((kubeconfig, config)),
        _ => None,
    }
}

/// Writes `kubeconfig` with its current user impersonating the operator.
fn write_operator_kubeconfig(mut kubeconfig: Kubeconfig, path: &Path) -> Result<(), DevError> {
    let current_user = kubeconfig
        .current_context
        .as_ref()
        .and_then(|name| kubeconfig.contexts.iter().find(|c| &c.name == name))
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.user.clone());
    for named in &mut kubeconfig.auth_infos {
        let current = current_user.is_none() || current_user.as_ref() == Some(&named.name);
        if current && let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(OPERATOR_USERNAME.to_owned());
            auth.impersonate_groups = Some(vec!["system:masters".to_owned()]);
        }
    }
    // JSON is YAML: every kubeconfig reader accepts it.
    let text = serde_json::to_vec_pretty(&kubeconfig).map_err(|e| DevError::Kubeconfig {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_private(path, &text)
}

/// Writes a file only its owner may read (kubeconfigs hold credentials).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DevError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| DevError::io("create", path, e))?;
    file.write_all(bytes)
        .map_err(|e| DevError::io("write", path, e))
}

/// Installs the CRDs (server-side apply) and waits until each is `Established`.
pub async fn install_crds(client: &Client) -> Result<usize, DevError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crds = agentauth_crds::all_crds();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .map_err(|e| DevError::Kube {
                step: "install the CRDs",
                source: e,
            })?;
    }
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(ESTABLISHED_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            _ => return Err(DevError::NotEstablished(name)),
        }
    }
    Ok(crds.len())
}

/// Creates (or keeps) the namespaces `agentauth dev` uses.
pub async fn ensure_namespaces(client: &Client) -> Result<(), DevError> {
    let api: Api<Namespace> = Api::all(client.clone());
    for name in [SYSTEM_NAMESPACE, EXAMPLES_NAMESPACE] {
        let namespace = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
        });
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&namespace),
        )
        .await
        .map_err(|e| DevError::Kube {
            step: "create the namespaces",
            source: e,
        })?;
    }
    Ok(())
}

/// Installs aws-lc-rs as the process's rustls provider (kube and reqwest
/// take the process default).
pub fn ensure_crypto_provider() {
    // Err means one is installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
