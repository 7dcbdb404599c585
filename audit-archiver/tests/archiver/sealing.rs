//! The happy path: everything read is sealed once, verifiable, provable,
//! searchable, and trimmed from Redis only once durable.

use agentauth_archiver::proof::{self, EventId};
use agentauth_archiver::show::{self, Filter};
use agentauth_core::ErrorCode;
use agentauth_core::audit::Chain;

use crate::support::Env;

#[tokio::test]
async fn every_record_is_sealed_once_verified_and_trimmed_from_redis() {
    let env = Env::new().await;
    let mut a = Chain::new("operator/op-0");
    let mut b = Chain::new("verifier/node-a");
    let running = env.start(env.config());
    env.produce(&mut a, 120).await;
    env.produce(&mut b, 130).await;
    let summary = env.sealed(250).await;
    assert_eq!(summary.records, 250);
    assert!(
        summary.segments >= 3,
        "100 records per segment: {summary:?}"
    );
    assert_eq!(summary.producers["operator/op-0"].last_seq, Some(119));
    assert_eq!(summary.producers["verifier/node-a"].last_seq, Some(129));
    // More later continues the same chains in new segments.
    env.produce(&mut a, 30).await;
    let summary = env.sealed(280).await;
    assert_eq!(summary.records, 280);
    running.stop().await;
    // Sealed entries are gone from Redis.
    assert_eq!(env.stream_len().await, 0);
    // The heartbeats were read and never ran ahead of the sealed chains.
    assert_eq!(
        summary.producers["operator/op-0"].heartbeat_seq,
        Some(149),
        "{summary:?}"
    );
}

#[tokio::test]
async fn a_record_is_proven_without_the_archive_and_a_tampered_proof_fails() {
    let env = Env::new().await;
    let mut a = Chain::new("verifier/node-a");
    let running = env.start(env.config());
    let events = env.produce(&mut a, 150).await;
    env.sealed(150).await;
    running.stop().await;

    let proof = proof::prove(
        env.store.as_ref(),
        &EventId::parse("verifier/node-a#120").unwrap(),
    )
    .await
    .unwrap();
    proof::verify_proof(&proof, &env.trusted()).unwrap();
    let by_hash = proof::prove(
        env.store.as_ref(),
        &EventId::parse(&events[7].hash).unwrap(),
    )
    .await
    .unwrap();
    proof::verify_proof(&by_hash, &env.trusted()).unwrap();

    // The record claimed to be something else.
    let mut forged = proof.clone();
    forged.record = forged.record.replace("team-a/agent-1", "team-b/agent-1");
    assert_ne!(forged.record, proof.record);
    let err = proof::verify_proof(&forged, &env.trusted()).unwrap_err();
    assert_eq!(err.code, ErrorCode::AuditProofInvalid);
    // Another index, or a checkpoint signed by a key nobody pinned.
    let mut moved = proof.clone();
    moved.index = (moved.index + 1) % moved.size;
    assert!(proof::verify_proof(&moved, &env.trusted()).is_err());
    let other = agentauth_signer::LocalSigner::generate().unwrap();
    let other_key = agentauth_archiver::config::parse_keys(
        &serde_json::to_string(agentauth_signer::Signer::public_jwk(&other)).unwrap(),
    )
    .unwrap();
    let err = proof::verify_proof(&proof, &other_key).unwrap_err();
    assert_eq!(err.code, ErrorCode::AuditCheckpointInvalid);
    // A record that is not there.
    assert!(
        proof::prove(
            env.store.as_ref(),
            &EventId::parse("verifier/node-a#150").unwrap()
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn show_filters_sealed_records_for_an_investigator() {
    let env = Env::new().await;
    let mut a = Chain::new("verifier/node-a");
    let running = env.start(env.config());
    env.produce(&mut a, 40).await;
    env.sealed(40).await;
    running.stop().await;
    let denied = show::show(
        env.store.as_ref(),
        &Filter {
            decision: Some("deny".into()),
            grant: Some("team-a/grant-0".into()),
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    // i % 4 == 0 and i % 3 == 0: 0, 12, 24, 36.
    let seqs: Vec<u64> = denied.iter().map(|(_, e)| e.seq).collect();
    assert_eq!(seqs, [0, 12, 24, 36]);
    assert!(show::one_line(&denied[0].1).contains("deny (rate_limited)"));
    let none = show::show(
        env.store.as_ref(),
        &Filter {
            since: Some("2100-01-01T00:00:00Z".parse().unwrap()),
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn one_archiver_holds_the_lease_at_a_time() {
    let env = Env::new().await;
    assert!(env.state.audit_archiver_lease("a", 2_000).await.unwrap());
    assert!(!env.state.audit_archiver_lease("b", 2_000).await.unwrap());
    assert!(env.state.audit_archiver_lease("a", 2_000).await.unwrap());
}
