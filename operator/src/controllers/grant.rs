//! The CapabilityGrant controller: runs the phase machine
//! ([`super::grant_phase`]), publishes the result to the shared state
//! ([`super::grant_state`]), writes the status, and records each transition
//! once — an audit event and a Kubernetes Event.
//!
//! ```text
//!  grant, Agent, Envelope, Approver event ──▶ reconcile
//!    ├─ being deleted ──▶ revoke + remove shared state ─▶ status Revoked ─▶ drop finalizer
//!    └─ plan(grant, related, now) ─▶ shared state ─▶ audit record (once, durable) ─▶ status (SSA, resourceVersion) ─▶ Event
//! ```
//!
//! The shared state is written before the status: a revocation reaches the
//! verifiers first (fail closed), and a status write that fails leaves a
//! state the next reconcile writes again. A transition is read off the
//! status the reconcile replaces (`from`) and the one it writes (`to`); the
//! write carries the `resourceVersion` that was read, so two reconciles can
//! never both write the same transition.
//!
//! The transition's audit record is written, and confirmed, *before* the
//! status that commits the transition: a status is never written without
//! its record, so a leader killed in between leaves at worst a record whose
//! status the next leader writes. That leader plans the same transition
//! again; the record's once-only mark `transition:<uid>:<kind>` tells the
//! audit writer it is written, so it writes no second one. The uid and kind
//! are enough: each kind happens at most once in a grant's life (`Pending`
//! only first, `Approved`/`Denied` only from it, `Revoked`/`Expired` final).

use std::sync::Arc;
use std::time::Duration;

use agentauth_core::ErrorCode;
use agentauth_core::audit::Draft;
use agentauth_crds::approval::quorum;
use agentauth_crds::conditions::{self, reasons};
use agentauth_crds::{Approver, CapabilityGrant, CapabilityGrantStatus, GrantPhase};
use agentauth_state::StateError;
use futures::Stream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::{Map, json};

use super::grant_phase::{self, Cond, GRANT_FINALIZER, Inputs, Plan, RevokedBy};
use super::related::{self, Streams};
use super::status;
use super::{ControllerError, Error, Shared, Shutdown, grant_state};

const NAME: &str = "grant";

/// The CapabilityGrant controller's result stream; related objects' events
/// (from `streams`) reconcile the grants that refer to them.
pub(super) fn run(
    api: Api<CapabilityGrant>,
    streams: Streams,
    shared: Arc<Shared>,
    shutdown: Shutdown,
) -> impl Stream<Item = Result<(ObjectRef<CapabilityGrant>, Action), ControllerError>> {
    let controller = Controller::new(api, watcher::Config::default());
    let (by_agent, by_envelope, by_approver) =
        (controller.store(), controller.store(), controller.store());
    controller
        .watches_stream(streams.agents, move |agent| {
            related::grants_of_agent(&by_agent, &agent)
        })
        .watches_stream(streams.envelopes, move |envelope| {
            related::grants_of_envelope(&by_envelope, &envelope)
        })
        .watches_stream(streams.approvers, move |approver| {
            related::grants_decided_by(&by_approver, &approver)
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, |g, e, s| s.failed(NAME, g.as_ref(), e), shared)
}

async fn reconcile(grant: Arc<CapabilityGrant>, shared: Arc<Shared>) -> Result<Action, Error> {
    let result = with_finalizer(grant.clone(), &shared).await;
    shared.finished(NAME, grant.as_ref(), result)
}

async fn with_finalizer(grant: Arc<CapabilityGrant>, shared: &Shared) -> Result<Action, Error> {
    let namespace = grant.namespace().ok_or_else(|| Error::Incomplete {
        object: status::describe(grant.as_ref()),
        field: "metadata.namespace",
    })?;
    let api = Api::<CapabilityGrant>::namespaced(shared.ctx.client.clone(), &namespace);
    finalizer(&api, GRANT_FINALIZER, grant, |event| async {
        match event {
            finalizer::Event::Apply(grant) => apply(&grant, shared, &api).await,
            finalizer::Event::Cleanup(grant) => cleanup(&grant, shared, &api).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        e => Error::Finalizer(Box::new(e)),
    })
}

/// Plans, publishes and writes the status of a grant that is not being deleted.
async fn apply(
    grant: &CapabilityGrant,
    shared: &Shared,
    api: &Api<CapabilityGrant>,
) -> Result<Action, Error> {
    if !shared.related.synced().await {
        return Err(Error::NotSynced);
    }
    let namespace = grant.namespace().unwrap_or_default();
    let agent = shared.related.agent(&namespace, &grant.spec.agent_ref.name);
    let envelope = grant
        .spec
        .envelope_ref
        .as_ref()
        .and_then(|r| shared.related.envelope(&namespace, &r.name));
    let approvers: Vec<_> = quorum::recorded(grant.status.as_ref())
        .iter()
        .filter_map(|(_, a)| shared.related.approver(&a.approver))
        .collect();
    let approvers: Vec<&Approver> = approvers.iter().map(AsRef::as_ref).collect();
    let now_ms = shared.ctx.clock.now_ms();
    let plan = grant_phase::plan(&Inputs {
        grant,
        agent: agent.as_deref(),
        envelope: envelope.as_deref(),
        approvers: &approvers,
        relying_party: &shared.ctx.relying_party,
        now_ms,
    });
    let state = shared.ctx.state.as_ref();
    grant_state::sync(
        state,
        grant,
        &plan,
        agent.as_deref(),
        envelope.as_deref(),
        now_ms,
    )
    .await?;
    write(grant, &plan, shared, api).await?;
    Ok(match plan.requeue_after_ms {
        Some(ms) => Action::requeue(Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1))),
        None => Action::await_change(),
    })
}

/// The finalizer's work: revoke and remove the shared state, then record
/// the revocation in the status (and audit it) when the grant was live.
async fn cleanup(
    grant: &CapabilityGrant,
    shared: &Shared,
    api: &Api<CapabilityGrant>,
) -> Result<Action, Error> {
    let uid = grant.uid().ok_or_else(|| Error::Incomplete {
        object: status::describe(grant),
        field: "metadata.uid",
    })?;
    grant_state::remove(shared.ctx.state.as_ref(), &uid, shared.ctx.clock.now_ms()).await?;
    if let Some(plan) = grant_phase::plan_deletion(grant) {
        write(grant, &plan, shared, api).await?;
    }
    Ok(Action::await_change())
}

/// Writes the planned status unless it is already there, then records the
/// transition it made, if any.
async fn write(
    grant: &CapabilityGrant,
    plan: &Plan,
    shared: &Shared,
    api: &Api<CapabilityGrant>,
) -> Result<(), Error> {
    let current = grant.status.clone().unwrap_or_default();
    let generation = grant.metadata.generation;
    let now = status::now(shared.ctx.clock.as_ref());
    let conditions = vec![
        resolve(&current.conditions, &plan.ready, generation, &now),
        resolve(&current.conditions, &plan.approved, generation, &now),
    ];
    let expires_at = plan.expires_at_ms.map(status::time_at_ms);
    let unchanged = current.phase == Some(plan.phase)
        && current.expires_at == expires_at
        && current.observed_generation == generation
        && (plan.progress.is_none() || current.approval_progress == plan.progress)
        && status::project(&current.conditions, &conditions) == conditions;
    if unchanged {
        return Ok(());
    }
    let kind = grant_phase::transition(current.phase, plan.phase);
    if let Some(kind) = kind {
        let uid = grant.uid().ok_or_else(|| Error::Incomplete {
            object: status::describe(grant),
            field: "metadata.uid",
        })?;
        let record = draft(grant, kind, plan, expires_at.as_ref());
        shared
            .ctx
            .audit
            .record_once(record, transition_mark(&uid, kind))
            .await
            .map_err(|e| Error::State(StateError::Unavailable(e.to_string())))?;
    }
    let desired = CapabilityGrantStatus {
        phase: Some(plan.phase),
        // status.approval belongs to the approval API; it is applied back
        // as it is. Left out, a server-side apply would remove it wherever
        // the operator's field manager owns it, and a client may write
        // under that name (issue 12 item 5): the CRD then refuses the
        // removal, and the operator could never revoke a forged approval.
        approval: current.approval.clone(),
        // The co-signatures too, for the same reason.
        approvals: current.approvals.clone(),
        approval_progress: plan.progress.clone().or(current.approval_progress.clone()),
        expires_at: expires_at.clone(),
        observed_generation: generation,
        conditions: conditions.clone(),
    };
    status::apply(api, grant, &desired).await?;
    announce(grant, plan, shared, &current, kind, &conditions).await;
    Ok(())
}

/// The Kubernetes events of a written status: one for a transition, else
/// one per check that newly failed.
async fn announce(
    grant: &CapabilityGrant,
    plan: &Plan,
    shared: &Shared,
    current: &CapabilityGrantStatus,
    kind: Option<&str>,
    conditions: &[Condition],
) {
    if kind.is_some() {
        let ready = plan.ready.want();
        let warning = plan.revoked_by == Some(RevokedBy::ApprovalInvalid);
        let note = format!(
            "{} → {}: {}",
            phase_name(current.phase),
            plan.phase.as_str(),
            ready.message
        );
        shared
            .event(grant, warning, plan.phase.as_str(), "Transition", &note)
            .await;
        return;
    }
    for condition in conditions {
        if status::changed(&current.conditions, conditions, &condition.type_)
            && condition.status == "False"
        {
            let warning = condition.reason != reasons::AWAITING_APPROVAL;
            shared
                .event(
                    grant,
                    warning,
                    &condition.reason,
                    "Check",
                    &condition.message,
                )
                .await;
        }
    }
}

/// A planned condition as written: a kept one stays verbatim when present.
fn resolve(current: &[Condition], cond: &Cond, generation: Option<i64>, now: &Time) -> Condition {
    match cond {
        Cond::Keep(want) => conditions::find(current, want.type_)
            .cloned()
            .unwrap_or_else(|| status::condition(current, want, generation, now)),
        Cond::Set(want) => status::condition(current, want, generation, now),
    }
}

/// The once-only mark of a grant's transition record.
pub(super) fn transition_mark(uid: &str, kind: &str) -> String {
    format!("transition:{uid}:{kind}")
}

fn phase_name(phase: Option<GrantPhase>) -> &'static str {
    phase.map_or("(new)", GrantPhase::as_str)
}

/// The audit record of a transition.
fn draft(grant: &CapabilityGrant, kind: &str, plan: &Plan, expires_at: Option<&Time>) -> Draft {
    let namespace = grant.namespace().unwrap_or_default();
    let mut details = Map::new();
    details.insert("uid".into(), json!(grant.uid().unwrap_or_default()));
    details.insert("phase".into(), json!(plan.phase.as_str()));
    details.insert("generation".into(), json!(grant.metadata.generation));
    details.insert("serviceProvider".into(), json!(grant.spec.service_provider));
    if let Some(at) = expires_at {
        details.insert("expiresAt".into(), json!(at.0.to_string()));
    }
    if let Some(approval) = grant.status.as_ref().and_then(|s| s.approval.as_ref())
        && matches!(plan.phase, GrantPhase::Approved | GrantPhase::Denied)
    {
        details.insert("approver".into(), json!(approval.approver));
        details.insert("credentialId".into(), json!(approval.credential_id));
        details.insert("decision".into(), json!(approval.decision.as_str()));
        let all: Vec<&str> = quorum::recorded(grant.status.as_ref())
            .iter()
            .filter(|(_, a)| a.decision == approval.decision)
            .map(|(_, a)| a.approver.as_str())
            .collect();
        if all.len() > 1 {
            details.insert("approvers".into(), json!(all));
        }
        if let Some(progress) = &plan.progress {
            details.insert("approvalProgress".into(), json!(progress));
        }
    }
    if let Some(by) = plan.revoked_by {
        details.insert("by".into(), json!(by));
    }
    let reason = match plan.phase {
        GrantPhase::Revoked => Some(ErrorCode::GrantRevoked.as_str().to_owned()),
        GrantPhase::Expired => Some(ErrorCode::GrantExpired.as_str().to_owned()),
        _ => None,
    };
    Draft {
        kind: kind.to_owned(),
        agent: Some(format!("{namespace}/{}", grant.spec.agent_ref.name)),
        grant: Some(format!("{namespace}/{}", grant.name_any())),
        decision: None,
        reason,
        details,
    }
}
