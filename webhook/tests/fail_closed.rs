//! Fail closed: with `failurePolicy: Fail`, a webhook that does not answer
//! means the apiserver refuses every write it would have reviewed — a spec,
//! an Approver, a recorded approval. This binary stops its webhook, so it
//! has its own control plane and nothing else runs beside it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::webauthn::SoftAuthenticator;
use agentauth_testenv::{generated_crds_dir, shared};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use support::{Expect, OPERATOR, Webhook, api_for, check, envelope_doc, report};

#[tokio::test]
async fn writes_are_refused_while_the_webhook_is_down() {
    let cp = shared().await;
    cp.install_crds(&generated_crds_dir()).await.unwrap();
    let webhook = Webhook::start(cp, "agentauth-webhook-fail-closed").await;
    let ns = support::namespace(cp, "fail-closed").await;
    let admin = cp.client().unwrap();
    let operator = cp.client_as(OPERATOR, &["system:masters"]).unwrap();
    let create = |doc: Value| {
        let admin = admin.clone();
        async move {
            let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
            api_for(admin, &doc)
                .create(&PostParams::default(), &obj)
                .await
        }
    };
    let approver = json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver",
        "metadata": {"name": format!("{ns}-dana")},
        "spec": {"displayName": "Dana", "email": "dana@example.com", "scope": {"namespaces": [ns]}},
    });
    let mut f = Vec::new();
    f.extend(check(
        "an envelope while the webhook is up",
        &Expect::Accepts,
        create(envelope_doc(&ns, "up", "Europe/Berlin")).await,
    ));
    f.extend(check(
        "an approver while the webhook is up",
        &Expect::Accepts,
        create(approver.clone()).await,
    ));
    report(&f, cp);

    // Returns once the server's runtime is gone: no listener, no open connection.
    webhook.stop().await;
    let down = Expect::Refused("failed calling webhook \"validate.agentauth.dev\"");
    f.extend(check(
        "a valid envelope while the webhook is down",
        &down,
        create(envelope_doc(&ns, "down", "Europe/Berlin")).await,
    ));
    let other = json!({"apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver",
        "metadata": {"name": format!("{ns}-eve")}, "spec": approver["spec"].clone()});
    f.extend(check(
        "a valid approver while the webhook is down",
        &down,
        create(other).await,
    ));
    let name = approver["metadata"]["name"].as_str().unwrap();
    let key = SoftAuthenticator::new().public_key().unwrap();
    let passkey = json!({"status": {"passkeys": [{
        "credentialId": "cred-1", "publicKey": EcPublicJwk::from_key(&key),
        "signCount": 0, "createdAt": "2026-01-01T00:00:00Z"}]}});
    f.extend(check(
        "the operator registering a passkey while the webhook is down",
        &down,
        api_for(operator, &approver)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(passkey))
            .await,
    ));
    report(&f, cp);
}
