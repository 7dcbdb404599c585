//! Every phase transition of a grant against a real apiserver, with real
//! software-passkey approvals, and what each one publishes.

use std::time::{Duration, Instant};

use agentauth_core::approval::Decision;
use agentauth_crds::conditions::{self, reasons, types};
use agentauth_crds::{Agent, BehavioralEnvelope, CapabilityGrant, GrantPhase};
use agentauth_operator::controllers::{GRANT_FINALIZER, envelope_state};
use agentauth_state::{GrantPhase as StatePhase, SharedState};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::support::*;

fn condition<'a>(grant: &'a CapabilityGrant, type_: &str) -> (&'a str, &'a str) {
    let c = grant
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, type_))
        .unwrap_or_else(|| panic!("no {type_} condition on {grant:?}"));
    (c.status.as_str(), c.reason.as_str())
}

/// Waits until the shared state says `uid` is revoked; returns how long it took.
async fn revocation_latency(env: &Env, uid: &str, since: Instant) -> Duration {
    wait_for("the revocation in the shared state", CONVERGE, || async {
        env.state.is_revoked(uid).await.unwrap().then_some(())
    })
    .await;
    since.elapsed()
}

/// Creates `name`, approves it, and returns it once Approved.
async fn approved(
    env: &Env,
    world: &mut World,
    name: &str,
    spec: serde_json::Value,
) -> CapabilityGrant {
    env.create(&mk_grant_with(name, spec)).await;
    env.wait_phase(name, GrantPhase::Pending).await;
    env.decide(
        name,
        &world.approver,
        &mut world.passkey,
        Decision::Approved,
    )
    .await;
    env.wait_phase(name, GrantPhase::Approved).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_to_approved_publishes_then_revocation_reaches_the_state_within_a_second() {
    let env = Env::new("ctl-approve").await;
    let op = env.operator().await;
    let mut world = env.world("sam@example.com", "dana").await;
    env.create(&mk_grant("plan", "1h")).await;
    let pending = env.wait_phase("plan", GrantPhase::Pending).await;
    assert_eq!(
        condition(&pending, types::APPROVED),
        ("False", reasons::AWAITING_APPROVAL)
    );
    assert!(pending.finalizers().contains(&GRANT_FINALIZER.to_owned()));
    assert_eq!(
        env.state.get_grant(&uid(&pending)).await.unwrap(),
        None,
        "nothing published while pending"
    );

    env.decide(
        "plan",
        &world.approver,
        &mut world.passkey,
        Decision::Approved,
    )
    .await;
    let grant = env.wait_phase("plan", GrantPhase::Approved).await;
    assert_eq!(
        condition(&grant, types::APPROVED),
        ("True", reasons::APPROVED)
    );
    assert_eq!(condition(&grant, types::READY), ("True", reasons::APPROVED));
    let created = grant
        .metadata
        .creation_timestamp
        .clone()
        .unwrap()
        .0
        .as_second();
    let status = grant.status.clone().unwrap();
    assert_eq!(status.expires_at.unwrap().0.as_second(), created + 3600);
    assert_eq!(status.observed_generation, grant.metadata.generation);

    let state = env
        .state
        .get_grant(&uid(&grant))
        .await
        .unwrap()
        .expect("published");
    let agent = env.api::<Agent>().get("assistant").await.unwrap();
    let envelope = env.api::<BehavioralEnvelope>().get("limits").await.unwrap();
    assert_eq!(state.phase, StatePhase::Approved);
    assert_eq!(state.grant, format!("{}/plan", env.ns));
    assert_eq!(state.agent, format!("{}/assistant", env.ns));
    assert_eq!(
        state.agent_jkt,
        agent.status.unwrap().key_thumbprint.unwrap()
    );
    assert_eq!(
        state.envelope,
        Some(envelope_state(&envelope.spec).unwrap())
    );
    assert_eq!(state.service_provider, "https://calendar.example.com");
    assert_eq!(state.expires_at, Some(created + 3600));
    assert_eq!(state.generation, 1);

    let events = kube::Api::<Event>::namespaced(env.client.clone(), &env.ns);
    let approved_event = wait_for("an Approved Event", CONVERGE, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("Approved")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("plan")
        })
    })
    .await;
    assert_eq!(approved_event.type_.as_deref(), Some("Normal"));

    let since = Instant::now();
    env.revoke("plan").await;
    let latency = revocation_latency(&env, &uid(&grant), since).await;
    println!("spec.revoked → shared state revocation: {latency:?}");
    assert!(
        latency < Duration::from_secs(1),
        "revocation took {latency:?}"
    );
    let revoked = env.wait_phase("plan", GrantPhase::Revoked).await;
    assert_eq!(
        condition(&revoked, types::READY),
        ("False", reasons::REVOKED)
    );
    assert_eq!(
        condition(&revoked, types::APPROVED),
        ("True", reasons::APPROVED),
        "the approval stays on record"
    );
    assert_eq!(
        env.state
            .get_grant(&uid(&grant))
            .await
            .unwrap()
            .unwrap()
            .phase,
        StatePhase::Revoked
    );
    let kinds = env.audit_kinds(&op.ctx, "plan").await;
    assert_eq!(kinds, ["grant_created", "grant_approved", "grant_revoked"]);
    op.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_to_denied() {
    let env = Env::new("ctl-deny").await;
    let op = env.operator().await;
    let mut world = env.world("sam@example.com", "dana").await;
    env.create(&mk_grant("plan", "1h")).await;
    env.wait_phase("plan", GrantPhase::Pending).await;
    env.decide(
        "plan",
        &world.approver,
        &mut world.passkey,
        Decision::Denied,
    )
    .await;
    let denied = env.wait_phase("plan", GrantPhase::Denied).await;
    assert_eq!(
        condition(&denied, types::APPROVED),
        ("False", reasons::DENIED)
    );
    let uid = uid(&denied);
    wait_for("the denial in the shared state", CONVERGE, || async {
        env.state.is_revoked(&uid).await.unwrap().then_some(())
    })
    .await;
    assert_eq!(
        env.state.get_grant(&uid).await.unwrap().unwrap().phase,
        StatePhase::Denied
    );
    assert_eq!(
        env.audit_kinds(&op.ctx, "plan").await,
        ["grant_created", "grant_denied"]
    );
    op.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_revokes_within_a_second_then_removes_the_state() {
    let env = Env::new("ctl-delete").await;
    let op = env.operator().await;
    let mut world = env.world("sam@example.com", "dana").await;
    let grant = approved(&env, &mut world, "plan", json!({"duration": "1h"})).await;
    let uid = uid(&grant);
    let since = Instant::now();
    env.api::<CapabilityGrant>()
        .delete("plan", &DeleteParams::default())
        .await
        .unwrap();
    let latency = revocation_latency(&env, &uid, since).await;
    println!("deletion → shared state revocation: {latency:?}");
    assert!(
        latency < Duration::from_secs(1),
        "revocation took {latency:?}"
    );
    let grants = env.api::<CapabilityGrant>();
    wait_for("the grant to be gone", CONVERGE, || async {
        grants
            .get_opt("plan")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        env.state.get_grant(&uid).await.unwrap(),
        None,
        "the finalizer removed the state"
    );
    assert!(
        env.state.is_revoked(&uid).await.unwrap(),
        "the revocation stays until expiry"
    );
    let events = env.audit(&op.ctx, "plan").await;
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["grant_created", "grant_approved", "grant_revoked"]);
    assert_eq!(events[2].details.get("by"), Some(&json!("deletion")));
    op.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_expires_at_its_expiry() {
    let env = Env::new("ctl-expire").await;
    let op = env.operator().await;
    let mut world = env.world("sam@example.com", "dana").await;
    let expires = k8s_openapi::jiff::Timestamp::from_second(
        k8s_openapi::jiff::Timestamp::now().as_second() + 6,
    )
    .unwrap();
    let grant = approved(
        &env,
        &mut world,
        "brief",
        json!({"expiresAt": expires.to_string()}),
    )
    .await;
    let uid = uid(&grant);
    let expired = env.wait_phase("brief", GrantPhase::Expired).await;
    let late_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond() - expires.as_millisecond();
    println!("Expired observed {late_ms} ms after expiresAt");
    assert!(
        (0..2000).contains(&late_ms),
        "expired {late_ms} ms after expiresAt"
    );
    assert_eq!(
        condition(&expired, types::READY),
        ("False", reasons::EXPIRED)
    );
    assert!(env.state.is_revoked(&uid).await.unwrap());
    assert_eq!(
        env.state.get_grant(&uid).await.unwrap().unwrap().phase,
        StatePhase::Expired
    );
    assert_eq!(
        env.audit_kinds(&op.ctx, "brief").await,
        ["grant_created", "grant_approved", "grant_expired"]
    );
    op.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_change_suspends_and_a_missing_envelope_blocks() {
    let env = Env::new("ctl-envelope").await;
    let op = env.operator().await;
    let mut world = env.world("sam@example.com", "dana").await;
    let grant = approved(&env, &mut world, "plan", json!({"duration": "1h"})).await;
    let uid = uid(&grant);
    let envelopes = env.api::<BehavioralEnvelope>();
    let patch = json!({"spec": {"rateLimits": [{"requests": 3, "period": "1s", "burst": 1}]}});
    envelopes
        .patch("limits", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // The approval covered the old limits: suspended, not republished.
    wait_for("the grant suspended", CONVERGE, || async {
        let state = env.state.get_grant(&uid).await.unwrap()?;
        (state.phase == StatePhase::Suspended).then_some(())
    })
    .await;
    wait_for("Ready=False EnvelopeChanged", CONVERGE, || async {
        let grant = env.grant("plan").await;
        (condition(&grant, types::READY) == ("False", reasons::ENVELOPE_CHANGED)).then_some(())
    })
    .await;

    envelopes
        .delete("limits", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the grant blocked", CONVERGE, || async {
        let state = env.state.get_grant(&uid).await.unwrap()?;
        (state.phase == StatePhase::Pending).then_some(())
    })
    .await;
    // The state is written first, the status right after.
    let grant = wait_for("Ready=False EnvelopeNotFound", CONVERGE, || async {
        let grant = env.grant("plan").await;
        (condition(&grant, types::READY) == ("False", reasons::ENVELOPE_NOT_FOUND)).then_some(grant)
    })
    .await;
    assert_eq!(
        grant.status.as_ref().unwrap().phase,
        Some(GrantPhase::Approved),
        "the decision stands"
    );
    // The approved limits again: the approval covers them, usable again.
    env.create(&mk_envelope("limits")).await;
    wait_for("the grant usable again", CONVERGE, || async {
        let state = env.state.get_grant(&uid).await.unwrap()?;
        (state.phase == StatePhase::Approved).then_some(())
    })
    .await;
    op.kill().await;
}
