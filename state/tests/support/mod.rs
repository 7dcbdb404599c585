//! Fixtures of the state tests: both implementations behind one constructor,
//! so that every contract test runs against each.

#![allow(
    dead_code,
    unused_macros,
    reason = "each test binary uses a different part"
)]
#![allow(clippy::expect_used, reason = "a failed fixture fails the test")]

/// Runs each named `async fn(Kind)` of the test crate's root three times:
/// as `in_process::<name>`, `redis::<name>` (one `redis-server`) and
/// `cluster::<name>` (a 3-master Redis Cluster of its own).
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Kind::InProcess).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Kind::Redis).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Kind::Cluster).await;
                }
            )*
        }
    };
}

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agentauth_core::envelope::MinorLimits;
use agentauth_core::gcra::{GcraParams, RateLimit};
use agentauth_core::money::Currency;
use agentauth_state::{
    Clock, ConsumeOutcome, ConsumeRequest, GrantPhase, GrantState, InProcessState, Invalidation,
    RedisConfig, RedisState, SharedState, Transaction,
};
use agentauth_testenv::{RedisCluster, RedisServer};
use tokio::sync::broadcast;

/// Which implementation a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    InProcess,
    Redis,
    /// A Redis Cluster: three masters, three replicas.
    Cluster,
}

/// One backend and a first client of it.
pub struct Backend {
    pub kind: Kind,
    pub state: Arc<dyn SharedState>,
    pub redis: Option<RedisServer>,
    pub cluster: Option<RedisCluster>,
    clock: Option<Arc<dyn Clock>>,
}

impl Backend {
    /// A fresh backend; `clock` pins the consume clock (Redis: the script's).
    pub async fn start(kind: Kind, clock: Option<Arc<dyn Clock>>) -> Self {
        match kind {
            Kind::InProcess => {
                let state = match &clock {
                    Some(clock) => InProcessState::with_clock(clock.clone()),
                    None => InProcessState::new(),
                };
                Self {
                    kind,
                    state: Arc::new(state),
                    redis: None,
                    cluster: None,
                    clock,
                }
            }
            Kind::Redis => {
                let server = RedisServer::start().await.expect("start redis-server");
                let state = redis_client(&server.url(), false, clock.clone()).await;
                Self {
                    kind,
                    state,
                    redis: Some(server),
                    cluster: None,
                    clock,
                }
            }
            Kind::Cluster => {
                let cluster = RedisCluster::start().await.expect("start a redis cluster");
                let state = redis_client(&cluster.seeds(), true, clock.clone()).await;
                Self {
                    kind,
                    state,
                    redis: None,
                    cluster: Some(cluster),
                    clock,
                }
            }
        }
    }

    /// The state loses its data, as a Redis that restarts empty: in process,
    /// a new state (the process restarted); Redis, the server killed and
    /// restarted empty; a cluster, the master of `uid`'s slot flushed (one
    /// shard lost its data). Returns once the state answers again.
    pub async fn lose_data(&mut self, uid: &str) {
        match self.kind {
            Kind::InProcess => {
                self.state = Arc::new(match &self.clock {
                    Some(clock) => InProcessState::with_clock(clock.clone()),
                    None => InProcessState::new(),
                });
            }
            Kind::Redis => {
                let server = self.redis.as_mut().expect("a redis server");
                server.restart().await.expect("restart redis-server");
            }
            Kind::Cluster => {
                let cluster = self.cluster.as_ref().expect("a cluster");
                let slot = RedisCluster::slot_of(&agentauth_state::keys::grant_state(uid));
                let master = cluster.master_of(slot).expect("the slot's master");
                cluster
                    .cli(master, "flush the grant's shard", &["FLUSHALL"])
                    .expect("FLUSHALL");
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.state.get_grant(uid).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the state is back within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Another client of the same backend: a second "verifier process" for
    /// Redis, the same state in process (there is only one process).
    pub async fn second(&self) -> Arc<dyn SharedState> {
        match (&self.redis, &self.cluster) {
            (Some(server), _) => redis_client(&server.url(), false, self.clock.clone()).await,
            (_, Some(cluster)) => redis_client(&cluster.seeds(), true, self.clock.clone()).await,
            (None, None) => self.state.clone(),
        }
    }
}

/// Generous deadlines: these tests check behaviour on a shared, loaded
/// machine; the fault tests check the defaults.
pub fn test_config(url: &str, cluster: bool, clock: Option<Arc<dyn Clock>>) -> RedisConfig {
    RedisConfig {
        cluster,
        hot_timeout: Duration::from_secs(2),
        write_timeout: Duration::from_secs(2),
        script_clock: clock,
        ..RedisConfig::new(url)
    }
}

async fn redis_client(
    url: &str,
    cluster: bool,
    clock: Option<Arc<dyn Clock>>,
) -> Arc<dyn SharedState> {
    Arc::new(
        RedisState::connect(test_config(url, cluster, clock))
            .await
            .expect("connect to redis"),
    )
}

/// A grant uid unique within the test binary.
pub fn fresh_uid(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The system clock in seconds: a fresh proof's `iat`.
pub fn now_secs() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch");
    i64::try_from(now.as_secs()).expect("fits")
}

/// A fresh proof id.
pub fn jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn mk_grant(uid: &str) -> GrantState {
    GrantState {
        uid: uid.to_owned(),
        grant: "team-a/refunds".to_owned(),
        agent: "team-a/support-bot".to_owned(),
        generation: 1,
        phase: GrantPhase::Approved,
        expires_at: Some(4_102_444_800), // 2100-01-01
        service_provider: "https://payments.example".to_owned(),
        agent_jkt: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".to_owned(),
        envelope: None,
        updated_at_ms: 1_700_000_000_000,
        approved_at_ms: None,
    }
}

/// `limits` as every limit of an envelope, with its position.
pub fn indexed(limits: &[GcraParams]) -> Vec<(usize, GcraParams)> {
    limits.iter().copied().enumerate().collect()
}

/// The GCRA parameters of `requests` per `period` with `burst`.
pub fn limit(requests: u32, period: &str, burst: u32) -> GcraParams {
    RateLimit {
        requests,
        period: period.parse().expect("period"),
        burst,
        applies_to: None,
    }
    .params()
    .expect("valid limit")
}

/// An amount in EUR cents against EUR limits in cents.
pub fn eur(amount: u64, max_per_transaction: Option<u64>, max_per_day: Option<u64>) -> Transaction {
    Transaction {
        amount_minor: amount,
        currency: Currency::EUR,
        limits: MinorLimits {
            currency: Currency::EUR,
            max_per_transaction,
            max_per_day,
        },
    }
}

/// Consumes once with a fresh jti.
pub async fn consume(
    state: &dyn SharedState,
    uid: &str,
    limits: &[GcraParams],
    transaction: Option<Transaction>,
) -> ConsumeOutcome {
    let jti = jti();
    let limits = indexed(limits);
    state
        .consume(&ConsumeRequest {
            uid,
            jti: &jti,
            jti_ttl_ms: 60_000,
            iat: now_secs(),
            rate_limits: &limits,
            transaction,
        })
        .await
        .expect("consume")
}

/// Consumes once with the given jti and `iat` (seconds), no limits.
pub async fn consume_proof(
    state: &dyn SharedState,
    uid: &str,
    jti: &str,
    iat: i64,
) -> ConsumeOutcome {
    let request = ConsumeRequest {
        uid,
        jti,
        jti_ttl_ms: 60_000,
        iat,
        rate_limits: &[],
        transaction: None,
    };
    state.consume(&request).await.expect("consume")
}

/// Consumes once with a fresh proof, counting `limits` given with their
/// envelope positions (the verifier's `appliesTo` filtering).
pub async fn consume_indexed(
    state: &dyn SharedState,
    uid: &str,
    limits: &[(usize, GcraParams)],
) -> ConsumeOutcome {
    let jti = jti();
    let request = ConsumeRequest {
        uid,
        jti: &jti,
        jti_ttl_ms: 60_000,
        iat: now_secs(),
        rate_limits: limits,
        transaction: None,
    };
    state.consume(&request).await.expect("consume")
}

/// Consumes once with the given jti and no transaction.
pub async fn consume_jti(
    state: &dyn SharedState,
    uid: &str,
    jti: &str,
    limits: &[GcraParams],
) -> ConsumeOutcome {
    let limits = indexed(limits);
    let request = ConsumeRequest {
        uid,
        jti,
        jti_ttl_ms: 60_000,
        iat: now_secs(),
        rate_limits: &limits,
        transaction: None,
    };
    state.consume(&request).await.expect("consume")
}

/// The next invalidation, within 1 s.
pub async fn next(rx: &mut broadcast::Receiver<Invalidation>) -> Invalidation {
    tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .expect("an invalidation within 1 s")
        .expect("the channel is open and not lagging")
}

/// 2023-11-14T22:13:20Z, in µs: where pinned clocks start.
pub const T0: u64 = 1_700_000_000_000_000;
