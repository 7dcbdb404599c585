//! Tampering with the audit chain: every way of breaking it is detected and
//! the first broken record is named.
#![allow(clippy::unwrap_used)]

use agentauth_core::audit::{
    AuditEvent, BreakKind, Chain, ChainVerifier, Draft, GENESIS, kinds, verify_chain,
};

fn draft(i: usize) -> Draft {
    Draft {
        kind: kinds::VERIFICATION.into(),
        agent: Some("shop/shopper".into()),
        grant: Some(format!("shop/grant-{i}")),
        decision: Some("allow".into()),
        reason: None,
        details: serde_json::Map::new(),
    }
}

/// Two producers writing interleaved, as a Redis stream delivers them.
fn interleaved(n: usize) -> Vec<AuditEvent> {
    let mut a = Chain::new("verifier/node-a");
    let mut b = Chain::new("verifier/node-b");
    (0..n)
        .map(|i| {
            let chain = if i % 3 == 0 { &mut b } else { &mut a };
            chain
                .append(draft(i), 1_800_000_000_000 + i as i64)
                .unwrap()
        })
        .collect()
}

fn first_break(events: &[AuditEvent]) -> (usize, BreakKind) {
    let b = verify_chain(events).unwrap_err();
    (b.index, b.kind)
}

#[test]
fn an_intact_chain_verifies_and_counts_each_producer() {
    let events = interleaved(30);
    let counts = verify_chain(&events).unwrap();
    assert_eq!(counts["verifier/node-a"], 20);
    assert_eq!(counts["verifier/node-b"], 10);
    assert_eq!(events[0].prev, GENESIS);
    assert_eq!(events[0].time, "2027-01-15T08:00:00.000Z");
}

#[test]
fn an_altered_record_is_named() {
    let mut events = interleaved(10);
    events[4].decision = Some("deny".into());
    assert_eq!(first_break(&events), (4, BreakKind::Altered));
}

#[test]
fn an_altered_record_with_a_recomputed_hash_breaks_the_next_link() {
    let mut events = interleaved(10);
    events[4].decision = Some("deny".into());
    events[4].hash = events[4].compute_hash().unwrap();
    // events[5] is node-a's successor of events[4].
    assert_eq!(first_break(&events), (5, BreakKind::Forked));
}

#[test]
fn a_missing_record_is_named() {
    let mut events = interleaved(10);
    // Record 2 is node-a #1; the gap shows at node-a's next record, which
    // now sits at index 3 (index 2 is node-b's).
    events.remove(2);
    assert_eq!(first_break(&events), (3, BreakKind::Missing));
}

#[test]
fn reordered_records_are_named() {
    let mut events = interleaved(10);
    events.swap(1, 2);
    let (index, kind) = first_break(&events);
    assert_eq!(index, 1);
    assert_eq!(
        kind,
        BreakKind::Missing,
        "record 2 arrives before record 1 of its producer"
    );
    let mut events = interleaved(10);
    let late = events.remove(1);
    events.insert(5, late);
    assert_eq!(first_break(&events).0, 1);
}

#[test]
fn a_duplicated_record_is_named() {
    let mut events = interleaved(10);
    events.insert(6, events[2].clone());
    assert_eq!(first_break(&events), (6, BreakKind::Duplicate));
}

#[test]
fn a_fork_is_named() {
    let events = interleaved(6);
    // A second writer claiming to be node-a continues from the same point.
    let mut fork = Chain::resume(&events[2]);
    let mut forked = events.clone();
    forked.insert(4, fork.append(draft(99), 1_800_000_000_999).unwrap());
    assert_eq!(first_break(&forked), (5, BreakKind::Forked));
}

#[test]
fn a_restarted_producer_continues_its_chain() {
    let mut events = interleaved(4);
    let last_a = events
        .iter()
        .rev()
        .find(|e| e.producer == "verifier/node-a")
        .unwrap()
        .clone();
    let mut resumed = Chain::resume(&last_a);
    events.push(resumed.append(draft(7), 1_800_000_001_000).unwrap());
    assert!(verify_chain(&events).is_ok());
}

#[test]
fn verification_can_resume_after_a_sealed_segment() {
    let events = interleaved(12);
    let (sealed, rest) = events.split_at(6);
    let mut verifier = ChainVerifier::new();
    for producer in ["verifier/node-a", "verifier/node-b"] {
        let last = sealed
            .iter()
            .rev()
            .find(|e| e.producer == producer)
            .unwrap();
        verifier.resume_after(last);
    }
    for e in rest {
        verifier.push(e).unwrap();
    }
}

#[test]
fn records_round_trip_through_json_and_unknown_fields_are_refused() {
    let events = interleaved(3);
    let line = serde_json::to_string(&events[1]).unwrap();
    assert_eq!(AuditEvent::from_json(&line).unwrap(), events[1]);
    let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["injected"] = true.into();
    assert!(AuditEvent::from_json(&v.to_string()).is_err());
    assert!(AuditEvent::from_json("{").is_err());
}
