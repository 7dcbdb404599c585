//! The contract of `SharedState` (DESIGN §7: both implementations pass the
//! same tests): grants, revocations, replay, audit. Every test runs three times:
//! `in_process::<name>` against `InProcessState`, `redis::<name>` against
//! `RedisState` on a real `redis-server` of its own, and `cluster::<name>`
//! against `RedisState` on a 3-master Redis Cluster of its own (so every
//! call, script and publication is shown to route by slot). "Two clients"
//! are two `RedisState`s (two verifier processes) on one Redis, and the one
//! state in process. The counters of `consume` are in `consume_contract.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed test panics"
)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_core::ErrorCode;
use agentauth_core::audit::{Chain, Draft};
use agentauth_core::envelope::TransactionLimits;
use agentauth_core::gcra::RateLimit;
use agentauth_core::money::{Currency, Decimal};
use agentauth_state::{
    ConsumeOutcome, EnvelopeState, GrantPhase, GrantState, Invalidation, ManualClock,
};

use support::{
    Backend, Kind, T0, consume, consume_jti, consume_proof, fresh_uid, limit, mk_grant, next,
};

contract!(
    grants_round_trip_and_notify,
    revocation_reaches_another_client_within_a_second,
    jti_is_claimed_once_until_its_ttl,
    proof_stays_used_after_a_refusal,
    one_proof_on_two_clients_is_allowed_once,
    revoked_grant_is_refused_by_consume,
    audit_append_and_last_event,
    proof_used_before_a_data_loss_is_refused_after_republication,
    first_publication_refuses_no_proof,
);

async fn grants_round_trip_and_notify(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let mut rx = b.state.subscribe().await.unwrap();
    let uid = fresh_uid("grant");
    let mut grant = mk_grant(&uid);
    grant.envelope = Some(EnvelopeState {
        rate_limits: vec![RateLimit {
            requests: 60,
            period: "1m".parse().unwrap(),
            burst: 10,
            applies_to: None,
        }],
        time_windows: vec![],
        transactions: Some(TransactionLimits {
            currency: Currency::EUR,
            max_per_transaction: Some(Decimal::new("50.00").unwrap()),
            max_per_day: None,
        }),
        digest: "sha256:abc".to_owned(),
    });
    assert_eq!(b.state.get_grant(&uid).await.unwrap(), None);

    b.state.put_grant(&grant).await.unwrap();
    assert_eq!(b.state.get_grant(&uid).await.unwrap(), Some(grant.clone()));
    assert_eq!(
        next(&mut rx).await,
        Invalidation::grant(&uid, false, grant.updated_at_ms)
    );

    grant.phase = GrantPhase::Revoked;
    grant.updated_at_ms += 1;
    b.state.put_grant(&grant).await.unwrap();
    assert_eq!(b.state.get_grant(&uid).await.unwrap(), Some(grant.clone()));
    assert_eq!(
        next(&mut rx).await,
        Invalidation::grant(&uid, true, grant.updated_at_ms)
    );

    b.state.remove_grant(&uid).await.unwrap();
    assert_eq!(b.state.get_grant(&uid).await.unwrap(), None);
    let removed = next(&mut rx).await;
    assert_eq!(
        (removed.uid.as_str(), removed.flush_all),
        (uid.as_str(), false)
    );
}

async fn revocation_reaches_another_client_within_a_second(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let verifier = b.second().await;
    let mut rx = verifier.subscribe().await.unwrap();
    let uid = fresh_uid("revoke");
    b.state.put_grant(&mk_grant(&uid)).await.unwrap();
    assert!(!next(&mut rx).await.revoked);
    assert!(!verifier.is_revoked(&uid).await.unwrap());

    let started = Instant::now();
    b.state.revoke_grant(&uid, 1_234).await.unwrap();
    assert_eq!(next(&mut rx).await, Invalidation::grant(&uid, true, 1_234));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(verifier.is_revoked(&uid).await.unwrap());
    assert!(!verifier.is_revoked("someone-else").await.unwrap());
}

async fn jti_is_claimed_once_until_its_ttl(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let other = b.second().await;
    assert!(b.state.claim_jti("token", "proof-1", 200).await.unwrap());
    assert!(!b.state.claim_jti("token", "proof-1", 200).await.unwrap());
    assert!(!other.claim_jti("token", "proof-1", 200).await.unwrap());
    assert!(
        b.state
            .claim_jti("elsewhere", "proof-1", 200)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(other.claim_jti("token", "proof-1", 200).await.unwrap());
}

async fn proof_stays_used_after_a_refusal(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let uid = fresh_uid("replay");
    let one = [limit(1, "1h", 1)];
    assert!(consume_jti(&*b.state, &uid, "p1", &one).await.is_allowed());
    assert_eq!(
        consume_jti(&*b.state, &uid, "p1", &one).await,
        ConsumeOutcome::Replayed
    );
    let refused = consume_jti(&*b.state, &uid, "p2", &one).await;
    assert!(
        matches!(refused, ConsumeOutcome::RateLimited { limit: 0, .. }),
        "{refused:?}"
    );
    // Single-use even when refused: the client must make a new proof.
    assert_eq!(
        consume_jti(&*b.state, &uid, "p2", &one).await,
        ConsumeOutcome::Replayed
    );
    // Proofs are scoped to their grant.
    assert!(
        consume_jti(&*b.state, &fresh_uid("replay"), "p1", &[])
            .await
            .is_allowed()
    );
}

async fn one_proof_on_two_clients_is_allowed_once(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let clients = [b.state.clone(), b.second().await];
    let uid = fresh_uid("race");
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (state, uid) = (clients[i % 2].clone(), uid.clone());
            tokio::spawn(async move { consume_jti(&*state, &uid, "the-proof", &[]).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| o.is_allowed()).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == ConsumeOutcome::Replayed)
            .count(),
        19
    );
}

async fn revoked_grant_is_refused_by_consume(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let uid = fresh_uid("revoked");
    b.state.put_grant(&mk_grant(&uid)).await.unwrap();
    assert!(consume(&*b.state, &uid, &[], None).await.is_allowed());
    b.state.revoke_grant(&uid, 1).await.unwrap();
    let other = b.second().await;
    assert_eq!(
        consume(&*other, &uid, &[], None).await,
        ConsumeOutcome::Revoked
    );
    assert_eq!(
        ConsumeOutcome::Revoked.refusal(),
        Some(agentauth_core::ErrorCode::GrantRevoked)
    );
}

async fn audit_append_and_last_event(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let mut chains = [Chain::new("operator/op-0"), Chain::new("verifier/node-a")];
    let mut last = Vec::new();
    for i in 0..5 {
        let chain = &mut chains[i % 2];
        let draft = Draft {
            kind: "verification".to_owned(),
            decision: Some("allow".to_owned()),
            ..Draft::default()
        };
        let event = chain.append(draft, 1_700_000_000_000 + i as i64).unwrap();
        b.state.append_audit(&event).await.unwrap();
        last.push(event);
    }
    assert_eq!(
        b.state
            .last_audit_event("operator/op-0")
            .await
            .unwrap()
            .as_ref(),
        last.get(4)
    );
    assert_eq!(
        b.state
            .last_audit_event("verifier/node-a")
            .await
            .unwrap()
            .as_ref(),
        last.get(3)
    );
    assert_eq!(b.state.last_audit_event("nobody").await.unwrap(), None);
    // A restarted producer resumes its chain from there.
    let resumed = Chain::resume(
        &b.state
            .last_audit_event("operator/op-0")
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(resumed.next_seq(), 3);
}

/// T0 in ms and in whole seconds (a proof's `iat`).
const T0_MS: i64 = (T0 / 1000) as i64;
const T0_S: i64 = (T0 / 1_000_000) as i64;

/// Threat: a DPoP proof already used before Redis lost its data (killed and
/// restarted empty, or one cluster shard flushed) is replayed after the
/// operator re-published the grant; its `jti` is no longer remembered, so
/// only the grant's `since` can refuse it (`dpop_stale`).
async fn proof_used_before_a_data_loss_is_refused_after_republication(kind: Kind) {
    let clock = Arc::new(ManualClock::new(T0));
    let mut b = Backend::start(kind, Some(clock.clone())).await;
    let uid = fresh_uid("loss");
    // First published by the reconcile that approves it (no `approved_at_ms`);
    // every later write says it was published before.
    b.state.put_grant(&mk_grant(&uid)).await.unwrap();
    let grant = GrantState {
        approved_at_ms: Some(T0_MS),
        ..mk_grant(&uid)
    };
    clock.advance(Duration::from_secs(10));
    let used_at = T0_S + 10;
    assert!(
        consume_proof(&*b.state, &uid, "used", used_at)
            .await
            .is_allowed()
    );
    assert_eq!(
        consume_proof(&*b.state, &uid, "used", used_at).await,
        ConsumeOutcome::Replayed
    );

    // Lost 50 s later; the operator re-publishes one second after that.
    clock.advance(Duration::from_secs(50));
    b.lose_data(&uid).await;
    clock.advance(Duration::from_secs(1));
    let since_s = T0_S + 61;
    b.state.put_grant(&grant).await.unwrap();
    assert_eq!(b.state.get_grant(&uid).await.unwrap(), Some(grant.clone()));

    let replay = consume_proof(&*b.state, &uid, "used", used_at).await;
    assert_eq!(replay, ConsumeOutcome::PredatesRecovery);
    assert_eq!(replay.refusal(), Some(ErrorCode::DpopStale));
    // Any proof of a second wholly before the re-publication may have been
    // used; one of its second, or later, may not.
    assert_eq!(
        consume_proof(&*b.state, &uid, "unseen-but-older", since_s - 1).await,
        ConsumeOutcome::PredatesRecovery
    );
    assert!(
        consume_proof(&*b.state, &uid, "fresh", since_s)
            .await
            .is_allowed()
    );
    assert_eq!(
        consume_proof(&*b.state, &uid, "fresh", since_s).await,
        ConsumeOutcome::Replayed
    );
    // A later rewrite of the state (it is there now) keeps `since`.
    clock.advance(Duration::from_secs(60));
    b.state.put_grant(&grant).await.unwrap();
    assert_eq!(
        consume_proof(&*b.state, &uid, "older-still", since_s - 1).await,
        ConsumeOutcome::PredatesRecovery
    );
    assert!(
        consume_proof(&*b.state, &uid, "later", since_s + 60)
            .await
            .is_allowed()
    );
}

/// The first publication of an approval refuses nothing: no proof can have
/// been accepted before it, so an agent whose clock lags a little is not
/// refused; nor does a rewrite of a state that is there.
async fn first_publication_refuses_no_proof(kind: Kind) {
    let clock = Arc::new(ManualClock::new(T0));
    let b = Backend::start(kind, Some(clock.clone())).await;
    let uid = fresh_uid("first");
    clock.advance(Duration::from_secs(5));
    b.state.put_grant(&mk_grant(&uid)).await.unwrap();
    assert!(
        consume_proof(&*b.state, &uid, "lagging", T0_S)
            .await
            .is_allowed()
    );

    clock.advance(Duration::from_secs(3600));
    let grant = GrantState {
        approved_at_ms: Some(T0_MS),
        ..mk_grant(&uid)
    };
    b.state.put_grant(&grant).await.unwrap();
    assert!(
        consume_proof(&*b.state, &uid, "old", T0_S)
            .await
            .is_allowed()
    );
}
