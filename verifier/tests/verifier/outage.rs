//! Fail closed, recover by itself: Redis killed mid-run means
//! `state_unavailable` (never an allow), and once Redis is back the same
//! verifier process allows again without a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_state::{RedisConfig, RedisState, SharedState};
use agentauth_testenv::RedisServer;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_fails_closed_then_recovers() {
    let mut redis = RedisServer::start().await.unwrap();
    let fx = Fixture::new().await;
    let operator: Arc<dyn SharedState> = Arc::new(
        RedisState::connect(RedisConfig::new(redis.url()))
            .await
            .unwrap(),
    );
    let state = Arc::new(
        RedisState::connect(RedisConfig::new(redis.url()))
            .await
            .unwrap(),
    );
    let v = start(&fx, state).await;
    let uid = uid();
    let grant = fx.grant(
        &uid,
        Some(json!({"rateLimits": [{"requests": 100, "period": "1s", "burst": 100}]})),
    );
    operator.put_grant(&grant).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;
    assert_eq!(
        v.reason(&fx.body(&token, read("orders/1"))).await,
        "allowed"
    );

    redis.kill();
    // Cached grant or not, the one round trip cannot be made: deny, promptly.
    for i in 0..5 {
        let started = Instant::now();
        let (status, answer) = v
            .verify(&fx.body(&token, read(&format!("orders/{i}"))))
            .await;
        assert_eq!(status, 200);
        assert_eq!(answer["allow"], json!(false), "{answer}");
        assert_eq!(answer["reason"], json!("state_unavailable"), "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(v.get("/readyz").await.0, 503);
    assert!(v.metric("agentauth_state_errors_total").await >= 1.0);

    // Back, empty (like a crashed Redis without persistence): the operator
    // rewrites the grant; the verifier reconnects by itself.
    redis.restart().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let _ = operator.put_grant(&grant).await;
        let answer = v.reason(&fx.body(&token, read("orders/9"))).await;
        if answer == "allowed" {
            break;
        }
        assert!(
            answer == "state_unavailable" || answer == "grant_unknown",
            "unexpected {answer} while recovering"
        );
        assert!(
            Instant::now() < deadline,
            "no recovery within 15 s: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    v.wait_ready().await;
    v.stop().await;
}
