//! What the verifiers read about a grant (DESIGN §7): the operator writes it
//! to the shared state, and publishes revocations (set + invalidation).
//!
//! ```text
//!  Plan.publish ─ Usable ────▶ put_grant(Approved, agent jkt, envelope params + digest)
//!               ─ Suspended ─▶ put_grant(Pending: not usable until agent / envelope are back)
//!               ─ Reapprove ─▶ put_grant(Suspended: envelope / agent key changed since approval)
//!               ─ Final(p) ──▶ put_grant(p) ─▶ revoke_grant (set + pub/sub)
//!  deletion ─────────────────▶ revoke_grant ─▶ remove_grant
//! ```
//!
//! Every write is preceded by a read and skipped when the state already says
//! the same, so reconciles (a restart re-runs all of them) do not flood the
//! verifiers with invalidations.

use agentauth_core::approval::Decision;
use agentauth_core::jcs;
use agentauth_crds::{
    Agent, BehavioralEnvelope, BehavioralEnvelopeSpec, CapabilityGrant, GrantPhase,
};
use agentauth_state::{EnvelopeState, GrantState, SharedState};
use kube::ResourceExt;

use super::Error;
use super::grant_facts::agent_thumbprint;
use super::grant_phase::{Plan, Publish};

/// An envelope's limits as the verifiers apply them, with the digest of its
/// spec (the access token's `env` claim): base64url(SHA-256(JCS(spec))).
pub fn envelope_state(
    spec: &BehavioralEnvelopeSpec,
) -> Result<EnvelopeState, agentauth_core::Error> {
    Ok(EnvelopeState {
        rate_limits: spec.rate_limits.clone(),
        time_windows: spec.time_windows.clone(),
        transactions: spec.transactions.clone(),
        digest: jcs::digest_b64(spec)?,
    })
}

/// Makes the shared state say what `plan.publish` says about `grant`.
pub(super) async fn sync(
    state: &dyn SharedState,
    grant: &CapabilityGrant,
    plan: &Plan,
    agent: Option<&Agent>,
    envelope: Option<&BehavioralEnvelope>,
    now_ms: i64,
) -> Result<(), Error> {
    let uid = grant.uid().ok_or_else(|| Error::Incomplete {
        object: super::status::describe(grant),
        field: "metadata.uid",
    })?;
    let existing = state.get_grant(&uid).await?;
    let fresh = |phase: GrantPhase| GrantState {
        uid: uid.clone(),
        grant: format!(
            "{}/{}",
            grant.namespace().unwrap_or_default(),
            grant.name_any()
        ),
        agent: format!(
            "{}/{}",
            grant.namespace().unwrap_or_default(),
            grant.spec.agent_ref.name
        ),
        generation: grant
            .status
            .as_ref()
            .and_then(|s| s.approval.as_ref())
            .map_or(grant.metadata.generation.unwrap_or_default(), |a| {
                a.generation
            }),
        phase,
        expires_at: plan.expires_at_ms.map(|ms| ms.div_euclid(1000)),
        service_provider: grant.spec.service_provider.clone(),
        agent_jkt: agent
            .and_then(agent_thumbprint)
            .unwrap_or_default()
            .to_owned(),
        envelope: None,
        updated_at_ms: now_ms,
        approved_at_ms: approved_at_ms(grant),
    };
    let desired = match plan.publish {
        Publish::Nothing => return Ok(()),
        Publish::Usable => {
            let envelope = match envelope.map(|e| envelope_state(&e.spec)).transpose() {
                Ok(envelope) => envelope,
                Err(e) => {
                    tracing::warn!(uid, error = %e, "the envelope cannot be digested; the grant stays unusable");
                    return put_if_changed(state, existing, fresh(GrantPhase::Pending)).await;
                }
            };
            GrantState {
                envelope,
                ..fresh(GrantPhase::Approved)
            }
        }
        Publish::Suspended => fresh(GrantPhase::Pending),
        Publish::Reapprove => fresh(GrantPhase::Suspended),
        Publish::Final(phase) => {
            // Keep what was last published (key, envelope) for the record.
            let desired = match existing.clone() {
                Some(last) => GrantState {
                    phase,
                    updated_at_ms: now_ms,
                    ..last
                },
                None => fresh(phase),
            };
            put_if_changed(state, existing, desired).await?;
            if !state.is_revoked(&uid).await? {
                state.revoke_grant(&uid, now_ms).await?;
            }
            return Ok(());
        }
    };
    put_if_changed(state, existing, desired).await
}

/// When the grant's approval was signed, ms, once its recorded status says
/// Approved: the grant is published (here) before its status is written
/// (grant.rs), so a recorded Approved phase means an earlier reconcile
/// published it usable, and proofs may have been accepted since. A write of
/// it onto a state that lacks it is then a re-publication, and the state
/// refuses the proofs made before it (`agentauth_state::keys::since`); the
/// first publication, by the reconcile that approves, carries `None`.
fn approved_at_ms(grant: &CapabilityGrant) -> Option<i64> {
    let status = grant.status.as_ref()?;
    if status.phase != Some(GrantPhase::Approved) {
        return None;
    }
    let approval = status.approval.as_ref()?;
    (approval.decision == Decision::Approved).then(|| approval.signed_at.0.as_millisecond())
}

async fn put_if_changed(
    state: &dyn SharedState,
    existing: Option<GrantState>,
    desired: GrantState,
) -> Result<(), Error> {
    // `approved_at_ms` matters only when the state is absent (a
    // re-publication): its appearing once the status says Approved is no
    // change for the verifiers.
    let same = existing.is_some_and(|e| {
        GrantState {
            updated_at_ms: desired.updated_at_ms,
            approved_at_ms: desired.approved_at_ms,
            ..e
        } == desired
    });
    if !same {
        state.put_grant(&desired).await?;
    }
    Ok(())
}

/// Revokes a deleted grant and removes its state (the finalizer's work).
pub(super) async fn remove(state: &dyn SharedState, uid: &str, now_ms: i64) -> Result<(), Error> {
    if !state.is_revoked(uid).await? {
        state.revoke_grant(uid, now_ms).await?;
    }
    state.remove_grant(uid).await?;
    Ok(())
}
