//! `RedisState` on a Redis Cluster while the cluster changes under it
//! (DESIGN §7: a grant's keys share one slot). The contract tests already
//! run on a quiet cluster (`cluster::<name>` in `contract.rs`,
//! `consume_contract.rs`, `audit_append.rs`); these move slots and kill a
//! master while the state is in use, and check that nothing is admitted
//! twice and that the same clients answer again afterwards.
//!
//! Each test starts its own six-node cluster (three masters, three
//! replicas, `cluster-node-timeout` 1 s).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed test panics"
)]

#[macro_use]
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_core::audit::{AuditEvent, Chain, Draft};
use agentauth_core::gcra::GcraParams;
use agentauth_state::redis::Delivery;
use agentauth_state::{
    ConsumeOutcome, ConsumeRequest, Invalidation, RedisConfig, RedisState, SharedState, StateError,
    keys,
};
use agentauth_testenv::RedisCluster;

use support::{Backend, Kind, consume_jti, fresh_uid, jti, limit, mk_grant, next};

/// A client with the production deadlines (50 ms hot path, 1 s writes).
async fn production_client(cluster: &RedisCluster) -> Arc<RedisState> {
    let config = RedisConfig {
        cluster: true,
        ..RedisConfig::new(cluster.seeds())
    };
    Arc::new(
        RedisState::connect(config)
            .await
            .expect("connect to the cluster"),
    )
}

/// A grant uid whose slot the master `node` serves.
fn uid_on(cluster: &RedisCluster, node: usize, name: &str) -> String {
    loop {
        let uid = fresh_uid(name);
        let slot = RedisCluster::slot_of(&keys::grant_state(&uid));
        if cluster.master_of(slot).unwrap() == node {
            return uid;
        }
    }
}

/// Another of the three first masters than `node`.
fn other_master(node: usize) -> usize {
    (node + 1) % 3
}

/// One consume with `jti`, under the client's own deadline.
async fn try_consume(
    state: &dyn SharedState,
    uid: &str,
    jti: &str,
    limits: &[GcraParams],
) -> Result<ConsumeOutcome, StateError> {
    let limits = support::indexed(limits);
    state
        .consume(&ConsumeRequest {
            uid,
            jti,
            jti_ttl_ms: 60_000,
            iat: support::now_secs(),
            rate_limits: &limits,
            transaction: None,
        })
        .await
}

/// Consumes with fresh proofs until refused; returns how many were admitted.
async fn admitted_until_limited(
    states: &[Arc<dyn SharedState>],
    uid: &str,
    limits: &[GcraParams],
) -> usize {
    let mut admitted = 0;
    for i in 0.. {
        match consume_jti(&*states[i % states.len()], uid, &jti(), limits).await {
            ConsumeOutcome::Allowed(_) => admitted += 1,
            ConsumeOutcome::RateLimited { .. } => return admitted,
            other => panic!("{other:?}"),
        }
    }
    admitted
}

/// MOVED: a grant's slot is resharded to another master between requests.
/// Both clients still hold the old slot map; they follow the redirect, and
/// the moved keys keep their meaning: a proof used before the move is a
/// replay after it, the rate limit admits its burst exactly once across
/// the move, and a revocation written after the move reaches the other
/// client and stops `consume`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_slot_keeps_its_counts_and_used_proofs() {
    let b = Backend::start(Kind::Cluster, None).await;
    let cluster = b.cluster.as_ref().unwrap();
    let clients = [b.state.clone(), b.second().await];
    let uid = uid_on(cluster, 0, "moved");
    let slot = RedisCluster::slot_of(&keys::grant_state(&uid));
    let limits = [limit(10, "1h", 10)];
    let grant = mk_grant(&uid);
    clients[0].put_grant(&grant).await.unwrap();
    let used: Vec<String> = (0..4).map(|_| jti()).collect();
    for (i, proof) in used.iter().enumerate() {
        let outcome = consume_jti(&*clients[i % 2], &uid, proof, &limits).await;
        assert!(outcome.is_allowed(), "{outcome:?}");
    }
    let mut rx = clients[1].subscribe().await.unwrap();

    cluster.migrate_slot(slot, other_master(0)).unwrap();
    assert_eq!(cluster.master_of(slot).unwrap(), other_master(0));

    for client in &clients {
        assert_eq!(client.get_grant(&uid).await.unwrap(), Some(grant.clone()));
        for proof in &used {
            assert_eq!(
                consume_jti(&**client, &uid, proof, &limits).await,
                ConsumeOutcome::Replayed
            );
        }
    }
    assert_eq!(
        admitted_until_limited(&clients, &uid, &limits).await,
        10 - used.len()
    );

    clients[0]
        .revoke_grant(&uid, 1_700_000_000_500)
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        Invalidation::grant(&uid, true, 1_700_000_000_500)
    );
    assert!(clients[1].is_revoked(&uid).await.unwrap());
    assert_eq!(
        consume_jti(&*clients[1], &uid, &jti(), &limits).await,
        ConsumeOutcome::Revoked
    );
}

/// ASK: a grant's slot is half-way between two masters. Single-key calls
/// (`get_grant`, `put_grant`, `revoke_grant`, `is_revoked`) are served
/// wherever the key is, after an `ASK` redirect for the moved ones. The
/// consume script names a fresh proof key, which neither side holds, so
/// Redis answers `TRYAGAIN` until the slot has settled: consume fails
/// closed (`Unavailable`) meanwhile and never admits a replayed proof or a
/// request over the limit; once the slot has moved it answers again and
/// the burst is admitted exactly once in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_mid_migration_serves_single_keys_and_consume_fails_closed() {
    let b = Backend::start(Kind::Cluster, None).await;
    let cluster = b.cluster.as_ref().unwrap();
    let clients = [b.state.clone(), b.second().await];
    let hot = production_client(cluster).await;
    let uid = uid_on(cluster, 1, "ask");
    let slot = RedisCluster::slot_of(&keys::grant_state(&uid));
    let limits = [limit(8, "1h", 8)];
    let mut grant = mk_grant(&uid);
    clients[0].put_grant(&grant).await.unwrap();
    let used: Vec<String> = (0..3).map(|_| jti()).collect();
    for proof in &used {
        assert!(
            consume_jti(&*clients[0], &uid, proof, &limits)
                .await
                .is_allowed()
        );
    }
    let mut admitted = used.len();

    let migration = cluster.begin_migration(slot, other_master(1)).unwrap();
    let (mut unavailable, mut answered) = (0, 0);
    // One key at a time: the state, the rate limit, the proofs, in any order.
    loop {
        assert_eq!(hot.get_grant(&uid).await.unwrap(), Some(grant.clone()));
        assert!(!hot.is_revoked(&uid).await.unwrap());
        for proof in used.iter().chain([&jti()]) {
            match try_consume(&*hot, &uid, proof, &limits).await {
                Err(StateError::Unavailable(_)) => unavailable += 1,
                Ok(ConsumeOutcome::Replayed) if used.contains(proof) => answered += 1,
                Ok(ConsumeOutcome::Allowed(_)) if !used.contains(proof) => {
                    answered += 1;
                    admitted += 1;
                }
                other => panic!("mid-migration consume of {proof}: {other:?}"),
            }
        }
        if cluster.migrate_keys(&migration, 1).unwrap() == 0 {
            break;
        }
    }
    // Every key has moved; the slot is still open on both sides.
    grant.generation += 1;
    clients[1].put_grant(&grant).await.unwrap();
    assert_eq!(
        clients[0].get_grant(&uid).await.unwrap(),
        Some(grant.clone())
    );
    cluster.finish(&migration).unwrap();
    println!("mid-migration consumes: {unavailable} failed closed (TRYAGAIN), {answered} answered");

    for proof in &used {
        assert_eq!(
            consume_jti(&*clients[1], &uid, proof, &limits).await,
            ConsumeOutcome::Replayed
        );
    }
    admitted += admitted_until_limited(&clients, &uid, &limits).await;
    assert_eq!(admitted, 8);
    clients[0].revoke_grant(&uid, 1).await.unwrap();
    assert!(hot.is_revoked(&uid).await.unwrap());
}

/// Failover: the master serving a grant's slot (and holding the
/// invalidation subscription) is killed while two clients with the
/// production deadlines send requests. Until its replica is promoted every
/// call on that grant fails closed with `Unavailable` (a verifier denies
/// `state_unavailable`); nothing is admitted that should not be (no proof
/// admitted twice, never more than the burst); and the same clients answer
/// again once the replica serves the slot, with the subscription moved to
/// another node (a `flush_all`, then invalidations again). The window is
/// printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_fails_closed_then_recovers_without_a_restart() {
    const BURST: u32 = 400;
    let mut b = Backend::start(Kind::Cluster, None).await;
    let (uid, clients) = {
        let cluster = b.cluster.as_ref().unwrap();
        let clients: Vec<Arc<dyn SharedState>> = vec![
            production_client(cluster).await,
            production_client(cluster).await,
        ];
        // Node 0: the master of the grant's slot and the first seed, which
        // the subscription picks first.
        (uid_on(cluster, 0, "failover"), clients)
    };
    let limits = [limit(BURST, "1h", BURST)];
    b.state.put_grant(&mk_grant(&uid)).await.unwrap();
    let mut rx = clients[0].subscribe().await.unwrap();

    // Traffic: each client sends a fresh proof and replays its oldest
    // admitted one, every 5 ms, and records (when, outcome).
    let started = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = clients
        .iter()
        .map(|client| {
            let (client, uid, stop) = (client.clone(), uid.clone(), stop.clone());
            tokio::spawn(async move {
                let mut log = Vec::new();
                let mut admitted: Vec<String> = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let fresh = jti();
                    let outcome = try_consume(&*client, &uid, &fresh, &limits).await;
                    if matches!(outcome, Ok(ConsumeOutcome::Allowed(_))) {
                        admitted.push(fresh.clone());
                    }
                    log.push((started.elapsed(), fresh, outcome));
                    if let Some(old) = admitted.first().cloned() {
                        let replay = try_consume(&*client, &uid, &old, &limits).await;
                        assert!(
                            !matches!(replay, Ok(ConsumeOutcome::Allowed(_))),
                            "the replayed proof {old} was admitted"
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (log, admitted)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let (promoted, promotion) = b
        .cluster
        .as_mut()
        .unwrap()
        .kill_and_await_promotion(0)
        .await
        .unwrap();
    // When the master was dead (the harness times the promotion from then).
    let killed_at = started.elapsed() - promotion;
    // Traffic until both clients have answered again, at most 10 s more.
    let deadline = Instant::now() + Duration::from_secs(10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if clients[0].get_grant(&uid).await.is_ok() && clients[1].get_grant(&uid).await.is_ok() {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut all_admitted = HashSet::new();
    for (client, task) in tasks.into_iter().enumerate() {
        let (log, admitted) = task.await.unwrap();
        for proof in admitted {
            assert!(all_admitted.insert(proof), "a proof admitted twice");
        }
        // The kill goes through the node's watchdog: a call in flight may
        // still be answered a moment after it was ordered. The outage
        // starts with the first failure after the order.
        let first_failed = log
            .iter()
            .find(|(at, _, o)| *at >= killed_at && o.is_err())
            .map(|(at, ..)| *at)
            .unwrap_or_else(|| panic!("client {client}: no call failed after the kill"));
        let last_ok_before = log
            .iter()
            .filter(|(at, _, o)| *at < first_failed && o.is_ok())
            .map(|(at, ..)| *at)
            .max()
            .unwrap();
        let first_ok_after = log
            .iter()
            .find(|(at, _, o)| *at > first_failed && o.is_ok())
            .map(|(at, ..)| *at)
            .unwrap_or_else(|| panic!("client {client} never answered after the failover"));
        let during: Vec<_> = log
            .iter()
            .filter(|(at, ..)| *at > last_ok_before && *at < first_ok_after)
            .collect();
        for (_, proof, outcome) in &during {
            assert!(
                matches!(outcome, Err(StateError::Unavailable(_))),
                "{proof} during the failover: {outcome:?}"
            );
        }
        for (_, proof, outcome) in &log {
            assert!(
                matches!(outcome, Ok(_) | Err(StateError::Unavailable(_))),
                "{proof}: {outcome:?}"
            );
        }
        println!(
            "client {client}: {} requests, fail-closed window {:?} ({} Unavailable; answered again \
             {:?} after the kill); replica promoted {promotion:?} after the kill",
            log.len(),
            first_ok_after - last_ok_before,
            during.len(),
            first_ok_after.saturating_sub(killed_at),
        );
    }
    // No proof admitted before or after the failover is admitted again,
    // and the limit held across it.
    assert!(
        all_admitted.len() <= BURST as usize,
        "{} admitted",
        all_admitted.len()
    );
    let checker = b.second().await;
    for proof in &all_admitted {
        assert_eq!(
            consume_jti(&*checker, &uid, proof, &limits).await,
            ConsumeOutcome::Replayed,
            "{proof} after the failover"
        );
    }
    assert_ne!(promoted, 0);

    // The subscription lost its node: a flush, then it hears another node.
    let flushed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if rx.recv().await.unwrap().flush_all {
                return;
            }
        }
    })
    .await;
    assert!(
        flushed.is_ok(),
        "no flush_all after the subscribed node died"
    );
    let other = fresh_uid("after-failover");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut grant = mk_grant(&other);
        grant.updated_at_ms += 1;
        clients[1].put_grant(&grant).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Ok(inv)) if inv.uid == other => break,
            _ if Instant::now() < deadline => {}
            other => panic!("no invalidation after the failover: {other:?}"),
        }
    }
}

/// The archiver's side on a cluster: the `{audit}` keys (stream, consumer
/// group, heartbeats, lease) live on one slot, and every call follows that
/// slot when it is resharded to another master: appends stay idempotent,
/// the group keeps its pending entries, the lease keeps its holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_stream_group_and_lease_follow_the_audit_slot() {
    let b = Backend::start(Kind::Cluster, None).await;
    let cluster = b.cluster.as_ref().unwrap();
    let state = RedisState::connect(support::test_config(&cluster.seeds(), true, None))
        .await
        .unwrap();
    let events = audit_events("verifier/node-a", 6);
    assert_eq!(
        state
            .append_audit_batch(&events[..3])
            .await
            .unwrap()
            .written,
        3
    );
    state.audit_group_create().await.unwrap();
    state.audit_group_create().await.unwrap(); // BUSYGROUP is fine
    let first = state
        .audit_group_read("archiver-0", &Delivery::New, 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    assert!(
        state
            .audit_archiver_lease("archiver-0", 30_000)
            .await
            .unwrap()
    );
    assert!(
        !state
            .audit_archiver_lease("archiver-1", 30_000)
            .await
            .unwrap()
    );

    let slot = RedisCluster::slot_of(keys::AUDIT_STREAM);
    let from = cluster.master_of(slot).unwrap();
    cluster.migrate_slot(slot, other_master(from)).unwrap();

    // A retry of the first batch and the rest, through the moved slot.
    let retried = state.append_audit_batch(&events).await.unwrap();
    assert_eq!((retried.written, retried.skipped), (3, 3));
    assert_eq!(state.audit_stream(None, 100).await.unwrap().len(), 6);
    let pending = state
        .audit_group_read("archiver-0", &Delivery::PendingAfter("0".to_owned()), 10)
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|e| &e.id).collect::<Vec<_>>(),
        first.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    let new = state
        .audit_group_read("archiver-0", &Delivery::New, 10)
        .await
        .unwrap();
    assert_eq!(new.len(), 3);
    let ids: Vec<String> = first.iter().chain(&new).map(|e| e.id.clone()).collect();
    state.audit_group_ack(&ids).await.unwrap();
    assert_eq!(state.audit_group_backlog().await.unwrap(), (0, 0));
    assert_eq!(
        state.audit_heartbeats().await.unwrap()["verifier/node-a"],
        events[5]
    );
    assert!(
        state
            .audit_archiver_lease("archiver-0", 30_000)
            .await
            .unwrap()
    );
    assert!(
        !state
            .audit_archiver_lease("archiver-1", 30_000)
            .await
            .unwrap()
    );
    assert_eq!(state.audit_trim_through(&ids[5]).await.unwrap(), 6);
}

fn audit_events(producer: &str, n: usize) -> Vec<AuditEvent> {
    let mut chain = Chain::new(producer);
    (0..n)
        .map(|i| {
            let draft = Draft {
                kind: "verification".into(),
                decision: Some("allow".into()),
                ..Draft::default()
            };
            chain.append(draft, 1_700_000_000_000 + i as i64).unwrap()
        })
        .collect()
}
