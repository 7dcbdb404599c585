//! The Redis flags of every service that reaches the shared state (the
//! operator, the verifier, the archiver): one definition, flattened into
//! each one's flags, so that the names, environment variables and checks
//! are the same everywhere.

use crate::RedisConfig;
use crate::redis::check_url;

/// `--redis-url`, `--redis-cluster`, `--redis-password`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RedisFlags {
    /// Redis URL of the shared state; without it, state is kept in process
    /// (one replica of each service, one verifier node).
    #[arg(long, env = "AGENTAUTH_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Whether the Redis URL names a Redis Cluster: then it is a
    /// comma-separated list of seed nodes
    /// (`redis://redis-0.redis:6379,redis://redis-1.redis:6379`); each
    /// grant's keys live on one slot. `true` or `false` (also `1`/`0`,
    /// `yes`/`no`, `on`/`off`).
    #[arg(
        long,
        env = "AGENTAUTH_REDIS_CLUSTER",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub redis_cluster: bool,

    /// The Redis AUTH password, kept out of the URL (from a Secret). Prefer
    /// the environment variable: a flag shows in the process list.
    #[arg(long, env = "AGENTAUTH_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,
}

impl RedisFlags {
    /// Checks what clap cannot: the URL's shape for `--redis-cluster`
    /// ([`check_url`]), and that `--redis-cluster` comes with a URL.
    pub fn validate(&self) -> Result<(), String> {
        match &self.redis_url {
            Some(url) => check_url(url, self.redis_cluster),
            None if self.redis_cluster => Err(
                "--redis-cluster needs --redis-url: the cluster's seed nodes, comma-separated"
                    .into(),
            ),
            None => Ok(()),
        }
    }

    /// The connection settings the flags give (defaults for the rest), or
    /// `None` without `--redis-url`.
    pub fn config(&self) -> Option<RedisConfig> {
        let url = self.redis_url.as_ref()?;
        let mut redis = RedisConfig::new(url.clone());
        redis.cluster = self.redis_cluster;
        redis.password.clone_from(&self.redis_password);
        Some(redis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        redis: RedisFlags,
    }

    fn parse(args: &[&str]) -> Result<RedisFlags, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|c| c.redis)
    }

    #[test]
    fn cluster_is_boolish_and_needs_a_url() -> Result<(), clap::Error> {
        let flags = parse(&[
            "--redis-url=redis://a:6379,redis://b:6379",
            "--redis-cluster",
        ])?;
        assert!(flags.redis_cluster);
        assert!(flags.validate().is_ok());
        let flags = parse(&["--redis-cluster=no"])?;
        assert!(!flags.redis_cluster);
        assert!(parse(&["--redis-cluster"])?.validate().is_err());
        assert!(parse(&[])?.config().is_none());
        Ok(())
    }

    #[test]
    fn config_carries_cluster_and_password() -> Result<(), clap::Error> {
        let flags = parse(&["--redis-url=redis://a:6379", "--redis-password=pw"])?;
        let config = flags.config();
        assert_eq!(
            config.as_ref().map(|c| c.url.as_str()),
            Some("redis://a:6379")
        );
        assert_eq!(config.and_then(|c| c.password), Some("pw".to_owned()));
        Ok(())
    }
}
