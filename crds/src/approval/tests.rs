//! Each forgery of a recorded approval, performed and refused with its code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use agentauth_core::ErrorCode;
use agentauth_core::approval::Decision;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::webauthn::{SoftAuthenticator, USER_PRESENT};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use serde_json::json;

use super::*;
use crate::{
    AgentSpec, ApproverScope, ApproverSpec, ApproverStatus, CapabilityGrantSpec,
    CapabilityGrantStatus,
};

const RP: &str = "approvals.example.com";
const ORIGIN: &str = "https://approvals.example.com";
const NS: &str = "team-a";

fn origins() -> Vec<String> {
    vec![ORIGIN.to_owned()]
}

fn time() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_780_000_000).unwrap())
}

fn mk_agent(owner: &str) -> Agent {
    let key = SoftAuthenticator::new().public_key().unwrap();
    let mut agent = Agent::new(
        "assistant",
        AgentSpec {
            display_name: "Calendar assistant".into(),
            owner: owner.into(),
            public_key: EcPublicJwk::from_key(&key),
            description: None,
        },
    );
    agent.metadata.namespace = Some(NS.into());
    agent
}

fn mk_approver(name: &str, auth: &SoftAuthenticator, sign_count: u32) -> Approver {
    let mut approver = Approver::new(
        name,
        ApproverSpec {
            display_name: "Dana Fischer".into(),
            email: format!("{name}@example.com"),
            scope: ApproverScope {
                namespaces: vec![NS.into()],
                grant_selector: None,
            },
        },
    );
    approver.status = Some(ApproverStatus {
        passkeys: vec![Passkey {
            credential_id: "cred-1".into(),
            public_key: EcPublicJwk::from_key(&auth.public_key().unwrap()),
            sign_count,
            created_at: time(),
        }],
        ..ApproverStatus::default()
    });
    approver
}

fn mk_grant(uid: &str) -> CapabilityGrant {
    let spec: CapabilityGrantSpec = serde_json::from_value(json!({
        "agentRef": {"name": "assistant"},
        "serviceProvider": "https://calendar.example.com",
        "capabilities": [{"type": "read", "resource": "calendars/primary/**"}],
        "duration": "8h",
        "reason": "Schedule the team's weekly planning",
    }))
    .unwrap();
    let mut grant = CapabilityGrant::new("plan-meetings", spec);
    grant.metadata.namespace = Some(NS.into());
    grant.metadata.uid = Some(uid.into());
    grant.metadata.generation = Some(1);
    grant.metadata.labels = Some(BTreeMap::from([("team".into(), "payments".into())]));
    grant
}

pub(super) fn decide(
    grant: &CapabilityGrant,
    binding: &Binding,
    auth: &mut SoftAuthenticator,
    approver: &str,
    decision: Decision,
) -> CapabilityGrant {
    let approval = sign_with_soft_authenticator(
        grant,
        binding,
        auth,
        &SoftDecision {
            approver,
            credential_id: "cred-1",
            decision,
            nonce: "nonce-0123456789abcdef",
            rp_id: RP,
            origin: ORIGIN,
            signed_at: time(),
        },
    )
    .unwrap();
    let mut decided = grant.clone();
    decided.status = Some(CapabilityGrantStatus {
        approval: Some(approval),
        ..CapabilityGrantStatus::default()
    });
    decided
}

/// A grant of `owner`'s agent decided by "dana", checked.
struct Case {
    auth: SoftAuthenticator,
    agent: Agent,
    approver: Approver,
    grant: CapabilityGrant,
}

impl Case {
    fn new() -> Self {
        let auth = SoftAuthenticator::new();
        let approver = mk_approver("dana", &auth, 0);
        Case {
            auth,
            agent: mk_agent("sam@example.com"),
            approver,
            grant: mk_grant("6a1f0c2e-0000-4000-8000-000000000001"),
        }
    }

    fn approved(&mut self) -> CapabilityGrant {
        let binding = self.bind();
        decide(
            &self.grant,
            &binding,
            &mut self.auth,
            "dana",
            Decision::Approved,
        )
    }

    fn check(&self, grant: &CapabilityGrant) -> Result<VerifiedApproval, Invalid> {
        verify_approval(grant, None, &self.agent, &self.approver, RP, &origins())
    }

    /// The binding of the grant to the agent's key (no envelope).
    fn bind(&self) -> Binding {
        Binding::of(&self.grant, None, &self.agent).unwrap()
    }
}

fn refused(result: Result<VerifiedApproval, Invalid>, code: ErrorCode) -> Invalid {
    let error = result.expect_err("a forged approval was accepted");
    assert_eq!(error.code, code, "{error}");
    error
}

#[test]
fn a_genuine_approval_and_denial_verify() {
    let mut case = Case::new();
    let grant = case.approved();
    let verified = case.check(&grant).unwrap();
    assert_eq!(verified.decision, Decision::Approved);
    assert_eq!(verified.approver, "dana");
    assert_eq!(verified.sign_count, 1);
    let denied = decide(
        &case.grant,
        &case.bind(),
        &mut case.auth,
        "dana",
        Decision::Denied,
    );
    assert_eq!(case.check(&denied).unwrap().decision, Decision::Denied);
}

#[test]
fn no_recorded_approval_is_not_approved() {
    let case = Case::new();
    refused(case.check(&case.grant), ErrorCode::GrantNotApproved);
}

#[test]
fn signed_by_another_key_is_refused() {
    let mut case = Case::new();
    let mut thief = SoftAuthenticator::new();
    let forged = decide(
        &case.grant,
        &case.bind(),
        &mut thief,
        "dana",
        Decision::Approved,
    );
    refused(case.check(&forged), ErrorCode::ApprovalSignatureInvalid);
    let mut unknown = case.approved();
    if let Some(a) = unknown.status.as_mut().and_then(|s| s.approval.as_mut()) {
        a.credential_id = "cred-2".into();
    }
    refused(case.check(&unknown), ErrorCode::ApprovalSignatureInvalid);
}

#[test]
fn an_approval_moved_to_another_grant_is_refused() {
    let mut case = Case::new();
    let approval = case.approved().status.unwrap().approval;
    // Same name and spec, re-created: another uid.
    let mut other = mk_grant("6a1f0c2e-0000-4000-8000-000000000002");
    other.status = Some(CapabilityGrantStatus {
        approval,
        ..CapabilityGrantStatus::default()
    });
    refused(case.check(&other), ErrorCode::ApprovalChallengeMismatch);
}

#[test]
fn a_spec_changed_after_signing_is_refused() {
    let mut case = Case::new();
    let mut grant = case.approved();
    grant.spec.service_provider = "https://bank.example.com".into();
    refused(case.check(&grant), ErrorCode::ApprovalChallengeMismatch);
    let mut grant = case.approved();
    grant.metadata.generation = Some(2);
    refused(case.check(&grant), ErrorCode::ApprovalChallengeMismatch);
}

#[test]
fn a_flipped_decision_is_refused() {
    let mut case = Case::new();
    let mut grant = case.approved();
    if let Some(a) = grant.status.as_mut().and_then(|s| s.approval.as_mut()) {
        a.decision = Decision::Denied;
    }
    refused(case.check(&grant), ErrorCode::ApprovalChallengeMismatch);
}

#[test]
fn counters_fresh_must_increase_recorded_must_not_be_zero() {
    let mut case = Case::new();
    case.auth.counter = 5;
    let grant = case.approved();
    // Recorded: the stored count moved past this approval since (7 > 5).
    case.approver = mk_approver("dana", &case.auth, 7);
    assert_eq!(case.check(&grant).unwrap().sign_count, 5);
    // Fresh: 5 after 7 is a cloned key.
    refused(
        verify_new_approval(&grant, None, &case.agent, &case.approver, RP, &origins()),
        ErrorCode::ApprovalCounterNotIncreasing,
    );
    case.approver = mk_approver("dana", &case.auth, 4);
    assert!(verify_new_approval(&grant, None, &case.agent, &case.approver, RP, &origins()).is_ok());
    // A passkey known to count never presents zero.
    case.auth.counter = 0;
    let zero = case.approved();
    refused(case.check(&zero), ErrorCode::ApprovalCounterNotIncreasing);
    case.approver = mk_approver("dana", &case.auth, 0);
    assert!(
        case.check(&zero).is_ok(),
        "authenticators without a counter report 0"
    );
}

#[test]
fn without_user_verification_is_refused() {
    let mut case = Case::new();
    case.auth.flags = USER_PRESENT;
    let grant = case.approved();
    refused(case.check(&grant), ErrorCode::ApprovalUserNotVerified);
}

#[test]
fn for_another_relying_party_or_origin_is_refused() {
    let mut case = Case::new();
    let grant = case.approved();
    refused(
        verify_approval(
            &grant,
            None,
            &case.agent,
            &case.approver,
            "evil.example",
            &origins(),
        ),
        ErrorCode::ApprovalRpIdMismatch,
    );
    let other = vec!["https://evil.example".to_owned()];
    refused(
        verify_approval(&grant, None, &case.agent, &case.approver, RP, &other),
        ErrorCode::ApprovalOriginMismatch,
    );
}

#[test]
fn an_approver_out_of_scope_is_refused() {
    let mut case = Case::new();
    let grant = case.approved();
    case.approver.spec.scope.namespaces = vec!["team-b".into()];
    let e = refused(case.check(&grant), ErrorCode::ApprovalInvalid);
    assert!(e.message.contains("namespace team-a"), "{e}");
    case.approver.spec.scope.namespaces = vec!["*".into()];
    assert!(case.check(&grant).is_ok());
    case.approver.spec.scope.grant_selector = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([("team".into(), "treasury".into())])),
        ..LabelSelector::default()
    });
    let e = refused(case.check(&grant), ErrorCode::ApprovalInvalid);
    assert!(e.message.contains("grantSelector"), "{e}");
    case.approver.spec.scope.grant_selector = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([("team".into(), "payments".into())])),
        ..LabelSelector::default()
    });
    assert!(case.check(&grant).is_ok());
}

#[test]
fn an_owner_approving_their_own_agent_is_refused() {
    let mut case = Case::new();
    let grant = case.approved();
    for owner in ["dana@example.com", "Dana@Example.COM ", "dana"] {
        case.agent = mk_agent(owner);
        let e = refused(case.check(&grant), ErrorCode::ApprovalInvalid);
        assert!(e.message.contains("owns agent"), "{e}");
    }
}

#[test]
fn an_approval_checked_against_another_approver_or_agent_is_refused() {
    let mut case = Case::new();
    let grant = case.approved();
    let mut other_auth = SoftAuthenticator::new();
    let eve = mk_approver("eve", &other_auth, 0);
    refused(
        verify_approval(&grant, None, &case.agent, &eve, RP, &origins()),
        ErrorCode::ApprovalInvalid,
    );
    // Eve signs, but the record names Dana: still checked against Eve's name.
    let by_eve = decide(
        &case.grant,
        &case.bind(),
        &mut other_auth,
        "dana",
        Decision::Approved,
    );
    refused(case.check(&by_eve), ErrorCode::ApprovalSignatureInvalid);
    let mut stranger = case.agent.clone();
    stranger.metadata.name = Some("other-agent".into());
    refused(
        verify_approval(&grant, None, &stranger, &case.approver, RP, &origins()),
        ErrorCode::ApprovalInvalid,
    );
}

mod binding;
mod quorum;
