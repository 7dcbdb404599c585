//! N-of-M in the phase machine: the operator's own check of every recorded
//! decision, without an apiserver or a webhook in front of it.

use agentauth_crds::{Approval, ApprovalPolicy, DenialRule};

use super::*;

/// A second approver, erin, with her own passkey `cred-2`.
fn erin() -> (Approver, SoftAuthenticator) {
    let auth = SoftAuthenticator::new();
    let mut approver = Approver::new(
        "erin",
        ApproverSpec {
            display_name: "Erin".into(),
            email: "erin@example.com".into(),
            scope: ApproverScope {
                namespaces: vec!["team-a".into()],
                grant_selector: None,
            },
        },
    );
    approver.status = Some(ApproverStatus {
        passkeys: vec![Passkey {
            credential_id: "cred-2".into(),
            public_key: EcPublicJwk::from_key(&auth.public_key().unwrap()),
            sign_count: 0,
            created_at: status::time_at_ms(CREATED_MS),
        }],
        ..ApproverStatus::default()
    });
    (approver, auth)
}

fn two_of_two() -> Option<ApprovalPolicy> {
    Some(ApprovalPolicy {
        required: 2,
        from: None,
        denial: DenialRule::Veto,
    })
}

/// `who` (approver, credential) signs `decision` with `auth`.
fn signed(
    w: &World,
    auth: &mut SoftAuthenticator,
    who: (&str, &str),
    decision: Decision,
) -> Approval {
    let binding = Binding::of(&w.grant, w.envelope.as_ref(), &w.agent).unwrap();
    sign_with_soft_authenticator(
        &w.grant,
        &binding,
        auth,
        &SoftDecision {
            approver: who.0,
            credential_id: who.1,
            decision,
            nonce: "nonce-0123456789abcdef",
            rp_id: "localhost",
            origin: "http://localhost:5173",
            signed_at: status::time_at_ms(CREATED_MS),
        },
    )
    .unwrap()
}

/// A pending 2-of-2 grant with Dana's approval as a co-signature.
fn one_of_two() -> World {
    let mut w = World::new().with_phase(GrantPhase::Pending);
    w.grant.spec.approvals = two_of_two();
    let mut auth = std::mem::replace(&mut w.auth, SoftAuthenticator::new());
    let dana = signed(&w, &mut auth, ("dana", "cred-1"), Decision::Approved);
    w.auth = auth;
    w.grant.status.as_mut().unwrap().approvals = vec![dana];
    w
}

fn plan_with(w: &World, approvers: &[&Approver]) -> Plan {
    plan(&Inputs {
        grant: &w.grant,
        agent: Some(&w.agent),
        envelope: w.envelope.as_ref(),
        approvers,
        relying_party: &w.rp,
        now_ms: CREATED_MS + 1000,
    })
}

#[test]
fn one_approval_of_two_waits_and_says_so() {
    let w = one_of_two();
    let p = plan_with(&w, &[&w.approver]);
    assert_eq!(
        (p.phase, p.publish),
        (GrantPhase::Pending, Publish::Nothing)
    );
    assert_eq!(p.progress.as_deref(), Some("1/2 approved"));
    let approved = p.approved.want();
    assert_eq!(approved.reason, "AwaitingApproval");
    assert!(
        approved.message.contains("1/2 approved (by dana)"),
        "{approved:?}"
    );
}

#[test]
fn the_second_distinct_approval_approves() {
    let mut w = one_of_two();
    let (erin, mut auth) = erin();
    let second = signed(&w, &mut auth, ("erin", "cred-2"), Decision::Approved);
    w.grant.status.as_mut().unwrap().approval = Some(second);
    let p = plan_with(&w, &[&w.approver, &erin]);
    assert_eq!(
        (p.phase, p.publish),
        (GrantPhase::Approved, Publish::Usable)
    );
    assert_eq!(p.progress.as_deref(), Some("2/2 approved"));
    assert!(
        p.approved.want().message.contains("dana, erin"),
        "{:?}",
        p.approved
    );
}

/// Threat: a forged second signature reaching the operator (no webhook in
/// front, or written before it was registered) — Erin's name and passkey
/// id over Dana's signature: the grant stays Pending (`ApprovalInvalid`),
/// and an Approved phase claiming it is revoked.
#[test]
fn a_forged_second_signature_never_approves() {
    let mut w = one_of_two();
    let (erin, _) = erin();
    let mut auth = std::mem::replace(&mut w.auth, SoftAuthenticator::new());
    let forged = signed(&w, &mut auth, ("erin", "cred-2"), Decision::Approved);
    w.grant.status.as_mut().unwrap().approval = Some(forged);
    let p = plan_with(&w, &[&w.approver, &erin]);
    assert_eq!(
        (p.phase, p.publish),
        (GrantPhase::Pending, Publish::Nothing)
    );
    assert_eq!(set_reason(&p.approved), ("ApprovalInvalid", false));
    assert!(
        p.approved
            .want()
            .message
            .contains("approval_signature_invalid"),
        "{:?}",
        p.approved
    );
    w.grant.status.as_mut().unwrap().phase = Some(GrantPhase::Approved);
    let p = plan_with(&w, &[&w.approver, &erin]);
    assert_eq!(
        (p.phase, p.revoked_by),
        (GrantPhase::Revoked, Some(RevokedBy::ApprovalInvalid))
    );
}

/// Threat: one approver counted twice — Dana's co-signature and a second
/// decision by Dana (another passkey would not help either) never make 2/2.
#[test]
fn the_same_approver_twice_never_reaches_the_quorum() {
    let mut w = one_of_two();
    let mut auth = std::mem::replace(&mut w.auth, SoftAuthenticator::new());
    let again = signed(&w, &mut auth, ("dana", "cred-1"), Decision::Approved);
    w.grant.status.as_mut().unwrap().approval = Some(again);
    let p = plan_with(&w, &[&w.approver]);
    assert_eq!(p.phase, GrantPhase::Pending);
    assert!(
        p.approved.want().message.contains("approval_duplicate"),
        "{:?}",
        p.approved
    );
}

#[test]
fn an_envelope_policy_applies_to_a_grant_without_one() {
    let mut w = enveloped();
    w.grant.status.as_mut().unwrap().phase = Some(GrantPhase::Pending);
    let mut envelope = w.envelope.take().unwrap();
    envelope.spec.approvals = two_of_two();
    w.envelope = Some(envelope);
    // Dana's approval was signed over the old envelope: sign again.
    let mut auth = std::mem::replace(&mut w.auth, SoftAuthenticator::new());
    let dana = signed(&w, &mut auth, ("dana", "cred-1"), Decision::Approved);
    w.grant.status.as_mut().unwrap().approval = Some(dana);
    let p = plan_with(&w, &[&w.approver]);
    assert_eq!(
        p.phase,
        GrantPhase::Pending,
        "one approval of the envelope's two"
    );
    assert!(
        p.approved
            .want()
            .message
            .contains("approval_quorum_not_met"),
        "{:?}",
        p.approved
    );
}

#[test]
fn a_denial_after_one_approval_denies_unless_denials_are_counted() {
    let mut w = one_of_two();
    let (erin, mut auth) = erin();
    let denial = signed(&w, &mut auth, ("erin", "cred-2"), Decision::Denied);
    w.grant.status.as_mut().unwrap().approval = Some(denial.clone());
    let p = plan_with(&w, &[&w.approver, &erin]);
    assert_eq!(p.phase, GrantPhase::Denied);
    // Counted: the same denial is a co-signature, and the grant waits.
    let mut w = one_of_two();
    if let Some(policy) = w.grant.spec.approvals.as_mut() {
        policy.denial = DenialRule::Quorum;
    }
    let mut auth = std::mem::replace(&mut w.auth, SoftAuthenticator::new());
    let dana = signed(&w, &mut auth, ("dana", "cred-1"), Decision::Approved);
    let (erin, mut erin_auth) = super::quorum::erin();
    let denial = signed(&w, &mut erin_auth, ("erin", "cred-2"), Decision::Denied);
    w.grant.status.as_mut().unwrap().approvals = vec![dana, denial];
    let p = plan_with(&w, &[&w.approver, &erin]);
    assert_eq!(p.phase, GrantPhase::Pending);
    assert_eq!(p.progress.as_deref(), Some("1/2 approved, 1 denied"));
}
