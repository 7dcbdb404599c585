//! The operator's configuration: flags with environment fallbacks (DESIGN
//! §9). Defaults are the embedded ones: a local root key, in-process state,
//! loopback only. `agentauth operator --help` lists everything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use agentauth_core::gcra::Period;
use agentauth_service::rp::RelyingParty;
use agentauth_state::flags::RedisFlags;

use crate::http::HttpLimits;

/// Whether the root key signs tokens itself or certifies issuing keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SigningMode {
    /// The root certifies short-lived in-memory issuing keys (fast; default).
    Hierarchy,
    /// The root signs every token (no key outside the KMS; one KMS call per token).
    Direct,
}

/// `agentauth operator` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct OperatorConfig {
    /// Address the agent API, /metrics and health endpoints listen on.
    #[arg(long, env = "AGENTAUTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The operator's externally visible base URL: the tokens' `iss`, and
    /// the URL DPoP proofs name (`htu`).
    #[arg(
        long,
        env = "AGENTAUTH_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,

    /// The shared state's Redis (`--redis-url`, `--redis-cluster`,
    /// `--redis-password`).
    #[command(flatten)]
    pub redis: RedisFlags,

    /// The root key: it signs tokens, or certifies the keys that do.
    #[command(flatten)]
    pub root: agentauth_signer::SignerArgs,

    /// Whether the root signs every token or certifies issuing keys.
    #[arg(
        long,
        env = "AGENTAUTH_SIGNING_MODE",
        value_enum,
        default_value = "hierarchy"
    )]
    pub signing_mode: SigningMode,

    /// How often a new issuing key is certified.
    #[arg(long, env = "AGENTAUTH_KEY_ROTATION", default_value = "6h")]
    pub key_rotation: Period,

    /// How long an issuing key's certificate is valid.
    #[arg(long, env = "AGENTAUTH_KEY_VALIDITY", default_value = "1d")]
    pub key_validity: Period,

    /// Default token lifetime (never beyond the grant, the envelope's
    /// `maxTokenTtl`, or one hour).
    #[arg(long, env = "AGENTAUTH_TOKEN_TTL", default_value = "5m")]
    pub token_ttl: Period,

    /// Accepted DPoP proof age and clock skew.
    #[arg(long, env = "AGENTAUTH_DPOP_WINDOW", default_value = "60s")]
    pub dpop_window: Period,

    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "agentauth-system")]
    pub lease_namespace: String,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "AGENTAUTH_LEASE_NAME",
        default_value = "agentauth-operator"
    )]
    pub lease_name: String,

    /// How long the Lease stays valid without renewal (failover time).
    #[arg(long, env = "AGENTAUTH_LEASE_DURATION", default_value = "15s")]
    pub lease_duration: Period,

    /// This replica's identity (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// The WebAuthn relying party of approvals (`--rp-id`, `--approval-origin`).
    #[command(flatten)]
    pub rp: RelyingParty,

    /// The longest an approval-UI session lives, however active.
    #[arg(long, env = "AGENTAUTH_APPROVAL_SESSION_TTL", default_value = "8h")]
    pub approval_session_ttl: Period,

    /// An approval-UI session ends after this long without a request.
    #[arg(long, env = "AGENTAUTH_APPROVAL_SESSION_IDLE", default_value = "30m")]
    pub approval_session_idle: Period,

    /// Whether the approval session cookie is `Secure` (and named
    /// `__Host-agentauth_session`). Default: yes, unless --public-url is a
    /// loopback address (local development over plain HTTP).
    #[arg(long, env = "AGENTAUTH_APPROVAL_SECURE_COOKIES")]
    pub approval_secure_cookies: Option<bool>,

    /// Folder of the built approval UI (`approval-ui/dist`), served under
    /// /approvals/ on this origin; without it the UI is not served.
    #[arg(long, env = "AGENTAUTH_UI_DIR")]
    pub ui_dir: Option<PathBuf>,

    /// The longest a request's header section may take to arrive; a slower
    /// (or idle kept-alive) connection is closed.
    #[arg(long, env = "AGENTAUTH_HTTP_HEADER_TIMEOUT", default_value = "10s")]
    pub http_header_timeout: Period,

    /// The longest a request's body may take to arrive after its headers;
    /// a slower one is answered 408 request_timeout.
    #[arg(long, env = "AGENTAUTH_HTTP_BODY_TIMEOUT", default_value = "10s")]
    pub http_body_timeout: Period,

    /// The most HTTP connections served at once; more wait in the listen
    /// backlog until one closes.
    #[arg(
        long,
        env = "AGENTAUTH_MAX_CONNECTIONS",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub max_connections: u32,

    /// File holding the key of DPoP server nonces: at least 32 random bytes,
    /// the same on every replica (e.g. a mounted Secret). With it, the token
    /// endpoint requires a nonce it handed out in every proof (RFC 9449 §8;
    /// a refusal is 400 use_dpop_nonce with a DPoP-Nonce header). Without
    /// it (the default), no nonce is required.
    #[arg(long, env = "AGENTAUTH_DPOP_NONCE_KEY_FILE")]
    pub dpop_nonce_key_file: Option<PathBuf>,

    /// How long one DPoP nonce is handed out; it is accepted for one to two
    /// periods, which bounds how long a proof made in advance stays usable.
    #[arg(long, env = "AGENTAUTH_DPOP_NONCE_PERIOD", default_value = "60s")]
    pub dpop_nonce_period: Period,
}

impl OperatorConfig {
    /// Checks what clap cannot: URL shapes and flag combinations.
    pub fn validate(&self) -> Result<(), String> {
        self.redis.validate()?;
        let url = agentauth_core::htu::normalize(
            &self.public_url,
            agentauth_core::ErrorCode::RequestInvalid,
        )
        .map_err(|e| format!("--public-url {:?}: {}", self.public_url, e.message))?;
        if url.starts_with("http://") && !is_loopback_url(&url) {
            return Err(format!(
                "--public-url {:?} must be https unless it is a loopback address",
                self.public_url
            ));
        }
        self.root.validate()?;
        if self.key_validity.as_millis() < self.key_rotation.as_millis() + 3_600_000 {
            return Err(
                "--key-validity must exceed --key-rotation by at least the 1h token lifetime"
                    .into(),
            );
        }
        if self.token_ttl.as_millis() > 3_600_000 {
            return Err("--token-ttl may not exceed 1h".into());
        }
        if self.approval_session_ttl.as_millis() == 0 || self.approval_session_idle.as_millis() == 0
        {
            return Err(
                "--approval-session-ttl and --approval-session-idle must be positive".into(),
            );
        }
        if self.rp.approval_origins.is_empty() {
            return Err("at least one --approval-origin is needed".into());
        }
        if self.dpop_nonce_period.as_millis() < 1_000 {
            return Err("--dpop-nonce-period must be at least 1s".into());
        }
        Ok(())
    }

    /// Whether approval session cookies are `Secure`: the flag, else true
    /// unless the public URL is a loopback address.
    pub fn secure_cookies(&self) -> bool {
        self.approval_secure_cookies
            .unwrap_or_else(|| !is_loopback_url(&self.public_url))
    }

    /// The HTTP server's deadlines and connection cap.
    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            header_read_timeout: self.http_header_timeout.duration(),
            body_read_timeout: self.http_body_timeout.duration(),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
        }
    }

    /// The Lease duration as a `Duration`.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration.duration()
    }
}

fn is_loopback_url(url: &str) -> bool {
    let host = url
        .trim_start_matches("http://")
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    host == "localhost" || host == "[::1]" || host.starts_with("127.")
}
