//! Agents, envelopes and approvers: what their controllers say about them.

use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::webauthn::SoftAuthenticator;
use agentauth_crds::conditions::{self, reasons, types};
use agentauth_crds::{Agent, Approver, BehavioralEnvelope};
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_envelopes_and_approvers_report_readiness() {
    let env = Env::new("ctl-ready").await;
    let op = env.operator().await;
    let agent = env.create(&mk_agent("good", "sam@example.com")).await;
    let mut bad = mk_agent("off-curve", "sam@example.com");
    bad.spec.public_key.x = "A".repeat(43);
    bad.spec.public_key.y = "A".repeat(43);
    env.create(&bad).await;
    let agents = env.api::<Agent>();
    let ready = |name: &'static str, reason: &'static str| {
        let agents = agents.clone();
        async move {
            wait_for(
                &format!("agent {name} Ready reason {reason}"),
                CONVERGE,
                || async {
                    let a = agents.get(name).await.ok()?;
                    let c = conditions::find(&a.status.as_ref()?.conditions, types::READY)?.clone();
                    (c.reason == reason).then_some(a)
                },
            )
            .await
        }
    };
    let good = ready("good", reasons::VALID).await;
    let status = good.status.unwrap();
    assert_eq!(
        status.key_thumbprint,
        Some(agent.spec.key_thumbprint().unwrap())
    );
    assert_eq!(status.observed_generation, good.metadata.generation);
    let off = ready("off-curve", reasons::KEY_INVALID).await;
    assert_eq!(off.status.unwrap().key_thumbprint, None);

    let mut bad_limits = mk_envelope("bad-limits");
    bad_limits.spec.transactions = Some(
        serde_json::from_value(
            json!({"currency": "EUR", "maxPerTransaction": "100.00", "maxPerDay": "50.00"}),
        )
        .unwrap(),
    );
    env.create(&mk_envelope("limits")).await;
    env.create(&bad_limits).await;
    let envelopes = env.api::<BehavioralEnvelope>();
    for (name, reason) in [("limits", reasons::VALID), ("bad-limits", reasons::INVALID)] {
        wait_for(&format!("envelope {name} {reason}"), CONVERGE, || async {
            let e = envelopes.get(name).await.ok()?;
            (conditions::find(&e.status?.conditions, types::READY)?.reason == reason).then_some(())
        })
        .await;
    }

    let name = env.approver_name("dana");
    let approvers = env.approvers();
    let approver: Approver = serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver", "metadata": {"name": name},
        "spec": {"displayName": "Dana", "email": "dana@example.com", "scope": {"namespaces": [env.ns]}},
    }))
    .unwrap();
    approvers
        .create(&Default::default(), &approver)
        .await
        .unwrap();
    let reason_of = |approvers: kube::Api<Approver>, name: String, reason: &'static str| async move {
        wait_for(&format!("approver {reason}"), CONVERGE, || async {
            let a = approvers.get(&name).await.ok()?;
            (conditions::find(&a.status?.conditions, types::READY)?.reason == reason).then_some(())
        })
        .await
    };
    reason_of(approvers.clone(), name.clone(), reasons::NO_PASSKEY).await;
    // Enrolment (the approval API's write) makes it Ready; its passkeys survive our writes.
    let passkey = SoftAuthenticator::new();
    let key = EcPublicJwk::from_key(&passkey.public_key().unwrap());
    let status = json!({"apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver", "status": {"passkeys": [
        {"credentialId": "cred-1", "publicKey": key, "signCount": 0, "createdAt": "2026-01-01T00:00:00Z"}]}});
    approvers
        .patch_status(
            &name,
            &PatchParams::apply(APPROVAL_API).force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    reason_of(approvers.clone(), name.clone(), reasons::PASSKEY_REGISTERED).await;
    assert_eq!(
        approvers
            .get(&name)
            .await
            .unwrap()
            .status
            .unwrap()
            .passkeys
            .len(),
        1
    );
    op.kill().await;
}
