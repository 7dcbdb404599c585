//! Separation of duties against a forged owner: the agent's creator, as the
//! admission webhook recorded it from the authenticated request, counts as
//! an owner whatever `spec.owner` says.

use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::webauthn::SoftAuthenticator;
use agentauth_crds::Agent;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;

use super::support::{Env, refused};

/// Threat: owner laundering — an approver creates an Agent naming someone
/// else as its owner, then approves that agent's grant through the approval
/// API; refused `approver_owns_agent`, while another approver may decide.
#[tokio::test]
async fn an_approver_cannot_approve_an_agent_it_created_for_someone_else() {
    let env = Env::new("laundering").await;
    let (mut dana, _, dana_email) = env.logged_in("dana", &[&env.ns]).await;
    env.allow_approve(&dana_email).await;

    // Dana, as the Kubernetes user her email names, creates the Agent and
    // writes someone else as its owner.
    let as_dana = env.cp.client_as(&dana_email, &["system:masters"]).unwrap();
    let key = SoftAuthenticator::new().public_key().unwrap();
    let agent: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": "laundered", "namespace": env.ns},
        "spec": {"displayName": "Payments helper", "owner": "sam@example.com",
                 "publicKey": EcPublicJwk::from_key(&key)},
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(
        as_dana,
        &env.ns,
        &kube::api::ApiResource::erase::<Agent>(&()),
    )
    .create(&PostParams::default(), &agent)
    .await
    .unwrap();
    let stored: Agent = Api::namespaced(env.admin.clone(), &env.ns)
        .get("laundered")
        .await
        .unwrap();
    assert_eq!(stored.created_by(), Some(dana_email.as_str()));
    env.wait(|c| {
        c.agent(&env.ns, "laundered")
            .is_some_and(|a| a.created_by().is_some())
    })
    .await;

    env.grant("laundered-read", "laundered", json!({})).await;
    let pending = dana.pending().await.unwrap();
    let listed = pending["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "laundered-read")
        .cloned()
        .unwrap_or_else(|| panic!("laundered-read is not pending for dana: {pending}"));
    assert_eq!(listed["ownsAgent"], true, "{listed}");
    refused(
        dana.approve(&env.ns, "laundered-read").await,
        403,
        "approver_owns_agent",
    );
    refused(
        dana.deny(&env.ns, "laundered-read").await,
        403,
        "approver_owns_agent",
    );
    assert!(
        env.stored_grant("laundered-read")
            .await
            .status
            .and_then(|s| s.approval)
            .is_none(),
        "a refused approval wrote nothing"
    );

    // Someone who neither owns nor created the agent decides it.
    let (mut carol, _, carol_email) = env.logged_in("carol", &[&env.ns]).await;
    env.allow_approve(&carol_email).await;
    carol.approve(&env.ns, "laundered-read").await.unwrap();
    env.wait_phase("laundered-read", "Approved").await;
}
