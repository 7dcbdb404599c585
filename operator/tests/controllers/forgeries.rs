//! Forged, misplaced and missing approvals: each attack performed against
//! the apiserver, and the grant never Approved nor published as usable.

use std::time::Duration;

use agentauth_core::approval::Decision;
use agentauth_core::webauthn::{SoftAuthenticator, USER_PRESENT};
use agentauth_crds::conditions::{self, reasons, types};
use agentauth_crds::{CapabilityGrant, GrantPhase};
use agentauth_operator::controllers::status::FIELD_MANAGER;
use agentauth_state::SharedState;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support::*;

/// The grant's `Approved` condition as (reason, message).
async fn approved_condition(env: &Env, name: &str) -> Option<(String, String)> {
    let grant = env.grant(name).await;
    let c = conditions::find(&grant.status?.conditions, types::APPROVED)?.clone();
    Some((c.reason, c.message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_misplaced_and_missing_approvals_never_approve() {
    let env = Env::new("ctl-forgery").await;
    let op = env.operator().await;
    // The agent's owner is an approver too (by email), and another
    // approver's scope is elsewhere.
    let owner = env.approver_name("sam");
    let mut world = env.world(&format!("{owner}@example.com"), "dana").await;
    let mut owner_key = SoftAuthenticator::new();
    env.register(&owner, &[env.ns.as_str()], &owner_key).await;
    let mut outsider_key = SoftAuthenticator::new();
    let outsider = env.approver_name("mallory");
    env.register(&outsider, &["somewhere-else"], &outsider_key)
        .await;
    let names = [
        "wrong-key",
        "moved",
        "source",
        "owner",
        "out-of-scope",
        "no-uv",
        "unknown-approver",
        "none",
    ];
    for name in names {
        env.create(&mk_grant(name, "1h")).await;
    }
    for name in names {
        env.wait_phase(name, GrantPhase::Pending).await;
    }

    let mut thief = SoftAuthenticator::new();
    let wrong_key = env.grant("wrong-key").await;
    let forged = sign(
        &wrong_key,
        &env.binding(&wrong_key).await,
        &world.approver,
        &mut thief,
        Decision::Approved,
    );
    env.record("wrong-key", &forged).await.unwrap();
    let source = env.grant("source").await;
    let for_source = sign(
        &source,
        &env.binding(&source).await,
        &world.approver,
        &mut world.passkey,
        Decision::Approved,
    );
    env.record("moved", &for_source).await.unwrap();
    env.decide("owner", &owner, &mut owner_key, Decision::Approved)
        .await;
    env.decide(
        "out-of-scope",
        &outsider,
        &mut outsider_key,
        Decision::Approved,
    )
    .await;
    // Dana's registered passkey, but the user was not verified.
    world.passkey.flags = USER_PRESENT;
    env.decide(
        "no-uv",
        &world.approver,
        &mut world.passkey,
        Decision::Approved,
    )
    .await;
    env.decide(
        "unknown-approver",
        "nobody",
        &mut SoftAuthenticator::new(),
        Decision::Approved,
    )
    .await;

    let expected = [
        ("wrong-key", "approval_signature_invalid"),
        ("moved", "approval_challenge_mismatch"),
        ("owner", "owns agent"),
        ("out-of-scope", "may not decide grants in namespace"),
        ("no-uv", "approval_user_not_verified"),
        ("unknown-approver", "does not exist"),
    ];
    for (name, says) in expected {
        let (reason, message) = wait_for(&format!("{name} refused"), CONVERGE, || async {
            approved_condition(&env, name)
                .await
                .filter(|(r, _)| r == reasons::APPROVAL_INVALID)
        })
        .await;
        assert!(message.contains(says), "{name}: {reason}: {message}");
    }
    // Give the controllers time to do the wrong thing, then look again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in names {
        assert_eq!(env.phase(name).await, Some(GrantPhase::Pending), "{name}");
        let uid = uid(&env.grant(name).await);
        assert_eq!(
            env.state.get_grant(&uid).await.unwrap(),
            None,
            "{name} must not be published"
        );
        let kinds = env.audit_kinds(&op.ctx, name).await;
        assert_eq!(kinds, ["grant_created"], "{name}");
    }
    let (reason, _) = approved_condition(&env, "none").await.unwrap();
    assert_eq!(reason, reasons::AWAITING_APPROVAL);
    op.kill().await;
}

/// Threat: a spoofed backstop (issue 12 item 5). Without the webhook, a
/// client writes `phase: Approved` with a bogus approval under the
/// operator's own field manager name (`managedFields` names are chosen by
/// the writer): the operator re-verifies the signature whatever wrote the
/// status, never publishes the grant as usable, and revokes it with
/// reason `approval_invalid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_phase_written_by_someone_else_is_verified_and_revoked() {
    let env = Env::new("ctl-rogue").await;
    let op = env.operator().await;
    let world = env.world("sam@example.com", "dana").await;
    env.create(&mk_grant("plan", "1h")).await;
    env.create(&mk_grant("bare", "1h")).await;
    let pending = env.wait_phase("plan", GrantPhase::Pending).await;
    env.wait_phase("bare", GrantPhase::Pending).await;
    let grants = env.api::<CapabilityGrant>();
    // The operator's own manager name: spoofable by anyone with status access.
    let rogue = PatchParams::apply(FIELD_MANAGER).force();

    // The CRD refuses Approved without a recorded approval outright.
    let bare = json!({"apiVersion": "agentauth.dev/v1alpha1", "kind": "CapabilityGrant",
        "status": {"phase": "Approved"}});
    let refused = grants
        .patch_status("bare", &rogue, &Patch::Apply(&bare))
        .await;
    match refused {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422);
            assert!(
                e.message
                    .contains("phase Approved needs a recorded approval"),
                "{}",
                e.message
            );
        }
        other => panic!("the apiserver accepted phase Approved without an approval: {other:?}"),
    }

    // With a forged approval it is accepted by the schema: the operator must catch it.
    let mut invalidations = env.state.subscribe().await.unwrap();
    let forged = sign(
        &pending,
        &env.binding(&pending).await,
        &world.approver,
        &mut SoftAuthenticator::new(),
        Decision::Approved,
    );
    let patch = json!({"apiVersion": "agentauth.dev/v1alpha1", "kind": "CapabilityGrant",
        "status": {"phase": "Approved", "approval": forged}});
    grants
        .patch_status("plan", &rogue, &Patch::Apply(&patch))
        .await
        .unwrap();
    let revoked = env.wait_phase("plan", GrantPhase::Revoked).await;
    let approved = conditions::find(
        &revoked.status.as_ref().unwrap().conditions,
        types::APPROVED,
    )
    .unwrap();
    assert_eq!(approved.reason, reasons::APPROVAL_INVALID);
    let uid = uid(&revoked);
    wait_for("the revocation", CONVERGE, || async {
        env.state.is_revoked(&uid).await.unwrap().then_some(())
    })
    .await;
    while let Ok(invalidation) = invalidations.try_recv() {
        if invalidation.uid == uid {
            assert!(
                invalidation.revoked,
                "the forged grant was published as usable: {invalidation:?}"
            );
        }
    }
    let events = env.audit(&op.ctx, "plan").await;
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["grant_created", "grant_revoked"]);
    assert_eq!(
        events[1].details.get("by"),
        Some(&json!("approval_invalid"))
    );
    op.kill().await;
}
