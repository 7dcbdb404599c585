//! The operator's audit sink against a real Redis (issue 12 item 11): a
//! write retried after Redis applied it — its answer held back past the
//! client's timeout by a fault-injecting proxy — is not written twice; and
//! two replicas under one identity never fork the stored chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_core::audit::{AuditEvent, Draft, kinds, verify_chain};
use agentauth_operator::audit::AuditSink;
use agentauth_operator::clock::{Clock, SystemClock};
use agentauth_operator::metrics::Metrics;
use agentauth_state::{RedisConfig, RedisState, SharedState};
use agentauth_testenv::{LatencyProxy, RedisServer};

const PRODUCER: &str = "operator/op-0";

fn draft(i: usize) -> Draft {
    Draft {
        kind: kinds::TOKEN_ISSUED.into(),
        grant: Some(format!("team-a/grant-{i}")),
        ..Draft::default()
    }
}

fn metric(metrics: &Metrics, name: &str) -> f64 {
    metrics
        .render()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn stream(state: &RedisState) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state.audit_stream(after.as_deref(), 500).await.unwrap();
        let Some((id, _)) = page.last() else {
            return out;
        };
        after = Some(id.clone());
        out.extend(page.into_iter().map(|(_, event)| event));
    }
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Threat: duplicated audit records on retry — the operator's audit write
/// is applied by Redis, the answer is held past the client's timeout, the
/// writer retries: each event is stored once, with no gap, and the chain
/// verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_audit_write_is_not_duplicated() {
    let server = RedisServer::start().await.unwrap();
    let proxy = LatencyProxy::start(([127, 0, 0, 1], server.port()).into())
        .await
        .unwrap();
    let direct = RedisState::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    let config = RedisConfig {
        write_timeout: Duration::from_millis(300),
        ..RedisConfig::new(proxy.redis_url())
    };
    let state: Arc<dyn SharedState> = Arc::new(RedisState::connect(config).await.unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let metrics = Metrics::new().unwrap();
    let sink = AuditSink::start(PRODUCER, state, clock, metrics.clone())
        .await
        .unwrap();
    for i in 0..2 {
        sink.record(draft(i)).await;
    }
    sink.flush().await;

    proxy.set_reply_delay(Duration::from_millis(1_000));
    for i in 2..5 {
        sink.record(draft(i)).await;
    }
    wait_until("Redis applied a held write", async || {
        stream(&direct).await.len() >= 3
    })
    .await;
    wait_until("the writer retried", async || {
        metric(&metrics, "agentauth_audit_write_retries_total") >= 1.0
    })
    .await;

    proxy.set_reply_delay(Duration::ZERO);
    for i in 5..7 {
        sink.record(draft(i)).await;
    }
    tokio::time::timeout(Duration::from_secs(20), sink.flush())
        .await
        .expect("the writer recovers once answers flow again");

    let stored = stream(&direct).await;
    verify_chain(&stored).unwrap_or_else(|b| panic!("{}", b.message));
    let grants: Vec<_> = stored.iter().filter_map(|e| e.grant.clone()).collect();
    let want: Vec<_> = (0..7).map(|i| format!("team-a/grant-{i}")).collect();
    assert_eq!(grants, want, "each event once, in order");
    assert!(metric(&metrics, "agentauth_audit_duplicates_skipped_total") >= 1.0);
    assert!(proxy.held_replies() >= 1);
}

/// Threat: forked audit chain — two replicas started with the same
/// identity write under one producer name; the second's append conflicts,
/// is counted and re-linked after the stored end, so the stored chain
/// stays one verifiable chain and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_under_one_identity_never_fork_the_stored_chain() {
    let server = RedisServer::start().await.unwrap();
    let direct = Arc::new(
        RedisState::connect(RedisConfig::new(server.url()))
            .await
            .unwrap(),
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (ma, mb) = (Metrics::new().unwrap(), Metrics::new().unwrap());
    // Both resume from the same (empty) stored chain.
    let a = AuditSink::start(PRODUCER, direct.clone(), clock.clone(), ma.clone())
        .await
        .unwrap();
    let b = AuditSink::start(PRODUCER, direct.clone(), clock, mb.clone())
        .await
        .unwrap();
    a.record(draft(0)).await;
    a.flush().await;
    b.record(draft(1)).await;
    b.flush().await;
    a.record(draft(2)).await;
    a.flush().await;

    let stored = stream(&direct).await;
    verify_chain(&stored).unwrap_or_else(|b| panic!("{}", b.message));
    let grants: Vec<_> = stored.iter().filter_map(|e| e.grant.clone()).collect();
    assert_eq!(
        grants,
        ["team-a/grant-0", "team-a/grant-1", "team-a/grant-2"]
    );
    assert_eq!(
        metric(&mb, "agentauth_audit_conflicts_total{kind=\"fork\"}"),
        1.0
    );
    assert_eq!(
        metric(&ma, "agentauth_audit_conflicts_total{kind=\"fork\"}"),
        1.0
    );
}
