//! How a client is set up: the operator's URL, who the agent is, where its
//! key lives, and the timing of tokens.
//!
//! ```text
//!  AgentAuthConfig::new(url)          HTTPS required, except on loopback (127.0.0.0/8, ::1, localhost)
//!    .agent("team-a", "calendar-bot") or AGENTAUTH_AGENT=team-a/calendar-bot
//!    .key_file("/var/run/agent.jwk")  or AGENTAUTH_KEY_FILE (loaded, 0600 enforced)
//!    .key(AgentKey)                   a key held in memory instead
//! ```
//!
//! Plain HTTP elsewhere is refused: the operator's answers carry access
//! tokens, and a token read on the wire can be replayed by whoever also
//! steals the key, so nothing about it should travel in the clear.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::keys::AgentKey;

/// Environment variable naming the agent, `namespace/name`.
pub const AGENT_ENV: &str = "AGENTAUTH_AGENT";
/// Environment variable naming the agent's key file.
pub const KEY_FILE_ENV: &str = "AGENTAUTH_KEY_FILE";

/// The settings of an [`AgentAuthClient`](crate::AgentAuthClient).
#[derive(Clone, Debug)]
pub struct AgentAuthConfig {
    pub(crate) operator_url: String,
    pub(crate) namespace: Option<String>,
    pub(crate) agent: Option<String>,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) key: Option<AgentKey>,
    pub(crate) token_lifetime: Option<Duration>,
    pub(crate) refresh_before: Duration,
    pub(crate) request_timeout: Duration,
}

impl AgentAuthConfig {
    /// A configuration for the operator at `operator_url`. The agent and its
    /// key come from [`AGENT_ENV`] and [`KEY_FILE_ENV`] unless set later.
    pub fn new(operator_url: &str) -> Result<AgentAuthConfig> {
        let operator_url = check_url(operator_url)?;
        let mut config = AgentAuthConfig {
            operator_url,
            namespace: None,
            agent: None,
            key_file: std::env::var_os(KEY_FILE_ENV).map(PathBuf::from),
            key: None,
            token_lifetime: None,
            refresh_before: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        };
        if let Ok(agent) = std::env::var(AGENT_ENV) {
            let (namespace, name) = agent.split_once('/').ok_or_else(|| {
                Error::Config(format!("{AGENT_ENV} must be namespace/name, not {agent:?}"))
            })?;
            config = config.agent(namespace, name);
        }
        Ok(config)
    }

    /// The agent: the `Agent` resource `namespace/name`.
    #[must_use]
    pub fn agent(mut self, namespace: &str, name: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self.agent = Some(name.to_owned());
        self
    }

    /// The file holding the agent's private key (see [`AgentKey::load`]).
    #[must_use]
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// A key held in memory (takes precedence over a key file).
    #[must_use]
    pub fn key(mut self, key: AgentKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The lifetime to ask for each token (the operator caps it by the
    /// grant, the envelope and 1 h). Default: the operator's (5 min).
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = Some(lifetime);
        self
    }

    /// Refresh a token this long before it expires, at most; never more
    /// than a tenth of its lifetime. Default 30 s.
    #[must_use]
    pub fn refresh_before(mut self, margin: Duration) -> Self {
        self.refresh_before = margin;
        self
    }

    /// The limit on each call to the operator (not on waiting for approval).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The operator's base URL, without a trailing `/`.
    pub fn operator_url(&self) -> &str {
        &self.operator_url
    }

    /// The agent, once set: `(namespace, name)`.
    pub fn agent_ref(&self) -> Option<(&str, &str)> {
        Some((self.namespace.as_deref()?, self.agent.as_deref()?))
    }

    /// The key: the in-memory one, else the key file's.
    pub(crate) fn load_key(&self) -> Result<AgentKey> {
        match (&self.key, &self.key_file) {
            (Some(key), _) => Ok(key.clone()),
            (None, Some(path)) => AgentKey::load(path),
            (None, None) => Err(Error::Config(format!(
                "no agent key: set key_file(...) or {KEY_FILE_ENV}, or key(...)"
            ))),
        }
    }
}

/// Accepts `https://…` anywhere and `http://…` on loopback only; returns the
/// URL without a trailing `/`.
pub fn check_url(url: &str) -> Result<String> {
    let trimmed = url.trim_end_matches('/');
    let bad = |m: &str| Err(Error::Config(format!("operator URL {url:?}: {m}")));
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return bad("not an absolute URL");
    };
    if rest.contains(['?', '#', '@']) || rest.is_empty() {
        return bad("no query, fragment or userinfo allowed, and a host is needed");
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(trimmed.to_owned()),
        "http" if is_loopback(host_of(rest)) => Ok(trimmed.to_owned()),
        "http" => bad("plain http is only allowed on loopback; use https"),
        _ => bad("the scheme must be https"),
    }
}

/// The host of `authority[/path]`, without port or IPv6 brackets.
fn host_of(rest: &str) -> &str {
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for ok in [
            "https://operator.example.com",
            "https://operator.example.com:8443/prefix/",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://localhost:9000/",
            "http://[::1]:8080",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            check_url("https://op.example/").unwrap(),
            "https://op.example"
        );
        for bad in [
            "http://operator.example.com",
            "http://10.0.0.1:8080",
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example",
            "http://[::2]:80",
            "ftp://127.0.0.1",
            "operator.example.com",
            "https://user@op.example",
            "https://op.example/?x=1",
            "https://",
        ] {
            let error = check_url(bad).unwrap_err();
            assert!(matches!(error, Error::Config(_)), "{bad}: {error}");
        }
    }

    #[test]
    fn missing_key_is_a_config_error() {
        let config = AgentAuthConfig::new("https://op.example").unwrap();
        let config = AgentAuthConfig {
            key_file: None,
            ..config
        };
        assert!(matches!(config.load_key(), Err(Error::Config(_))));
    }
}
