//! The whole ceremony through the approval API: enroll, log in, list,
//! read, approve (or deny), and the grant moves to Approved (Denied) with a
//! recorded approval that verifies.

use std::time::Duration;

use agentauth_core::approval::Decision;
use agentauth_crds::Agent;
use agentauth_crds::approval::verify_approval;
use kube::api::Api;
use serde_json::json;

use super::support::{Env, ORIGIN, RP_ID, refused};

#[tokio::test]
async fn enroll_login_list_read_and_approve() {
    let env = Env::new("approve").await;
    env.agent("assistant", "owner@example.com").await;
    env.grant("calendar-read", "assistant", json!({})).await;
    let (name, email) = env.approver("dana", &[&env.ns]).await;
    env.allow_approve(&email).await;

    let token = env.token(&name, Duration::from_secs(3600)).await;
    let mut dana = env.passkey();
    dana.enroll(&name, &token).await.unwrap();
    let approver = env.stored_approver(&name).await;
    let passkeys = &approver.status.as_ref().unwrap().passkeys;
    assert_eq!(passkeys.len(), 1);
    assert_eq!(passkeys[0].credential_id, dana.credential_id());
    dana.login(&name).await.unwrap();

    let pending = dana.pending().await.unwrap();
    let grants = pending["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{pending}");
    assert_eq!(grants[0]["name"], "calendar-read");
    assert_eq!(grants[0]["agentOwner"], "owner@example.com");
    assert_eq!(grants[0]["ownsAgent"], false);

    let detail = dana.detail(&env.ns, "calendar-read").await.unwrap();
    assert_eq!(detail["agent"]["owner"], "owner@example.com");
    assert_eq!(detail["agent"]["displayName"], "Calendar assistant");
    assert_eq!(detail["serviceProvider"], "https://calendar.example.com");
    assert_eq!(detail["reason"], "Schedule the team's weekly planning");
    assert_eq!(detail["duration"], "8h");
    assert_eq!(
        detail["capabilities"][0]["words"],
        "Read calendars/primary and everything under it (only: get, list)"
    );

    dana.approve(&env.ns, "calendar-read").await.unwrap();
    let grant = env.wait_phase("calendar-read", "Approved").await;
    let approval = grant.status.as_ref().unwrap().approval.as_ref().unwrap();
    assert_eq!(approval.decision, Decision::Approved);
    assert_eq!(approval.approver, name);
    let agent: Agent = Api::namespaced(env.admin.clone(), &env.ns)
        .get("assistant")
        .await
        .unwrap();
    let approver = env.stored_approver(&name).await;
    let verified =
        verify_approval(&grant, None, &agent, &approver, RP_ID, &[ORIGIN.to_owned()]).unwrap();
    assert_eq!(verified.credential_id, dana.credential_id());
    // The counter moved with the login and the approval: the next assertion must exceed it.
    let stored = approver.status.as_ref().unwrap().passkeys[0].sign_count;
    assert_eq!(stored, verified.sign_count);
    assert_eq!(dana.counter(), stored + 1);

    // Decided once, for good.
    refused(
        dana.approve(&env.ns, "calendar-read").await,
        409,
        "decision_immutable",
    );
    refused(
        dana.deny(&env.ns, "calendar-read").await,
        409,
        "decision_immutable",
    );
    assert_eq!(dana.pending().await.unwrap()["grants"], json!([]));

    env.ctx.audit.flush().await;
    let kinds: Vec<String> = env
        .state
        .audit_events(0, 1000)
        .into_iter()
        .filter(|(_, e)| e.producer == "operator/api")
        .map(|(_, e)| e.kind)
        .collect();
    for kind in ["passkey_enrolled", "approver_login", "approval_recorded"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} not in {kinds:?}");
    }
    // Both refusals are counted by outcome, under the route that refused them.
    let metrics = env.ctx.metrics.render();
    let refusals: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("agentauth_approval_api_outcomes_total{")
                && l.contains("outcome=\"decision_immutable\"")
        })
        .collect();
    let counted: f64 = refusals
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted, 2.0, "{metrics}");
    assert!(
        refusals
            .iter()
            .all(|l| l.contains("route=\"/approvals/api/grants/{namespace}/{name}/")),
        "{refusals:?}"
    );
}

#[tokio::test]
async fn deny() {
    let env = Env::new("deny").await;
    env.agent("assistant", "owner@example.com").await;
    env.grant("calendar-read", "assistant", json!({})).await;
    let (mut erin, name, email) = env.logged_in("erin", &[&env.ns]).await;
    env.allow_approve(&email).await;
    erin.deny(&env.ns, "calendar-read").await.unwrap();
    let grant = env.wait_phase("calendar-read", "Denied").await;
    let approval = grant.status.unwrap().approval.unwrap();
    assert_eq!(approval.decision, Decision::Denied);
    assert_eq!(approval.approver, name);
}
