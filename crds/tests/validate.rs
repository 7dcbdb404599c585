//! `validate()` of every spec, as tables: the examples pass, and each row
//! changes one thing and expects the field, the stable code and a piece of
//! the message. These are the checks a schema cannot make (points on the
//! curve, known time zones, amounts fitting their currency, …), shared by the
//! webhook and the reconcilers.

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use agentauth_core::ErrorCode::{self, *};
use agentauth_crds::{
    AgentSpec, ApproverSpec, BehavioralEnvelopeSpec, CapabilityGrantSpec, Invalid,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The spec of an example, changed by `edit` (on its JSON form).
fn spec<T: DeserializeOwned>(example: &str, edit: impl FnOnce(&mut Value)) -> T {
    let path = support::repo_root().join("examples").join(example);
    let mut doc = support::documents(&path).remove(0);
    edit(&mut doc["spec"]);
    serde_json::from_value(doc["spec"].take()).unwrap()
}

/// Checks one row: `Ok` or the field, code and a piece of the message.
fn check(
    what: &str,
    got: Result<(), Invalid>,
    want: Option<(&str, ErrorCode, &str)>,
) -> Option<String> {
    match (got, want) {
        (Ok(()), None) => None,
        (Err(e), Some((field, code, text)))
            if e.field == field && e.code == code && e.message.contains(text) =>
        {
            None
        }
        (got, want) => Some(format!("{what}: wanted {want:?}, got {got:?}")),
    }
}

fn assert_rows(failures: Vec<Option<String>>) {
    let failures: Vec<String> = failures.into_iter().flatten().collect();
    assert!(failures.is_empty(), "\n  {}", failures.join("\n  "));
}

#[test]
fn agent_specs() {
    let agent =
        |edit: fn(&mut Value)| spec::<AgentSpec>("calendar-assistant/agent.yaml", edit).validate();
    assert_rows(vec![
        check("the example", agent(|_| {}), None),
        // Well-formed base64url coordinates of a point that is not on P-256.
        check(
            "a point off the curve",
            agent(|s| s["publicKey"]["y"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
            Some(("spec.publicKey", JwkInvalid, "")),
        ),
        check(
            "an RSA key",
            agent(|s| s["publicKey"]["kty"] = json!("RSA")),
            Some((
                "spec.publicKey",
                JwkInvalid,
                "expected kty EC and crv P-256",
            )),
        ),
        check(
            "a blank display name",
            agent(|s| s["displayName"] = json!("   ")),
            Some(("spec.displayName", RequestInvalid, "1 to 128 bytes")),
        ),
        check(
            "a line break in the owner",
            agent(|s| s["owner"] = json!("maria\nadmin")),
            Some(("spec.owner", RequestInvalid, "without control characters")),
        ),
    ]);
    let spec: AgentSpec = spec("calendar-assistant/agent.yaml", |_| {});
    assert_eq!(spec.key_thumbprint().unwrap().len(), 43);
}

#[test]
fn envelope_specs() {
    let office = |edit: fn(&mut Value)| {
        spec::<BehavioralEnvelopeSpec>("calendar-assistant/envelope.yaml", edit).validate()
    };
    let budget = |edit: fn(&mut Value)| {
        spec::<BehavioralEnvelopeSpec>("shopping-agent/envelope.yaml", edit).validate()
    };
    assert_rows(vec![
        check("office hours", office(|_| {}), None),
        check("the shopping budget", budget(|_| {}), None),
        check(
            "no limits",
            office(|s| *s = json!({})),
            Some(("spec", EnvelopeInvalid, "at least one of")),
        ),
        check(
            "an unknown time zone",
            office(|s| s["timeWindows"][0]["timeZone"] = json!("Mars/Olympus_Mons")),
            Some(("spec.timeWindows[0]", TimeZoneUnknown, "Mars/Olympus_Mons")),
        ),
        check(
            "a day twice",
            office(|s| s["timeWindows"][0]["days"] = json!(["mon", "mon"])),
            Some(("spec.timeWindows[0]", EnvelopeInvalid, "lists mon twice")),
        ),
        check(
            "a per-purchase limit above the daily one",
            budget(|s| s["transactions"]["maxPerTransaction"] = json!("250.00")),
            Some((
                "spec.transactions",
                EnvelopeInvalid,
                "could never be reached",
            )),
        ),
        check(
            "a tenth of a cent",
            budget(|s| s["transactions"]["maxPerDay"] = json!("200.001")),
            Some(("spec.transactions", AmountInvalid, "maxPerDay")),
        ),
        check(
            "a two-hour token",
            office(|s| s["maxTokenTtl"] = json!("2h")),
            Some(("spec.maxTokenTtl", EnvelopeInvalid, "longer than 1h")),
        ),
        check(
            "exactly an hour",
            office(|s| s["maxTokenTtl"] = json!("60m")),
            None,
        ),
        check(
            "seventeen rate limits",
            office(|s| {
                s["rateLimits"] = Value::Array(vec![json!({"requests": 1, "period": "1s"}); 17])
            }),
            Some(("spec.rateLimits", EnvelopeInvalid, "at most 16")),
        ),
        check(
            "a limit on payments alone",
            budget(|s| {
                s["rateLimits"][0]["appliesTo"] =
                    json!({"type": "transact", "resource": "orders/*/payment"})
            }),
            None,
        ),
        check(
            "an appliesTo that names nothing",
            budget(|s| s["rateLimits"][0]["appliesTo"] = json!({})),
            Some(("spec.rateLimits[0]", EnvelopeInvalid, "appliesTo names")),
        ),
    ]);
}

#[test]
fn grant_specs() {
    let calendar = |edit: fn(&mut Value)| {
        spec::<CapabilityGrantSpec>("calendar-assistant/grant.yaml", edit).validate()
    };
    let shop = |edit: fn(&mut Value)| {
        spec::<CapabilityGrantSpec>("shopping-agent/grant.yaml", edit).validate()
    };
    assert_rows(vec![
        check("the calendar grant", calendar(|_| {}), None),
        check("the shopping grant", shop(|_| {}), None),
        check(
            "no capabilities",
            calendar(|s| s["capabilities"] = json!([])),
            Some((
                "spec.capabilities",
                CapabilityInvalid,
                "1 to 64 capabilities",
            )),
        ),
        check(
            "custom without a name",
            calendar(|s| s["capabilities"][1] = json!({"type": "custom", "resource": "**"})),
            Some((
                "spec.capabilities",
                CapabilityInvalid,
                "capabilities[1]: a custom capability needs a name",
            )),
        ),
        check(
            "a tenth of a cent",
            shop(|s| s["capabilities"][1]["maxAmount"] = json!("0.001")),
            Some(("spec.capabilities", AmountInvalid, "capabilities[1]")),
        ),
        check(
            "an amount on a read",
            calendar(|s| {
                s["capabilities"][0]["maxAmount"] = json!("1");
                s["capabilities"][0]["currency"] = json!("EUR");
            }),
            Some((
                "spec.capabilities",
                CapabilityInvalid,
                "only transact capabilities",
            )),
        ),
        check(
            "both expiries",
            calendar(|s| s["expiresAt"] = json!("2026-12-24T23:00:00Z")),
            Some((
                "spec",
                RequestInvalid,
                "exactly one of expiresAt or duration",
            )),
        ),
        check(
            "no expiry",
            shop(|s| {
                s.as_object_mut().unwrap().remove("expiresAt");
            }),
            Some((
                "spec",
                RequestInvalid,
                "exactly one of expiresAt or duration",
            )),
        ),
        check(
            "an agentRef that is no name",
            calendar(|s| s["agentRef"]["name"] = json!("-calendar")),
            Some((
                "spec.agentRef.name",
                RequestInvalid,
                "is not a Kubernetes object name",
            )),
        ),
        check(
            "an envelopeRef that is no name",
            calendar(|s| s["envelopeRef"]["name"] = json!("Office Hours")),
            Some((
                "spec.envelopeRef.name",
                RequestInvalid,
                "is not a Kubernetes object name",
            )),
        ),
        check(
            "a provider with a space",
            calendar(|s| s["serviceProvider"] = json!("calendar example")),
            Some(("spec.serviceProvider", RequestInvalid, "visible ASCII")),
        ),
        check(
            "a blank reason",
            calendar(|s| s["reason"] = json!(" ")),
            Some(("spec.reason", RequestInvalid, "1 to 1024 bytes")),
        ),
    ]);
}

#[test]
fn approver_specs() {
    let dana = |edit: fn(&mut Value)| spec::<ApproverSpec>("approvers.yaml", edit).validate();
    assert_rows(vec![
        check("Dana", dana(|_| {}), None),
        check(
            "every namespace",
            dana(|s| s["scope"]["namespaces"] = json!(["*"])),
            None,
        ),
        check(
            "an email without @",
            dana(|s| s["email"] = json!("dana")),
            Some(("spec.email", RequestInvalid, "an email address")),
        ),
        check(
            "'*' with others",
            dana(|s| s["scope"]["namespaces"] = json!(["*", "agents"])),
            Some(("spec.scope.namespaces", RequestInvalid, "stands alone")),
        ),
        check(
            "no namespaces",
            dana(|s| s["scope"]["namespaces"] = json!([])),
            Some(("spec.scope.namespaces", RequestInvalid, "1 to 256")),
        ),
        check(
            "an upper-case namespace",
            dana(|s| s["scope"]["namespaces"] = json!(["Agents"])),
            Some((
                "spec.scope.namespaces[0]",
                RequestInvalid,
                "not a namespace name",
            )),
        ),
    ]);
    let spec: ApproverSpec = spec("approvers.yaml", |_| {});
    assert!(spec.covers_namespace("agents"));
    assert!(!spec.covers_namespace("payments"));
}
