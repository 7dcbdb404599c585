//! Status fields that carry authority, written in sequence on one grant,
//! one Approver and one Agent: a decision once recorded never changes (the
//! CRD's CEL rule answers first; the webhook refuses the same, see its unit
//! tests), only the operator moves a grant's phase or an Approver's passkeys
//! or an Agent's key thumbprint, and a decided grant can still be revoked.

use agentauth_core::approval::Decision;
use agentauth_core::webauthn::SoftAuthenticator;
use agentauth_crds::AgentSpec;
use serde_json::json;

use super::support::{Expect, check, report};
use super::{Env, mk_agent, mk_approver, mk_grant, passkey_status, sign};

const ACCEPTS: Expect = Expect::Accepts;

const fn rejects(message: &'static str) -> Expect {
    Expect::Rejects(message)
}

#[tokio::test]
async fn decisions_phases_passkeys_and_thumbprints() {
    let env = Env::new("status").await;
    let ns = env.ns.as_str();
    let approver_name = format!("{ns}-dana");
    let approver = mk_approver(&approver_name, &[ns]);
    let agent = mk_agent(ns, "assistant", "sam@example.com");
    let grant = mk_grant(ns, "plan", "assistant", None);
    for doc in [&approver, &agent, &grant] {
        env.create(doc).await.unwrap();
    }
    let mut passkey = SoftAuthenticator::new();
    env.patch_status(&env.operator, &approver, passkey_status(&passkey, 0))
        .await
        .unwrap();
    let pending = env.grant("plan").await;
    let binding = env.binding(&pending).await;
    let approval = json!({"status": {"approval": sign(&pending, &binding, &mut passkey, &approver_name, Decision::Approved)}});
    let denial = json!({"status": {"approval": sign(&pending, &binding, &mut passkey, &approver_name, Decision::Denied)}});
    let (op, mallory) = (&env.operator, &env.mallory);
    let mut f = Vec::new();

    f.extend(check(
        "the operator records a genuine approval",
        &ACCEPTS,
        env.patch_status(op, &grant, approval).await,
    ));
    f.extend(check(
        "the operator records a second, genuine decision over it",
        &Expect::Refused("a recorded approval never changes"),
        env.patch_status(op, &grant, denial).await,
    ));
    f.extend(check(
        "a cluster admin who is not the operator sets the phase",
        &rejects("status_writer_forbidden: status.phase"),
        env.patch_status(mallory, &grant, json!({"status": {"phase": "Approved"}}))
            .await,
    ));
    f.extend(check(
        "a cluster admin sets the expiry",
        &rejects("status_writer_forbidden: status.expiresAt"),
        env.patch_status(
            mallory,
            &grant,
            json!({"status": {"expiresAt": "2099-01-01T00:00:00Z"}}),
        )
        .await,
    ));
    f.extend(check(
        "the operator sets the phase Approved",
        &ACCEPTS,
        env.patch_status(op, &grant, json!({"status": {"phase": "Approved"}}))
            .await,
    ));
    f.extend(check(
        "anyone may add a condition (no authority in it)",
        &ACCEPTS,
        env.patch_status(
            mallory,
            &grant,
            json!({"status": {"conditions": [{
            "type": "Audited", "status": "True", "reason": "Reviewed", "message": "ok",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        )
        .await,
    ));
    f.extend(check(
        "the decided grant's reason changes",
        &Expect::Refused("the spec of a decided grant cannot change"),
        env.patch(
            &env.admin,
            &grant,
            json!({"spec": {"reason": "Something else"}}),
        )
        .await,
    ));
    f.extend(check(
        "the decided grant is revoked",
        &ACCEPTS,
        env.patch(&env.admin, &grant, json!({"spec": {"revoked": true}}))
            .await,
    ));

    let other_key = SoftAuthenticator::new();
    f.extend(check(
        "a cluster admin registers a passkey of their own",
        &rejects("status_writer_forbidden: status.passkeys"),
        env.patch_status(mallory, &approver, passkey_status(&other_key, 0))
            .await,
    ));
    f.extend(check(
        "the operator swaps a registered passkey's key",
        &rejects("passkey_immutable: status.passkeys[0].publicKey"),
        env.patch_status(op, &approver, passkey_status(&other_key, 0))
            .await,
    ));
    f.extend(check(
        "the operator advances the sign counter",
        &ACCEPTS,
        env.patch_status(op, &approver, passkey_status(&passkey, 9))
            .await,
    ));
    f.extend(check(
        "the operator moves the sign counter back",
        &rejects("passkey_immutable: status.passkeys[0].signCount"),
        env.patch_status(op, &approver, passkey_status(&passkey, 2))
            .await,
    ));

    let spec: AgentSpec = serde_json::from_value(agent["spec"].clone()).unwrap();
    let thumbprint = spec.key_thumbprint().unwrap();
    let mallory_key = mk_agent(ns, "x", "x@example.com")["spec"].clone();
    let mallory_print = serde_json::from_value::<AgentSpec>(mallory_key)
        .unwrap()
        .key_thumbprint()
        .unwrap();
    f.extend(check(
        "a cluster admin binds the agent to their own key",
        &rejects("status_writer_forbidden: status.keyThumbprint"),
        env.patch_status(
            mallory,
            &agent,
            json!({"status": {"keyThumbprint": mallory_print}}),
        )
        .await,
    ));
    f.extend(check(
        "the operator writes a thumbprint of another key",
        &rejects("key_thumbprint_mismatch: status.keyThumbprint"),
        env.patch_status(
            op,
            &agent,
            json!({"status": {"keyThumbprint": mallory_print}}),
        )
        .await,
    ));
    f.extend(check(
        "the operator writes the key's thumbprint",
        &ACCEPTS,
        env.patch_status(op, &agent, json!({"status": {"keyThumbprint": thumbprint}}))
            .await,
    ));
    report(&f, env.cp);
}
