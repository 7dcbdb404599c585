//! How [`RedisState`](crate::RedisState) reaches Redis and how long it waits.
//!
//! One server: `url` is its URL. A Redis Cluster: `cluster` is set and
//! `url` is a comma-separated list of seed nodes
//! (`redis://10.0.0.1:6379,redis://10.0.0.2:6379`); the client learns the
//! rest of the cluster from whichever seed answers, so two or three seeds
//! (or one DNS name that resolves to every node) suffice.

use std::sync::Arc;
use std::time::Duration;

use crate::Clock;

/// How to reach Redis and how long to wait for it.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`, `unix://`);
    /// with [`cluster`](Self::cluster), comma-separated seed nodes
    /// `redis://host1:port1,redis://host2:port2` (database 0 only).
    pub url: String,
    /// Whether `url` names the seeds of a Redis Cluster rather than one
    /// server. Default `false`.
    pub cluster: bool,
    /// The AUTH password, when it is kept out of the URL (a Kubernetes
    /// Secret in the environment); it replaces any password in the URL.
    pub password: Option<String>,
    /// Deadline of the verifier's calls: `consume`, `get_grant`,
    /// `is_revoked`, `claim_jti`. Default 50 ms.
    pub hot_timeout: Duration,
    /// Deadline of every other call, and of (re)subscribing. Default 1 s.
    pub write_timeout: Duration,
    /// Deadline of one connection attempt. Default 1 s.
    pub connect_timeout: Duration,
    /// How often the invalidation subscription pings Redis, to notice a
    /// connection that died without closing. Default 1 s.
    pub heartbeat: Duration,
    /// Replaces Redis `TIME` in the consume script. `None` in production:
    /// every verifier must share Redis's clock. Tests pin it to compare the
    /// script with `gcra::step`; key expiry stays Redis's own.
    pub script_clock: Option<Arc<dyn Clock>>,
}

impl RedisConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            cluster: false,
            password: None,
            hot_timeout: Duration::from_millis(50),
            write_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            heartbeat: Duration::from_secs(1),
            script_clock: None,
        }
    }
}

/// Checks a `--redis-url` for `--redis-cluster` before anything connects:
/// each URL parses, a cluster names at least one seed, and one server's URL
/// holds no comma (a seed list without `--redis-cluster`). The message
/// names the flags.
pub fn check_url(url: &str, cluster: bool) -> Result<(), String> {
    if !cluster && url.contains(',') {
        return Err(format!(
            "--redis-url {:?} names several nodes; set --redis-cluster (AGENTAUTH_REDIS_CLUSTER=true) \
             for a Redis Cluster, or give one URL",
            redact(url)
        ));
    }
    let config = RedisConfig {
        cluster,
        ..RedisConfig::new(url)
    };
    super::connection::node_infos(&config)
        .map(drop)
        .map_err(|e| format!("--redis-url {:?}: {e}", redact(url)))
}

/// The URL without what lies between `://` and `@` (user and password).
fn redact(url: &str) -> String {
    url.split(',')
        .map(|one| match (one.find("://"), one.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}<credentials>{}", &one[..scheme + 3], &one[at..])
            }
            _ => one.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            // The URL may carry a password.
            .field("cluster", &self.cluster)
            .field("hot_timeout", &self.hot_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("heartbeat", &self.heartbeat)
            .field("script_clock", &self.script_clock.is_some())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn urls_are_checked_for_the_cluster_flag() {
        assert!(check_url("redis://a:6379/", false).is_ok());
        assert!(check_url("redis://a:1,redis://b:2", true).is_ok());
        let several = check_url("redis://:secret@a:1,redis://b:2", false).unwrap_err();
        assert!(several.contains("--redis-cluster"), "{several}");
        assert!(!several.contains("secret"), "{several}");
        assert!(
            check_url(" , ", true)
                .unwrap_err()
                .contains("seed list is empty")
        );
        assert!(check_url("not a url", false).is_err());
    }
}
