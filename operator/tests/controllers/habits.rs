//! How status is written: server-side apply by one field manager, other
//! writers' conditions kept, no write when nothing changed, transition times
//! that only move on a real change, and stale reads refused.

use agentauth_crds::conditions::{self, types};
use agentauth_crds::{Agent, AgentStatus};
use agentauth_operator::controllers::{Error, FIELD_MANAGER, status};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_applied_quietly_and_keeps_other_writers_conditions() {
    let env = Env::new("ctl-habits").await;
    let op = env.operator().await;
    env.create(&mk_agent("assistant", "sam@example.com")).await;
    let agents = env.api::<Agent>();
    let ready = wait_for("agent Ready", CONVERGE, || async {
        let a = agents.get("assistant").await.ok()?;
        conditions::find(&a.status.as_ref()?.conditions, types::READY).cloned()
    })
    .await;
    let managers: Vec<_> = agents
        .get("assistant")
        .await
        .unwrap()
        .managed_fields()
        .iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(managers, [(FIELD_MANAGER.to_owned(), "Apply".to_owned())]);

    let before = agents.get("assistant").await.unwrap();
    // Another controller's condition, by its own field manager; it too
    // makes the controller reconcile, which must finish before the next
    // step counts its own reconcile.
    let reconciled = op.reconciles("agent");
    let theirs = json!({"apiVersion": "agentauth.dev/v1alpha1", "kind": "Agent", "status": {"conditions": [{
        "type": "Audited", "status": "True", "reason": "Reviewed", "message": "reviewed by security",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    agents
        .patch_status(
            "assistant",
            &PatchParams::apply("security-review").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();
    wait_for(
        "the reconcile after the other writer's status",
        CONVERGE,
        || async { (op.reconciles("agent") > reconciled).then_some(()) },
    )
    .await;
    let reconciled = op.reconciles("agent");
    // A label change makes the controller reconcile; nothing of ours changed.
    let labelled = agents
        .patch(
            "assistant",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    wait_for("the reconcile after the label change", CONVERGE, || async {
        (op.reconciles("agent") > reconciled).then_some(())
    })
    .await;
    let after = agents.get("assistant").await.unwrap();
    assert_eq!(
        after.resource_version(),
        labelled.resource_version(),
        "no status write when nothing changed"
    );
    let conds = &after.status.as_ref().unwrap().conditions;
    assert!(
        conditions::find(conds, "Audited").is_some(),
        "the other writer's condition is kept"
    );
    let still = conditions::find(conds, types::READY).unwrap();
    assert_eq!(still.last_transition_time, ready.last_transition_time);

    // A write from a stale read is refused instead of overwriting.
    let stale = before;
    let status = AgentStatus {
        observed_generation: Some(99),
        ..AgentStatus::default()
    };
    let refused = status::apply(&agents, &stale, &status).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    op.kill().await;
}
