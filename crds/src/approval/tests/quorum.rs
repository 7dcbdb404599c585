//! The quorum tally: every recorded decision verified and counted once per
//! distinct approver, under the grant's and its envelope's policy.

use agentauth_core::webauthn::SoftAuthenticator;

use super::*;
use crate::approval::quorum::{Parties, tally};
use crate::{ApprovalPolicy, DenialRule};

/// `name`'s record of `decision` on `grant`, signed with `auth`.
fn record(
    grant: &CapabilityGrant,
    agent: &Agent,
    auth: &mut SoftAuthenticator,
    name: &str,
    decision: Decision,
) -> Approval {
    let binding = Binding::of(grant, None, agent).unwrap();
    // The credential id is not signed: each person's own, as registered.
    let mut approval = decide(grant, &binding, auth, name, decision)
        .status
        .and_then(|s| s.approval)
        .unwrap();
    approval.credential_id = format!("cred-{name}");
    approval
}

struct Panel {
    agent: Agent,
    grant: CapabilityGrant,
    people: Vec<(Approver, SoftAuthenticator)>,
}

impl Panel {
    /// Approvers `names` (each with passkey `cred-1`), a grant needing `required`.
    fn new(names: &[&str], required: u32) -> Panel {
        let mut grant = mk_grant("6a1f0c2e-0000-4000-8000-00000000q0rm");
        grant.spec.approvals = Some(ApprovalPolicy {
            required,
            from: None,
            denial: DenialRule::Veto,
        });
        let people = names
            .iter()
            .map(|n| {
                let auth = SoftAuthenticator::new();
                let mut approver = mk_approver(n, &auth, 0);
                if let Some(status) = approver.status.as_mut() {
                    status.passkeys[0].credential_id = format!("cred-{n}");
                }
                (approver, auth)
            })
            .collect();
        Panel {
            agent: mk_agent("sam@example.com"),
            grant,
            people,
        }
    }

    /// Records `who`'s decisions, in order; the last one in `status.approval`.
    fn recorded(&mut self, who: &[(usize, Decision)]) -> CapabilityGrant {
        let mut entries: Vec<Approval> = Vec::new();
        for &(i, decision) in who {
            let name = self.people[i].0.name_any();
            entries.push(record(
                &self.grant,
                &self.agent,
                &mut self.people[i].1,
                &name,
                decision,
            ));
        }
        let mut grant = self.grant.clone();
        let approval = entries.pop();
        grant.status = Some(CapabilityGrantStatus {
            approvals: entries,
            approval,
            ..CapabilityGrantStatus::default()
        });
        grant
    }

    fn tally(&self, grant: &CapabilityGrant) -> Result<Tally, Invalid> {
        let approvers: Vec<&Approver> = self.people.iter().map(|(a, _)| a).collect();
        let origins = origins();
        tally(
            grant,
            &Parties {
                envelope: None,
                agent: &self.agent,
                approvers: &approvers,
                rp_id: RP,
                origins: &origins,
            },
            &|_| CounterCheck::Recorded,
        )
    }
}

#[test]
fn two_distinct_approvals_reach_a_quorum_of_two() {
    let mut p = Panel::new(&["dana", "erin"], 2);
    let grant = p.recorded(&[(0, Decision::Approved), (1, Decision::Approved)]);
    let t = p.tally(&grant).unwrap();
    assert_eq!(t.decision, Some(Decision::Approved));
    assert_eq!(t.progress(), "2/2 approved");
}

#[test]
fn a_deciding_record_below_the_quorum_is_refused() {
    let mut p = Panel::new(&["dana"], 2);
    let grant = p.recorded(&[(0, Decision::Approved)]);
    let e = p.tally(&grant).unwrap_err();
    assert_eq!(e.code, ErrorCode::ApprovalQuorumNotMet, "{e}");
    assert!(e.message.contains("1/2 approved"), "{e}");
}

#[test]
fn two_approvers_with_one_email_are_one_person() {
    let mut p = Panel::new(&["dana", "dana-alias"], 2);
    p.people[1].0.spec.email = "DANA@example.com".into();
    let grant = p.recorded(&[(0, Decision::Approved), (1, Decision::Approved)]);
    let e = p.tally(&grant).unwrap_err();
    assert_eq!(e.code, ErrorCode::ApprovalDuplicate, "{e}");
    assert!(e.message.contains("email"), "{e}");
}

#[test]
fn an_approver_the_policy_does_not_select_does_not_count() {
    let mut p = Panel::new(&["dana", "erin"], 2);
    let selector: LabelSelector =
        serde_json::from_value(json!({"matchLabels": {"team": "finance"}})).unwrap();
    if let Some(policy) = p.grant.spec.approvals.as_mut() {
        policy.from = Some(selector);
    }
    p.people[0].0.metadata.labels = Some(BTreeMap::from([("team".into(), "finance".into())]));
    let grant = p.recorded(&[(0, Decision::Approved), (1, Decision::Approved)]);
    let e = p.tally(&grant).unwrap_err();
    assert_eq!(e.code, ErrorCode::ApproverOutOfScope, "{e}");
    assert_eq!(e.field, "status.approval.approver");
}

#[test]
fn counted_denials_deny_only_at_the_quorum() {
    let mut p = Panel::new(&["dana", "erin", "finn"], 2);
    if let Some(policy) = p.grant.spec.approvals.as_mut() {
        policy.denial = DenialRule::Quorum;
    }
    let waiting = p.recorded(&[(0, Decision::Denied), (1, Decision::Approved)]);
    let mut waiting = waiting;
    // Both as co-signatures: nothing decided yet.
    let status = waiting.status.as_mut().unwrap();
    let last = status.approval.take().unwrap();
    status.approvals.push(last);
    let t = p.tally(&waiting).unwrap();
    assert_eq!(
        (t.decision, t.progress().as_str()),
        (None, "1/2 approved, 1 denied")
    );
    let denied = p.recorded(&[
        (0, Decision::Denied),
        (1, Decision::Approved),
        (2, Decision::Denied),
    ]);
    assert_eq!(p.tally(&denied).unwrap().decision, Some(Decision::Denied));
}
