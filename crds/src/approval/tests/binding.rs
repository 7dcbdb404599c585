//! An approval binds the envelope's spec and the agent's key (DESIGN §13):
//! each change after signing performed, and the approval refused with
//! `grant_suspended` until the old value is back or a new approval is signed.

use crate::BehavioralEnvelope;

use super::*;

fn mk_envelope(max_per_day: &str) -> BehavioralEnvelope {
    let mut envelope: BehavioralEnvelope = serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1",
        "kind": "BehavioralEnvelope",
        "metadata": {"name": "limits", "namespace": NS},
        "spec": {"transactions": {"currency": "EUR", "maxPerTransaction": "50.00",
                                  "maxPerDay": max_per_day}},
    }))
    .unwrap();
    envelope.metadata.namespace = Some(NS.into());
    envelope
}

/// A case whose grant names envelope `limits` (maxPerDay 100.00), approved.
fn enveloped() -> (Case, BehavioralEnvelope, CapabilityGrant) {
    let mut case = Case::new();
    case.grant.spec.envelope_ref = Some(crate::LocalRef::new("limits"));
    let envelope = mk_envelope("100.00");
    let binding = Binding::of(&case.grant, Some(&envelope), &case.agent).unwrap();
    let grant = decide(
        &case.grant,
        &binding,
        &mut case.auth,
        "dana",
        Decision::Approved,
    );
    (case, envelope, grant)
}

fn check(
    case: &Case,
    grant: &CapabilityGrant,
    envelope: Option<&BehavioralEnvelope>,
) -> Result<VerifiedApproval, Invalid> {
    verify_approval(grant, envelope, &case.agent, &case.approver, RP, &origins())
}

/// Threat: envelope loosened after approval — raising maxPerDay after a human approved the grant must not carry the approval over to the new limits.
#[test]
fn an_envelope_changed_after_approval_suspends_until_restored() {
    let (case, envelope, grant) = enveloped();
    assert!(check(&case, &grant, Some(&envelope)).is_ok());
    let raised = mk_envelope("10000.00");
    let e = refused(
        check(&case, &grant, Some(&raised)),
        ErrorCode::GrantSuspended,
    );
    assert_eq!(e.field, "status.approval.envelopeDigest");
    assert!(e.message.contains("envelope's spec changed"), "{e}");
    assert!(
        check(&case, &grant, Some(&envelope)).is_ok(),
        "restored: usable again"
    );
    refused(check(&case, &grant, None), ErrorCode::EnvelopeNotFound);
    let mut other = envelope.clone();
    other.metadata.name = Some("other".into());
    refused(
        check(&case, &grant, Some(&other)),
        ErrorCode::EnvelopeNotFound,
    );
}

/// Threat: agent key swapped after approval — a new key put on the Agent after approval must not inherit the approval.
#[test]
fn an_agent_key_replaced_after_approval_suspends() {
    let (mut case, envelope, grant) = enveloped();
    let old_key = case.agent.spec.public_key.clone();
    case.agent.spec.public_key =
        EcPublicJwk::from_key(&SoftAuthenticator::new().public_key().unwrap());
    let e = refused(
        check(&case, &grant, Some(&envelope)),
        ErrorCode::GrantSuspended,
    );
    assert_eq!(e.field, "status.approval.agentKeyThumbprint");
    let e = refused(
        check(&case, &grant, Some(&mk_envelope("1.00"))),
        ErrorCode::GrantSuspended,
    );
    assert!(e.message.contains("and the agent's key"), "{e}");
    case.agent.spec.public_key = old_key;
    assert!(check(&case, &grant, Some(&envelope)).is_ok());
}

/// Threat: rebinding a recorded approval — rewriting the recorded digests to the new envelope or key without a new passkey signature is a forgery.
#[test]
fn a_recorded_binding_rewritten_without_signing_is_refused() {
    let (mut case, _, grant) = enveloped();
    let raised = mk_envelope("10000.00");
    let now = Binding::of(&grant, Some(&raised), &case.agent).unwrap();
    let mut rewritten = grant.clone();
    if let Some(a) = rewritten.status.as_mut().and_then(|s| s.approval.as_mut()) {
        a.envelope_digest = now.envelope_digest.clone();
    }
    let e = check(&case, &rewritten, Some(&raised)).expect_err("a rebound approval was accepted");
    assert_eq!(e.code, ErrorCode::ApprovalChallengeMismatch, "{e}");
    // A genuine approval of the new values (re-approval) verifies.
    let again = decide(
        &case.grant,
        &now,
        &mut case.auth,
        "dana",
        Decision::Approved,
    );
    assert!(check(&case, &again, Some(&raised)).is_ok());
}

/// Threat: unbound approval — a record without the agent key thumbprint (as
/// written before approvals bound it) covers nothing and is refused.
#[test]
fn an_approval_without_a_binding_is_refused() {
    let mut case = Case::new();
    let mut grant = case.approved();
    if let Some(a) = grant.status.as_mut().and_then(|s| s.approval.as_mut()) {
        a.agent_key_thumbprint = String::new();
    }
    refused(case.check(&grant), ErrorCode::ApprovalInvalid);
    // Without envelopeRef the envelope digest is "": one recorded anyway is
    // a binding to something else.
    let (case, envelope, enveloped) = enveloped();
    let mut bare = enveloped.clone();
    bare.spec.envelope_ref = None;
    let e = check(&case, &bare, Some(&envelope)).expect_err("accepted");
    assert_eq!(e.code, ErrorCode::ApprovalChallengeMismatch, "{e}");
}
