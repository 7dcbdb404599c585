//! Revoke an approved grant: the approval API sets `spec.revoked: true` for
//! the signed-in approver; the grant controller then moves the phase to
//! Revoked and publishes the revocation to the verifiers (DESIGN §4.5).
//!
//! ```text
//!  POST …/revoke ──▶ guard (site, session, CSRF) ──▶ grant read from the apiserver
//!       ──▶ in scope? RBAC approve? ──▶ approved (else grant_not_approved, 409)
//!       ──▶ already revoked or being deleted: 200, nothing written
//!       ──▶ merge patch spec.revoked = true (field manager agentauth-approval-api)
//!       ──▶ audit grant_revoke_requested ──▶ 200
//! ```
//!
//! No passkey signs a revocation: it only takes authority away, and the CRD
//! and webhook accept `revoked` going from false to true on a decided grant
//! from anyone allowed to patch it. The same scope and RBAC verb as a
//! decision apply, so only someone who could have approved the grant may
//! take it back through this API.

use std::sync::Arc;

use agentauth_core::ErrorCode;
use agentauth_core::audit::{Draft, kinds};
use agentauth_crds::{CapabilityGrant, GrantPhase};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Map, json};

use super::approvers;
use super::config::FIELD_MANAGER;
use super::guard::LoggedIn;
use super::reply::{Refusal, no_store};
use super::scope::{Standing, may_revoke, standing};
use super::setup::Approvals;

/// `POST grants/{namespace}/{name}/revoke`: sets `spec.revoked: true` on an
/// approved grant. Revoking a revoked grant again answers the same, writes
/// nothing and records no event.
pub async fn revoke(
    State(approvals): State<Arc<Approvals>>,
    session: LoggedIn,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let ctx = &approvals.ctx;
    let api = Api::<CapabilityGrant>::namespaced(ctx.client.clone(), &namespace);
    let grant = api
        .get_opt(&name)
        .await
        .map_err(|e| Refusal::kube("read the grant", &e))?
        .ok_or_else(|| unknown(&namespace, &name))?;
    let approver = approvers::get(ctx.client.clone(), &session.approver).await?;
    // Scope and RBAC come first, so that someone who may not act on the
    // grant learns nothing about where it stands.
    may_revoke(ctx.client.clone(), &approver, &grant).await?;
    let already = match standing(&grant) {
        Standing::AlreadyRevoked => true,
        Standing::Revocable => false,
        Standing::NotApproved => {
            let phase = grant
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .map_or("Pending", GrantPhase::as_str);
            return Err(Refusal::new(
                ErrorCode::GrantNotApproved,
                format!(
                    "grant {namespace}/{name} is {phase} without an approval to take back; \
                     only an approved grant can be revoked (deny a pending grant instead)"
                ),
            ));
        }
    };
    if !already {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let patch = json!({"spec": {"revoked": true}});
        match api.patch(&name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Err(unknown(&namespace, &name)),
            Err(e) => return Err(Refusal::kube("set spec.revoked on the grant", &e)),
        }
        audit(&approvals, &grant, &session.approver).await;
    }
    Ok(no_store(Json(json!({
        "grant": {"namespace": namespace, "name": name},
        "revoked": true,
        "alreadyRevoked": already,
        "approver": session.approver,
    }))))
}

fn unknown(namespace: &str, name: &str) -> Refusal {
    Refusal::new(
        ErrorCode::GrantUnknown,
        format!("no grant {namespace}/{name}"),
    )
}

async fn audit(approvals: &Approvals, grant: &CapabilityGrant, approver: &str) {
    let namespace = grant.namespace().unwrap_or_default();
    let mut details = Map::new();
    details.insert("approver".into(), json!(approver));
    details.insert("uid".into(), json!(grant.uid()));
    details.insert("generation".into(), json!(grant.metadata.generation));
    approvals
        .ctx
        .audit
        .record(Draft {
            kind: kinds::REVOKE_REQUESTED.into(),
            agent: Some(format!("{namespace}/{}", grant.spec.agent_ref.name)),
            grant: Some(format!("{namespace}/{}", grant.name_any())),
            decision: None,
            reason: None,
            details,
        })
        .await;
}
