//! A leader killed while it records a grant transition (the chaos
//! experiment `leader_kill`, here with the moment chosen exactly): the next
//! leader leaves exactly one audit record of the transition, whether the
//! killed leader's record reached the store or not.
//!
//! ```text
//!  operator/first ── Doomed(state) ──▶ audit append held ── the test: "die" (the append is lost, or applied)
//!                                                            + kill the controllers
//!  operator/second ── state ──▶ reconciles the same grant ──▶ one `grant_approved` in the stream
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agentauth_core::approval::Decision;
use agentauth_core::audit::{AuditEvent, verify_chain};
use agentauth_crds::GrantPhase;
use agentauth_state::consume::{ConsumeOutcome, ConsumeRequest};
use agentauth_state::{
    AppendError, AuditAppend, GrantState, InProcessState, Invalidation, SharedState, StateError,
};
use tokio::sync::watch;

use crate::support::*;

/// What becomes of the audit write in flight when the process dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// It never reaches the store (killed before the write).
    Lost,
    /// The store applies it; the process dies before it hears back.
    Applied,
}

/// The shared state as one operator process sees it: audit appends can be
/// held (the process is about to die with its record in flight), and once
/// it is dead nothing it calls returns.
struct Doomed {
    inner: Arc<InProcessState>,
    hold: AtomicBool,
    held: watch::Sender<Vec<String>>,
    fate: watch::Sender<Option<Fate>>,
}

impl Doomed {
    fn new(inner: Arc<InProcessState>) -> Arc<Doomed> {
        Arc::new(Doomed {
            inner,
            hold: AtomicBool::new(false),
            held: watch::Sender::new(Vec::new()),
            fate: watch::Sender::new(None),
        })
    }

    /// A dead process's call never returns.
    async fn alive(&self) {
        if self.fate.borrow().is_some() {
            std::future::pending::<()>().await;
        }
    }

    async fn append(
        &self,
        events: &[AuditEvent],
        marks: &[Option<String>],
    ) -> Result<AuditAppend, AppendError> {
        self.alive().await;
        if !self.hold.load(Ordering::SeqCst) {
            return self.inner.append_audit_marked(events, marks).await;
        }
        self.held
            .send_modify(|held| held.extend(events.iter().map(|e| e.kind.clone())));
        let mut fate = self.fate.subscribe();
        let fate = *fate.wait_for(Option::is_some).await.unwrap();
        if fate == Some(Fate::Applied) {
            let _ = self.inner.append_audit_marked(events, marks).await;
        }
        std::future::pending().await
    }
}

#[async_trait::async_trait]
impl SharedState for Doomed {
    async fn put_grant(&self, s: &GrantState) -> Result<(), StateError> {
        self.alive().await;
        self.inner.put_grant(s).await
    }
    async fn get_grant(&self, uid: &str) -> Result<Option<GrantState>, StateError> {
        self.alive().await;
        self.inner.get_grant(uid).await
    }
    async fn revoke_grant(&self, uid: &str, at_ms: i64) -> Result<(), StateError> {
        self.alive().await;
        self.inner.revoke_grant(uid, at_ms).await
    }
    async fn is_revoked(&self, uid: &str) -> Result<bool, StateError> {
        self.alive().await;
        self.inner.is_revoked(uid).await
    }
    async fn remove_grant(&self, uid: &str) -> Result<(), StateError> {
        self.alive().await;
        self.inner.remove_grant(uid).await
    }
    async fn subscribe(
        &self,
    ) -> Result<tokio::sync::broadcast::Receiver<Invalidation>, StateError> {
        self.inner.subscribe().await
    }
    async fn claim_jti(&self, scope: &str, jti: &str, ttl_ms: u64) -> Result<bool, StateError> {
        self.alive().await;
        self.inner.claim_jti(scope, jti, ttl_ms).await
    }
    async fn append_audit_batch(&self, events: &[AuditEvent]) -> Result<AuditAppend, AppendError> {
        self.append(events, &[]).await
    }
    async fn append_audit_marked(
        &self,
        events: &[AuditEvent],
        marks: &[Option<String>],
    ) -> Result<AuditAppend, AppendError> {
        self.append(events, marks).await
    }
    async fn audit_marks(&self, marks: &[String]) -> Result<Vec<bool>, StateError> {
        self.alive().await;
        self.inner.audit_marks(marks).await
    }
    async fn last_audit_event(&self, producer: &str) -> Result<Option<AuditEvent>, StateError> {
        self.alive().await;
        self.inner.last_audit_event(producer).await
    }
    async fn consume(&self, request: &ConsumeRequest<'_>) -> Result<ConsumeOutcome, StateError> {
        self.alive().await;
        self.inner.consume(request).await
    }
}

/// Approves a grant while the leader's audit writes are held, kills the
/// leader once its `grant_approved` record is in flight (`fate` decides
/// whether that write reached the store), starts the next leader, and
/// returns the grant's audit events once it is Approved.
async fn approve_across_a_leader_crash(prefix: &str, fate: Fate) -> (Env, Vec<AuditEvent>) {
    let env = Env::new(prefix).await;
    let doomed = Doomed::new(env.state.clone());
    let first = env.operator_on(doomed.clone(), "operator/first").await;
    let mut world = env.world("sam@example.com", "dana").await;
    env.create(&mk_grant("g", "1h")).await;
    env.wait_phase("g", GrantPhase::Pending).await;
    first.ctx.audit.flush().await;

    doomed.hold.store(true, Ordering::SeqCst);
    env.decide("g", &world.approver, &mut world.passkey, Decision::Approved)
        .await;
    let mut held = doomed.held.subscribe();
    tokio::time::timeout(
        CONVERGE,
        held.wait_for(|kinds| kinds.iter().any(|k| k == "grant_approved")),
    )
    .await
    .expect("the leader writes the grant_approved record")
    .unwrap();
    // The moment of the SIGKILL: the record is in flight.
    doomed.fate.send_replace(Some(fate));
    first.kill().await;

    let second = env.operator_on(env.state.clone(), "operator/second").await;
    env.wait_phase("g", GrantPhase::Approved).await;
    wait_for(
        "the second leader to reconcile the grant",
        CONVERGE,
        || async { (second.reconciles("grant") >= 1).then_some(()) },
    )
    .await;
    let events = env.audit(&second.ctx, "g").await;
    second.stop().await;
    (env, events)
}

fn count(events: &[AuditEvent], kind: &str) -> usize {
    events.iter().filter(|e| e.kind == kind).count()
}

fn all_events(env: &Env) -> Vec<AuditEvent> {
    env.state
        .audit_events(0, usize::MAX)
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

/// Threat: a transition without its audit record after a leader crash — a
/// leader killed after it committed `Approved` but before its record was
/// written left the grant Approved with no `grant_approved` record, and the
/// next leader, seeing no transition, never wrote one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_before_its_record_is_written_loses_no_transition_record() {
    let (env, events) = approve_across_a_leader_crash("ctl-crash-lost", Fate::Lost).await;
    assert_eq!(count(&events, "grant_created"), 1, "{events:?}");
    assert_eq!(
        count(&events, "grant_approved"),
        1,
        "exactly one grant_approved record: {events:?}"
    );
    assert_eq!(events[1].producer, "operator/second");
    verify_chain(&all_events(&env)).expect("every chain verifies");
}

/// Threat: a transition recorded twice after a leader crash — a leader
/// killed after its record reached the store, before its status: the next
/// leader plans the same transition again and must not record it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_after_its_record_is_written_doubles_no_transition_record() {
    let (env, events) = approve_across_a_leader_crash("ctl-crash-applied", Fate::Applied).await;
    assert_eq!(count(&events, "grant_created"), 1, "{events:?}");
    assert_eq!(
        count(&events, "grant_approved"),
        1,
        "exactly one grant_approved record: {events:?}"
    );
    assert_eq!(events[1].producer, "operator/first");
    verify_chain(&all_events(&env)).expect("every chain verifies");
}
