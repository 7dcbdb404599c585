//! What must hold across verifiers at once (issue 5): one proof replayed
//! against two verifiers is allowed once; a shared rate limit admits its
//! total, not double; a daily limit hit by 200 concurrent requests is never
//! exceeded; a revocation is honoured by both within a second. The same
//! scenarios run on one Redis (two verifiers with their own connections, as
//! two processes would have), on a 3-master Redis Cluster (the same, each
//! grant's keys on one slot of one master) and on the in-process state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_core::audit::{AuditEvent, verify_chain};
use agentauth_state::{GrantPhase, InProcessState, RedisConfig, RedisState, SharedState};
use agentauth_testenv::{RedisCluster, RedisServer};
use futures::future::join_all;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_verifiers_on_one_redis() {
    let redis = RedisServer::start().await.unwrap();
    // Generous deadlines: a debug build under 200 concurrent requests on two
    // cores is slow, and a timed-out request is (correctly) denied.
    let connect = || async {
        let mut config = RedisConfig::new(redis.url());
        config.hot_timeout = Duration::from_secs(5);
        Arc::new(RedisState::connect(config).await.unwrap())
    };
    let operator: Arc<dyn SharedState> = connect().await;
    let fx = Fixture::new().await;
    let a = start_with(&fx, connect().await, |c| tolerant(c, "a"), true).await;
    let b = start_with(&fx, connect().await, |c| tolerant(c, "b"), true).await;
    run_scenarios(&fx, &a, &b, operator.as_ref()).await;
    a.stop().await;
    b.stop().await;

    // Every decision was audited, in two unbroken chains.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(agentauth_state::keys::AUDIT_STREAM)
        .arg("-")
        .arg("+")
        .query_async::<redis::Value>(&mut conn)
        .await
        .map(stream_entries)
        .unwrap();
    let events: Vec<AuditEvent> = entries
        .iter()
        .flat_map(|(_, fields)| {
            fields
                .iter()
                .map(|(_, json)| AuditEvent::from_json(json).unwrap())
        })
        .collect();
    let chains = verify_chain(&events).unwrap();
    assert_eq!(chains.len(), 2, "{chains:?}");
    assert!(
        chains["verifier/a"] > 100 && chains["verifier/b"] > 100,
        "{chains:?}"
    );
    assert!(events.iter().all(|e| e.kind == "verification"));
}

/// The scenarios on a Redis Cluster: the verifiers' one round trip
/// (`EVALSHA` on a grant's keys), the operator's writes and their
/// invalidations, and both audit chains, each routed by slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_verifiers_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await.unwrap();
    let connect = || async {
        let mut config = RedisConfig::new(cluster.seeds());
        config.cluster = true;
        config.hot_timeout = Duration::from_secs(5);
        Arc::new(RedisState::connect(config).await.unwrap())
    };
    let operator = connect().await;
    let fx = Fixture::new().await;
    let a = start_with(&fx, connect().await, |c| tolerant(c, "a"), true).await;
    let b = start_with(&fx, connect().await, |c| tolerant(c, "b"), true).await;
    run_scenarios(&fx, &a, &b, operator.as_ref()).await;
    a.stop().await;
    b.stop().await;

    let events: Vec<AuditEvent> = operator
        .audit_stream(None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, event)| event)
        .collect();
    let chains = verify_chain(&events).unwrap();
    assert_eq!(chains.len(), 2, "{chains:?}");
    assert!(
        chains["verifier/a"] > 100 && chains["verifier/b"] > 100,
        "{chains:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_state_passes_the_same_scenarios() {
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let fx = Fixture::new().await;
    let a = start_with(&fx, state.clone(), |c| tolerant(c, "a"), true).await;
    let b = start_with(&fx, state.clone(), |c| tolerant(c, "b"), true).await;
    run_scenarios(&fx, &a, &b, state.as_ref()).await;
    a.stop().await;
    b.stop().await;
}

fn tolerant(config: &mut agentauth_verifier::config::VerifierConfig, identity: &str) {
    config.identity = Some(identity.into());
    config.state_timeout = "5s".parse().unwrap();
}

async fn run_scenarios(fx: &Fixture, a: &Running, b: &Running, operator: &dyn SharedState) {
    replay_is_allowed_once(fx, a, b, operator).await;
    shared_rate_limit_admits_its_total(fx, a, b, operator).await;
    daily_limit_is_never_exceeded(fx, a, b, operator).await;
    revocation_is_honoured_within_a_second(fx, a, b, operator).await;
}

async fn replay_is_allowed_once(
    fx: &Fixture,
    a: &Running,
    b: &Running,
    operator: &dyn SharedState,
) {
    let uid = uid();
    operator.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;
    for i in 0..20 {
        let body = fx.body(&token, read(&format!("orders/{i}")));
        let (x, y) = tokio::join!(a.reason(&body), b.reason(&body));
        let mut got = [x, y];
        got.sort();
        assert_eq!(
            got,
            ["allowed".to_owned(), "dpop_replayed".to_owned()],
            "proof {i}"
        );
    }
}

async fn shared_rate_limit_admits_its_total(
    fx: &Fixture,
    a: &Running,
    b: &Running,
    operator: &dyn SharedState,
) {
    let uid = uid();
    let envelope = json!({"rateLimits": [{"requests": 10, "period": "1h", "burst": 10}]});
    operator
        .put_grant(&fx.grant(&uid, Some(envelope)))
        .await
        .unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;
    let bodies: Vec<Value> = (0..40)
        .map(|i| fx.body(&token, read(&format!("orders/{i}"))))
        .collect();
    let answers = join_all(bodies.iter().enumerate().map(|(i, body)| async move {
        if i % 2 == 0 {
            a.reason(body).await
        } else {
            b.reason(body).await
        }
    }))
    .await;
    let allowed = answers.iter().filter(|r| *r == "allowed").count();
    assert_eq!(allowed, 10, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|r| r == "allowed" || r == "rate_limited"),
        "{answers:?}"
    );
}

async fn daily_limit_is_never_exceeded(
    fx: &Fixture,
    a: &Running,
    b: &Running,
    operator: &dyn SharedState,
) {
    let uid = uid();
    let envelope = json!({"transactions": {"currency": "EUR", "maxPerTransaction": "5.00", "maxPerDay": "50.00"}});
    operator
        .put_grant(&fx.grant(&uid, Some(envelope)))
        .await
        .unwrap();
    let token = fx
        .token(&uid, json!([{"type": "transact", "resource": "pay/**"}]))
        .await;
    let pay =
        json!({"type": "transact", "resource": "pay/eu", "amount": "1.00", "currency": "EUR"});
    let bodies: Vec<Value> = (0..200).map(|_| fx.body(&token, pay.clone())).collect();
    let answers = join_all(bodies.iter().enumerate().map(|(i, body)| async move {
        if i % 2 == 0 {
            a.reason(body).await
        } else {
            b.reason(body).await
        }
    }))
    .await;
    let allowed = answers.iter().filter(|r| *r == "allowed").count();
    assert_eq!(
        allowed, 50,
        "exactly the daily 50.00 EUR in 1.00 EUR steps: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|r| r == "allowed" || r == "daily_amount_over_limit"),
        "{answers:?}"
    );
}

async fn revocation_is_honoured_within_a_second(
    fx: &Fixture,
    a: &Running,
    b: &Running,
    operator: &dyn SharedState,
) {
    // Through the revocation set (revoke_grant) and through the grant state
    // alone (phase Revoked, only the invalidation tells the caches).
    for via_state in [false, true] {
        let uid = uid();
        let grant = fx.grant(&uid, None);
        operator.put_grant(&grant).await.unwrap();
        let token = fx.token(&uid, json!([read("orders/**")])).await;
        for v in [a, b] {
            assert_eq!(
                v.reason(&fx.body(&token, read("orders/1"))).await,
                "allowed"
            );
        }
        let at_ms = fx.clock.now_ms();
        let started = Instant::now();
        if via_state {
            let mut revoked = grant.clone();
            revoked.phase = GrantPhase::Revoked;
            revoked.updated_at_ms = at_ms;
            operator.put_grant(&revoked).await.unwrap();
        } else {
            operator.revoke_grant(&uid, at_ms).await.unwrap();
        }
        for v in [a, b] {
            loop {
                let (_, answer) = v.verify(&fx.body(&token, read("orders/1"))).await;
                // Denied, and the answer says the verifier has seen the revocation.
                let seen = answer["revocationWatermarkMs"].as_i64().unwrap() >= at_ms;
                if answer["reason"] == json!("grant_revoked") && seen {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "still {answer} after 1 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

/// XRANGE's reply as (id, [(field, value)]).
fn stream_entries(value: redis::Value) -> Vec<(String, Vec<(String, String)>)> {
    redis::from_redis_value(value).unwrap()
}
