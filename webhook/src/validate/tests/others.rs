//! Approvers' passkeys, Agents' thumbprints, and malformed reviews.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agentauth_core::webauthn::SoftAuthenticator;
use serde_json::json;

use super::*;

#[tokio::test]
async fn passkeys_and_thumbprints_carry_authority() {
    let auth = SoftAuthenticator::new();
    let v = validator(Fake::default());
    let old = to_value(&approver(&auth, 3));
    let forward = to_value(&approver(&auth, 4));
    accepts(
        decide(
            &v,
            &body("approvers/status", OPERATOR, &forward, Some(&old)),
        )
        .await,
    );
    rejects(
        decide(
            &v,
            &body("approvers/status", "mallory", &forward, Some(&old)),
        )
        .await,
        "status_writer_forbidden: status.passkeys",
    );
    let back = to_value(&approver(&auth, 2));
    rejects(
        decide(&v, &body("approvers/status", OPERATOR, &back, Some(&old))).await,
        "passkey_immutable: status.passkeys[0].signCount",
    );
    let swapped = to_value(&approver(&SoftAuthenticator::new(), 3));
    rejects(
        decide(
            &v,
            &body("approvers/status", OPERATOR, &swapped, Some(&old)),
        )
        .await,
        "passkey_immutable: status.passkeys[0].publicKey",
    );
    let mut off_curve = forward.clone();
    off_curve["status"]["passkeys"][0]["credentialId"] = json!("cred-2");
    off_curve["status"]["passkeys"][0]["publicKey"]["y"] =
        off_curve["status"]["passkeys"][0]["publicKey"]["x"].clone();
    rejects(
        decide(
            &v,
            &body("approvers/status", OPERATOR, &off_curve, Some(&old)),
        )
        .await,
        "status.passkeys[0].publicKey",
    );

    let a = agent("sam@example.com");
    let right = a.spec.key_thumbprint().unwrap();
    let mut with = to_value(&a);
    with["status"] = json!({"keyThumbprint": right});
    accepts(
        decide(
            &v,
            &body("agents/status", OPERATOR, &with, Some(&to_value(&a))),
        )
        .await,
    );
    rejects(
        decide(
            &v,
            &body("agents/status", "mallory", &with, Some(&to_value(&a))),
        )
        .await,
        "status_writer_forbidden: status.keyThumbprint",
    );
    with["status"]["keyThumbprint"] = json!("A".repeat(43));
    rejects(
        decide(
            &v,
            &body("agents/status", OPERATOR, &with, Some(&to_value(&a))),
        )
        .await,
        "key_thumbprint_mismatch",
    );
}

#[tokio::test]
async fn malformed_reviews_are_refused_without_panicking() {
    let v = validator(Fake::default());
    let metrics = Metrics::new().unwrap();
    let bad = |b: &[u8]| {
        let (v, m) = (&v, &metrics);
        let b = b.to_vec();
        async move { handle(v, m, &b).await }
    };
    assert!(matches!(bad(b"{").await, Err(BadReview(_))));
    assert!(matches!(bad(b"[]").await, Err(BadReview(_))));
    assert!(matches!(
        bad(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).await,
        Err(BadReview(_))
    ));
    let beta = String::from_utf8(body("agents", "x", &to_value(&agent("a@b.c")), None))
        .unwrap()
        .replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1");
    assert!(matches!(bad(beta.as_bytes()).await, Err(BadReview(_))));
    // A readable uid with an unreadable request: denied, not dropped.
    let mut odd: Value =
        serde_json::from_slice(&body("agents", "x", &to_value(&agent("a@b.c")), None)).unwrap();
    odd["request"]["object"] = json!(5);
    let review = bad(odd.to_string().as_bytes()).await.unwrap();
    let response = review.response.unwrap();
    assert!(
        !response.allowed && response.result.message.starts_with("request_invalid"),
        "{response:?}"
    );
    // The wrong shape for the kind: refused with request_invalid.
    let mut wrong = to_value(&agent("a@b.c"));
    wrong["spec"]["publicKey"] = json!("not a key");
    rejects(
        decide(&v, &body("agents", "x", &wrong, None)).await,
        "request_invalid: object",
    );
    rejects(
        decide(
            &v,
            &body("agents/scale", "x", &to_value(&agent("a@b.c")), None),
        )
        .await,
        "request_invalid: subresource",
    );
    rejects(
        decide(&v, &body("widgets", "x", &to_value(&agent("a@b.c")), None)).await,
        "request_invalid: resource",
    );
    let mut env = to_value(&agent("a@b.c"));
    env["kind"] = json!("BehavioralEnvelope");
    env["spec"] = json!({"timeWindows": [{"days": ["mon"], "start": "09:00", "end": "17:00", "timeZone": "Mars/Olympus"}]});
    rejects(
        decide(&v, &body("behavioralenvelopes", "x", &env, None)).await,
        "time_zone_unknown: spec.timeWindows[0]",
    );
    env["spec"] = json!({"transactions": {"currency": "XYZ", "maxPerDay": "10"}});
    rejects(
        decide(&v, &body("behavioralenvelopes", "x", &env, None)).await,
        "currency_unknown: spec.transactions.currency",
    );
}
