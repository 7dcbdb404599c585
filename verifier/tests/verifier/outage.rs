//! Fail closed, recover by itself: Redis killed mid-run means
//! `state_unavailable` (never an allow), and once Redis is back the same
//! verifier process allows again without a restart. On a Redis Cluster,
//! the same when the master of the grant's slot dies, until its replica is
//! promoted.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_state::{RedisConfig, RedisState, SharedState};
use agentauth_testenv::{RedisCluster, RedisServer};
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

/// A Redis Cluster loses the master serving a grant's slot under traffic:
/// the verifier (production deadlines) denies `state_unavailable`, never
/// `allowed` and never a replay, until the replica is promoted; then the
/// same process allows again and is ready, without a restart. The
/// fail-closed window is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_master_killed_fails_closed_until_its_replica_takes_over() {
    let mut cluster = RedisCluster::start().await.unwrap();
    let fx = Fixture::new().await;
    let config = || RedisConfig {
        cluster: true,
        ..RedisConfig::new(cluster.seeds())
    };
    let operator = RedisState::connect(config()).await.unwrap();
    let v = start(&fx, Arc::new(RedisState::connect(config()).await.unwrap())).await;
    // A grant whose keys live on node 0.
    let uid = loop {
        let uid = uid();
        let slot = RedisCluster::slot_of(&agentauth_state::keys::grant_state(&uid));
        if cluster.master_of(slot).unwrap() == 0 {
            break uid;
        }
    };
    let grant = fx.grant(
        &uid,
        Some(json!({"rateLimits": [{"requests": 1000, "period": "1s", "burst": 1000}]})),
    );
    operator.put_grant(&grant).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;
    let used = fx.body(&token, read("orders/used"));
    assert_eq!(v.reason(&used).await, "allowed");

    // Requests all along; the master dies 200 ms in.
    let started = Instant::now();
    let promoted_at = Cell::new(None);
    let failover = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, promotion) = cluster.kill_and_await_promotion(0).await.unwrap();
        promoted_at.set(Some(Instant::now()));
        promotion
    };
    let traffic = async {
        let mut log = Vec::new();
        for i in 0.. {
            let answer = v
                .reason(&fx.body(&token, read(&format!("orders/{i}"))))
                .await;
            log.push((Instant::now(), answer.clone()));
            // The used proof is never admitted again, whatever the state.
            assert_ne!(v.reason(&used).await, "allowed");
            if promoted_at.get().is_some() && answer == "allowed" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no recovery within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        log
    };
    let (promotion, log) = tokio::join!(failover, traffic);
    let killed = promoted_at.get().unwrap() - promotion;
    // The kill goes through the node's watchdog: a request in flight may
    // still be answered a moment after it was ordered. The outage starts
    // with the first denial after the order.
    let first_denied = log
        .iter()
        .find(|(at, answer)| *at > killed && answer == "state_unavailable")
        .map(|(at, _)| *at)
        .expect("no request denied after the kill");
    let last_before = log
        .iter()
        .filter(|(at, answer)| *at < first_denied && answer == "allowed")
        .map(|(at, _)| *at)
        .max()
        .unwrap();
    let first_after = log
        .iter()
        .find(|(at, answer)| *at > first_denied && answer == "allowed")
        .map(|(at, _)| *at)
        .unwrap();
    let during: Vec<&String> = log
        .iter()
        .filter(|(at, _)| *at > last_before && *at < first_after)
        .map(|(_, answer)| answer)
        .collect();
    assert!(
        !during.is_empty(),
        "no request during the failover: killed at {:?}, {:?}",
        killed - started,
        log.iter()
            .map(|(at, a)| (*at - started, a))
            .collect::<Vec<_>>()
    );
    assert!(
        during.iter().all(|a| *a == "state_unavailable"),
        "{during:?}"
    );
    assert!(
        log.iter()
            .all(|(_, a)| a == "allowed" || a == "state_unavailable")
    );
    assert_eq!(v.reason(&used).await, "dpop_replayed");
    println!(
        "verifier: {} requests; denied state_unavailable for {:?} ({} answers); replica promoted \
         {promotion:?} after the kill, allowed again {:?} after it",
        log.len(),
        first_after - last_before,
        during.len(),
        first_after - killed,
    );
    assert!(v.metric("agentauth_state_errors_total").await >= 1.0);
    v.wait_ready().await;
    v.stop().await;
}
