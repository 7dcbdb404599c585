//! The verifier's audit sink (issue 12 item 11): an allow is never lost
//! silently under back-pressure, and a write retried after Redis applied it
//! (its answer held back by a fault-injecting proxy) is not written twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_core::audit::{AuditEvent, verify_chain};
use agentauth_state::consume::{ConsumeOutcome, ConsumeRequest};
use agentauth_state::{
    AppendError, AuditAppend, GrantState, InProcessState, Invalidation, RedisConfig, RedisState,
    SharedState, StateError,
};
use agentauth_testenv::{LatencyProxy, RedisServer};
use serde_json::json;
use tokio::sync::watch;

use crate::support::*;

/// An in-process state whose audit writes wait until the gate opens (a
/// stalled audit store); everything else answers at once.
struct GatedAudit {
    inner: Arc<InProcessState>,
    open: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl SharedState for GatedAudit {
    async fn put_grant(&self, s: &GrantState) -> Result<(), StateError> {
        self.inner.put_grant(s).await
    }
    async fn get_grant(&self, uid: &str) -> Result<Option<GrantState>, StateError> {
        self.inner.get_grant(uid).await
    }
    async fn revoke_grant(&self, uid: &str, at_ms: i64) -> Result<(), StateError> {
        self.inner.revoke_grant(uid, at_ms).await
    }
    async fn is_revoked(&self, uid: &str) -> Result<bool, StateError> {
        self.inner.is_revoked(uid).await
    }
    async fn remove_grant(&self, uid: &str) -> Result<(), StateError> {
        self.inner.remove_grant(uid).await
    }
    async fn subscribe(
        &self,
    ) -> Result<tokio::sync::broadcast::Receiver<Invalidation>, StateError> {
        self.inner.subscribe().await
    }
    async fn claim_jti(&self, scope: &str, jti: &str, ttl_ms: u64) -> Result<bool, StateError> {
        self.inner.claim_jti(scope, jti, ttl_ms).await
    }
    async fn append_audit_batch(&self, events: &[AuditEvent]) -> Result<AuditAppend, AppendError> {
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        self.inner.append_audit_batch(events).await
    }
    async fn last_audit_event(&self, producer: &str) -> Result<Option<AuditEvent>, StateError> {
        self.inner.last_audit_event(producer).await
    }
    async fn consume(&self, request: &ConsumeRequest<'_>) -> Result<ConsumeOutcome, StateError> {
        self.inner.consume(request).await
    }
}

/// Threat: unaudited allows — when the audit trail cannot keep up, an
/// allowed request must be refused (`audit_unavailable`), never allowed
/// with its record silently dropped; every allow that was answered is in
/// the chain once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_queue_refuses_allows_and_loses_none() {
    let fx = Fixture::new().await;
    let inner = Arc::new(InProcessState::new());
    let (gate, open) = watch::channel(false);
    let state: Arc<dyn SharedState> = Arc::new(GatedAudit {
        inner: inner.clone(),
        open,
    });
    let v = start_with(&fx, state.clone(), |c| c.audit_queue = 4, true).await;
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;
    let started = Instant::now();
    let (mut allowed, mut refused) = (0u64, 0u64);
    for i in 0..30 {
        let (status, answer) = v
            .verify(&fx.body(&token, read(&format!("orders/{i}"))))
            .await;
        assert_eq!(status, 200, "{answer}");
        if answer["allow"] == json!(true) {
            allowed += 1;
        } else {
            assert_eq!(answer["reason"], json!("audit_unavailable"), "{answer}");
            refused += 1;
        }
    }
    // Each refusal waited its bounded time, no more.
    assert!(started.elapsed() < Duration::from_secs(20));
    // One batch is in the stalled writer, four wait in the queue.
    assert!((5..=8).contains(&allowed), "allowed {allowed}");
    assert_eq!(allowed + refused, 30);
    assert_eq!(
        v.metric("agentauth_audit_allows_refused_total").await,
        refused as f64
    );
    // The refusals' own records found the queue full: dropped, counted.
    assert_eq!(
        v.metric("agentauth_audit_dropped_total{reason=\"queue_full\"}")
            .await,
        refused as f64
    );

    // The store is back: every answered allow is written, in one chain.
    gate.send(true).unwrap();
    v.stop().await;
    let events: Vec<AuditEvent> = inner
        .audit_events(0, 1000)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    verify_chain(&events).unwrap();
    let allows = events
        .iter()
        .filter(|e| e.decision.as_deref() == Some("allow"))
        .count();
    assert_eq!(allows as u64, allowed);
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

/// Threat: duplicated audit records on retry — Redis applies the verifier's
/// audit write but its answer arrives after the client's timeout (held by a
/// fault-injecting proxy); the verifier retries: the stream holds each
/// decision once, with no gap, and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_writes_retried_after_a_lost_answer_are_not_duplicated() {
    let server = RedisServer::start().await.unwrap();
    let proxy = LatencyProxy::start(([127, 0, 0, 1], server.port()).into())
        .await
        .unwrap();
    let direct = RedisState::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    let through_proxy = RedisConfig {
        write_timeout: Duration::from_millis(300),
        ..RedisConfig::new(proxy.redis_url())
    };
    let state = Arc::new(RedisState::connect(through_proxy).await.unwrap());
    let fx = Fixture::new().await;
    let v = start(&fx, state).await;
    let uid = uid();
    direct.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;
    let body = |i: usize| fx.body(&token, read(&format!("orders/{i}")));
    assert_eq!(v.reason(&body(0)).await, "allowed");
    wait_until("the first event is written", async || {
        stream(&direct).await.len() == 1
    })
    .await;

    // Answers held for longer than the client waits: these decisions fail
    // closed (their state calls time out), and their audit records reach
    // Redis while the verifier believes the writes failed.
    proxy.set_reply_delay(Duration::from_millis(1_000));
    for i in 1..4 {
        assert_eq!(v.reason(&body(i)).await, "state_unavailable");
    }
    // The writer re-sends its first held batch until an answer comes back.
    wait_until("Redis applied a held write", async || {
        stream(&direct).await.len() >= 2
    })
    .await;
    wait_until("the verifier retried", async || {
        v.metric("agentauth_audit_write_retries_total").await >= 1.0
    })
    .await;

    proxy.set_reply_delay(Duration::ZERO);
    wait_until("the verifier allows again", async || {
        v.reason(&body(9)).await == "allowed"
    })
    .await;
    // The retry's answer: "already written" (read before the stop; checked
    // after the chain, so a duplicate is named as such).
    let give_up = Instant::now() + Duration::from_secs(5);
    let mut skipped = 0.0;
    while skipped < 1.0 && Instant::now() < give_up {
        skipped = v.metric("agentauth_audit_duplicates_skipped_total").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    v.stop().await;

    let stored = stream(&direct).await;
    let counts = verify_chain(&stored).unwrap_or_else(|b| panic!("{}", b.message));
    assert_eq!(counts.values().sum::<u64>() as usize, stored.len());
    assert!(proxy.held_replies() >= 1);
    let mut seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
    seqs.dedup();
    assert_eq!(seqs, (0..stored.len() as u64).collect::<Vec<_>>());
    assert!(skipped >= 1.0, "no retry was reported as already written");
}
