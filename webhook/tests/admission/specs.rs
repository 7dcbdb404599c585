//! Specs the schema admits and the webhook refuses: what only code can
//! know (a time zone exists, a currency exists, an amount fits it, a key is
//! a point on the curve) and what only the cluster can (the referenced
//! Agent and envelope exist). Rows run in order, so later ones may refer to
//! objects earlier ones created.

use serde_json::{Value, json};

use super::support::{Expect, check, envelope_doc, report};
use super::{Env, mk_agent, mk_grant};

/// A row: a document to create and what the apiserver must answer.
struct Row {
    name: &'static str,
    doc: Value,
    expect: Expect,
}

fn accepts(name: &'static str, doc: Value) -> Row {
    Row {
        name,
        doc,
        expect: Expect::Accepts,
    }
}

fn rejects(name: &'static str, doc: Value, message: &'static str) -> Row {
    Row {
        name,
        doc,
        expect: Expect::Rejects(message),
    }
}

/// `doc` with `value` at the JSON pointer (parents must exist).
fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    *doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = value;
    doc
}

#[tokio::test]
async fn specs_the_schema_cannot_judge() {
    let env = Env::new("specs").await;
    let ns = env.ns.as_str();
    let agent = mk_agent(ns, "assistant", "sam@example.com");
    let envelope = envelope_doc(ns, "business-hours", "Europe/Berlin");
    let grant = mk_grant(ns, "plan", "assistant", Some("business-hours"));
    let x = agent["spec"]["publicKey"]["x"].clone();
    let transact = json!([{"type": "transact", "resource": "payments/**",
                           "maxAmount": "20.00", "currency": "EUR"}]);

    let table = [
        accepts("an agent with a P-256 key", agent.clone()),
        rejects(
            "an agent whose key is not a point on the curve (y = x)",
            with(
                with(agent.clone(), "/metadata/name", json!("off-curve")),
                "/spec/publicKey/y",
                x,
            ),
            "jwk_invalid: spec.publicKey",
        ),
        accepts("an envelope in Europe/Berlin, in EUR", envelope.clone()),
        rejects(
            "an unknown time zone",
            envelope_doc(ns, "mars", "Mars/Olympus"),
            "time_zone_unknown: spec.timeWindows[0]",
        ),
        rejects(
            "an unknown currency (XYZ matches ^[A-Z]{3}$)",
            with(
                envelope_doc(ns, "xyz", "UTC"),
                "/spec/transactions/currency",
                json!("XYZ"),
            ),
            "currency_unknown: spec.transactions.currency",
        ),
        rejects(
            "an amount finer than its currency (EUR has 2 decimals)",
            with(
                envelope_doc(ns, "fine", "UTC"),
                "/spec/transactions/maxPerDay",
                json!("10.001"),
            ),
            "amount_invalid: spec.transactions",
        ),
        rejects(
            "a per-transaction limit above the daily one",
            with(
                envelope_doc(ns, "upside-down", "UTC"),
                "/spec/transactions/maxPerTransaction",
                json!("500.00"),
            ),
            "envelope_invalid: spec.transactions",
        ),
        accepts("a grant whose agent and envelope exist", grant.clone()),
        rejects(
            "a grant of an agent that does not exist",
            with(
                with(grant.clone(), "/metadata/name", json!("ghost")),
                "/spec/agentRef/name",
                json!("ghost-agent"),
            ),
            "agent_not_found: spec.agentRef.name",
        ),
        rejects(
            "a grant under an envelope that does not exist",
            with(
                with(grant.clone(), "/metadata/name", json!("unbounded")),
                "/spec/envelopeRef/name",
                json!("no-such-envelope"),
            ),
            "envelope_not_found: spec.envelopeRef.name",
        ),
        rejects(
            "a transact capability in an unknown currency",
            with(
                with(
                    with(grant.clone(), "/metadata/name", json!("pay")),
                    "/spec/capabilities",
                    transact.clone(),
                ),
                "/spec/capabilities/0/currency",
                json!("XYZ"),
            ),
            "currency_unknown: spec.capabilities[0].currency",
        ),
        accepts(
            "a transact capability in EUR",
            with(
                with(grant.clone(), "/metadata/name", json!("pay")),
                "/spec/capabilities",
                transact,
            ),
        ),
    ];

    let mut failures = Vec::new();
    for row in table {
        failures.extend(check(row.name, &row.expect, env.create(&row.doc).await));
    }
    // A pending grant's spec may change, and is checked again: its new
    // envelope must exist too.
    let moved = json!({"spec": {"envelopeRef": {"name": "nowhere"}}});
    failures.extend(check(
        "a pending grant moved to an envelope that does not exist",
        &Expect::Rejects("envelope_not_found"),
        env.patch(&env.admin, &grant, moved).await,
    ));
    report(&failures, env.cp);
}
