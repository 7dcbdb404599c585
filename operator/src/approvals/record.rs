//! A decision written down: into the grant's status (`status.approval`, or
//! appended to `status.approvals` below an N-of-M quorum) under a
//! resourceVersion precondition, and into the audit chain before the
//! approval API answers.

use agentauth_core::ErrorCode;
use agentauth_core::approval::{self, Decision};
use agentauth_core::audit::{Draft, kinds};
use agentauth_crds::approval::Binding;
use agentauth_crds::approval_policy::Policy;
use agentauth_crds::{Approval, CapabilityGrant};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Map, json};

use super::ceremony::DecisionChallenge;
use super::config::FIELD_MANAGER;
use super::placement;
use super::reply::Refusal;
use super::setup::Approvals;

/// Refuses when `grant` is no longer the one the ceremony signed for.
pub(super) fn still_signed(
    grant: &CapabilityGrant,
    pending: &DecisionChallenge,
) -> Result<(), Refusal> {
    if grant.uid().as_deref() != Some(pending.uid.as_str())
        || grant.metadata.generation != Some(pending.generation)
        || approval::spec_digest(&grant.spec)? != pending.spec_digest
    {
        return Err(Refusal::new(
            ErrorCode::ApprovalChallengeMismatch,
            "the grant changed since the ceremony began; read it again and decide anew",
        ));
    }
    Ok(())
}

/// How often a decision is written again after another status writer (the
/// controllers' conditions) changed the grant in between.
const RECORD_ATTEMPTS: usize = 3;

/// Writes `record` into the grant's `status.approval`, guarded by the
/// resourceVersion it was checked against. A conflict caused by another
/// status writer is retried on a fresh read while the grant is undecided and
/// still the one signed for; a decision made meanwhile is final (409).
pub(super) async fn record_decision(
    approvals: &Approvals,
    mut grant: CapabilityGrant,
    pending: &DecisionChallenge,
    record: &Approval,
    policy: &Policy,
) -> Result<(), Refusal> {
    let api = Api::<CapabilityGrant>::namespaced(approvals.ctx.client.clone(), &pending.namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let decided = || {
        Refusal::new(
            ErrorCode::DecisionImmutable,
            "the grant changed or was decided meanwhile; read it again",
        )
    };
    for attempt in 1..=RECORD_ATTEMPTS {
        // Only a suspended grant's approval is replaced, and only by one
        // bound to other values (the CRD's CEL rule agrees).
        let replaceable = |old: &Approval| {
            old.decision == Decision::Approved
                && record.decision == Decision::Approved
                && Binding::recorded(old) != Binding::recorded(record)
        };
        if let Some(old) = grant.status.as_ref().and_then(|s| s.approval.as_ref())
            && !replaceable(old)
        {
            return Err(decided());
        }
        still_signed(&grant, pending)?;
        // Placed anew on each attempt: another approver's co-signature
        // written meanwhile may make this record the deciding one.
        let current = grant.status.clone().unwrap_or_default();
        let status = match placement::is_deciding(policy, &current, record) {
            true => json!({"approval": record}),
            // A co-signature: appended to the list read with this
            // resourceVersion (a merge patch replaces a list whole, and the
            // precondition makes the append atomic).
            false => {
                let mut list = grant
                    .status
                    .as_ref()
                    .map(|s| s.approvals.clone())
                    .unwrap_or_default();
                if list.iter().any(|a| a.approver == record.approver) {
                    return Err(decided());
                }
                list.push(record.clone());
                json!({"approvals": list})
            }
        };
        let patch = json!({
            "metadata": {"resourceVersion": grant.resource_version()},
            "status": status,
        });
        match api
            .patch_status(&pending.name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < RECORD_ATTEMPTS => {
                grant = api
                    .get(&pending.name)
                    .await
                    .map_err(|e| Refusal::kube("read the grant again", &e))?;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => return Err(decided()),
            Err(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 422) => {
                return Err(Refusal::new(
                    ErrorCode::ApprovalInvalid,
                    format!("the apiserver refused the decision: {}", s.message),
                ));
            }
            Err(e) => return Err(Refusal::kube("record the decision", &e)),
        }
    }
    Err(decided())
}

/// The decision's audit event (`approval.recorded` or `denial.recorded`).
pub(super) async fn audit(
    approvals: &Approvals,
    grant: &CapabilityGrant,
    record: &Approval,
    progress: &str,
) {
    let namespace = grant.namespace().unwrap_or_default();
    let mut details = Map::new();
    details.insert("approver".into(), json!(record.approver));
    details.insert("credentialId".into(), json!(record.credential_id));
    details.insert("uid".into(), json!(grant.uid()));
    details.insert("generation".into(), json!(record.generation));
    details.insert("specDigest".into(), json!(record.spec_digest));
    details.insert("envelopeDigest".into(), json!(record.envelope_digest));
    details.insert(
        "agentKeyThumbprint".into(),
        json!(record.agent_key_thumbprint),
    );
    details.insert("approvalProgress".into(), json!(progress));
    let kind = match record.decision {
        Decision::Approved => kinds::APPROVAL_RECORDED,
        Decision::Denied => kinds::DENIAL_RECORDED,
    };
    let draft = Draft {
        kind: kind.into(),
        agent: Some(format!("{namespace}/{}", grant.spec.agent_ref.name)),
        grant: Some(format!("{namespace}/{}", grant.name_any())),
        decision: Some(record.decision.as_str().into()),
        reason: None,
        details,
    };
    // Written before the answer, not only queued: an operator killed right
    // after answering (SIGKILL, a node lost) must not lose the record of a
    // decision it made (chaos/tests/leader_kill.rs). Once per grant
    // generation and approver (N-of-M: each approver's decision is an
    // event), so a retried finish cannot write it twice.
    let mark = format!(
        "decision:{}:{}:{}:{}",
        grant.uid().unwrap_or_default(),
        record.generation,
        record.decision.as_str(),
        record.approver
    );
    if let Err(error) = approvals.ctx.audit.record_once(draft, mark).await {
        // The decision itself is recorded in the grant's status already.
        tracing::error!(%error, "the audit record of a decision was not confirmed");
    }
}
