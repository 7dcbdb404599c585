//! The phase machine, transition by transition, without an apiserver.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agentauth_core::approval::Decision;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::webauthn::SoftAuthenticator;
use agentauth_crds::approval::{Binding, SoftDecision, sign_with_soft_authenticator};
use agentauth_crds::{
    AgentSpec, AgentStatus, ApproverScope, ApproverSpec, ApproverStatus, CapabilityGrantSpec,
    CapabilityGrantStatus, Passkey,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::controllers::grant_facts::grant_expiry_ms;
use crate::controllers::status;
use crate::controllers::status::FIELD_MANAGER;

const CREATED_MS: i64 = 1_780_000_000_000;
const HOUR_MS: i64 = 3_600_000;

fn rp() -> RelyingParty {
    RelyingParty {
        id: "localhost".into(),
        origins: vec!["http://localhost:5173".into()],
    }
}

struct World {
    auth: SoftAuthenticator,
    agent: Agent,
    envelope: Option<BehavioralEnvelope>,
    approver: Approver,
    grant: CapabilityGrant,
    rp: RelyingParty,
}

impl World {
    fn new() -> Self {
        let auth = SoftAuthenticator::new();
        let key = SoftAuthenticator::new().public_key().unwrap();
        let mut agent = Agent::new(
            "assistant",
            AgentSpec {
                display_name: "Assistant".into(),
                owner: "sam@example.com".into(),
                public_key: EcPublicJwk::from_key(&key),
                description: None,
            },
        );
        agent.metadata.namespace = Some("team-a".into());
        agent.metadata.generation = Some(1);
        let thumbprint = agent.spec.key_thumbprint().unwrap();
        let ready = status::condition(
            &[],
            &status::Want::yes("Ready", "Valid", ""),
            Some(1),
            &status::time_at_ms(0),
        );
        agent.status = Some(AgentStatus {
            observed_generation: Some(1),
            key_thumbprint: Some(thumbprint),
            conditions: vec![ready],
        });
        let mut approver = Approver::new(
            "dana",
            ApproverSpec {
                display_name: "Dana".into(),
                email: "dana@example.com".into(),
                scope: ApproverScope {
                    namespaces: vec!["team-a".into()],
                    grant_selector: None,
                },
            },
        );
        approver.status = Some(ApproverStatus {
            passkeys: vec![Passkey {
                credential_id: "cred-1".into(),
                public_key: EcPublicJwk::from_key(&auth.public_key().unwrap()),
                sign_count: 0,
                created_at: status::time_at_ms(CREATED_MS),
            }],
            ..ApproverStatus::default()
        });
        let spec: CapabilityGrantSpec = serde_json::from_value(json!({
            "agentRef": {"name": "assistant"},
            "serviceProvider": "https://calendar.example.com",
            "capabilities": [{"type": "read", "resource": "calendars/**"}],
            "duration": "8h",
            "reason": "planning",
        }))
        .unwrap();
        let mut grant = CapabilityGrant::new("plan", spec);
        grant.metadata.namespace = Some("team-a".into());
        grant.metadata.uid = Some("0b5c3a43-5f2d-4a7e-9a51-3c1d2e4f5a6b".into());
        grant.metadata.generation = Some(1);
        grant.metadata.creation_timestamp =
            Some(Time(Timestamp::from_millisecond(CREATED_MS).unwrap()));
        World {
            auth,
            agent,
            envelope: None,
            approver,
            grant,
            rp: rp(),
        }
    }

    fn with_phase(mut self, phase: GrantPhase) -> Self {
        let status = self
            .grant
            .status
            .get_or_insert_with(CapabilityGrantStatus::default);
        status.phase = Some(phase);
        self.grant.metadata.managed_fields = Some(vec![owner_of_phase(FIELD_MANAGER, "Apply")]);
        self
    }

    fn decided(mut self, decision: Decision) -> Self {
        let binding = Binding::of(&self.grant, self.envelope.as_ref(), &self.agent).unwrap();
        let approval = sign_with_soft_authenticator(
            &self.grant,
            &binding,
            &mut self.auth,
            &SoftDecision {
                approver: "dana",
                credential_id: "cred-1",
                decision,
                nonce: "nonce-0123456789abcdef",
                rp_id: "localhost",
                origin: "http://localhost:5173",
                signed_at: status::time_at_ms(CREATED_MS),
            },
        )
        .unwrap();
        self.grant
            .status
            .get_or_insert_with(CapabilityGrantStatus::default)
            .approval = Some(approval);
        self
    }

    fn plan_at(&self, now_ms: i64) -> Plan {
        plan(&Inputs {
            grant: &self.grant,
            agent: Some(&self.agent),
            envelope: self.envelope.as_ref(),
            approvers: &[&self.approver],
            relying_party: &self.rp,
            now_ms,
        })
    }

    fn plan(&self) -> Plan {
        self.plan_at(CREATED_MS + 1000)
    }
}

fn owner_of_phase(manager: &str, operation: &str) -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        manager: Some(manager.into()),
        operation: Some(operation.into()),
        subresource: Some("status".into()),
        fields_v1: Some(FieldsV1(json!({"f:status": {"f:phase": {}}}))),
        ..ManagedFieldsEntry::default()
    }
}

fn set_reason(cond: &Cond) -> (&'static str, bool) {
    match cond {
        Cond::Set(w) => (w.reason, w.status),
        Cond::Keep(w) => panic!("expected a set condition, got kept {w:?}"),
    }
}

#[test]
fn a_new_grant_becomes_pending_and_nothing_else() {
    let w = World::new().decided(Decision::Approved);
    let p = w.plan();
    assert_eq!(
        p.phase,
        GrantPhase::Pending,
        "first seen is always recorded as Pending"
    );
    assert_eq!(p.publish, Publish::Nothing);
    assert_eq!(p.expires_at_ms, Some(CREATED_MS + 8 * HOUR_MS));
    assert_eq!(transition(None, p.phase), Some("grant_created"));
}

#[test]
fn pending_waits_and_names_what_blocks_it() {
    let mut w = World::new().with_phase(GrantPhase::Pending);
    let p = w.plan();
    assert_eq!(
        (p.phase, set_reason(&p.approved)),
        (GrantPhase::Pending, ("AwaitingApproval", false))
    );
    assert_eq!(
        p.requeue_after_ms,
        Some(RESYNC_MS),
        "looks again hourly, and at expiry when sooner"
    );
    assert_eq!(
        w.plan_at(CREATED_MS + 8 * HOUR_MS - 5).requeue_after_ms,
        Some(5)
    );
    w.agent.status = None;
    assert_eq!(set_reason(&w.plan().ready), ("AgentNotReady", false));
    let p = plan(&Inputs {
        agent: None,
        ..Inputs {
            grant: &w.grant,
            agent: None,
            envelope: None,
            approvers: &[],
            relying_party: &w.rp,
            now_ms: CREATED_MS,
        }
    });
    assert_eq!(set_reason(&p.ready), ("AgentNotFound", false));
    w.grant.spec.envelope_ref = Some(agentauth_crds::LocalRef::new("limits"));
    w.agent = World::new().agent;
    assert_eq!(set_reason(&w.plan().ready), ("EnvelopeNotFound", false));
}

#[test]
fn a_verified_approval_approves_and_publishes() {
    let w = World::new()
        .with_phase(GrantPhase::Pending)
        .decided(Decision::Approved);
    let p = w.plan();
    assert_eq!(p.phase, GrantPhase::Approved);
    assert_eq!(p.publish, Publish::Usable);
    assert_eq!(set_reason(&p.ready), ("Approved", true));
    assert_eq!(set_reason(&p.approved), ("Approved", true));
    assert_eq!(
        transition(Some(GrantPhase::Pending), p.phase),
        Some("grant_approved")
    );
}

#[test]
fn approved_but_agent_not_ready_is_suspended_not_usable() {
    let mut w = World::new()
        .with_phase(GrantPhase::Pending)
        .decided(Decision::Approved);
    w.agent.metadata.generation = Some(2);
    let p = w.plan();
    assert_eq!(
        (p.phase, p.publish),
        (GrantPhase::Approved, Publish::Suspended)
    );
    assert_eq!(set_reason(&p.ready), ("AgentNotReady", false));
}

#[test]
fn a_verified_denial_denies() {
    let w = World::new()
        .with_phase(GrantPhase::Pending)
        .decided(Decision::Denied);
    let p = w.plan();
    assert_eq!(
        (p.phase, p.publish),
        (GrantPhase::Denied, Publish::Final(GrantPhase::Denied))
    );
    assert_eq!(
        transition(Some(GrantPhase::Pending), p.phase),
        Some("grant_denied")
    );
}

#[test]
fn forged_or_unverifiable_approvals_never_approve() {
    let mut forged = World::new().with_phase(GrantPhase::Pending);
    forged.auth = SoftAuthenticator::new();
    let forged = forged.decided(Decision::Approved);
    let mut own = World::new()
        .with_phase(GrantPhase::Pending)
        .decided(Decision::Approved);
    own.agent.spec.owner = "dana@example.com".into();
    let mut no_approver = World::new()
        .with_phase(GrantPhase::Pending)
        .decided(Decision::Approved);
    no_approver.approver.metadata.name = Some("someone-else".into());
    let mut no_agent = World::new()
        .with_phase(GrantPhase::Pending)
        .decided(Decision::Approved);
    no_agent.agent.metadata.name = Some("other".into());
    for (what, w, reason) in [
        ("another key", forged, "ApprovalInvalid"),
        ("the owner", own, "ApprovalInvalid"),
        ("another approver", no_approver, "ApprovalInvalid"),
        ("another agent", no_agent, "ApprovalInvalid"),
    ] {
        let p = w.plan();
        assert_eq!(p.phase, GrantPhase::Pending, "{what}");
        assert_eq!(p.publish, Publish::Nothing, "{what}");
        assert_eq!(set_reason(&p.approved), (reason, false), "{what}");
    }
}

#[test]
fn revoked_and_expired_are_final_and_published() {
    let mut w = World::new()
        .with_phase(GrantPhase::Approved)
        .decided(Decision::Approved);
    w.grant.spec.revoked = true;
    let p = w.plan();
    assert_eq!(
        (p.phase, p.publish, p.revoked_by),
        (
            GrantPhase::Revoked,
            Publish::Final(GrantPhase::Revoked),
            Some(RevokedBy::SpecRevoked)
        )
    );
    assert!(
        matches!(p.approved, Cond::Keep(_)),
        "the approval stays on record"
    );
    let w = World::new()
        .with_phase(GrantPhase::Approved)
        .decided(Decision::Approved);
    let p = w.plan_at(CREATED_MS + 8 * HOUR_MS);
    assert_eq!(
        (p.phase, p.publish),
        (GrantPhase::Expired, Publish::Final(GrantPhase::Expired))
    );
    assert_eq!(
        transition(Some(GrantPhase::Approved), p.phase),
        Some("grant_expired")
    );
    let w = World::new().with_phase(GrantPhase::Pending);
    assert_eq!(
        w.plan_at(CREATED_MS + 9 * HOUR_MS).phase,
        GrantPhase::Expired
    );
    for phase in [GrantPhase::Denied, GrantPhase::Revoked, GrantPhase::Expired] {
        let mut w = World::new().with_phase(phase).decided(Decision::Approved);
        w.grant.spec.revoked = true;
        let p = w.plan_at(CREATED_MS + 9 * HOUR_MS);
        assert_eq!(p.phase, phase, "final");
        assert_eq!(p.publish, Publish::Final(phase));
        assert!(matches!(
            (&p.ready, &p.approved),
            (Cond::Keep(_), Cond::Keep(_))
        ));
        assert_eq!(transition(Some(phase), phase), None, "no second transition");
    }
}

/// Threat: spoofed field manager — a forged `phase: Approved` written under the operator's own field-manager name must still be verified and revoked.
#[test]
fn an_approved_phase_is_verified_again_whoever_wrote_it() {
    let mut w = World::new().with_phase(GrantPhase::Approved);
    w.auth = SoftAuthenticator::new();
    let mut w = w.decided(Decision::Approved);
    for owners in [
        vec![owner_of_phase(FIELD_MANAGER, "Apply")],
        vec![
            owner_of_phase(FIELD_MANAGER, "Apply"),
            owner_of_phase("kubectl", "Update"),
        ],
    ] {
        w.grant.metadata.managed_fields = Some(owners);
        let p = w.plan();
        assert_eq!(
            (p.phase, p.revoked_by, p.publish),
            (
                GrantPhase::Revoked,
                Some(RevokedBy::ApprovalInvalid),
                Publish::Final(GrantPhase::Revoked)
            )
        );
        assert_eq!(set_reason(&p.approved), ("ApprovalInvalid", false));
    }
    // An Approver not (yet) in the cache: not usable, but not final either.
    let unknown = World::new()
        .with_phase(GrantPhase::Approved)
        .decided(Decision::Approved);
    let p = plan(&Inputs {
        grant: &unknown.grant,
        agent: Some(&unknown.agent),
        envelope: None,
        approvers: &[],
        relying_party: &unknown.rp,
        now_ms: CREATED_MS + 1000,
    });
    assert_eq!(
        (p.phase, p.publish),
        (GrantPhase::Approved, Publish::Suspended)
    );
    assert_eq!(set_reason(&p.ready), ("ApprovalInvalid", false));
    let mut genuine = World::new()
        .with_phase(GrantPhase::Approved)
        .decided(Decision::Approved);
    genuine.grant.metadata.managed_fields = Some(vec![owner_of_phase("kubectl", "Update")]);
    assert_eq!(genuine.plan().phase, GrantPhase::Approved);
}

#[test]
fn deletion_revokes_live_grants_only() {
    let w = World::new()
        .with_phase(GrantPhase::Approved)
        .decided(Decision::Approved);
    let p = plan_deletion(&w.grant).unwrap();
    assert_eq!(
        (p.phase, p.revoked_by),
        (GrantPhase::Revoked, Some(RevokedBy::Deletion))
    );
    assert!(plan_deletion(&World::new().grant).is_none(), "never seen");
    assert!(plan_deletion(&World::new().with_phase(GrantPhase::Denied).grant).is_none());
}

#[test]
fn expiry_is_spec_expires_at_or_creation_plus_duration() {
    let mut w = World::new();
    assert_eq!(grant_expiry_ms(&w.grant), Some(CREATED_MS + 8 * HOUR_MS));
    w.grant.spec.duration = None;
    w.grant.spec.expires_at = Some(status::time_at_ms(CREATED_MS + 42_000));
    assert_eq!(grant_expiry_ms(&w.grant), Some(CREATED_MS + 42_000));
}

fn mk_envelope(max_per_day: &str) -> BehavioralEnvelope {
    let mut envelope: BehavioralEnvelope = serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1",
        "kind": "BehavioralEnvelope",
        "metadata": {"name": "limits"},
        "spec": {"transactions": {"currency": "EUR", "maxPerDay": max_per_day}},
    }))
    .unwrap();
    envelope.metadata.namespace = Some("team-a".into());
    envelope
}

/// A grant under envelope `limits` (maxPerDay 100.00), approved and Approved.
fn enveloped() -> World {
    let mut w = World::new().with_phase(GrantPhase::Approved);
    w.grant.spec.envelope_ref = Some(agentauth_crds::LocalRef::new("limits"));
    w.envelope = Some(mk_envelope("100.00"));
    w.decided(Decision::Approved)
}

/// Threat: envelope loosened after approval — raising maxPerDay must suspend the grant, not carry the approval over.
#[test]
fn an_envelope_changed_after_approval_suspends_until_restored() {
    let mut w = enveloped();
    assert_eq!(w.plan().publish, Publish::Usable);
    w.envelope = Some(mk_envelope("100000.00"));
    let p = w.plan();
    assert_eq!(
        (p.phase, p.publish, p.revoked_by),
        (GrantPhase::Approved, Publish::Reapprove, None)
    );
    assert_eq!(set_reason(&p.ready), ("EnvelopeChanged", false));
    assert!(
        p.ready.want().message.contains("envelope team-a/limits"),
        "{:?}",
        p.ready
    );
    assert_eq!(set_reason(&p.approved), ("EnvelopeChanged", false));
    w.envelope = Some(mk_envelope("100.00"));
    assert_eq!(w.plan().publish, Publish::Usable, "restored: resumes");
}

/// Threat: agent key swapped after approval — a new key must not inherit the approval.
#[test]
fn an_agent_key_replaced_after_approval_suspends_and_reapproval_resumes() {
    let mut w = enveloped();
    w.agent.spec.public_key =
        EcPublicJwk::from_key(&SoftAuthenticator::new().public_key().unwrap());
    let p = w.plan();
    assert_eq!(
        (p.phase, p.publish),
        (GrantPhase::Approved, Publish::Reapprove)
    );
    assert_eq!(set_reason(&p.ready), ("AgentKeyChanged", false));
    // A new approval, bound to the new key, resumes the grant.
    let w = w.decided(Decision::Approved);
    let p = w.plan();
    assert_eq!(
        (p.phase, p.publish),
        (GrantPhase::Approved, Publish::Usable)
    );
    assert_eq!(transition(Some(GrantPhase::Approved), p.phase), None);
}

#[test]
fn a_pending_grant_whose_envelope_moved_waits() {
    let mut w = enveloped();
    w.grant.status.as_mut().unwrap().phase = Some(GrantPhase::Pending);
    w.envelope = Some(mk_envelope("5.00"));
    let p = w.plan();
    assert_eq!(
        (p.phase, p.publish),
        (GrantPhase::Pending, Publish::Nothing)
    );
    assert_eq!(set_reason(&p.approved), ("EnvelopeChanged", false));
}

/// The audit record's `by` detail keeps the strings it had before it was typed.
#[test]
fn revoked_by_serializes_as_its_wire_form() {
    for (by, wire) in [
        (RevokedBy::SpecRevoked, "spec.revoked"),
        (RevokedBy::Deletion, "deletion"),
        (RevokedBy::ApprovalInvalid, "approval_invalid"),
    ] {
        assert_eq!(serde_json::to_value(by).unwrap(), json!(wire));
    }
}

mod quorum;
