//! Redis loses its data under running controllers: the grants they
//! published are gone, and verifiers deny every request `grant_unknown`
//! until the grants are written again. The controllers notice the loss by
//! the shared state's sentinel and re-publish every grant within seconds,
//! not at the hourly resync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_crds::GrantPhase;
use agentauth_operator::controllers::EPOCH_CHECK;
use agentauth_state::{GrantPhase as StatePhase, RedisConfig, RedisState, SharedState};
use agentauth_testenv::RedisServer;
use kube::ResourceExt;

use crate::support::*;

/// How long a re-publication may take: a sentinel check, the controllers'
/// restart (four LISTs) and the reconciles, on a shared, loaded machine.
const REPUBLISHED_WITHIN: Duration = Duration::from_secs(10);

/// Waits until every one of `uids` is published Approved; how long it took.
async fn all_approved(state: &dyn SharedState, uids: &[String], since: Instant) -> Duration {
    wait_for("every grant re-published", REPUBLISHED_WITHIN, || async {
        for uid in uids {
            let published = state.get_grant(uid).await.ok().flatten()?;
            (published.phase == StatePhase::Approved).then_some(())?;
        }
        Some(())
    })
    .await;
    since.elapsed()
}

/// After `FLUSHALL`, and again after Redis is killed and restarted empty,
/// every Approved grant is back in the shared state within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_grants_are_republished_within_seconds_after_redis_loses_its_data() {
    let env = Env::new("ctl-redis-loss").await;
    let mut redis = RedisServer::start().await.unwrap();
    let state: Arc<dyn SharedState> = Arc::new(
        RedisState::connect(RedisConfig::new(redis.url()))
            .await
            .unwrap(),
    );
    let op = env.operator_on(state.clone(), PRODUCER).await;
    let mut world = env.world("sam@example.com", "dana").await;
    let mut uids = Vec::new();
    for name in ["first", "second", "third"] {
        env.create(&mk_grant(name, "1h")).await;
        env.wait_phase(name, GrantPhase::Pending).await;
        env.decide(
            name,
            &world.approver,
            &mut world.passkey,
            agentauth_core::approval::Decision::Approved,
        )
        .await;
        let grant = env.wait_phase(name, GrantPhase::Approved).await;
        uids.push(grant.uid().unwrap());
    }
    all_approved(&*state, &uids, Instant::now()).await;

    // A flush on a live Redis: no connection drops.
    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("FLUSHALL").query_async(&mut raw).await.unwrap();
    let flushed = Instant::now();
    assert_eq!(state.get_grant(&uids[0]).await.unwrap(), None);
    let took = all_approved(&*state, &uids, flushed).await;
    eprintln!("re-published {took:?} after FLUSHALL (sentinel checked every {EPOCH_CHECK:?})");

    // A crash: killed, restarted empty; the controllers' calls fail meanwhile.
    redis.kill();
    tokio::time::sleep(EPOCH_CHECK * 2).await;
    redis.restart().await.unwrap();
    let back = Instant::now();
    let took = all_approved(&*state, &uids, back).await;
    eprintln!(
        "re-published {took:?} after Redis came back empty (sentinel checked every {EPOCH_CHECK:?})"
    );
    op.stop().await;
}
