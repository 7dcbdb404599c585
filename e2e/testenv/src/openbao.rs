//! A real OpenBao (or HashiCorp Vault) dev server on a free loopback port,
//! for the Vault Transit signer's tests, under the same lifeline watchdog as
//! the control plane (see `process.rs`): it dies with the test process.
//!
//! ```text
//!  OpenBao::start ─▶ bao server -dev -dev-root-token-id=<random>
//!                        -dev-listen-address=127.0.0.1:<port> -dev-no-store-token
//!        │            (in memory, unsealed; wait for GET /v1/sys/health = 200)
//!        ├─ enable_transit / create_key / rotate_key      (as root)
//!        ├─ put_policy / create_token                     (scoped tokens)
//!        └─ enable_kubernetes_auth(control plane) / kubernetes_role / service_account_token
//!
//!  OpenBao::start_tls ─▶ the same with -dev-tls (a fresh CA: ca_path()), set up through cli()
//! ```
//!
//! The executable is `AGENTAUTH_OPENBAO`, else the newest
//! `$AGENTAUTH_CACHE/tools/openbao-*/bao` or `$AGENTAUTH_CACHE/tools/vault-*/vault`
//! (`AGENTAUTH_CACHE` defaults to `~/.cache/agentauth`); build it with
//! `source scripts/deps.sh && ensure_openbao`. OpenBao is a fork of Vault
//! 1.14 and both serve the same Transit and Kubernetes-auth API, so either
//! binary will do (see `ensure_openbao` for which one the Go module proxy
//! can serve).
//!
//! The harness talks to the server over plain HTTP/1.0 on loopback with
//! blocking I/O on tokio's blocking pool, so it needs no HTTP client crate.

use std::ffi::OsString;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::process::Supervised;
use crate::{ControlPlane, Error};

/// Names the `bao` (or `vault`) executable, overriding the cache.
pub const OPENBAO_ENV: &str = "AGENTAUTH_OPENBAO";

/// How long the dev server may take from spawn to a healthy answer (about
/// a second on this machine; it mounts its builtin engines on start).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts that lost a port race (ours, or the cluster port next to it) are retried.
const START_ATTEMPTS: u32 = 3;

/// Limit on one harness request to the server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A running dev server; stopped when dropped or when the test process ends.
#[derive(Debug)]
pub struct OpenBao {
    executable: PathBuf,
    addr: SocketAddr,
    address: String,
    root_token: String,
    /// The CA of a TLS server's certificate (`-dev-tls`).
    ca: Option<PathBuf>,
    root: PathBuf,
    process: Supervised,
}

impl OpenBao {
    /// Starts an in-memory, unsealed dev server with a random root token on a
    /// free loopback port and waits until it reports itself healthy.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(false).await
    }

    /// [`OpenBao::start`] over HTTPS (`-dev-tls`: a fresh CA, see
    /// [`OpenBao::ca_path`], and a certificate for 127.0.0.1). The harness's
    /// own requests speak plain HTTP, so a TLS server is set up through
    /// [`OpenBao::cli`] instead of [`OpenBao::api`] and its helpers.
    pub async fn start_tls() -> Result<Self, Error> {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> Result<Self, Error> {
        let executable = openbao_path()?;
        let mut attempt = 1;
        loop {
            let root = tempfile::Builder::new()
                .prefix("agentauth-openbao-")
                .tempdir()
                .map_err(|source| Error::Io {
                    action: "create a temporary folder in",
                    path: std::env::temp_dir(),
                    source,
                })?
                .keep();
            let dir = root.join("bao");
            std::fs::create_dir(&dir).map_err(|source| Error::Io {
                action: "create the folder",
                path: dir.clone(),
                source,
            })?;
            let addr = free_addr()?;
            let root_token = crate::pki::random_token();
            let mut args: Vec<OsString> = [
                "server".to_owned(),
                "-dev".to_owned(),
                format!("-dev-root-token-id={root_token}"),
                format!("-dev-listen-address={addr}"),
                // Not into ~/.vault-token: the developer's own token stays put.
                "-dev-no-store-token".to_owned(),
            ]
            .into_iter()
            .map(OsString::from)
            .collect();
            let ca = tls.then(|| dir.join("vault-ca.pem"));
            if tls {
                args.push("-dev-tls".into());
                args.push(format!("-dev-tls-cert-dir={}", dir.display()).into());
            }
            let process =
                Supervised::spawn("openbao", &executable, &args, dir.join("bao.log"), &dir)?;
            let scheme = if tls { "https" } else { "http" };
            let mut server = OpenBao {
                executable: executable.clone(),
                addr,
                address: format!("{scheme}://{addr}"),
                root_token,
                ca,
                root,
                process,
            };
            match server.wait_until_healthy().await {
                Ok(()) => {
                    tracing::info!(address = %server.address, "openbao dev server ready");
                    return Ok(server);
                }
                Err(e) => {
                    let lost_race = server
                        .process
                        .log_tail(40)
                        .contains("address already in use");
                    drop(server);
                    if !lost_race || attempt >= START_ATTEMPTS {
                        return Err(e);
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Waits until the server is initialized, unsealed and active, failing
    /// early if it exits: `GET /v1/sys/health` answering 200, or for a TLS
    /// server `status` (the CLI) exiting 0.
    async fn wait_until_healthy(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            self.process.check_running()?;
            let last_error = if self.ca.is_some() {
                match self.cli(&["status"]).await {
                    Ok(_) => return Ok(()),
                    Err(e) => e.to_string(),
                }
            } else {
                match request(self.addr, "GET", "sys/health", None, None).await {
                    Ok((200, _)) => return Ok(()),
                    Ok((status, body)) => format!("sys/health said HTTP {status}: {body}"),
                    Err(e) => e.to_string(),
                }
            };
            if started.elapsed() > READY_TIMEOUT {
                return Err(self.process.not_ready(started.elapsed(), last_error));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the server's own CLI (`bao`/`vault ARGS...`) against it as root,
    /// e.g. `["write", "-f", "transit/keys/k", "type=ecdsa-p256"]`; its stdout.
    pub async fn cli(&self, args: &[&str]) -> Result<String, Error> {
        let mut command = std::process::Command::new(&self.executable);
        command
            .args(args)
            .env("VAULT_ADDR", &self.address)
            .env("BAO_ADDR", &self.address)
            .env("VAULT_TOKEN", &self.root_token)
            .env("BAO_TOKEN", &self.root_token)
            .stdin(std::process::Stdio::null());
        if let Some(ca) = &self.ca {
            command.env("VAULT_CACERT", ca).env("BAO_CACERT", ca);
        }
        let action = format!("run `{} {}`", self.executable.display(), args.join(" "));
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|source| Error::Spawn {
                process: "openbao CLI",
                source,
            })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(Error::UnexpectedResponse {
                action,
                message: format!(
                    "{}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            })
        }
    }

    /// The PEM CA certificate a TLS server's certificate chains to; `None`
    /// for plain HTTP.
    pub fn ca_path(&self) -> Option<&std::path::Path> {
        self.ca.as_deref()
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The listening socket address (for a [`crate::LatencyProxy`] in front of it).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dev server's root token.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// `method /v1/<path>` with `body` as the root token; the JSON answer
    /// (`Null` when empty) of a 2xx, else an error with the status and body.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Error> {
        if self.ca.is_some() {
            return Err(Error::UnexpectedResponse {
                action: format!("{method} /v1/{path} on openbao"),
                message: "the server speaks TLS: use OpenBao::cli".into(),
            });
        }
        let (status, answer) =
            request(self.addr, method, path, Some(&self.root_token), body).await?;
        if (200..300).contains(&status) {
            Ok(answer)
        } else {
            Err(Error::UnexpectedResponse {
                action: format!("{method} /v1/{path} on openbao"),
                message: format!("HTTP {status}: {answer}"),
            })
        }
    }

    /// Mounts the Transit secrets engine at `mount`; a mount that is already
    /// there is kept.
    pub async fn enable_transit(&self, mount: &str) -> Result<(), Error> {
        match self
            .api(
                "POST",
                &format!("sys/mounts/{mount}"),
                Some(json!({ "type": "transit" })),
            )
            .await
        {
            Err(Error::UnexpectedResponse { message, .. })
                if message.contains("already in use") =>
            {
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// Creates the Transit key `mount/keys/name` of `key_type`
    /// (`ecdsa-p256`, `aes256-gcm96`, `ed25519`, ...).
    pub async fn create_key(&self, mount: &str, name: &str, key_type: &str) -> Result<(), Error> {
        self.api(
            "POST",
            &format!("{mount}/keys/{name}"),
            Some(json!({ "type": key_type })),
        )
        .await
        .map(drop)
    }

    /// Adds a new version to a Transit key and makes it the latest.
    pub async fn rotate_key(&self, mount: &str, name: &str) -> Result<(), Error> {
        self.api("POST", &format!("{mount}/keys/{name}/rotate"), None)
            .await
            .map(drop)
    }

    /// Writes the ACL policy `name` (HCL text).
    pub async fn put_policy(&self, name: &str, hcl: &str) -> Result<(), Error> {
        self.api(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        )
        .await
        .map(drop)
    }

    /// A new token with exactly `policies` (no `default`), living `ttl` (e.g. `"1h"`).
    pub async fn create_token(&self, policies: &[&str], ttl: &str) -> Result<String, Error> {
        let answer = self
            .api(
                "POST",
                "auth/token/create",
                Some(json!({ "policies": policies, "no_default_policy": true, "ttl": ttl })),
            )
            .await?;
        answer["auth"]["client_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::UnexpectedResponse {
                action: "create a token on openbao".into(),
                message: format!("no auth.client_token in {answer}"),
            })
    }

    /// Mounts the Kubernetes auth method at `auth/<mount>` and points it at
    /// `control_plane`'s apiserver (its URL and CA; the admin token reviews
    /// service-account tokens). Needs a control plane this harness started.
    pub async fn enable_kubernetes_auth(
        &self,
        control_plane: &ControlPlane,
        mount: &str,
    ) -> Result<(), Error> {
        let action = "configure openbao's kubernetes auth";
        let unexpected = |message: String| Error::UnexpectedResponse {
            action: action.into(),
            message,
        };
        let reviewer = control_plane
            .admin_token()
            .ok_or_else(|| unexpected("the control plane has no admin token".into()))?;
        let path = control_plane.kubeconfig_path();
        let kubeconfig =
            kube::config::Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                path: path.to_path_buf(),
                source,
            })?;
        let ca = kubeconfig
            .clusters
            .iter()
            .find_map(|c| c.cluster.as_ref()?.certificate_authority_data.clone())
            .ok_or_else(|| {
                unexpected("the kubeconfig names no certificate-authority-data".into())
            })?;
        let ca = base64::engine::general_purpose::STANDARD
            .decode(ca.trim())
            .map_err(|e| unexpected(format!("certificate-authority-data is not base64: {e}")))?;
        self.api(
            "POST",
            &format!("sys/auth/{mount}"),
            Some(json!({ "type": "kubernetes" })),
        )
        .await?;
        self.api(
            "POST",
            &format!("auth/{mount}/config"),
            Some(json!({
                "kubernetes_host": control_plane.server_url().trim_end_matches('/'),
                "kubernetes_ca_cert": String::from_utf8_lossy(&ca),
                "token_reviewer_jwt": reviewer,
                // Not the files of a pod this test does not run in.
                "disable_local_ca_jwt": true,
            })),
        )
        .await
        .map(drop)
    }

    /// A Kubernetes-auth role `role` at `auth/<mount>` for the service
    /// account `namespace/service_account`, issuing tokens with `policies`
    /// that live `ttl` (e.g. `"2s"`, `"1h"`).
    pub async fn kubernetes_role(
        &self,
        mount: &str,
        role: &str,
        namespace: &str,
        service_account: &str,
        policies: &[&str],
        ttl: &str,
    ) -> Result<(), Error> {
        self.api(
            "POST",
            &format!("auth/{mount}/role/{role}"),
            Some(json!({
                "bound_service_account_names": [service_account],
                "bound_service_account_namespaces": [namespace],
                "token_policies": policies,
                "token_no_default_policy": true,
                "token_ttl": ttl,
            })),
        )
        .await
        .map(drop)
    }

    /// Stops the server (connections are refused from then on).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.process.stop();
        // The watchdog removes the folder too; this makes it synchronous.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Creates the ServiceAccount `namespace/name` (if missing) and returns a
/// token for it from the TokenRequest API, valid `expiration_secs`, with the
/// apiserver's default audience — what the kubelet projects into a pod.
pub async fn service_account_token(
    control_plane: &ControlPlane,
    namespace: &str,
    name: &str,
    expiration_secs: i64,
) -> Result<String, Error> {
    let accounts: Api<ServiceAccount> = Api::namespaced(control_plane.client()?, namespace);
    let account: ServiceAccount = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": { "name": name },
    }))
    .map_err(|e| Error::UnexpectedResponse {
        action: "build a ServiceAccount".into(),
        message: e.to_string(),
    })?;
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(source) => {
            return Err(Error::Api {
                action: format!("create ServiceAccount {namespace}/{name}"),
                source,
            });
        }
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(expiration_secs),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .map_err(|source| Error::Api {
            action: format!("request a token for ServiceAccount {namespace}/{name}"),
            source,
        })?;
    answer
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::UnexpectedResponse {
            action: format!("request a token for ServiceAccount {namespace}/{name}"),
            message: "no status.token".into(),
        })
}

/// The OpenBao server of this test binary, or the message of its failed start.
static SHARED_OPENBAO: OnceCell<Result<OpenBao, String>> = OnceCell::const_new();

/// One dev server shared by every test of this binary, started on first
/// use; tests keep apart by naming their own keys. A failed start is
/// remembered and returned to every later caller.
pub async fn shared_openbao() -> Result<&'static OpenBao, Error> {
    SHARED_OPENBAO
        .get_or_init(|| async { OpenBao::start().await.map_err(|e| crate::error::chain(&e)) })
        .await
        .as_ref()
        .map_err(|message| Error::SharedStartFailed(message.clone()))
}

/// `AGENTAUTH_OPENBAO`, else the newest `openbao-*/bao` or `vault-*/vault`
/// under `$AGENTAUTH_CACHE/tools` (or `~/.cache/agentauth/tools`).
pub fn openbao_path() -> Result<PathBuf, Error> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let not_found = |what: String| Error::Spawn {
        process: "openbao",
        source: std::io::Error::new(
            ErrorKind::NotFound,
            format!(
                "{what}; set {OPENBAO_ENV}, or build it with \
                 `source scripts/deps.sh && ensure_openbao`"
            ),
        ),
    };
    if let Some(path) = non_empty(OPENBAO_ENV).map(PathBuf::from) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(not_found(format!("{} does not exist", path.display())))
        };
    }
    let cache = match non_empty("AGENTAUTH_CACHE") {
        Some(cache) => PathBuf::from(cache),
        None => PathBuf::from(non_empty("HOME").unwrap_or_default()).join(".cache/agentauth"),
    };
    let tools = cache.join("tools");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&tools)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let binary = if name.starts_with("openbao-") {
                "bao"
            } else if name.starts_with("vault-") {
                "vault"
            } else {
                return None;
            };
            Some(entry.path().join(binary)).filter(|p| p.is_file())
        })
        .collect();
    // OpenBao before Vault, then the newest version (by name) first.
    found.sort_by_key(|p| (p.ends_with("vault"), std::cmp::Reverse(p.clone())));
    found.into_iter().next().ok_or_else(|| {
        not_found(format!(
            "no openbao-*/bao or vault-*/vault in {}",
            tools.display()
        ))
    })
}

/// Reserves a free loopback port, then frees it for the server.
fn free_addr() -> Result<SocketAddr, Error> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(Error::NoFreePort)?;
    listener.local_addr().map_err(Error::NoFreePort)
}

/// One HTTP/1.0 request to `/v1/<path>`; the status and the JSON body
/// (`Null` when empty).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), Error> {
    let action = format!("{method} /v1/{path} on openbao");
    let head = {
        let mut head = format!("{method} /v1/{path} HTTP/1.0\r\nHost: {addr}\r\n");
        if let Some(token) = token {
            head.push_str(&format!("X-Vault-Token: {token}\r\n"));
        }
        head
    };
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let exchange = move || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        let message = format!(
            "{head}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(message.as_bytes())?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(answer)
    };
    let raw = tokio::task::spawn_blocking(exchange)
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|source| Error::Io {
            action: "talk to openbao at",
            path: PathBuf::from(addr.to_string()),
            source,
        })?;
    let text = String::from_utf8_lossy(&raw);
    let unexpected = |message: String| Error::UnexpectedResponse {
        action: action.clone(),
        message,
    };
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| unexpected(format!("not an HTTP answer: {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| unexpected(format!("no status in {head:?}")))?;
    let json = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).map_err(|e| unexpected(format!("{e}: {body:?}")))?
    };
    Ok((status, json))
}
