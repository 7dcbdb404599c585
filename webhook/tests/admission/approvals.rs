//! Forged approvals, each performed against the real apiserver and refused
//! by the webhook with its code — whoever writes them, a cluster admin
//! included. Each row gets its own Agent, Approver (with a registered
//! software passkey) and pending grant, then writes `status.approval`.

use agentauth_core::approval::Decision;
use agentauth_core::webauthn::{SoftAuthenticator, USER_PRESENT};
use serde_json::json;

use super::support::{Expect, check, report};
use super::{Env, mk_agent, mk_approver, mk_grant, passkey_status, sign};

/// How a row departs from a genuine approval.
#[derive(Clone, Copy)]
struct Forgery {
    /// Who writes the status: the operator, or another cluster admin.
    by_operator: bool,
    /// Signed by a key that is not the approver's registered passkey.
    wrong_key: bool,
    /// Signed over another grant (same spec, another uid).
    other_grant: bool,
    /// The spec changed (a new generation) between signing and writing.
    spec_changed_after_signing: bool,
    /// The passkey's stored sign counter.
    stored_counter: u32,
    /// The counter the assertion presents.
    presented_counter: u32,
    /// The authenticator verified the user (PIN, biometrics).
    user_verified: bool,
    /// The approver's scope does not cover the grant's namespace.
    out_of_scope: bool,
    /// The approver owns the agent (Agent.spec.owner is its email).
    owns_agent: bool,
    /// The approval names an Approver that does not exist.
    unknown_approver: bool,
}

const GENUINE: Forgery = Forgery {
    by_operator: true,
    wrong_key: false,
    other_grant: false,
    spec_changed_after_signing: false,
    stored_counter: 4,
    presented_counter: 5,
    user_verified: true,
    out_of_scope: false,
    owns_agent: false,
    unknown_approver: false,
};

fn accepts(name: &'static str, forgery: Forgery) -> (&'static str, Forgery, Expect) {
    (name, forgery, Expect::Accepts)
}

fn rejects(
    name: &'static str,
    forgery: Forgery,
    message: &'static str,
) -> (&'static str, Forgery, Expect) {
    (name, forgery, Expect::Rejects(message))
}

#[tokio::test]
async fn forged_approvals_are_refused() {
    let env = Env::new("approvals").await;
    #[rustfmt::skip]
    let table = [
        accepts("a genuine approval, written by the operator", GENUINE),
        rejects("signed with another key than the registered passkey",
            Forgery { wrong_key: true, ..GENUINE },
            "approval_signature_invalid: status.approval:"),
        rejects("a signature over another grant (same spec, another uid)",
            Forgery { other_grant: true, ..GENUINE },
            "approval_challenge_mismatch: status.approval:"),
        rejects("the spec changed after signing",
            Forgery { spec_changed_after_signing: true, ..GENUINE },
            "approval_challenge_mismatch: status.approval.generation:"),
        rejects("a replayed assertion (its counter already recorded)",
            Forgery { stored_counter: 5, presented_counter: 5, ..GENUINE },
            "approval_counter_not_increasing: status.approval:"),
        rejects("a sign counter going backwards (a cloned key)",
            Forgery { stored_counter: 7, presented_counter: 3, ..GENUINE },
            "approval_counter_not_increasing: status.approval:"),
        rejects("the user-verification flag missing",
            Forgery { user_verified: false, ..GENUINE },
            "approval_user_not_verified: status.approval:"),
        rejects("an approver out of scope",
            Forgery { out_of_scope: true, ..GENUINE },
            "approval_invalid: status.approval.approver:"),
        rejects("an approver who owns the agent",
            Forgery { owns_agent: true, ..GENUINE },
            "approval_invalid: status.approval.approver:"),
        rejects("an approver that does not exist",
            Forgery { unknown_approver: true, ..GENUINE },
            "approver_not_found: status.approval.approver:"),
        rejects("a genuine approval written by a cluster admin who is not the operator",
            Forgery { by_operator: false, ..GENUINE },
            "status_writer_forbidden: status.approval:"),
    ];
    let mut failures = Vec::new();
    for (i, (name, forgery, expect)) in table.into_iter().enumerate() {
        failures.extend(attempt(&env, i, forgery, name, &expect).await);
    }
    report(&failures, env.cp);
}

/// Sets up row `i`, performs its forgery, and checks the answer.
async fn attempt(env: &Env, i: usize, f: Forgery, name: &str, expect: &Expect) -> Option<String> {
    let ns = env.ns.as_str();
    let approver = format!("{ns}-{i}");
    let owner = if f.owns_agent {
        format!("{approver}@example.com")
    } else {
        "sam@example.com".into()
    };
    let agent = format!("agent-{i}");
    env.create(&mk_agent(ns, &agent, &owner)).await.unwrap();
    let scope = if f.out_of_scope { "elsewhere" } else { ns };
    let approver_doc = mk_approver(&approver, &[scope]);
    env.create(&approver_doc).await.unwrap();
    let mut passkey = SoftAuthenticator::new();
    env.patch_status(
        &env.operator,
        &approver_doc,
        passkey_status(&passkey, f.stored_counter),
    )
    .await
    .unwrap();

    let grant_doc = mk_grant(ns, &format!("grant-{i}"), &agent, None);
    env.create(&grant_doc).await.unwrap();
    let mut signed_for = env.grant(&format!("grant-{i}")).await;
    if f.other_grant {
        env.create(&mk_grant(ns, &format!("other-{i}"), &agent, None))
            .await
            .unwrap();
        signed_for = env.grant(&format!("other-{i}")).await;
    }
    let mut thief = SoftAuthenticator::new();
    let signer = if f.wrong_key {
        &mut thief
    } else {
        &mut passkey
    };
    signer.counter = f.presented_counter;
    if !f.user_verified {
        signer.flags = USER_PRESENT;
    }
    let named = if f.unknown_approver {
        "nobody"
    } else {
        approver.as_str()
    };
    let binding = env.binding(&signed_for).await;
    let approval = sign(&signed_for, &binding, signer, named, Decision::Approved);
    if f.spec_changed_after_signing {
        // Broader than what the approver saw: write access to every calendar.
        let swapped =
            json!({"spec": {"capabilities": [{"type": "write", "resource": "calendars/**"}]}});
        env.patch(&env.admin, &grant_doc, swapped).await.unwrap();
    }
    let writer = if f.by_operator {
        &env.operator
    } else {
        &env.mallory
    };
    let result = env
        .patch_status(
            writer,
            &grant_doc,
            json!({"status": {"approval": approval}}),
        )
        .await;
    check(name, expect, result)
}
