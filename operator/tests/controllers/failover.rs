//! Operators that die, restart and hand over: convergence without duplicate
//! audit events, and one leader at a time with failover within the Lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agentauth_core::approval::Decision;
use agentauth_core::audit::verify_chain;
use agentauth_crds::GrantPhase;
use agentauth_operator::clock::SystemClock;
use agentauth_operator::controllers::Controllers;
use agentauth_operator::leader::{self, LeaseConfig};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_operator_restarts_and_converges_without_duplicate_events() {
    let env = Env::new("ctl-restart").await;
    let first = env.operator().await;
    let mut world = env.world("sam@example.com", "dana").await;
    env.create(&mk_grant("early", "1h")).await;
    env.create(&mk_grant("late", "1h")).await;
    env.wait_phase("early", GrantPhase::Pending).await;
    env.wait_phase("late", GrantPhase::Pending).await;
    env.decide(
        "early",
        &world.approver,
        &mut world.passkey,
        Decision::Approved,
    )
    .await;
    env.wait_phase("early", GrantPhase::Approved).await;
    first.kill().await;

    // While no operator runs: one grant revoked, one approved, one created.
    env.revoke("early").await;
    env.decide(
        "late",
        &world.approver,
        &mut world.passkey,
        Decision::Approved,
    )
    .await;
    env.create(&mk_grant("while-down", "1h")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.phase("early").await,
        Some(GrantPhase::Approved),
        "nobody reconciled"
    );

    let second = env.operator().await;
    env.wait_phase("early", GrantPhase::Revoked).await;
    env.wait_phase("late", GrantPhase::Approved).await;
    env.wait_phase("while-down", GrantPhase::Pending).await;
    second.stop().await;

    // A third start finds everything done and records nothing.
    let third = env.operator().await;
    wait_for(
        "the third operator to look at every grant",
        CONVERGE,
        || async { (third.reconciles("grant") >= 3).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        env.audit_kinds(&third.ctx, "early").await,
        ["grant_created", "grant_approved", "grant_revoked"]
    );
    assert_eq!(
        env.audit_kinds(&third.ctx, "late").await,
        ["grant_created", "grant_approved"]
    );
    assert_eq!(
        env.audit_kinds(&third.ctx, "while-down").await,
        ["grant_created"]
    );
    // One chain across the three processes: resumed, never forked.
    let all: Vec<_> = env
        .state
        .audit_events(0, usize::MAX)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let counts = verify_chain(&all).expect("the audit chain verifies");
    assert_eq!(counts.get(PRODUCER).copied(), Some(all.len() as u64));
    third.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_follower_takes_over_within_the_lease() {
    let env = Env::new("ctl-leader").await;
    let lease = Duration::from_secs(3);
    let config = |identity: &str| LeaseConfig {
        namespace: env.ns.clone(),
        name: "agentauth-operator".into(),
        identity: identity.into(),
        lease_duration: lease,
    };
    let (a, b) = (env.context().await, env.context().await);
    let replica = |ctx: &Arc<agentauth_operator::context::Context>, identity: &str| {
        let (leading, _elector) =
            leader::spawn(env.client.clone(), config(identity), Arc::new(SystemClock));
        tokio::spawn(
            Controllers::new(ctx.clone())
                .namespace(&env.ns)
                .run_while_leader(leading),
        )
    };
    let run_a = replica(&a, "replica-a");
    let run_b = replica(&b, "replica-b");
    let both = Arc::new(AtomicBool::new(false));
    let watch = {
        let (a, b, both) = (a.clone(), b.clone(), both.clone());
        tokio::spawn(async move {
            loop {
                if a.metrics.is_leader.get() == 1 && b.metrics.is_leader.get() == 1 {
                    both.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let (leader, follower, run_leader, run_follower) = wait_for("a leader", CONVERGE, || async {
        match (a.metrics.is_leader.get(), b.metrics.is_leader.get()) {
            (1, 0) => Some((a.clone(), b.clone(), &run_a, &run_b)),
            (0, 1) => Some((b.clone(), a.clone(), &run_b, &run_a)),
            _ => None,
        }
    })
    .await;

    let _world = env.world("sam@example.com", "dana").await;
    env.create(&mk_grant("first", "1h")).await;
    env.wait_phase("first", GrantPhase::Pending).await;
    let count = |ctx: &agentauth_operator::context::Context| {
        ctx.metrics.reconciles.with_label_values(&["grant"]).get()
    };
    assert!(count(&leader) > 0);
    assert_eq!(count(&follower), 0, "a follower never reconciles");

    // The leader's process stops: its elector and controllers go with it.
    run_leader.abort();
    let stopped = Instant::now();
    wait_for("the follower to lead", Duration::from_secs(15), || async {
        (follower.metrics.is_leader.get() == 1).then_some(())
    })
    .await;
    let takeover = stopped.elapsed();
    println!(
        "takeover {takeover:?} after the leader stopped (lease {lease:?}, renewed every {:?})",
        lease / 3
    );
    // A stopping leader releases the Lease, so the follower takes it on its
    // next round: one renewal period, plus 1 s for renewTime's whole-second
    // precision and scheduling. (A crashed leader's Lease has to expire
    // first: up to the Lease duration more.)
    assert!(
        takeover <= lease / 3 + Duration::from_secs(1),
        "takeover took {takeover:?}"
    );
    env.create(&mk_grant("second", "1h")).await;
    env.wait_phase("second", GrantPhase::Pending).await;
    assert!(count(&follower) > 0, "the new leader reconciles");
    assert!(
        !both.load(Ordering::SeqCst),
        "two replicas led at the same time"
    );
    watch.abort();
    run_follower.abort();
    let (_, _) = (run_a.await, run_b.await);
    // Let the aborted controllers go before the runtime does.
    tokio::time::sleep(Duration::from_millis(200)).await;
}
