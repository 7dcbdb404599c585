//! What only `RedisState` does: fail closed and recover when Redis dies,
//! keep its subscription honest across a reconnect, survive a flushed script
//! cache, keep the key layout of `keys`, and the consume script's day check.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed test panics"
)]

mod support;

use std::time::{Duration, Instant};

use agentauth_core::audit::{AuditEvent, Chain, Draft};
use agentauth_state::keys;
use agentauth_state::{
    ConsumeOutcome, ConsumeRequest, Invalidation, RedisConfig, RedisState, SharedState, StateError,
};
use agentauth_testenv::RedisServer;
use redis::AsyncCommands as _;
use tokio::sync::broadcast;

use support::{consume, eur, fresh_uid, limit, mk_grant, test_config};

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Waits up to `within` for an invalidation matching `want`, skipping others.
async fn wait_for(
    rx: &mut broadcast::Receiver<Invalidation>,
    within: Duration,
    want: impl Fn(&Invalidation) -> bool,
) -> Invalidation {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(invalidation)) if want(&invalidation) => return invalidation,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("subscription ended: {e}"),
            Err(_) => panic!("no matching invalidation within {within:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_promptly_then_recovers_on_the_same_client() {
    let mut server = RedisServer::start().await.unwrap();
    // The production defaults: 50 ms on the hot path, 1 s for writes.
    let state = RedisState::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    let uid = fresh_uid("fault");
    state.put_grant(&mk_grant(&uid)).await.unwrap();
    assert!(consume(&state, &uid, &[], None).await.is_allowed());

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let request = ConsumeRequest {
            uid: &uid,
            jti: "down",
            jti_ttl_ms: 1000,
            iat: support::now_secs(),
            rate_limits: &[],
            transaction: None,
        };
        let result = state.consume(&request).await;
        assert!(
            matches!(result, Err(StateError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "took {:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    assert!(matches!(
        state.get_grant(&uid).await,
        Err(StateError::Unavailable(_))
    ));
    assert!(matches!(
        state.put_grant(&mk_grant(&uid)).await,
        Err(StateError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );

    server.restart().await.unwrap();
    let started = Instant::now();
    loop {
        let request = ConsumeRequest {
            uid: &uid,
            jti: "back",
            jti_ttl_ms: 1000,
            iat: support::now_secs(),
            rate_limits: &[],
            transaction: None,
        };
        match state.consume(&request).await {
            Ok(outcome) => {
                assert!(outcome.is_allowed());
                break;
            }
            Err(e) if started.elapsed() < Duration::from_secs(5) => {
                assert!(matches!(e, StateError::Unavailable(_)));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("not recovered after 5 s: {e}"),
        }
    }
    // The restarted Redis is empty: the script was loaded again (NOSCRIPT) and writes work.
    state.put_grant(&mk_grant(&uid)).await.unwrap();
    assert_eq!(state.get_grant(&uid).await.unwrap(), Some(mk_grant(&uid)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_flushes_on_loss_and_resumes() {
    let mut server = RedisServer::start().await.unwrap();
    let verifier = RedisState::connect(test_config(&server.url(), false, None))
        .await
        .unwrap();
    let mut rx = verifier.subscribe().await.unwrap();

    server.kill();
    let flush = wait_for(&mut rx, Duration::from_secs(3), |i| i.flush_all).await;
    assert!(flush.uid.is_empty());
    server.restart().await.unwrap();
    // Once back it says so again: anything cached meanwhile may be stale.
    wait_for(&mut rx, Duration::from_secs(5), |i| i.flush_all).await;

    let operator = RedisState::connect(test_config(&server.url(), false, None))
        .await
        .unwrap();
    let uid = fresh_uid("resumed");
    operator.revoke_grant(&uid, 42).await.unwrap();
    let got = wait_for(&mut rx, Duration::from_secs(1), |i| !i.flush_all).await;
    assert_eq!(got, Invalidation::grant(&uid, true, 42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_survives_a_flushed_script_cache() {
    let server = RedisServer::start().await.unwrap();
    let state = RedisState::connect(test_config(&server.url(), false, None))
        .await
        .unwrap();
    let uid = fresh_uid("noscript");
    assert!(
        consume(&state, &uid, &[limit(10, "1h", 10)], None)
            .await
            .is_allowed()
    );
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw(&server).await)
        .await
        .unwrap();
    let outcome = consume(&state, &uid, &[limit(10, "1h", 10)], None).await;
    let ConsumeOutcome::Allowed(allowance) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(allowance.rate_limit.map(|s| s.remaining), Some(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_layout_and_expire() {
    let server = RedisServer::start().await.unwrap();
    let state = RedisState::connect(test_config(&server.url(), false, None))
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    let uid = fresh_uid("layout");
    let request = ConsumeRequest {
        uid: &uid,
        jti: "proof",
        jti_ttl_ms: 60_000,
        iat: support::now_secs(),
        rate_limits: &[(0, limit(6, "1m", 2)), (1, limit(100, "1h", 5))],
        transaction: Some(eur(250, None, Some(1_000))),
    };
    assert!(state.consume(&request).await.unwrap().is_allowed());
    state.revoke_grant(&uid, 1).await.unwrap();
    let mut found: Vec<String> = conn.keys(format!("agentauth:{{{uid}}}:*")).await.unwrap();
    found.sort();
    let today = keys::epoch_day(agentauth_state::Clock::now_us(
        &agentauth_state::SystemClock,
    ));
    let mut want = vec![
        keys::grant_jti(&uid, "proof"),
        keys::revoked(&uid),
        keys::rate_limit(&uid, 0),
        keys::rate_limit(&uid, 1),
        keys::day(&uid, today, "EUR"),
    ];
    want.sort();
    assert_eq!(found, want);
    for key in &want {
        let ttl: i64 = conn.pttl(key).await.unwrap();
        assert!(ttl > 0, "{key} has no expiry ({ttl})");
    }
    let sum: String = conn.get(keys::day(&uid, today, "EUR")).await.unwrap();
    assert_eq!(sum, "250");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_land_in_the_stream() {
    let server = RedisServer::start().await.unwrap();
    let state = RedisState::connect(test_config(&server.url(), false, None))
        .await
        .unwrap();
    let mut chain = Chain::new("verifier/node-a");
    let event = chain
        .append(
            Draft {
                kind: "verification".into(),
                ..Draft::default()
            },
            1_700_000_000_000,
        )
        .unwrap();
    state.append_audit(&event).await.unwrap();
    let mut conn = raw(&server).await;
    let entries: redis::Value = redis::cmd("XRANGE")
        .arg(keys::AUDIT_STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let redis::Value::Array(entries) = entries else {
        panic!("{entries:?}")
    };
    assert_eq!(entries.len(), 1);
    let text = format!("{:?}", entries[0]);
    assert!(text.contains(keys::AUDIT_FIELD), "{text}");
    let last: String = conn.get(keys::audit_last("verifier/node-a")).await.unwrap();
    assert_eq!(AuditEvent::from_json(&last).unwrap(), event);
}

/// The script names the day of the daily sum from its own clock: called for
/// another day, it declines and writes nothing (not even the jti), and the
/// client retries for the day it reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_declines_another_day_and_writes_nothing() {
    let server = RedisServer::start().await.unwrap();
    let mut conn = raw(&server).await;
    let script = redis::Script::new(include_str!("../src/lua/consume.lua"));
    let uid = fresh_uid("day");
    let now_us: u64 = 1_700_000_000_000_000;
    let their_day = keys::epoch_day(now_us);
    let mut call = script.prepare_invoke();
    call.key(keys::grant_jti(&uid, "p"))
        .key(keys::revoked(&uid))
        .key(keys::since(&uid))
        .key(keys::day(&uid, their_day - 1, "EUR"))
        .arg(now_us)
        .arg(60_000)
        .arg(0)
        .arg(support::now_secs())
        .arg(their_day - 1)
        .arg(100)
        .arg("EUR")
        .arg("EUR")
        .arg("")
        .arg("1000")
        .arg(keys::DAY_TTL_MS);
    let reply: Vec<i64> = call.invoke_async(&mut conn).await.unwrap();
    assert_eq!(reply, vec![7, i64::try_from(their_day).unwrap()]);
    let written: Vec<String> = conn.keys(format!("agentauth:{{{uid}}}:*")).await.unwrap();
    assert!(written.is_empty(), "{written:?}");
}

/// The password comes from configuration (a Secret in the environment), not
/// the URL, and a Redis that requires one refuses a state without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_outside_the_url_authenticates() {
    let server = RedisServer::start().await.unwrap();
    let mut admin = raw(&server).await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret with spaces & @:/")
        .query_async(&mut admin)
        .await
        .unwrap();

    let mut with = test_config(&server.url(), false, None);
    with.password = Some("s3cret with spaces & @:/".into());
    assert!(
        !format!("{with:?}").contains("s3cret"),
        "Debug must not print the password"
    );
    let state = RedisState::connect(with).await.unwrap();
    assert!(!state.is_revoked("some-grant").await.unwrap());

    let without = RedisState::new(test_config(&server.url(), false, None)).unwrap();
    let refused = without.is_revoked("some-grant").await;
    assert!(
        matches!(refused, Err(StateError::Unavailable(_))),
        "a Redis that requires a password must refuse a state without one: {refused:?}"
    );
}
