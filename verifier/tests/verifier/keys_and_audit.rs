//! The JWKS from the operator's URL (an unknown `kid` costs one rate-limited
//! refresh, so a rotated key works at once), and the audit queue under
//! back-pressure (requests never wait; every loss is counted).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentauth_core::audit::AuditEvent;
use agentauth_state::consume::{ConsumeOutcome, ConsumeRequest};
use agentauth_state::{GrantState, InProcessState, Invalidation, SharedState, StateError};
use axum::routing::get;
use serde_json::json;

use crate::support::*;

#[derive(Default)]
struct Served {
    jwks: Mutex<String>,
    fetches: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refreshes_the_jwks_once() {
    let fx = Fixture::new().await;
    let served = Arc::new(Served::default());
    *served.jwks.lock().unwrap() = serde_json::to_string(&fx.hierarchy.jwks(fx.now())).unwrap();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        get({
            let served = served.clone();
            move || async move {
                served.fetches.fetch_add(1, Ordering::SeqCst);
                served.jwks.lock().unwrap().clone()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let v = start_with(
        &fx,
        state.clone(),
        |c| {
            c.jwks_file = None;
            c.jwks_url = Some(url);
        },
        true,
    )
    .await;
    assert_eq!(
        served.fetches.load(Ordering::SeqCst),
        1,
        "fetched once at start"
    );
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;
    assert_eq!(
        v.reason(&fx.body(&token, read("orders/1"))).await,
        "allowed"
    );

    // The operator rotates its issuing key: the first token of the new key
    // triggers one fetch and is allowed.
    fx.hierarchy.rotate(fx.now()).await.unwrap();
    *served.jwks.lock().unwrap() = serde_json::to_string(&fx.hierarchy.jwks(fx.now())).unwrap();
    let rotated = fx.token(&uid, json!([read("orders/**")])).await;
    assert_eq!(
        v.reason(&fx.body(&rotated, read("orders/2"))).await,
        "allowed"
    );
    assert_eq!(served.fetches.load(Ordering::SeqCst), 2);

    // A flood of unknown kids costs no more fetches within the interval.
    for _ in 0..5 {
        let claims = serde_json::to_value(fx.claims(&uid, json!([read("orders/**")]))).unwrap();
        let bogus = fx.sign_raw(
            json!({"typ": "at+jwt", "alg": "ES256", "kid": "bogus"}),
            claims,
        );
        let mut body = fx.body(&bogus, read("orders/3"));
        body["dpop"] = json!(fx.proof(&bogus, "POST", URL));
        assert_eq!(v.reason(&body).await, "token_key_unknown");
    }
    assert_eq!(served.fetches.load(Ordering::SeqCst), 2);
    assert!(
        v.metric("agentauth_jwks_refreshes_total{result=\"throttled\"}")
            .await
            >= 4.0
    );
    v.stop().await;
}

/// An in-process state whose audit writes never complete.
struct StuckAudit(InProcessState);

#[async_trait::async_trait]
impl SharedState for StuckAudit {
    async fn put_grant(&self, s: &GrantState) -> Result<(), StateError> {
        self.0.put_grant(s).await
    }
    async fn get_grant(&self, uid: &str) -> Result<Option<GrantState>, StateError> {
        self.0.get_grant(uid).await
    }
    async fn revoke_grant(&self, uid: &str, at_ms: i64) -> Result<(), StateError> {
        self.0.revoke_grant(uid, at_ms).await
    }
    async fn is_revoked(&self, uid: &str) -> Result<bool, StateError> {
        self.0.is_revoked(uid).await
    }
    async fn remove_grant(&self, uid: &str) -> Result<(), StateError> {
        self.0.remove_grant(uid).await
    }
    async fn subscribe(
        &self,
    ) -> Result<tokio::sync::broadcast::Receiver<Invalidation>, StateError> {
        self.0.subscribe().await
    }
    async fn claim_jti(&self, scope: &str, jti: &str, ttl_ms: u64) -> Result<bool, StateError> {
        self.0.claim_jti(scope, jti, ttl_ms).await
    }
    async fn append_audit(&self, _: &AuditEvent) -> Result<(), StateError> {
        std::future::pending().await
    }
    async fn append_audit_batch(&self, _: &[AuditEvent]) -> Result<(), StateError> {
        std::future::pending().await
    }
    async fn last_audit_event(&self, producer: &str) -> Result<Option<AuditEvent>, StateError> {
        self.0.last_audit_event(producer).await
    }
    async fn consume(&self, request: &ConsumeRequest<'_>) -> Result<ConsumeOutcome, StateError> {
        self.0.consume(request).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_queue_drops_and_counts_but_never_waits() {
    let fx = Fixture::new().await;
    let state: Arc<dyn SharedState> = Arc::new(StuckAudit(InProcessState::new()));
    let v = start_with(&fx, state.clone(), |c| c.audit_queue = 4, true).await;
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;
    let started = Instant::now();
    for i in 0..30 {
        assert_eq!(
            v.reason(&fx.body(&token, read(&format!("orders/{i}"))))
                .await,
            "allowed"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    // One batch is stuck in the writer, four wait in the queue: the rest are dropped.
    let dropped = v.metric("agentauth_audit_dropped_total").await;
    assert!((20.0..=29.0).contains(&dropped), "dropped {dropped}");
}
