//! The data connection of [`RedisState`](crate::RedisState): one Redis
//! server, or a Redis Cluster, behind one [`ConnectionLike`], so that every
//! call (commands, `EVALSHA`, stream commands) is written once for both.
//!
//! ```text
//!  RedisConfig { url, cluster: false } ─▶ ConnectionManager ─────────────▶ one server
//!  RedisConfig { url: "u1,u2,…", cluster: true }
//!                                      ─▶ cluster_async::ClusterConnection ─▶ the master of each key's slot
//!                                         (slot map from the seeds; follows MOVED and ASK,
//!                                          waits out TRYAGAIN / CLUSTERDOWN, refreshes on failover)
//! ```
//!
//! Every multi-key call names keys of one hash tag (`{<uid>}` or
//! `{audit}`, see [`keys`](crate::keys)), so each call has one slot and one
//! node. Writes that also notify are scripts that `PUBLISH` (a cluster
//! forwards a publication to every node), not `MULTI … EXEC` pipelines: a
//! transaction that meets a redirect is aborted whole (`EXECABORT`) and is
//! not retried, while a script is one command the cluster client redirects
//! like any other.

use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClientBuilder, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Value,
};

use super::RedisConfig;
use crate::StateError;

/// How many times the cluster client retries a call that met a redirect,
/// `TRYAGAIN`, `CLUSTERDOWN` or a broken node connection; the callers'
/// deadlines (50 ms hot, 1 s otherwise) bound the whole anyway.
const CLUSTER_RETRIES: u32 = 12;

/// Bounds of the wait between two such retries, in ms. The library's
/// default starts at 1.28 s, longer than any caller waits; a failover on a
/// short `cluster-node-timeout` takes about a second, so retry often.
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 5;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 200;

/// One server or a cluster; cheap to clone (both multiplex one set of
/// connections).
#[derive(Clone)]
pub(super) enum Connection {
    /// One server, reconnected in the background when the connection breaks.
    Single(ConnectionManager),
    /// A Redis Cluster: one connection per node, routed by slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// The data connection of `config` and one plain client per node it names
/// (the seeds of a cluster, else the one server), for the invalidation
/// subscription. Connects lazily: fails only for a malformed URL or seed list.
pub(super) fn open(config: &RedisConfig) -> Result<(Connection, Vec<Client>), StateError> {
    let nodes = node_infos(config)?;
    let clients = nodes
        .iter()
        .cloned()
        .map(Client::open)
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let conn = if config.cluster {
        let mut builder = ClusterClientBuilder::new(nodes)
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.write_timeout)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
            .retry_wait_formula(10, 2);
        if let Some(password) = &config.password {
            builder = builder.password(password);
        }
        let client = builder.build().map_err(invalid)?;
        let cluster_config = ClusterConfig::new()
            .set_connection_timeout(config.connect_timeout)
            .set_response_timeout(config.write_timeout);
        Connection::Cluster(client.get_pending_async_connection_with_config(cluster_config))
    } else {
        let Some(client) = clients.first() else {
            return Err(StateError::Unavailable("no Redis URL".to_owned()));
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.write_timeout))
            // Reconnect fast (loopback or one hop away); the callers'
            // timeouts keep them from waiting on the attempts.
            .set_min_delay(Duration::from_millis(25))
            .set_max_delay(Duration::from_millis(500))
            .set_number_of_retries(8);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(super::redis_error)?;
        Connection::Single(manager)
    };
    Ok((conn, clients))
}

/// The URL, or each comma-separated seed of a cluster, with the configured
/// password in place of any in the URL.
pub(super) fn node_infos(config: &RedisConfig) -> Result<Vec<ConnectionInfo>, StateError> {
    let urls: Vec<&str> = if config.cluster {
        config
            .url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect()
    } else {
        vec![config.url.as_str()]
    };
    if urls.is_empty() {
        return Err(StateError::Unavailable(
            "invalid Redis URL: the cluster seed list is empty".to_owned(),
        ));
    }
    urls.into_iter()
        .map(|url| {
            let mut info = url.into_connection_info().map_err(invalid)?;
            if let Some(password) = &config.password {
                let settings = info.redis_settings().clone().set_password(password);
                info = info.set_redis_settings(settings);
            }
            Ok(info)
        })
        .collect()
}

fn invalid(e: RedisError) -> StateError {
    StateError::Unavailable(format!("invalid Redis URL: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, cluster: bool) -> RedisConfig {
        RedisConfig {
            cluster,
            ..RedisConfig::new(url)
        }
    }

    #[test]
    fn a_cluster_url_is_a_comma_separated_seed_list() {
        let nodes = node_infos(&config(
            "redis://10.0.0.1:7000, redis://10.0.0.2:7001/,",
            true,
        ))
        .unwrap();
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:7000", "10.0.0.2:7001"]);
    }

    #[test]
    fn bad_seed_lists_are_refused() {
        for url in ["", " , ", "redis://ok:1,not a url"] {
            assert!(node_infos(&config(url, true)).is_err(), "{url:?}");
        }
        // Without `cluster`, a comma is not a separator.
        assert!(node_infos(&config("redis://a:1,redis://b:2", false)).is_err());
    }

    #[test]
    fn the_password_replaces_the_urls_password() {
        let mut config = config("redis://:old@a:1,redis://b:2", true);
        config.password = Some("new".to_owned());
        for node in node_infos(&config).unwrap() {
            assert_eq!(node.redis_settings().password(), Some("new"));
        }
    }
}
