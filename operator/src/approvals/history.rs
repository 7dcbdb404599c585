//! What the signed-in approver decided, from the server: the grants in the
//! informer cache whose `status.approval.approver` (or one of whose N-of-M
//! co-signatures in `status.approvals`) is this Approver, newest
//! decision first, with where each grant stands now.
//!
//! The recorded approval (`agentauth_crds::Approval`) carries no reason for a
//! denial, so none is listed; the UI shows the reason the approver typed when
//! this browser kept it. Grants decided before the approver's scope narrowed
//! are still listed: the list is the approver's own record, and the grant's
//! page applies the current scope.

use std::cmp::Reverse;
use std::sync::Arc;

use agentauth_crds::approval::quorum;
use agentauth_crds::{Approval, CapabilityGrant, GrantPhase};
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::approvers;
use super::guard::LoggedIn;
use super::reply::{Refusal, no_store};
use super::setup::Approvals;

/// The most decisions one answer lists: a page a person reads, not an
/// export (the audit trail is the complete record).
pub const MAX_HISTORY: usize = 200;

/// The decision recorded on `grant` when `approver` made it: the deciding
/// `status.approval`, or a co-signature in `status.approvals` (N-of-M).
fn decided_by<'a>(grant: &'a CapabilityGrant, approver: &str) -> Option<&'a Approval> {
    quorum::recorded(grant.status.as_ref())
        .into_iter()
        .map(|(_, a)| a)
        .find(|a| a.approver == approver)
}

/// The history entries of `approver` among `grants`, newest decision first
/// (ties by namespace and name), at most [`MAX_HISTORY`]; and whether more
/// were left off.
pub fn entries(grants: &[Arc<CapabilityGrant>], approver: &str) -> (Vec<Value>, bool) {
    let mut decided: Vec<(&CapabilityGrant, &Approval)> = grants
        .iter()
        .filter_map(|g| decided_by(g, approver).map(|a| (g.as_ref(), a)))
        .collect();
    decided.sort_by_key(|(g, a)| {
        (
            Reverse(a.signed_at.0),
            g.namespace().unwrap_or_default(),
            g.name_any(),
        )
    });
    let truncated = decided.len() > MAX_HISTORY;
    let items = decided
        .into_iter()
        .take(MAX_HISTORY)
        .map(|(grant, approval)| {
            let phase = grant.status.as_ref().and_then(|s| s.phase);
            json!({
                "namespace": grant.namespace().unwrap_or_default(),
                "name": grant.name_any(),
                "agent": grant.spec.agent_ref.name,
                "decision": approval.decision.as_str(),
                "signedAt": approval.signed_at,
                "phase": phase.map_or("Pending", GrantPhase::as_str),
                "revoked": grant.spec.revoked,
            })
        })
        .collect();
    (items, truncated)
}

/// `GET history`: the grants this approver decided, newest first.
pub async fn list(
    State(approvals): State<Arc<Approvals>>,
    session: LoggedIn,
) -> Result<Response, Refusal> {
    let approver = approvers::logged_in(&approvals.ctx.caches, &session.approver)?;
    let grants = approvals.ctx.caches.grants.state();
    let (items, truncated) = entries(&grants, &approver.name_any());
    Ok(no_store(Json(json!({
        "decisions": items,
        "truncated": truncated,
        "max": MAX_HISTORY,
    }))))
}
