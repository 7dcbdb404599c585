//! Starting a control plane and handing out clients for it.
//!
//! ```text
//!  locate binaries ─▶ reserve 3 loopback ports ─▶ CA, serving cert, SA key, admin token
//!        ─▶ etcd (wait for its client port) ─▶ kube-apiserver (wait for /readyz)
//!        ─▶ kubeconfig file ─▶ kube::Config, cloned into a fresh Client per call
//! ```
//!
//! Everything lives in one temporary folder (certificates, token file,
//! kubeconfig, etcd data, both logs), removed when the control plane stops.

use std::ffi::OsString;
use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::Error;
use crate::binaries::{self, Binaries};
use crate::pki::{self, Pki};
use crate::process::Supervised;
use crate::readiness::{wait_for_port, wait_for_readyz};

/// Names a kubeconfig of an existing cluster to use instead of starting one.
pub const EXISTING_KUBECONFIG_ENV: &str = "AGENTAUTH_TEST_KUBECONFIG";

/// The user the admin token authenticates as; member of `system:masters`.
pub const ADMIN_USER: &str = "admin";

/// How long etcd may take to open its client port.
const ETCD_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts on a port another process took between reservation and bind are retried.
const START_ATTEMPTS: u32 = 3;

/// A Kubernetes control plane for tests: a local etcd + kube-apiserver started
/// by [`ControlPlane::start`], or an existing cluster named by
/// `AGENTAUTH_TEST_KUBECONFIG`.
///
/// A local control plane is stopped when this value is dropped, and also when
/// the test process ends in any way (see the `process` module), so a
/// `'static` one from [`crate::shared`] leaves nothing behind.
pub struct ControlPlane {
    config: Config,
    kubeconfig: PathBuf,
    admin_token: Option<String>,
    local: Option<Local>,
}

/// The processes and files of a control plane this harness started.
struct Local {
    root: PathBuf,
    // Declared apiserver first: stopped first, while etcd still answers.
    apiserver: Supervised,
    etcd: Supervised,
    started_in: Duration,
    /// What [`ControlPlane::start_apiserver`] needs to start it again.
    restart: ApiserverRestart,
}

/// The apiserver's binary, flags and files, kept so a stopped apiserver can
/// be started again exactly as before (its watchdog removes its folder,
/// certificates included, when it stops it).
struct ApiserverRestart {
    binary: PathBuf,
    args: Vec<OsString>,
    dir: PathBuf,
    files: Vec<(PathBuf, String)>,
    running: bool,
}

impl Drop for Local {
    fn drop(&mut self) {
        self.apiserver.stop();
        self.etcd.stop();
        // The watchdogs remove their folders too; this makes it synchronous.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.config.cluster_url)
            .field("kubeconfig", &self.kubeconfig)
            .field("local", &self.local.is_some())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver on free loopback ports and waits until the
    /// apiserver's `/readyz` passes; or, when `AGENTAUTH_TEST_KUBECONFIG` is set,
    /// connects to that cluster and starts nothing.
    ///
    /// Binaries come from `KUBEBUILDER_ASSETS`, else from
    /// `e2e/control-plane/setup.sh` (which builds them on its first run).
    /// A failure to start carries the tail of the failing server's log.
    pub async fn start() -> Result<Self, Error> {
        ensure_crypto_provider();
        if let Some(path) = std::env::var_os(EXISTING_KUBECONFIG_ENV).filter(|p| !p.is_empty()) {
            return Self::existing(PathBuf::from(path)).await;
        }
        let binaries = binaries::locate().await?;
        let mut attempt = 1;
        loop {
            match Self::start_local(&binaries).await {
                Err(Error::Exited { log_tail, .. })
                    if attempt < START_ATTEMPTS && log_tail.contains("address already in use") =>
                {
                    tracing::info!(
                        attempt,
                        "a reserved port was taken meanwhile; starting again"
                    );
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn existing(kubeconfig: PathBuf) -> Result<Self, Error> {
        let config = load_kubeconfig(&kubeconfig).await?;
        tracing::info!(server = %config.cluster_url, "using the existing cluster of {EXISTING_KUBECONFIG_ENV}");
        Ok(Self {
            config,
            kubeconfig,
            admin_token: None,
            local: None,
        })
    }

    /// Writes the apiserver's files, starts etcd and then the apiserver in
    /// a fresh temporary folder, and waits until the apiserver is ready.
    async fn start_local(binaries: &Binaries) -> Result<Self, Error> {
        let root_dir = tempfile::Builder::new()
            .prefix("agentauth-testenv-")
            .tempdir()
            .map_err(|source| Error::Io {
                action: "create a temporary folder in",
                path: std::env::temp_dir(),
                source,
            })?;
        let root = root_dir.path().to_path_buf();
        let etcd_dir = root.join("etcd");
        let api_dir = root.join("apiserver");
        create_dir(&etcd_dir)?;
        create_dir(&api_dir)?;

        let [etcd_client_port, etcd_peer_port, api_port] = free_ports()?;
        let admin_token = pki::random_token();
        let server = format!("https://127.0.0.1:{api_port}");
        let files = ApiserverFiles::write(&api_dir, &server, &admin_token)?;

        let spawned = Instant::now();
        let (etcd, etcd_url) =
            start_etcd(binaries, &etcd_dir, etcd_client_port, etcd_peer_port).await?;
        let apiserver_args = apiserver_args(&etcd_url, api_port, &api_dir, &files, &server);
        let mut apiserver = Supervised::spawn(
            "kube-apiserver",
            &binaries.kube_apiserver,
            &apiserver_args,
            api_dir.join("apiserver.log"),
            &api_dir,
        )?;

        let config = load_kubeconfig(&files.kubeconfig).await?;
        wait_for_readyz(&mut apiserver, &config).await?;
        let started_in = spawned.elapsed();
        tracing::info!(?started_in, %server, "control plane ready");

        let restart_files = files
            .all()
            .into_iter()
            .filter_map(|path| Some((path.clone(), std::fs::read_to_string(path).ok()?)))
            .collect();
        Ok(Self {
            config,
            kubeconfig: files.kubeconfig,
            admin_token: Some(admin_token),
            local: Some(Local {
                // From here on `Local::drop` removes the folder, after stopping the servers.
                root: root_dir.keep(),
                apiserver,
                etcd,
                started_in,
                restart: ApiserverRestart {
                    binary: binaries.kube_apiserver.clone(),
                    args: apiserver_args,
                    files: restart_files,
                    dir: api_dir,
                    running: true,
                },
            }),
        })
    }

    /// Stops the kube-apiserver (SIGKILL, like a crashed or unreachable
    /// apiserver) and leaves etcd running, for fault-injection tests; clients
    /// see connections refused until [`ControlPlane::start_apiserver`].
    /// Does nothing for an existing cluster or a stopped apiserver.
    pub fn stop_apiserver(&mut self) {
        if let Some(local) = self.local.as_mut()
            && local.restart.running
        {
            local.apiserver.stop();
            local.restart.running = false;
        }
    }

    /// Starts the apiserver stopped by [`ControlPlane::stop_apiserver`]
    /// again, on the same port with the same certificates, tokens and etcd,
    /// and waits until `/readyz` passes. Does nothing when it runs.
    pub async fn start_apiserver(&mut self) -> Result<(), Error> {
        let Some(local) = self.local.as_mut() else {
            return Ok(());
        };
        if local.restart.running {
            return Ok(());
        }
        let restart = &local.restart;
        create_dir_all(&restart.dir)?;
        for (path, contents) in &restart.files {
            write(path, contents, "write an apiserver file again")?;
        }
        let mut apiserver = Supervised::spawn(
            "kube-apiserver",
            &restart.binary,
            &restart.args,
            restart.dir.join("apiserver.log"),
            &restart.dir,
        )?;
        wait_for_readyz(&mut apiserver, &self.config).await?;
        local.apiserver = apiserver;
        local.restart.running = true;
        Ok(())
    }

    /// A new admin client (user `admin`, group `system:masters`).
    ///
    /// Each call builds a fresh client: a `kube::Client` belongs to the tokio
    /// runtime that created it, and every `#[tokio::test]` has its own runtime.
    /// Call it from inside the runtime that will use the client.
    pub fn client(&self) -> Result<Client, Error> {
        ensure_crypto_provider();
        Client::try_from(self.config.clone()).map_err(Error::Client)
    }

    /// A new client acting as `user` in `groups`, through impersonation by the
    /// admin: requests are authorized (RBAC) exactly as for that user.
    /// `system:authenticated` is added by the apiserver.
    pub fn client_as(&self, user: &str, groups: &[&str]) -> Result<Client, Error> {
        ensure_crypto_provider();
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(user.to_owned());
        config.auth_info.impersonate_groups =
            Some(groups.iter().map(|g| (*g).to_owned()).collect());
        Client::try_from(config).map_err(Error::Client)
    }

    /// The kubeconfig file for this control plane (admin credentials), e.g. for
    /// `kubectl --kubeconfig` while debugging or for a process under test.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver URL, `https://127.0.0.1:<port>` for a local control plane.
    pub fn server_url(&self) -> String {
        self.config.cluster_url.to_string()
    }

    /// The admin bearer token; `None` for an existing cluster.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Whether this harness started the servers (false with `AGENTAUTH_TEST_KUBECONFIG`).
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// Time from spawning etcd to the apiserver's first passing `/readyz`.
    pub fn started_in(&self) -> Option<Duration> {
        self.local.as_ref().map(|l| l.started_in)
    }

    /// The last `lines` lines of the apiserver log, for printing when a test fails.
    pub fn log_tail(&self, lines: usize) -> String {
        match &self.local {
            Some(local) => local.apiserver.log_tail(lines),
            None => format!("(no local apiserver: {EXISTING_KUBECONFIG_ENV} is set)"),
        }
    }

    /// The apiserver's log file while it runs (`None` for an existing
    /// cluster), e.g. for following it.
    pub fn apiserver_log_path(&self) -> Option<PathBuf> {
        self.local
            .as_ref()
            .map(|local| local.root.join("apiserver").join("apiserver.log"))
    }

    /// The last `lines` lines of the etcd log.
    pub fn etcd_log_tail(&self, lines: usize) -> String {
        match &self.local {
            Some(local) => local.etcd.log_tail(lines),
            None => format!("(no local etcd: {EXISTING_KUBECONFIG_ENV} is set)"),
        }
    }
}

/// Installs aws-lc-rs as the process's rustls provider. kube builds its TLS
/// configuration from the process default, which panics when none is
/// installed and more than one provider is compiled in.
fn ensure_crypto_provider() {
    // Err means one is installed already: by us earlier, or by the test itself.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

async fn load_kubeconfig(path: &Path) -> Result<Config, Error> {
    let error = |source| Error::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(error)?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(error)
}

fn kubeconfig_yaml(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = pki::base64_standard(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: agentauth-testenv
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {ADMIN_USER}
  user:
    token: {token}
contexts:
- name: agentauth-testenv
  context:
    cluster: agentauth-testenv
    user: {ADMIN_USER}
    namespace: default
current-context: agentauth-testenv
"
    )
}

/// Reserves `N` distinct free ports by binding them all at once, then frees
/// them for the servers. Another process may take one in between; `start` retries.
fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::NoFreePort)?;
    let mut ports = [0_u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().map_err(Error::NoFreePort)?.port();
    }
    Ok(ports)
}

/// The files the kube-apiserver reads (and a restart rewrites), in its folder.
struct ApiserverFiles {
    ca: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    sa_key: PathBuf,
    sa_public_key: PathBuf,
    tokens: PathBuf,
    kubeconfig: PathBuf,
}

impl ApiserverFiles {
    /// Generates a PKI and writes it, the token file (one admin token) and
    /// the admin kubeconfig for `server` into `api_dir`.
    fn write(api_dir: &Path, server: &str, admin_token: &str) -> Result<Self, Error> {
        let pki = Pki::generate()?;
        let files = ApiserverFiles {
            ca: api_dir.join("ca.crt"),
            serving_cert: api_dir.join("apiserver.crt"),
            serving_key: api_dir.join("apiserver.key"),
            sa_key: api_dir.join("service-account.key"),
            sa_public_key: api_dir.join("service-account.pub"),
            tokens: api_dir.join("tokens.csv"),
            kubeconfig: api_dir.join("kubeconfig"),
        };
        write(&files.ca, &pki.ca_cert_pem, "write the CA certificate")?;
        write(
            &files.serving_cert,
            &pki.serving_cert_pem,
            "write the serving certificate",
        )?;
        write(
            &files.serving_key,
            &pki.serving_key_pem,
            "write the serving key",
        )?;
        write(
            &files.sa_key,
            &pki.service_account_key_pem,
            "write the service-account key",
        )?;
        write(
            &files.sa_public_key,
            &pki.service_account_public_key_pem,
            "write the service-account public key",
        )?;
        // token,user,uid,"group1,group2" — the static token file format.
        write(
            &files.tokens,
            &format!("{admin_token},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n"),
            "write the token file",
        )?;
        write(
            &files.kubeconfig,
            &kubeconfig_yaml(server, &pki.ca_cert_pem, admin_token),
            "write the kubeconfig",
        )?;
        Ok(files)
    }

    fn all(&self) -> [&PathBuf; 7] {
        [
            &self.ca,
            &self.serving_cert,
            &self.serving_key,
            &self.sa_key,
            &self.sa_public_key,
            &self.tokens,
            &self.kubeconfig,
        ]
    }
}

/// Starts etcd in `etcd_dir` and waits for its client port; returns it
/// with its client URL.
async fn start_etcd(
    binaries: &Binaries,
    etcd_dir: &Path,
    client_port: u16,
    peer_port: u16,
) -> Result<(Supervised, String), Error> {
    let etcd_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut etcd = Supervised::spawn(
        "etcd",
        &binaries.etcd,
        &args([
            format!("--data-dir={}", etcd_dir.join("data").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            "--name=agentauth-testenv".to_owned(),
            format!("--initial-cluster=agentauth-testenv={peer_url}"),
            // Test data is thrown away: durability only costs time.
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ]),
        etcd_dir.join("etcd.log"),
        etcd_dir,
    )?;
    wait_for_port(&mut etcd, client_port, ETCD_TIMEOUT).await?;
    Ok((etcd, etcd_url))
}

/// The kube-apiserver's flags: controller-runtime's envtest defaults, with
/// a static token file instead of client certificates for authentication.
fn apiserver_args(
    etcd_url: &str,
    api_port: u16,
    api_dir: &Path,
    files: &ApiserverFiles,
    server: &str,
) -> Vec<OsString> {
    args([
        format!("--etcd-servers={etcd_url}"),
        "--advertise-address=127.0.0.1".to_owned(),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={api_port}"),
        format!("--cert-dir={}", api_dir.display()),
        format!("--tls-cert-file={}", files.serving_cert.display()),
        format!("--tls-private-key-file={}", files.serving_key.display()),
        format!("--client-ca-file={}", files.ca.display()),
        format!("--token-auth-file={}", files.tokens.display()),
        "--authorization-mode=RBAC".to_owned(),
        format!("--service-account-issuer={server}"),
        format!(
            "--service-account-key-file={}",
            files.sa_public_key.display()
        ),
        format!(
            "--service-account-signing-key-file={}",
            files.sa_key.display()
        ),
        "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
        // No controller-manager creates service accounts here.
        "--disable-admission-plugins=ServiceAccount".to_owned(),
        "--allow-privileged=true".to_owned(),
        // The `kubernetes` Service cannot point at a loopback address;
        // without this the apiserver logs an error about it every 10 s.
        "--endpoint-reconciler-type=none".to_owned(),
    ])
}

fn args<const N: usize>(args: [String; N]) -> Vec<OsString> {
    args.into_iter().map(OsString::from).collect()
}

fn create_dir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir(path).map_err(|source| Error::Io {
        action: "create the folder",
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir_all(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|source| Error::Io {
        action: "create the folder",
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, contents: &str, action: &'static str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(|source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    })
}
