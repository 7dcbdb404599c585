//! Crashes at every step of the archiver: nothing lost, nothing sealed twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentauth_archiver::{ArchiverConfig, SegmentStore, StoreError};
use agentauth_core::audit::Chain;
use async_trait::async_trait;

use crate::support::Env;

/// Killed while holding read, unsealed entries: they are delivered again
/// and sealed once.
#[tokio::test]
async fn killed_mid_segment_the_restarted_archiver_loses_and_doubles_nothing() {
    let env = Env::new().await;
    let mut a = Chain::new("verifier/node-a");
    let holding = ArchiverConfig {
        max_records: 10_000,
        max_age: Duration::from_secs(3600),
        ..env.config()
    };
    let running = env.start(holding);
    env.produce(&mut a, 150).await;
    wait_until("the archiver has read every entry", || async {
        env.state.audit_group_backlog().await.unwrap() == (0, 150)
    })
    .await;
    running.crash().await;
    assert!(
        env.verify().await.unwrap().records == 0,
        "nothing was sealed"
    );

    let running = env.start(env.config());
    env.produce(&mut a, 20).await;
    let summary = env.sealed(170).await;
    running.stop().await;
    assert_eq!(summary.records, 170, "each record once: {summary:?}");
    assert_eq!(env.stream_len().await, 0);
}

/// A store whose first put lands durably and then never answers: the
/// archiver dies after writing, before acknowledging.
struct StallAfterFirstPut {
    inner: Arc<dyn SegmentStore>,
    puts: AtomicUsize,
}

#[async_trait]
impl SegmentStore for StallAfterFirstPut {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn list(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list().await
    }
    async fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.get(name).await
    }
    async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.put(name, bytes).await?;
        if self.puts.fetch_add(1, Ordering::SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

/// Killed after the segment was durable but before the stream was
/// acknowledged: the entries come again, are recognised as sealed, and are
/// acknowledged without a second copy.
#[tokio::test]
async fn killed_after_writing_before_acknowledging_seals_nothing_twice() {
    let env = Env::new().await;
    let mut a = Chain::new("verifier/node-a");
    let stalling = Arc::new(StallAfterFirstPut {
        inner: env.store.clone(),
        puts: AtomicUsize::new(0),
    });
    let running = env.start_with(env.config(), stalling);
    env.produce(&mut a, 50).await;
    env.sealed(50).await;
    running.crash().await;
    let (_, pending) = env.state.audit_group_backlog().await.unwrap();
    assert_eq!(pending, 50, "written but never acknowledged");

    let running = env.start(env.config());
    env.produce(&mut a, 10).await;
    let summary = env.sealed(60).await;
    wait_until("the redelivered entries are acknowledged", || async {
        env.state.audit_group_backlog().await.unwrap() == (0, 0)
    })
    .await;
    assert_eq!(running.metrics.redelivered.get(), 50);
    running.stop().await;
    assert_eq!(summary.records, 60);
    assert_eq!(summary.segments, 2);
}

/// A store that fails its first puts: the archiver retries the same sealed
/// bytes and acknowledges nothing before one lands.
struct FailingPuts {
    inner: Arc<dyn SegmentStore>,
    failures: AtomicUsize,
}

#[async_trait]
impl SegmentStore for FailingPuts {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn list(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list().await
    }
    async fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.get(name).await
    }
    async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::Failed("injected: the store is down".into()));
        }
        self.inner.put(name, bytes).await
    }
}

#[tokio::test]
async fn a_failing_store_delays_sealing_and_acknowledges_nothing_early() {
    let env = Env::new().await;
    let mut a = Chain::new("verifier/node-a");
    let failing = Arc::new(FailingPuts {
        inner: env.store.clone(),
        failures: AtomicUsize::new(3),
    });
    let running = env.start_with(env.config(), failing.clone());
    env.produce(&mut a, 30).await;
    wait_until("the store has failed", || async {
        running.metrics.errors.with_label_values(&["store"]).get() >= 1
    })
    .await;
    let (_, pending) = env.state.audit_group_backlog().await.unwrap();
    assert!(pending > 0 || failing.failures.load(Ordering::SeqCst) == 0);
    let summary = env.sealed(30).await;
    assert_eq!(
        running.metrics.errors.with_label_values(&["store"]).get(),
        3
    );
    running.stop().await;
    assert_eq!(summary.records, 30);
}

/// While the store keeps failing, the backlog gauge shows what waits: it is
/// read on a timer, not only after a seal that never comes.
#[tokio::test]
async fn while_nothing_seals_the_backlog_gauge_shows_what_waits() {
    let env = Env::new().await;
    let mut a = Chain::new("verifier/node-a");
    let failing = Arc::new(FailingPuts {
        inner: env.store.clone(),
        failures: AtomicUsize::new(usize::MAX),
    });
    let running = env.start_with(env.config(), failing);
    env.produce(&mut a, 30).await;
    wait_until(
        "the backlog gauge counts the 30 waiting entries",
        || async { running.metrics.backlog.get() == 30 },
    )
    .await;
    assert_eq!(running.metrics.records.get(), 0);
    running.crash().await;
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
