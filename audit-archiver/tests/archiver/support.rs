//! A real Redis, a directory store, a local root key, and producers writing
//! chained events the way the services do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_archiver::config::parse_keys;
use agentauth_archiver::verify::{self, VerifyOptions};
use agentauth_archiver::{
    Archiver, ArchiverConfig, DirStore, Metrics, Problem, SegmentStore, Summary,
};
use agentauth_core::audit::{AuditEvent, Chain, Draft};
use agentauth_core::jwk::EcPublicJwk;
use agentauth_signer::{LocalSigner, Signer};
use agentauth_state::{RedisConfig, RedisState, SharedState};
use agentauth_testenv::RedisServer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Env {
    pub redis: RedisServer,
    pub state: Arc<RedisState>,
    pub _dir: tempfile::TempDir,
    pub store: Arc<DirStore>,
    pub signer: Arc<LocalSigner>,
}

impl Env {
    pub async fn new() -> Env {
        let redis = RedisServer::start()
            .await
            .expect("redis-server (scripts/deps.sh)");
        let mut config = RedisConfig::new(redis.url());
        config.write_timeout = Duration::from_secs(5);
        let state = Arc::new(RedisState::new(config).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(DirStore::open(dir.path().join("archive")).unwrap());
        let signer = Arc::new(LocalSigner::generate().unwrap());
        Env {
            redis,
            state,
            _dir: dir,
            store,
            signer,
        }
    }

    pub fn trusted(&self) -> Vec<EcPublicJwk> {
        let json = serde_json::to_string(self.signer.public_jwk()).unwrap();
        parse_keys(&json).unwrap()
    }

    /// `n` events of `producer`, appended in batches as a service would.
    pub async fn produce(&self, chain: &mut Chain, n: usize) -> Vec<AuditEvent> {
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| {
                let draft = Draft {
                    kind: "verification".into(),
                    agent: Some("team-a/agent-1".into()),
                    grant: Some(format!("team-a/grant-{}", i % 3)),
                    decision: Some(if i % 4 == 0 { "deny" } else { "allow" }.into()),
                    reason: (i % 4 == 0).then(|| "rate_limited".into()),
                    ..Draft::default()
                };
                chain.append(draft, 1_800_000_000_000 + i as i64).unwrap()
            })
            .collect();
        for piece in events.chunks(64) {
            self.state.append_audit_batch(piece).await.unwrap();
        }
        events
    }

    pub fn config(&self) -> ArchiverConfig {
        ArchiverConfig {
            max_records: 100,
            max_age: Duration::from_millis(200),
            poll_interval: Duration::from_millis(20),
            lease_ttl: Duration::from_secs(3),
            ..ArchiverConfig::default()
        }
    }

    /// Starts an archiver task; dropping or aborting it is a crash.
    pub fn start(&self, config: ArchiverConfig) -> Running {
        self.start_with(config, self.store.clone())
    }

    pub fn start_with(&self, config: ArchiverConfig, store: Arc<dyn SegmentStore>) -> Running {
        let metrics = Metrics::new().unwrap();
        let archiver = Archiver::new(
            self.state.clone(),
            store,
            self.signer.clone(),
            config,
            metrics.clone(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            archiver
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .map_err(|e| e.to_string())
        });
        Running {
            task,
            stop: Some(stop),
            metrics,
        }
    }

    pub async fn verify(&self) -> Result<Summary, Problem> {
        let options = VerifyOptions {
            trusted: self.trusted(),
            head: None,
        };
        verify::verify(self.store.as_ref(), &options).await
    }

    /// Waits until the archive holds `records` records in total.
    pub async fn sealed(&self, records: u64) -> Summary {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(summary) = self.verify().await
                && summary.records >= records
            {
                return summary;
            }
            assert!(
                Instant::now() < deadline,
                "the archive did not reach {records} records: {:?}",
                self.verify().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stream_len(&self) -> u64 {
        let client = redis::Client::open(self.redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("XLEN")
            .arg(agentauth_state::keys::AUDIT_STREAM)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

pub struct Running {
    pub task: JoinHandle<Result<(), String>>,
    stop: Option<oneshot::Sender<()>>,
    pub metrics: Metrics,
}

impl Running {
    /// A clean shutdown.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the archiver stops on shutdown")
            .unwrap()
            .unwrap();
    }

    /// A crash: the task is gone wherever it was.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
