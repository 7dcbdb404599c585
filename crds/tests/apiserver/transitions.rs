//! The `oldSelf` rules, on real updates: what may change on a Pending grant,
//! what never changes, and that a recorded decision freezes the spec and
//! itself. Each step is a row: the update, and the message it is refused
//! with (or none).

use serde_json::{Value, json};

use super::{Env, example, refusal};

/// A recorded approval, as the approval API would write it.
fn approval(decision: &str) -> Value {
    json!({
        "approver": "dana-fischer",
        "credentialId": "Y3JlZGVudGlhbC0x",
        "decision": decision,
        "nonce": "nonce-0123456789abcdef",
        "signedAt": "2026-11-28T12:00:00Z",
        "generation": 1,
        "specDigest": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "authenticatorData": "SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ",
        "clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0",
        "signature": "MEUCIQDsignature",
    })
}

enum Write {
    Spec(Value),
    Status(Value),
}

/// Runs the steps in order against one grant; collects every mismatch.
async fn run(env: &Env, grant: &Value, steps: Vec<(&str, Write, Option<&str>)>) -> Vec<String> {
    let mut failures = Vec::new();
    for (what, write, want) in steps {
        let result = match write {
            Write::Spec(patch) => env.patch(grant, patch).await,
            Write::Status(patch) => env.patch_status(grant, patch).await,
        };
        match (refusal(result), want) {
            (Err(e), None) if e == "accepted" => {}
            (Ok(message), Some(want)) if message.contains(want) => {}
            (got, want) => failures.push(format!("{what}: wanted {want:?}, got {got:?}")),
        }
    }
    failures
}

#[tokio::test]
async fn a_pending_grant_changes_but_keeps_its_agent_provider_and_revocation() {
    use Write::*;
    let env = Env::new("pending-grant").await;
    let grant = example("calendar-assistant/grant.yaml");
    env.create(&grant).await.unwrap();
    let failures = run(
        &env,
        &grant,
        vec![
            (
                "a new reason",
                Spec(json!({"spec": {"reason": "Plan the offsite."}})),
                None,
            ),
            (
                "another duration",
                Spec(json!({"spec": {"duration": "4h"}})),
                None,
            ),
            (
                "another agent",
                Spec(json!({"spec": {"agentRef": {"name": "shopping-agent"}}})),
                Some("agentRef cannot change"),
            ),
            (
                "another provider",
                Spec(json!({"spec": {"serviceProvider": "https://evil.example.com"}})),
                Some("serviceProvider cannot change"),
            ),
            (
                "a pending phase",
                Status(json!({"status": {"phase": "Pending"}})),
                None,
            ),
            (
                "approved without an approval",
                Status(json!({"status": {"phase": "Approved"}})),
                Some("phase Approved needs a recorded approval"),
            ),
            ("revoke", Spec(json!({"spec": {"revoked": true}})), None),
            (
                "un-revoke",
                Spec(json!({"spec": {"revoked": false}})),
                Some("a revoked grant stays revoked"),
            ),
            (
                "un-revoke by removing the field",
                Spec(json!({"spec": {"revoked": null}})),
                Some("a revoked grant stays revoked"),
            ),
        ],
    )
    .await;
    assert!(failures.is_empty(), "\n  {}", failures.join("\n  "));
}

#[tokio::test]
async fn a_decision_freezes_the_spec_and_itself() {
    use Write::*;
    let env = Env::new("decided-grant").await;
    let grant = example("shopping-agent/grant.yaml");
    env.create(&grant).await.unwrap();
    let failures = run(&env, &grant, vec![
        ("record the approval", Status(json!({"status": {"approval": approval("Approved")}})), None),
        ("a new reason after the decision", Spec(json!({"spec": {"reason": "More toner."}})),
            Some("the spec of a decided grant cannot change")),
        ("a larger amount after the decision",
            Spec(json!({"spec": {"capabilities": [{"type": "transact", "resource": "orders/*/payment",
                "maxAmount": "5000.00", "currency": "EUR"}]}})),
            Some("the spec of a decided grant cannot change")),
        ("actions added after the decision",
            Spec(json!({"spec": {"capabilities": [
                {"type": "read", "resource": "catalog/**", "actions": ["get"]},
                {"type": "transact", "resource": "orders/*/payment", "actions": ["pay", "refund"],
                 "maxAmount": "50.00", "currency": "EUR"}]}})),
            Some("the spec of a decided grant cannot change")),
        ("constraints added after the decision",
            Spec(json!({"spec": {"capabilities": [
                {"type": "read", "resource": "catalog/**", "constraints": {"maxResults": 1000}},
                {"type": "transact", "resource": "orders/*/payment", "actions": ["pay"],
                 "maxAmount": "50.00", "currency": "EUR"}]}})),
            Some("the spec of a decided grant cannot change")),
        ("the same capabilities again",
            Spec(json!({"spec": {"capabilities": [
                {"type": "read", "resource": "catalog/**"},
                {"type": "transact", "resource": "orders/*/payment", "actions": ["pay"],
                 "maxAmount": "50.00", "currency": "EUR"}]}})),
            None),
        ("dropping the envelope after the decision", Spec(json!({"spec": {"envelopeRef": null}})),
            Some("the spec of a decided grant cannot change")),
        ("approve", Status(json!({"status": {"phase": "Approved",
            "expiresAt": "2026-12-24T23:00:00Z"}})), None),
        ("a changed approval", Status(json!({"status": {"approval": {"decision": "Denied"}}})),
            Some("a recorded approval never changes")),
        ("a removed approval", Status(json!({"status": {"approval": null}})),
            Some("a recorded approval never changes")),
        ("a removed status", Status(json!({"status": null})),
            Some("a recorded approval cannot be removed")),
        ("back to pending", Status(json!({"status": {"phase": "Pending"}})),
            Some("an Approved grant can only become Revoked or Expired")),
        ("denied although approved", Status(json!({"status": {"phase": "Denied"}})),
            Some("phase Denied needs a recorded approval whose decision is Denied")),
        ("revoke the decided grant", Spec(json!({"spec": {"revoked": true}})), None),
        ("mark it revoked", Status(json!({"status": {"phase": "Revoked"}})), None),
        ("approved again", Status(json!({"status": {"phase": "Approved"}})),
            Some("a Denied, Revoked or Expired grant keeps its phase")),
    ])
    .await;
    assert!(failures.is_empty(), "\n  {}", failures.join("\n  "));
}

#[tokio::test]
async fn a_denial_is_final() {
    use Write::*;
    let env = Env::new("denied-grant").await;
    let grant = example("calendar-assistant/grant.yaml");
    env.create(&grant).await.unwrap();
    let failures = run(
        &env,
        &grant,
        vec![
            (
                "record the denial",
                Status(json!({"status": {"approval": approval("Denied"),
            "phase": "Denied"}})),
                None,
            ),
            (
                "approved after all",
                Status(json!({"status": {"phase": "Approved"}})),
                Some("a Denied, Revoked or Expired grant keeps its phase"),
            ),
            (
                "a new reason after the denial",
                Spec(json!({"spec": {"reason": "Please?"}})),
                Some("the spec of a decided grant cannot change"),
            ),
        ],
    )
    .await;
    assert!(failures.is_empty(), "\n  {}", failures.join("\n  "));
}

/// N-of-M: a co-signature in `status.approvals` freezes the spec (every
/// approver signs the same spec) and is never removed; a grant with only
/// co-signatures is not Approved.
#[tokio::test]
async fn a_co_signature_freezes_the_spec_and_stays() {
    use Write::*;
    let env = Env::new("co-signed-grant").await;
    let grant = example("calendar-assistant/grant.yaml");
    env.create(&grant).await.unwrap();
    let failures = run(
        &env,
        &grant,
        vec![
            (
                "require two approvers while pending",
                Spec(json!({"spec": {"approvals": {"required": 2}}})),
                None,
            ),
            (
                "record a first approval",
                Status(json!({"status": {"approvals": [approval("Approved")],
            "approvalProgress": "1/2 approved", "phase": "Pending"}})),
                None,
            ),
            (
                "lower the policy after a co-signature",
                Spec(json!({"spec": {"approvals": {"required": 1}}})),
                Some("the spec of a decided grant cannot change"),
            ),
            (
                "a new reason after a co-signature",
                Spec(json!({"spec": {"reason": "Please?"}})),
                Some("the spec of a decided grant cannot change"),
            ),
            (
                "drop the co-signature",
                Status(json!({"status": {"approvals": []}})),
                Some("recorded approvals are never removed"),
            ),
            (
                "Approved on a co-signature alone",
                Status(json!({"status": {"phase": "Approved"}})),
                Some("phase Approved needs a recorded approval"),
            ),
        ],
    )
    .await;
    assert!(failures.is_empty(), "\n  {}", failures.join("\n  "));
}
