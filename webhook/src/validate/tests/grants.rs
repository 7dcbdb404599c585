//! Grants: recorded decisions, frozen specs, references.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agentauth_core::approval::Decision;
use agentauth_core::webauthn::SoftAuthenticator;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn approvals_on_status() {
    let mut auth = SoftAuthenticator::new();
    let fake = Fake {
        agents: vec![agent("sam@example.com")],
        approvers: vec![approver(&auth, 0)],
        ..Fake::default()
    };
    let v = validator(fake);
    let pending = grant();
    let first = approved(&pending, &mut auth, Decision::Approved);
    let (old, new) = (to_value(&pending), to_value(&first));
    // Through the main resource (a CRD without the status subresource): the
    // same rules.
    rejects(
        decide(&v, &body("capabilitygrants", "mallory", &new, Some(&old))).await,
        "status_writer_forbidden: status.approval",
    );
    accepts(
        decide(
            &v,
            &body("capabilitygrants/status", OPERATOR, &new, Some(&old)),
        )
        .await,
    );
    rejects(
        decide(
            &v,
            &body("capabilitygrants/status", "mallory", &new, Some(&old)),
        )
        .await,
        "status_writer_forbidden: status.approval: only the AgentAuth operator",
    );
    // What CEL refuses before the webhook is asked, refused here too.
    let again = approved(&pending, &mut auth, Decision::Denied);
    rejects(
        decide(
            &v,
            &body(
                "capabilitygrants/status",
                OPERATOR,
                &to_value(&again),
                Some(&new),
            ),
        )
        .await,
        "decision_immutable",
    );
    rejects(
        decide(
            &v,
            &body("capabilitygrants/status", OPERATOR, &old, Some(&new)),
        )
        .await,
        "decision_immutable",
    );
    let mut revoked = pending.clone();
    revoked.spec.revoked = true;
    let late = approved(&revoked, &mut auth, Decision::Approved);
    rejects(
        decide(
            &v,
            &body(
                "capabilitygrants/status",
                OPERATOR,
                &to_value(&late),
                Some(&to_value(&revoked)),
            ),
        )
        .await,
        "grant_revoked",
    );
    let mut phased = to_value(&pending);
    phased["status"] = json!({"phase": "Pending", "conditions": []});
    rejects(
        decide(
            &v,
            &body("capabilitygrants/status", "mallory", &phased, Some(&old)),
        )
        .await,
        "status_writer_forbidden: status.phase",
    );
    let down = validator(Fake {
        down: true,
        ..Fake::default()
    });
    rejects(
        decide(
            &down,
            &body("capabilitygrants/status", OPERATOR, &new, Some(&old)),
        )
        .await,
        "state_unavailable",
    );
    let no_approver = validator(Fake {
        agents: vec![agent("sam@example.com")],
        ..Fake::default()
    });
    rejects(
        decide(
            &no_approver,
            &body("capabilitygrants/status", OPERATOR, &new, Some(&old)),
        )
        .await,
        "approver_not_found",
    );
}

#[tokio::test]
async fn decided_specs_are_frozen_but_revocable() {
    let mut auth = SoftAuthenticator::new();
    let decided = approved(&grant(), &mut auth, Decision::Approved);
    // No Agent at all: revoking and metadata-only writes still pass.
    let v = validator(Fake::default());
    let old = to_value(&decided);
    let mut changed = decided.clone();
    changed.spec.service_provider = "https://bank.example.com".into();
    rejects(
        decide(
            &v,
            &body("capabilitygrants", "admin", &to_value(&changed), Some(&old)),
        )
        .await,
        "spec_immutable: spec.serviceProvider: the spec of a decided grant cannot change",
    );
    let mut revoke = decided.clone();
    revoke.spec.revoked = true;
    accepts(
        decide(
            &v,
            &body("capabilitygrants", "admin", &to_value(&revoke), Some(&old)),
        )
        .await,
    );
    rejects(
        decide(
            &v,
            &body("capabilitygrants", "admin", &old, Some(&to_value(&revoke))),
        )
        .await,
        "spec_immutable: spec.revoked",
    );
    let mut labelled = old.clone();
    labelled["metadata"]["labels"] = json!({"team": "x"});
    accepts(
        decide(
            &v,
            &body("capabilitygrants", "admin", &labelled, Some(&old)),
        )
        .await,
    );
}

#[tokio::test]
async fn references_must_exist() {
    let mut g = to_value(&grant());
    let v = validator(Fake::default());
    rejects(
        decide(&v, &body("capabilitygrants", "admin", &g, None)).await,
        "agent_not_found: spec.agentRef.name",
    );
    let v = validator(Fake {
        agents: vec![agent("sam@example.com")],
        ..Fake::default()
    });
    accepts(decide(&v, &body("capabilitygrants", "admin", &g, None)).await);
    g["spec"]["envelopeRef"] = json!({"name": "limits"});
    rejects(
        decide(&v, &body("capabilitygrants", "admin", &g, None)).await,
        "envelope_not_found: spec.envelopeRef.name",
    );
}

/// N-of-M: `status.approvals` is written by the operator only, appended to,
/// never changed; a deciding record below the quorum and a second decision
/// by the same approver are refused with their codes.
#[tokio::test]
async fn co_signatures_on_status() {
    let mut auth = SoftAuthenticator::new();
    let fake = Fake {
        agents: vec![agent("sam@example.com")],
        approvers: vec![approver(&auth, 0)],
        ..Fake::default()
    };
    let v = validator(fake);
    let mut pending = grant();
    pending.spec.approvals = Some(agentauth_crds::ApprovalPolicy {
        required: 2,
        from: None,
        denial: agentauth_crds::DenialRule::Veto,
    });
    let dana = approved(&pending, &mut auth, Decision::Approved)
        .status
        .and_then(|s| s.approval)
        .unwrap();
    let status = |approvals: Vec<agentauth_crds::Approval>, approval| {
        let mut g = pending.clone();
        g.status = Some(agentauth_crds::CapabilityGrantStatus {
            approvals,
            approval,
            ..Default::default()
        });
        to_value(&g)
    };
    let old = to_value(&pending);
    let one = status(vec![dana.clone()], None);
    let write = |user: &str, new: &Value, old: &Value| {
        body("capabilitygrants/status", user, new, Some(old))
    };
    accepts(decide(&v, &write(OPERATOR, &one, &old)).await);
    rejects(
        decide(&v, &write("mallory", &one, &old)).await,
        "status_writer_forbidden: status.approvals",
    );
    rejects(
        decide(
            &v,
            &write(OPERATOR, &status(vec![], Some(dana.clone())), &old),
        )
        .await,
        "approval_quorum_not_met: status.approval: status.approval records Approved but the \
         distinct verified decisions are 1/2 approved",
    );
    let again = approved(&pending, &mut auth, Decision::Approved)
        .status
        .and_then(|s| s.approval)
        .unwrap();
    rejects(
        decide(
            &v,
            &write(OPERATOR, &status(vec![dana.clone()], Some(again)), &one),
        )
        .await,
        "approval_duplicate: status.approval: approver dana has already decided this grant",
    );
    let mut altered = dana.clone();
    altered.nonce = "nonce-fedcba9876543210".into();
    rejects(
        decide(&v, &write(OPERATOR, &status(vec![altered], None), &one)).await,
        "decision_immutable: status.approvals",
    );
}
