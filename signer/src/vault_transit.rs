//! A HashiCorp Vault (or OpenBao) Transit key of type `ecdsa-p256` as a
//! [`Signer`]: the private key never leaves Vault.
//!
//! ```text
//!  connect(config) ── [auth/<k8s mount>/login {role, jwt} → client token]
//!                  ── GET  /v1/<mount>/keys/<name> ─▶ type ecdsa-p256? supports_signing?
//!                                                     latest_version N, its PEM public key ─▶ kid
//!  sign_digest(d) ─── POST /v1/<mount>/sign/<name> {input: b64(d), prehashed, sha2-256,
//!                                                   key_version: N, marshaling jws|asn1}
//!                     ─▶ "vault:vN:<sig>" ─▶ r || s, checked against key N before use
//! ```
//!
//! **The key version is pinned.** A connected signer always names the version
//! whose public key it published (`key_version: N`), so a `rotate` in Vault
//! never makes it return a signature its own JWK does not verify; the next
//! [`VaultTransitSigner::connect`] picks up the new version, which has a new
//! kid. If Vault's `min_encryption_version` is later raised above N, signing
//! fails (closed) with a message saying to reconnect.
//!
//! Authentication is a Vault token (`X-Vault-Token`), or a Kubernetes
//! service-account token exchanged at `auth/<mount>/login` for a client token
//! that is renewed by logging in again once three quarters of its lease have
//! passed, or at once when Vault answers 403. Tokens never appear in `Debug`
//! output or error messages.
//!
//! Every request is bounded by the connect timeout and the per-call timeout;
//! a Vault that does not answer in time is [`SignerError::Unavailable`],
//! never a hang.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use agentauth_core::error::chain;
use agentauth_core::es256::VerifyingKey;
use agentauth_core::jwk::EcPublicJwk;
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::DecodePublicKey as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::{Signer, SignerError, published_jwk};

/// Where a pod's projected service-account token is mounted.
pub const DEFAULT_KUBERNETES_JWT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The Transit key type this signer accepts: ES256 is ECDSA over P-256.
const KEY_TYPE: &str = "ecdsa-p256";

/// Responses larger than this are refused; a key with many versions is a few KiB.
const MAX_RESPONSE_LEN: usize = 1024 * 1024;

/// How Vault authenticates this signer. `Debug` never shows a token.
#[derive(Clone)]
pub enum VaultAuth {
    /// A Vault token, sent as `X-Vault-Token` (development, or a token
    /// injected by an agent that renews it).
    Token(String),
    /// Vault's Kubernetes auth method: the pod's service-account token is
    /// exchanged for a Vault token at `auth/<mount>/login`.
    Kubernetes {
        /// The Vault role bound to this service account.
        role: String,
        /// The service-account token file, re-read at every login (the
        /// kubelet rotates projected tokens).
        jwt_path: PathBuf,
        /// The auth method's mount path, `kubernetes` by default.
        mount: String,
    },
}

impl VaultAuth {
    /// Kubernetes auth as role `role`, with the default token path and mount.
    pub fn kubernetes(role: impl Into<String>) -> Self {
        VaultAuth::Kubernetes {
            role: role.into(),
            jwt_path: PathBuf::from(DEFAULT_KUBERNETES_JWT_PATH),
            mount: "kubernetes".into(),
        }
    }

    /// What authenticates, for messages ("the Vault token", "Kubernetes role r").
    fn describe(&self) -> String {
        match self {
            VaultAuth::Token(_) => "the Vault token".into(),
            VaultAuth::Kubernetes { role, mount, .. } => {
                format!("Kubernetes role {role} (auth/{mount})")
            }
        }
    }
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultAuth::Token(_) => f.write_str("Token(<redacted>)"),
            VaultAuth::Kubernetes {
                role,
                jwt_path,
                mount,
            } => f
                .debug_struct("Kubernetes")
                .field("role", role)
                .field("jwt_path", jwt_path)
                .field("mount", mount)
                .finish(),
        }
    }
}

/// The form in which Vault returns signatures; both are decoded to `r || s`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VaultMarshaling {
    /// `jws`: base64url `r || s`, what JWS needs (preferred).
    #[default]
    Jws,
    /// `asn1`: base64 DER, Vault's default, for Vault versions without `jws`.
    Asn1,
}

impl VaultMarshaling {
    fn as_str(self) -> &'static str {
        match self {
            VaultMarshaling::Jws => "jws",
            VaultMarshaling::Asn1 => "asn1",
        }
    }
}

/// How to reach a Transit key.
#[derive(Clone, Debug)]
pub struct VaultTransitConfig {
    /// Vault's address, e.g. `https://vault.vault.svc:8200`.
    pub address: String,
    /// The Transit secrets engine's mount path, `transit` by default.
    pub mount: String,
    /// The key's name in that mount.
    pub key_name: String,
    /// How to authenticate.
    pub auth: VaultAuth,
    /// A Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// PEM CA certificates to trust for Vault's TLS certificate, instead of
    /// the system's roots.
    pub ca_bundle: Option<PathBuf>,
    /// The signature form to ask Vault for.
    pub marshaling: VaultMarshaling,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on one HTTP call, from connecting to the last byte of the answer.
    pub request_timeout: Duration,
}

impl VaultTransitConfig {
    /// The key `key_name` in the mount `transit` at `address`; `jws`
    /// signatures, a 3 s connect timeout and 10 s per call (Transit signs
    /// in about a millisecond; the rest is the network).
    pub fn new(address: impl Into<String>, key_name: impl Into<String>, auth: VaultAuth) -> Self {
        VaultTransitConfig {
            address: address.into(),
            mount: "transit".into(),
            key_name: key_name.into(),
            auth,
            namespace: None,
            ca_bundle: None,
            marshaling: VaultMarshaling::Jws,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A Vault token and when to stop using it.
struct Session {
    token: Zeroizing<String>,
    /// `None`: the token does not expire (or its renewal is someone else's job).
    renew_at: Option<Instant>,
}

/// An authenticated HTTP client for one Vault.
struct Vault {
    http: reqwest::Client,
    address: String,
    namespace: Option<String>,
    auth: VaultAuth,
    session: Mutex<Option<Session>>,
}

/// An answer from Vault: its status and JSON body (`Null` when empty).
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Vault {
    fn new(config: &VaultTransitConfig) -> Result<Self, SignerError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout);
        if let Some(path) = &config.ca_bundle {
            let pem = std::fs::read(path).map_err(|source| SignerError::Io {
                action: "read the Vault CA bundle",
                path: path.clone(),
                source,
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                SignerError::Load(format!(
                    "the Vault CA bundle {} is not PEM certificates: {e}",
                    path.display()
                ))
            })?;
            if certificates.is_empty() {
                return Err(SignerError::Load(format!(
                    "the Vault CA bundle {} holds no certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_only(certificates);
        }
        let http = builder
            .build()
            .map_err(|e| SignerError::Load(format!("cannot build the HTTP client: {e}")))?;
        Ok(Vault {
            http,
            address: config.address.trim_end_matches('/').to_owned(),
            namespace: config.namespace.clone().filter(|n| !n.is_empty()),
            auth: config.auth.clone(),
            session: Mutex::new(None),
        })
    }

    /// One HTTP call; transport failures are `Unavailable`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        operation: &str,
    ) -> Result<Answer, SignerError> {
        let unavailable = |e: reqwest::Error| {
            let text = chain(&e);
            // Retrying cannot fix an untrusted certificate: say what to configure.
            if text.contains("invalid peer certificate") {
                return SignerError::Load(format!(
                    "Vault's TLS certificate at {} is not trusted ({text}); configure the CA \
                     bundle that issued it",
                    self.address
                ));
            }
            let what = if e.is_timeout() {
                "no answer in time"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "the connection failed"
            };
            SignerError::Unavailable(format!(
                "cannot reach Vault at {} for {operation} ({what}): {text}",
                self.address
            ))
        };
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.address));
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let mut response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        // Read in chunks so that a runaway answer is cut off, not buffered.
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_LEN {
                return Err(SignerError::Sign(format!(
                    "Vault at {} answered {operation} with more than {MAX_RESPONSE_LEN} bytes",
                    self.address
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(body) => body,
                // A proxy's HTML error page: keep the status, say what came.
                Err(_) if !status.is_success() => {
                    json!({ "errors": [String::from_utf8_lossy(&bytes[..bytes.len().min(200)])] })
                }
                Err(e) => {
                    return Err(SignerError::Sign(format!(
                        "Vault at {} answered {operation} with something other than JSON: {e}",
                        self.address
                    )));
                }
            }
        };
        Ok(Answer { status, body })
    }

    /// The current token, logging in first when there is none or it is due
    /// for renewal.
    async fn token(&self) -> Result<Zeroizing<String>, SignerError> {
        let mut session = self.session.lock().await;
        if let Some(s) = session.as_ref()
            && s.renew_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(s.token.clone());
        }
        let fresh = self.login().await?;
        let token = fresh.token.clone();
        *session = Some(fresh);
        Ok(token)
    }

    /// Drops `token` if it is still the current one (after a 403).
    async fn forget(&self, token: &str) {
        let mut session = self.session.lock().await;
        if session.as_ref().is_some_and(|s| *s.token == token) {
            *session = None;
        }
    }

    async fn login(&self) -> Result<Session, SignerError> {
        let (role, jwt_path, mount) = match &self.auth {
            VaultAuth::Token(token) => {
                return Ok(Session {
                    token: Zeroizing::new(token.clone()),
                    renew_at: None,
                });
            }
            VaultAuth::Kubernetes {
                role,
                jwt_path,
                mount,
            } => (role, jwt_path, mount),
        };
        // A few hundred bytes on a tmpfs: not worth a blocking-pool hop.
        let jwt = Zeroizing::new(std::fs::read_to_string(jwt_path).map_err(|source| {
            SignerError::Io {
                action: "read the Kubernetes service-account token",
                path: jwt_path.clone(),
                source,
            }
        })?);
        let operation = format!("the Kubernetes login (auth/{mount}/login, role {role})");
        let body = json!({ "role": role, "jwt": jwt.trim() });
        let answer = self
            .send(
                Method::POST,
                &format!("auth/{mount}/login"),
                None,
                Some(&body),
                &operation,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(self.refusal(
                &answer,
                &operation,
                SignerError::Load,
                &format!(
                    "check that the auth method is mounted at auth/{mount}, that role {role} \
                     exists and binds this pod's service account and namespace, and that Vault \
                     can reach the Kubernetes API to review the token"
                ),
            ));
        }
        let auth = &answer.body["auth"];
        let token = auth["client_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                SignerError::Load(format!(
                    "Vault at {} answered {operation} without a client token",
                    self.address
                ))
            })?;
        let lease = auth["lease_duration"].as_u64().unwrap_or(0);
        tracing::debug!(role = %role, lease_secs = lease, "logged in to Vault with Kubernetes auth");
        Ok(Session {
            token: Zeroizing::new(token.to_owned()),
            // Three quarters of the lease: room for clock skew and a slow call.
            renew_at: (lease > 0).then(|| Instant::now() + Duration::from_secs(lease * 3 / 4)),
        })
    }

    /// An authenticated call. With Kubernetes auth a 403 (an expired or
    /// revoked token) logs in again and retries once.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        operation: &str,
    ) -> Result<Answer, SignerError> {
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let answer = self
                .send(method.clone(), path, Some(&token), body, operation)
                .await?;
            if answer.status == StatusCode::FORBIDDEN
                && matches!(self.auth, VaultAuth::Kubernetes { .. })
                && !retried
            {
                self.forget(&token).await;
                retried = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// The error for a non-2xx answer: a sealed or leaderless Vault is
    /// `Unavailable`, anything else `other` with Vault's `errors` and
    /// `advice` (what to do next).
    fn refusal(
        &self,
        answer: &Answer,
        operation: &str,
        other: fn(String) -> SignerError,
        advice: &str,
    ) -> SignerError {
        let errors = match answer.body["errors"].as_array() {
            Some(list) if !list.is_empty() => list
                .iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("; "),
            _ => "no error message".into(),
        };
        let what = format!(
            "Vault at {} refused {operation} (HTTP {}): {errors}",
            self.address,
            answer.status.as_u16()
        );
        match answer.status {
            StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS => SignerError::Unavailable(format!(
                "{what}; Vault is sealed, has no active node or is rate limiting: retry later"
            )),
            _ if advice.is_empty() => other(what),
            _ => other(format!("{what}; {advice}")),
        }
    }

    /// What to do about a 403 on `paths`.
    fn forbidden_advice(&self, paths: &str) -> String {
        format!(
            "{} is not allowed this: check that it is valid (not expired or revoked) and that \
             its policy grants {paths}",
            self.auth.describe()
        )
    }
}

/// A Transit key version that signs. `Debug` shows where, never a token.
pub struct VaultTransitSigner {
    vault: Vault,
    mount: String,
    key_name: String,
    version: u64,
    marshaling: VaultMarshaling,
    kid: String,
    jwk: EcPublicJwk,
    check: p256::ecdsa::VerifyingKey,
}

impl VaultTransitSigner {
    /// Authenticates, reads the key, checks it is an `ecdsa-p256` key that
    /// can sign, and pins its latest version.
    pub async fn connect(config: &VaultTransitConfig) -> Result<Self, SignerError> {
        let vault = Vault::new(config)?;
        let (mount, name) = (config.mount.trim_matches('/'), config.key_name.as_str());
        let operation = format!("reading the Transit key {mount}/keys/{name}");
        let answer = vault
            .call(
                Method::GET,
                &format!("{mount}/keys/{name}"),
                None,
                &operation,
            )
            .await?;
        if !answer.status.is_success() {
            let advice = match answer.status {
                StatusCode::NOT_FOUND => format!(
                    "check the mount path ({mount}) and key name ({name}), or create the key \
                     with `bao write -f {mount}/keys/{name} type={KEY_TYPE}` (or `vault write`)"
                ),
                StatusCode::FORBIDDEN => vault.forbidden_advice(&format!(
                    "`read` on {mount}/keys/{name} and `update` on {mount}/sign/{name}"
                )),
                _ => String::new(),
            };
            return Err(vault.refusal(&answer, &operation, SignerError::Load, &advice));
        }
        let load = |m: String| SignerError::Load(format!("Transit key {mount}/keys/{name}: {m}"));
        let data = &answer.body["data"];
        let key_type = data["type"].as_str().unwrap_or("unknown");
        if key_type != KEY_TYPE {
            return Err(load(format!(
                "its type is {key_type}, but ES256 needs {KEY_TYPE}; create a signing key with \
                 `bao write -f {mount}/keys/<name> type={KEY_TYPE}` and configure that one"
            )));
        }
        if data["supports_signing"].as_bool() != Some(true) {
            return Err(load("Vault says it does not support signing".into()));
        }
        let version = data["latest_version"]
            .as_u64()
            .filter(|v| *v > 0)
            .ok_or_else(|| load("Vault gave no latest_version".into()))?;
        let pem = data["keys"][version.to_string()]["public_key"]
            .as_str()
            .ok_or_else(|| load(format!("Vault gave no public key for version {version}")))?;
        let public = p256::PublicKey::from_public_key_pem(pem)
            .map_err(|e| load(format!("version {version}'s public key is not P-256: {e}")))?;
        let point = public.to_encoded_point(false);
        let key = VerifyingKey::from_sec1(point.as_bytes())?;
        let (kid, jwk) = published_jwk(&key);
        tracing::info!(%mount, key = %name, version, %kid, "connected to a Vault Transit key");
        Ok(VaultTransitSigner {
            vault,
            mount: mount.to_owned(),
            key_name: name.to_owned(),
            version,
            marshaling: config.marshaling,
            kid,
            jwk,
            check: public.into(),
        })
    }

    /// The pinned key version: every signature is made with it.
    pub fn key_version(&self) -> u64 {
        self.version
    }

    /// Decodes `vault:v<N>:<signature>` in the configured marshaling.
    fn decode(&self, text: &str) -> Result<p256::ecdsa::Signature, SignerError> {
        let malformed = |m: &str| SignerError::Sign(format!("Vault returned {m}: {text:?}"));
        let rest = text
            .strip_prefix("vault:v")
            .ok_or_else(|| malformed("a signature without the vault:v<N>: prefix"))?;
        let (version, encoded) = rest
            .split_once(':')
            .ok_or_else(|| malformed("a malformed signature"))?;
        if version.parse::<u64>().ok() != Some(self.version) {
            return Err(malformed(&format!(
                "a signature by another key version than the pinned {}",
                self.version
            )));
        }
        match self.marshaling {
            VaultMarshaling::Jws => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(encoded.trim_end_matches('='))
                    .map_err(|_| malformed("a jws signature that is not base64url"))?;
                p256::ecdsa::Signature::from_slice(&bytes)
                    .map_err(|_| malformed("a jws signature that is not r || s"))
            }
            VaultMarshaling::Asn1 => {
                let bytes = STANDARD
                    .decode(encoded)
                    .map_err(|_| malformed("an asn1 signature that is not base64"))?;
                p256::ecdsa::Signature::from_der(&bytes)
                    .map_err(|_| malformed("an asn1 signature that is not DER"))
            }
        }
    }
}

impl fmt::Debug for VaultTransitSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultTransitSigner")
            .field("address", &self.vault.address)
            .field("namespace", &self.vault.namespace)
            .field("auth", &self.vault.auth)
            .field("key", &format!("{}/keys/{}", self.mount, self.key_name))
            .field("version", &self.version)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Signer for VaultTransitSigner {
    fn key_id(&self) -> &str {
        &self.kid
    }

    fn public_jwk(&self) -> &EcPublicJwk {
        &self.jwk
    }

    async fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignerError> {
        let (mount, name, version) = (&self.mount, &self.key_name, self.version);
        let operation = format!("signing with {mount}/keys/{name} version {version}");
        let body = json!({
            "input": STANDARD.encode(digest),
            "prehashed": true,
            "hash_algorithm": "sha2-256",
            "marshaling_algorithm": self.marshaling.as_str(),
            "key_version": version,
        });
        let answer = self
            .vault
            .call(
                Method::POST,
                &format!("{mount}/sign/{name}"),
                Some(&body),
                &operation,
            )
            .await?;
        if !answer.status.is_success() {
            let advice = if answer.status == StatusCode::FORBIDDEN {
                self.vault
                    .forbidden_advice(&format!("`update` on {mount}/sign/{name}"))
            } else {
                format!(
                    "if the key was deleted or its min_encryption_version raised above \
                     {version}, reconnect (restart) to pick up the current version"
                )
            };
            return Err(self
                .vault
                .refusal(&answer, &operation, SignerError::Sign, &advice));
        }
        let text = answer.body["data"]["signature"].as_str().ok_or_else(|| {
            SignerError::Sign(format!(
                "Vault at {} answered {operation} without a signature",
                self.vault.address
            ))
        })?;
        let signature = self.decode(text)?;
        // A signature that does not verify would only surface at every
        // verifier; catch it here (a key replaced under the same name, a
        // proxy in the way).
        self.check.verify_prehash(digest, &signature).map_err(|_| {
            SignerError::Sign(format!(
                "the signature from {mount}/keys/{name} version {version} does not verify \
                 against its public key"
            ))
        })?;
        Ok(signature.to_bytes().into())
    }
}
