//! The JWKS from the operator's URL (an unknown `kid` costs one rate-limited
//! refresh, so a rotated key works at once). The audit sink's tests are in
//! `audit.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use agentauth_state::{InProcessState, SharedState};
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
