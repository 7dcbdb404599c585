//! The verifier's configuration: flags with environment fallbacks (DESIGN
//! §9). `agentauth verifier --help` lists everything. Without `--redis-url`
//! the state is kept in process (one node); the keys come from the
//! operator's JWKS (`--jwks-url`) or, for tests and development, a file
//! (`--jwks-file`), and are trusted only through the pinned root key.

use std::net::SocketAddr;
use std::path::PathBuf;

use agentauth_core::gcra::Period;
use agentauth_state::flags::RedisFlags;

/// `agentauth verifier` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct VerifierConfig {
    /// Address `/v1/verify`, the ext_authz service, /metrics and health
    /// endpoints listen on.
    #[arg(long, env = "AGENTAUTH_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// The operator's issuer URL: the only accepted `iss` of access tokens.
    #[arg(long, env = "AGENTAUTH_ISSUER")]
    pub issuer: String,

    /// The service providers this verifier answers for (the tokens' `aud`).
    /// Repeat the flag or comma-separate. With one, every request is for
    /// it; with several, a `/v1/verify` request names one with `audience`,
    /// and ext_authz takes it from `--ext-authz-audience` or the route map
    /// (never from a request header).
    #[arg(
        long = "audience",
        env = "AGENTAUTH_AUDIENCE",
        value_delimiter = ',',
        required = true
    )]
    pub audiences: Vec<String>,

    /// The operator's JWKS, e.g. `http://agentauth-operator:8080/.well-known/jwks.json`.
    #[arg(long, env = "AGENTAUTH_JWKS_URL", conflicts_with = "jwks_file")]
    pub jwks_url: Option<String>,

    /// A JWKS document on disk instead of `--jwks-url` (tests, development).
    #[arg(long, env = "AGENTAUTH_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,

    /// The pinned root public key, as a JWK (JSON). Every token-signing key
    /// must be certified by it (or be it, in direct mode).
    #[arg(long, env = "AGENTAUTH_ROOT_JWK", conflicts_with = "root_jwk_file")]
    pub root_jwk: Option<String>,

    /// A file holding the root public JWK, instead of `--root-jwk`.
    #[arg(long, env = "AGENTAUTH_ROOT_JWK_FILE")]
    pub root_jwk_file: Option<PathBuf>,

    /// How often the JWKS is fetched again.
    #[arg(long, env = "AGENTAUTH_JWKS_REFRESH", default_value = "5m")]
    pub jwks_refresh: Period,

    /// The shortest time between two fetches caused by unknown `kid`s.
    #[arg(long, env = "AGENTAUTH_JWKS_MIN_INTERVAL", default_value = "10s")]
    pub jwks_min_interval: Period,

    /// The shared state's Redis (`--redis-url`, `--redis-cluster`,
    /// `--redis-password`).
    #[command(flatten)]
    pub redis: RedisFlags,

    /// How long a request waits for the shared state before it is denied
    /// with `state_unavailable` (fail closed).
    #[arg(long, env = "AGENTAUTH_STATE_TIMEOUT", default_value = "50ms")]
    pub state_timeout: Period,

    /// Accepted DPoP proof age.
    #[arg(long, env = "AGENTAUTH_DPOP_WINDOW", default_value = "60s")]
    pub dpop_window: Period,

    /// Clock skew accepted on token `exp`/`nbf` and proofs from the future.
    #[arg(long, env = "AGENTAUTH_CLOCK_SKEW", default_value = "60s")]
    pub clock_skew: Period,

    /// Most verified tokens kept in memory (about 2 KiB each).
    #[arg(long, env = "AGENTAUTH_TOKEN_CACHE_SIZE", default_value_t = 8192)]
    pub token_cache_size: usize,

    /// Longest a grant's state is served from the cache without a fresh
    /// read, even when no invalidation arrived (a safety net for pub/sub).
    #[arg(long, env = "AGENTAUTH_GRANT_CACHE_TTL", default_value = "60s")]
    pub grant_cache_ttl: Period,

    /// Path prefix of the Envoy ext_authz HTTP service (`path_prefix` in
    /// Envoy's `http_service`).
    #[arg(long, env = "AGENTAUTH_EXT_AUTHZ_PREFIX", default_value = "/ext_authz")]
    pub ext_authz_prefix: String,

    /// ext_authz: the audience (service provider) of the requests this
    /// listener checks, one of `--audience`; a route's `audience` in the
    /// route map overrides it. Needed when several audiences are
    /// configured, else ext_authz refuses requests whose route names none.
    #[arg(long, env = "AGENTAUTH_EXT_AUTHZ_AUDIENCE")]
    pub ext_authz_audience: Option<String>,

    /// ext_authz: the URL scheme of the original request when Envoy sends
    /// no `x-forwarded-proto`.
    #[arg(long, env = "AGENTAUTH_EXT_AUTHZ_SCHEME", default_value = "https")]
    pub ext_authz_scheme: String,

    /// ext_authz: a YAML or JSON file mapping method and (normalized) path
    /// to the action (`[{method, path, type, resource, action?, audience?,
    /// amount?, currency?}]`). When given, the action headers are ignored:
    /// the action comes from the map alone.
    #[arg(long, env = "AGENTAUTH_ROUTE_MAP")]
    pub route_map: Option<PathBuf>,

    /// ext_authz without a route map: header naming the action type (read,
    /// write, delete, transact, custom). The mesh must set the action
    /// headers itself (Envoy `authorization_request.headers_to_add`) and
    /// strip the client's, never pass an agent's.
    #[arg(
        long,
        env = "AGENTAUTH_HEADER_ACTION_TYPE",
        default_value = "x-agentauth-action-type"
    )]
    pub action_type_header: String,

    /// ext_authz: header naming the resource.
    #[arg(
        long,
        env = "AGENTAUTH_HEADER_RESOURCE",
        default_value = "x-agentauth-resource"
    )]
    pub resource_header: String,

    /// ext_authz: header naming the action (e.g. `get`).
    #[arg(
        long,
        env = "AGENTAUTH_HEADER_ACTION",
        default_value = "x-agentauth-action"
    )]
    pub action_header: String,

    /// ext_authz: header naming a custom capability's name.
    #[arg(
        long,
        env = "AGENTAUTH_HEADER_NAME",
        default_value = "x-agentauth-name"
    )]
    pub name_header: String,

    /// ext_authz: header carrying the amount (decimal string).
    #[arg(
        long,
        env = "AGENTAUTH_HEADER_AMOUNT",
        default_value = "x-agentauth-amount"
    )]
    pub amount_header: String,

    /// ext_authz: header carrying the currency (ISO 4217).
    #[arg(
        long,
        env = "AGENTAUTH_HEADER_CURRENCY",
        default_value = "x-agentauth-currency"
    )]
    pub currency_header: String,

    /// Most audit events waiting to be written; beyond it denials are
    /// dropped and counted in `agentauth_audit_dropped_total`, and allows
    /// wait up to 100 ms, then fail closed with `audit_unavailable`.
    #[arg(long, env = "AGENTAUTH_AUDIT_QUEUE", default_value_t = 16384)]
    pub audit_queue: usize,

    /// This verifier's identity in the audit chain (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// File holding the key of DPoP server nonces: at least 32 random bytes,
    /// the same on every verifier node (e.g. a mounted Secret). With it,
    /// every proof must carry a nonce a verifier handed out (RFC 9449 §9);
    /// a proof without one is denied `use_dpop_nonce` and the answer
    /// carries the nonce to use. Without it (the default), none is required.
    #[arg(long, env = "AGENTAUTH_DPOP_NONCE_KEY_FILE")]
    pub dpop_nonce_key_file: Option<PathBuf>,

    /// How long one DPoP nonce is handed out (at least 1s); it is accepted
    /// for one to two periods.
    #[arg(long, env = "AGENTAUTH_DPOP_NONCE_PERIOD", default_value = "60s")]
    pub dpop_nonce_period: Period,
}

impl VerifierConfig {
    /// A configuration with the defaults, for `issuer` and `audience`, keys
    /// from `jwks_file` and the root JWK `root_jwk` (tests, benchmarks).
    pub fn for_tests(issuer: &str, audience: &str, jwks_file: PathBuf, root_jwk: String) -> Self {
        VerifierConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: issuer.to_owned(),
            audiences: vec![audience.to_owned()],
            jwks_url: None,
            jwks_file: Some(jwks_file),
            root_jwk: Some(root_jwk),
            root_jwk_file: None,
            jwks_refresh: period("5m"),
            jwks_min_interval: period("10s"),
            redis: RedisFlags::default(),
            state_timeout: period("50ms"),
            dpop_window: period("60s"),
            clock_skew: period("60s"),
            token_cache_size: 8192,
            grant_cache_ttl: period("60s"),
            ext_authz_prefix: "/ext_authz".into(),
            ext_authz_audience: None,
            ext_authz_scheme: "https".into(),
            route_map: None,
            action_type_header: "x-agentauth-action-type".into(),
            resource_header: "x-agentauth-resource".into(),
            action_header: "x-agentauth-action".into(),
            name_header: "x-agentauth-name".into(),
            amount_header: "x-agentauth-amount".into(),
            currency_header: "x-agentauth-currency".into(),
            audit_queue: 16384,
            identity: None,
            dpop_nonce_key_file: None,
            dpop_nonce_period: period("60s"),
        }
    }

    /// Checks what clap cannot: flag combinations and shapes.
    pub fn validate(&self) -> Result<(), String> {
        self.redis.validate()?;
        if self.issuer.is_empty() {
            return Err("--issuer must not be empty".into());
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err("--audience must not be empty".into());
        }
        if self.jwks_url.is_none() && self.jwks_file.is_none() {
            return Err("one of --jwks-url or --jwks-file is needed".into());
        }
        if self.root_jwk.is_none() && self.root_jwk_file.is_none() {
            return Err(
                "one of --root-jwk or --root-jwk-file is needed (the pinned root key)".into(),
            );
        }
        let prefix = &self.ext_authz_prefix;
        let prefix_ok = prefix.starts_with('/')
            && prefix.len() > 1
            && !prefix.ends_with('/')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
        if !prefix_ok || prefix == "/v1" || prefix.starts_with("/v1/") {
            return Err(format!(
                "--ext-authz-prefix {prefix:?} must be a path like /ext_authz (letters, digits, / - _ .), \
                 not ending in / and not under /v1"
            ));
        }
        if !matches!(self.ext_authz_scheme.as_str(), "http" | "https") {
            return Err("--ext-authz-scheme must be http or https".into());
        }
        if self.token_cache_size == 0 || self.audit_queue == 0 {
            return Err("--token-cache-size and --audit-queue must be at least 1".into());
        }
        Ok(())
    }
}

/// A period written in this file.
#[expect(
    clippy::expect_used,
    reason = "only literals of this file, which parse"
)]
fn period(literal: &'static str) -> Period {
    Period::parse(literal).expect("a literal period")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::VerifierConfig;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: VerifierConfig,
    }

    fn parse(extra: &[&str]) -> Result<VerifierConfig, String> {
        let base = [
            "verifier",
            "--issuer",
            "https://op",
            "--audience",
            "https://sp",
        ];
        Cli::try_parse_from(base.iter().chain(extra))
            .map(|cli| cli.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn redis_cluster_is_a_boolish_flag_checked_with_the_url() {
        let url = "--redis-url=redis://a:1,redis://b:2";
        assert!(!parse(&[]).unwrap().redis.redis_cluster);
        for (flag, want) in [
            ("--redis-cluster", true),
            ("--redis-cluster=true", true),
            ("--redis-cluster=yes", true),
            ("--redis-cluster=0", false),
        ] {
            assert_eq!(
                parse(&[url, flag]).unwrap().redis.redis_cluster,
                want,
                "{flag}"
            );
        }
        let bad = parse(&["--redis-cluster=cluster"]).unwrap_err();
        assert!(
            bad.contains("invalid value 'cluster' for '--redis-cluster"),
            "{bad}"
        );

        let jwks = ["--jwks-file=/jwks.json", "--root-jwk={}"];
        let valid = |extra: &[&str]| {
            let args: Vec<&str> = jwks.iter().chain(extra).copied().collect();
            parse(&args).unwrap().validate()
        };
        assert!(valid(&[url, "--redis-cluster"]).is_ok());
        let several = valid(&[url]).unwrap_err();
        assert!(several.contains("--redis-cluster"), "{several}");
        let alone = valid(&["--redis-cluster"]).unwrap_err();
        assert!(alone.contains("needs --redis-url"), "{alone}");
    }
}
