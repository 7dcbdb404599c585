//! Who answers for an Agent, against the real apiserver with both the
//! mutating and the validating endpoints registered: the creator is
//! recorded from the request's authenticated user whatever the client sent,
//! it never changes, and `spec.owner` never changes.

use agentauth_crds::Agent;
use agentauth_crds::agent::CREATED_BY_ANNOTATION;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};

use super::support::{Expect, api_for, check, report};
use super::{Env, mk_agent};

/// The Agent `name` as stored.
async fn stored(env: &Env, name: &str) -> Agent {
    Api::namespaced(env.admin.clone(), &env.ns)
        .get(name)
        .await
        .unwrap()
}

/// Creates `doc` as `client`.
async fn create_as(client: &kube::Client, doc: &Value) -> Result<DynamicObject, kube::Error> {
    let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
    api_for(client.clone(), doc)
        .create(&PostParams::default(), &obj)
        .await
}

/// Threat: forged creator — a client creates an Agent with its own
/// `agentauth.dev/created-by` naming someone else; the webhook overwrites
/// it with the authenticated user, and a later edit of it is refused.
#[tokio::test]
async fn the_creator_is_the_authenticated_user_whatever_the_client_sends() {
    let env = Env::new("creator").await;
    let mut forged = mk_agent(&env.ns, "forged", "bob@example.com");
    forged["metadata"]["annotations"] =
        json!({ CREATED_BY_ANNOTATION: "someone-else@example.com", "team": "payments" });
    create_as(&env.mallory, &forged).await.unwrap();
    let agent = stored(&env, "forged").await;
    assert_eq!(agent.created_by(), Some("mallory"));
    assert_eq!(
        agent.metadata.annotations.as_ref().unwrap()["team"],
        "payments"
    );

    let annotation =
        |value: Value| json!({"metadata": {"annotations": { CREATED_BY_ANNOTATION: value }}});
    let mut failures = Vec::new();
    let rows: [(&str, Value, Expect); 3] = [
        (
            "rewriting the creator",
            annotation(json!("someone-else@example.com")),
            Expect::Rejects("created_by_invalid: metadata.annotations[agentauth.dev/created-by]"),
        ),
        (
            "rewriting the creator, as the operator",
            annotation(json!(
                "system:serviceaccount:agentauth-system:agentauth-operator"
            )),
            Expect::Rejects("created_by_invalid"),
        ),
        (
            "removing the creator (restored by the mutating endpoint, so admitted)",
            annotation(Value::Null),
            Expect::Accepts,
        ),
    ];
    for (i, (row, patch, expect)) in rows.into_iter().enumerate() {
        let client = if i == 1 { &env.operator } else { &env.mallory };
        failures.extend(check(row, &expect, env.patch(client, &forged, patch).await));
    }
    report(&failures, env.cp);
    assert_eq!(stored(&env, "forged").await.created_by(), Some("mallory"));
}

/// Threat: owner swap — `spec.owner` is edited after create, to move an
/// agent off the approver who answers for it; refused (CEL, and the
/// webhook behind it).
#[tokio::test]
async fn the_owner_cannot_change_after_create() {
    let env = Env::new("owner").await;
    let agent = mk_agent(&env.ns, "assistant", "dana@example.com");
    env.create(&agent).await.unwrap();
    let mut failures = Vec::new();
    failures.extend(check(
        "changing spec.owner",
        &Expect::Refused("owner cannot change"),
        env.patch(
            &env.admin,
            &agent,
            json!({"spec": {"owner": "bob@example.com"}}),
        )
        .await,
    ));
    failures.extend(check(
        "changing the description",
        &Expect::Accepts,
        env.patch(
            &env.admin,
            &agent,
            json!({"spec": {"description": "Plans meetings"}}),
        )
        .await,
    ));
    report(&failures, env.cp);
    let stored = stored(&env, "assistant").await;
    assert_eq!(stored.spec.owner, "dana@example.com");
    assert_eq!(stored.created_by(), Some("admin"));
}

/// Threat: owner laundering — an approver creates an Agent naming someone
/// else as its owner, then records its own approval of that agent's grant
/// (as the operator would write it); the webhook refuses it as the owner's
/// (the shared `verify` reports separation of duties as `approval_invalid`
/// "owns agent"; the approval API answers `approver_owns_agent`), and
/// another approver's approval is admitted.
#[tokio::test]
async fn an_approver_cannot_approve_an_agent_it_created_for_someone_else() {
    let env = Env::new("laundering").await;
    let ns = env.ns.as_str();
    let dana = format!("{ns}-dana");
    let dana_user = format!("{dana}@example.com");
    let as_dana = env.cp.client_as(&dana_user, &["system:masters"]).unwrap();
    create_as(&as_dana, &mk_agent(ns, "laundered", "sam@example.com"))
        .await
        .unwrap();
    assert_eq!(
        stored(&env, "laundered").await.created_by(),
        Some(dana_user.as_str())
    );

    let mut failures = Vec::new();
    for (i, (approver, expect)) in [
        (
            dana.clone(),
            Expect::Rejects("approval_invalid: status.approval.approver:"),
        ),
        (format!("{ns}-carol"), Expect::Accepts),
    ]
    .into_iter()
    .enumerate()
    {
        let approver_doc = super::mk_approver(&approver, &[ns]);
        env.create(&approver_doc).await.unwrap();
        let mut passkey = agentauth_core::webauthn::SoftAuthenticator::new();
        env.patch_status(
            &env.operator,
            &approver_doc,
            super::passkey_status(&passkey, 0),
        )
        .await
        .unwrap();
        let grant_doc = super::mk_grant(ns, &format!("grant-{i}"), "laundered", None);
        env.create(&grant_doc).await.unwrap();
        let grant = env.grant(&format!("grant-{i}")).await;
        let approval = super::sign(
            &grant,
            &env.binding(&grant).await,
            &mut passkey,
            &approver,
            agentauth_core::approval::Decision::Approved,
        );
        let result = env
            .patch_status(
                &env.operator,
                &grant_doc,
                json!({"status": {"approval": approval}}),
            )
            .await;
        failures.extend(check(&format!("approval by {approver}"), &expect, result));
    }
    report(&failures, env.cp);
}
