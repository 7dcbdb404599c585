//! Idempotent audit appends (DESIGN §8, issue 12 item 11): both
//! implementations skip a retried batch, refuse gaps and forks without
//! writing anything; and against a real Redis behind a fault injector, a
//! write whose answer was lost is retried without a duplicate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_core::audit::{AuditEvent, Chain, Draft, verify_chain};
use agentauth_state::audit::{AppendObserver, Conflict, ConflictKind};
use agentauth_state::{
    AppendError, AuditAppend, ChainWriter, RedisConfig, RedisState, SharedState, StateError,
};
use agentauth_testenv::{LatencyProxy, RedisServer};

use support::{Backend, Kind};

contract! {
    retried_batches_are_skipped_not_duplicated,
    gaps_and_forks_are_refused_and_write_nothing,
    once_only_events_are_written_once,
}

fn events(producer: &str, n: usize) -> Vec<AuditEvent> {
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

fn written(written: usize, skipped: usize) -> AuditAppend {
    AuditAppend { written, skipped }
}

/// Threat: duplicated audit records — a producer retrying a write whose
/// answer it never saw must not record the same event twice.
async fn retried_batches_are_skipped_not_duplicated(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let all = events("verifier/node-a", 6);
    assert_eq!(
        b.state.append_audit_batch(&all[..3]).await.unwrap(),
        written(3, 0)
    );
    // The same batch again (a retry after a timeout): nothing new.
    assert_eq!(
        b.state.append_audit_batch(&all[..3]).await.unwrap(),
        written(0, 3)
    );
    // A batch overlapping the stored end: the old part skipped, the rest written.
    assert_eq!(
        b.state.append_audit_batch(&all[2..]).await.unwrap(),
        written(3, 1)
    );
    assert_eq!(b.state.append_audit(&all[5]).await.unwrap(), written(0, 1));
    let last = b.state.last_audit_event("verifier/node-a").await.unwrap();
    assert_eq!(last.as_ref(), all.last());
}

/// Counts nothing.
struct Quiet;

impl AppendObserver for Quiet {
    fn retried(&self, _: &StateError, _: &[AuditEvent]) {}
    fn skipped(&self, _: usize) {}
    fn conflict(&self, _: &Conflict) {}
    fn unlinkable(&self, _: &str, _: &agentauth_core::Error) {}
}

fn draft(kind: &str) -> (Draft, i64) {
    let draft = Draft {
        kind: kind.into(),
        ..Draft::default()
    };
    (draft, 1_700_000_000_000)
}

/// Threat: a grant transition recorded twice — a leader killed after its
/// record and the next leader, which plans the same transition, must leave
/// one record: the writer drops a draft whose mark is set before linking it
/// (the chain stays contiguous), and a mark set meanwhile refuses the
/// second event atomically.
async fn once_only_events_are_written_once(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let mark = "transition:uid-1:grant_approved".to_owned();
    let marks = [None, Some(mark.clone())];
    let first = events("operator/a", 2);
    assert_eq!(
        b.state
            .audit_marks(std::slice::from_ref(&mark))
            .await
            .unwrap(),
        [false]
    );
    assert_eq!(
        b.state.append_audit_marked(&first, &marks).await.unwrap(),
        written(2, 0)
    );
    assert_eq!(
        b.state
            .audit_marks(&[mark.clone(), "transition:uid-2:grant_approved".into()])
            .await
            .unwrap(),
        [true, false]
    );
    // A retry of the same events is skipped, mark and all.
    assert_eq!(
        b.state.append_audit_marked(&first, &marks).await.unwrap(),
        written(0, 2)
    );
    // Another producer's event under the same mark: refused whole.
    let second = events("operator/b", 2);
    match b.state.append_audit_marked(&second, &marks).await {
        Err(AppendError::Marked { seq: 1, mark: m }) => assert_eq!(m, mark),
        other => panic!("expected a refusal by mark, got {other:?}"),
    }
    // One mark twice in one batch: refused whole.
    let twice = [Some("m".to_owned()), Some("m".to_owned())];
    match b.state.append_audit_marked(&second, &twice).await {
        Err(AppendError::Marked { seq: 1, .. }) => {}
        other => panic!("expected a refusal by mark, got {other:?}"),
    }
    assert_eq!(b.state.last_audit_event("operator/b").await.unwrap(), None);

    // The writer of the second process: the marked draft is dropped before
    // it is linked, the others are written in one contiguous chain.
    let mut writer = ChainWriter::open("operator/b", b.state.as_ref())
        .await
        .unwrap();
    let drafts = [
        draft("grant_created"),
        draft("grant_approved"),
        draft("token_issued"),
    ];
    let marks = [
        Some("transition:uid-1:grant_created".to_owned()),
        Some(mark.clone()),
    ];
    let wrote = writer
        .write_once(b.state.as_ref(), &drafts, &marks, &Quiet)
        .await;
    assert_eq!(wrote, [true, false, true]);
    let last = b
        .state
        .last_audit_event("operator/b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((last.seq, last.kind.as_str()), (1, "token_issued"));
    // Once more: both marks are set now, only the unmarked draft is written.
    let wrote = writer
        .write_once(b.state.as_ref(), &drafts, &marks, &Quiet)
        .await;
    assert_eq!(wrote, [false, false, true]);
    let last = b
        .state
        .last_audit_event("operator/b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.seq, 2);
}

/// Threat: silently broken audit chain — an append that would leave a gap
/// or fork the chain is refused whole, loudly, and writes nothing.
async fn gaps_and_forks_are_refused_and_write_nothing(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let all = events("operator/op-0", 5);
    b.state.append_audit_batch(&all[..2]).await.unwrap();
    let conflict = |r: Result<AuditAppend, AppendError>| match r {
        Err(AppendError::Conflict(c)) => (c.kind, c.seq),
        other => panic!("expected a conflict, got {other:?}"),
    };
    // Events 2 and 3 missing.
    assert_eq!(
        conflict(b.state.append_audit_batch(&all[4..]).await),
        (ConflictKind::Gap, 4)
    );
    // A second chain under the same name (another pod, same producer).
    let mut twin = Chain::resume(&all[0]);
    let other = twin
        .append(
            Draft {
                kind: "token_issued".into(),
                ..Draft::default()
            },
            1_700_000_000_000,
        )
        .unwrap();
    assert_eq!(
        conflict(b.state.append_audit(&other).await),
        (ConflictKind::Fork, 1)
    );
    // Next in seq, but linked to something else.
    let mut unlinked = all[2].clone();
    unlinked.prev = "ab".repeat(32);
    unlinked.hash = unlinked.compute_hash().unwrap();
    assert_eq!(
        conflict(b.state.append_audit(&unlinked).await),
        (ConflictKind::Fork, 2)
    );
    // A batch that is good at first and bad later writes nothing at all.
    let mixed = [all[2].clone(), all[4].clone()];
    assert_eq!(
        conflict(b.state.append_audit_batch(&mixed).await),
        (ConflictKind::Gap, 4)
    );
    let last = b.state.last_audit_event("operator/op-0").await.unwrap();
    assert_eq!(last.as_ref(), all.get(1));
    // The chain continues where it really ends.
    assert_eq!(
        b.state.append_audit_batch(&all[2..]).await.unwrap(),
        written(3, 0)
    );
}

async fn stream(state: &RedisState) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state.audit_stream(after.as_deref(), 500).await.unwrap();
        let Some((id, _)) = page.last() else {
            return out;
        };
        after = Some(id.clone());
        out.extend(page.into_iter().map(|(_, event)| event));
    }
}

/// Threat: duplicated audit records on retry — Redis applies the append,
/// its answer is held back past the client's timeout (a fault-injecting
/// proxy), the client retries the same batch: one copy in the stream, no
/// gap, and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_applied_before_its_answer_was_lost_is_not_written_twice() {
    let server = RedisServer::start().await.unwrap();
    let proxy = LatencyProxy::start(([127, 0, 0, 1], server.port()).into())
        .await
        .unwrap();
    let config = RedisConfig {
        write_timeout: Duration::from_millis(300),
        ..RedisConfig::new(proxy.redis_url())
    };
    let state: Arc<RedisState> = Arc::new(RedisState::connect(config).await.unwrap());
    let direct = RedisState::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    let all = events("verifier/node-a", 8);
    state.append_audit_batch(&all[..3]).await.unwrap();

    proxy.set_reply_delay(Duration::from_millis(1_500));
    let lost = state.append_audit_batch(&all[3..6]).await;
    assert!(
        matches!(lost, Err(AppendError::State(_))),
        "the client must time out: {lost:?}"
    );
    // Redis applied it nonetheless.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stream(&direct).await.len() < 6 {
        assert!(Instant::now() < deadline, "Redis never applied the write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(proxy.held_replies() >= 1);

    proxy.set_reply_delay(Duration::ZERO);
    // Let the held answer drain, then retry as a producer does.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let retried = loop {
        match state.append_audit_batch(&all[3..6]).await {
            Ok(done) => break done,
            Err(AppendError::State(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("retry failed: {e}"),
        }
    };
    assert_eq!(retried, written(0, 3));
    state.append_audit_batch(&all[6..]).await.unwrap();

    let stored = stream(&direct).await;
    assert_eq!(stored, all, "each event exactly once, in order");
    let counts = verify_chain(&stored).unwrap();
    assert_eq!(counts.get("verifier/node-a"), Some(&8));
}
