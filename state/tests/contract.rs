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

use std::time::{Duration, Instant};

use agentauth_core::audit::{Chain, Draft};
use agentauth_core::envelope::TransactionLimits;
use agentauth_core::gcra::RateLimit;
use agentauth_core::money::{Currency, Decimal};
use agentauth_state::{ConsumeOutcome, EnvelopeState, GrantPhase, Invalidation};

use support::{Backend, Kind, consume, consume_jti, fresh_uid, limit, mk_grant, next};

contract!(
    grants_round_trip_and_notify,
    revocation_reaches_another_client_within_a_second,
    jti_is_claimed_once_until_its_ttl,
    proof_stays_used_after_a_refusal,
    one_proof_on_two_clients_is_allowed_once,
    revoked_grant_is_refused_by_consume,
    audit_append_and_last_event,
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
