//! What the schemas alone accept and refuse, as a table: each row is an
//! example with one thing changed, created with a server dry run, and either
//! accepted or refused with the message a person at a terminal will read.

use serde_json::{Value, json};

use super::{Env, example, refusal, remove, set};

enum Want {
    Accepted,
    Refused(&'static str),
}

struct Case {
    what: &'static str,
    doc: Value,
    want: Want,
}

fn accepts(what: &'static str, doc: Value) -> Case {
    Case {
        what,
        doc,
        want: Want::Accepted,
    }
}

fn rejects(what: &'static str, doc: Value, message: &'static str) -> Case {
    Case {
        what,
        doc,
        want: Want::Refused(message),
    }
}

fn grant() -> Value {
    example("calendar-assistant/grant.yaml")
}

fn shop_grant() -> Value {
    example("shopping-agent/grant.yaml")
}

fn envelope() -> Value {
    example("calendar-assistant/envelope.yaml")
}

fn budget() -> Value {
    example("shopping-agent/envelope.yaml")
}

fn agent() -> Value {
    example("calendar-assistant/agent.yaml")
}

/// The example approver under a name of its own: approvers are
/// cluster-scoped, and other tests apply the example.
fn approver() -> Value {
    set(
        example("approvers.yaml"),
        "/metadata/name",
        json!("schema-table-approver"),
    )
}

/// A grant whose only capability is `capability`.
fn grant_with(capability: Value) -> Value {
    set(grant(), "/spec/capabilities", json!([capability]))
}

fn cases() -> Vec<Case> {
    let cap = |c: Value| grant_with(c);
    vec![
        // CapabilityGrant
        accepts(
            "a custom capability with a name",
            cap(json!({"type": "custom", "name": "send-invite", "resource": "calendars/**"})),
        ),
        accepts(
            "a transact capability with amount and currency",
            shop_grant(),
        ),
        accepts(
            "two of the finance approvers, a denial counted",
            set(
                grant(),
                "/spec/approvals",
                json!({"required": 2, "from": {"matchLabels": {"team": "finance"}}, "denial": "Quorum"}),
            ),
        ),
        rejects(
            "six approvers",
            set(grant(), "/spec/approvals", json!({"required": 6})),
            "should be less than or equal to 5",
        ),
        rejects(
            "an unknown denial rule",
            set(
                grant(),
                "/spec/approvals",
                json!({"required": 2, "denial": "Majority"}),
            ),
            "Unsupported value",
        ),
        accepts("'**' alone", cap(json!({"type": "read", "resource": "**"}))),
        accepts(
            "an expiry with an offset",
            set(
                remove(grant(), "/spec/duration"),
                "/spec/expiresAt",
                json!("2026-12-24T23:00:00+01:00"),
            ),
        ),
        rejects(
            "no capabilities",
            set(grant(), "/spec/capabilities", json!([])),
            "a grant lists at least one capability",
        ),
        rejects(
            "custom without a name",
            cap(json!({"type": "custom", "resource": "calendars/**"})),
            "a custom capability needs a name",
        ),
        rejects(
            "a name on a read",
            cap(json!({"type": "read", "name": "peek", "resource": "calendars/**"})),
            "only custom capabilities have a name",
        ),
        rejects(
            "an amount on a read",
            cap(
                json!({"type": "read", "resource": "calendars/**", "maxAmount": "5.00", "currency": "EUR"}),
            ),
            "maxAmount and currency apply only to transact capabilities",
        ),
        rejects(
            "an amount without currency",
            cap(json!({"type": "transact", "resource": "orders/**", "maxAmount": "5.00"})),
            "maxAmount and currency go together",
        ),
        rejects(
            "a comma amount",
            cap(
                json!({"type": "transact", "resource": "orders/**", "maxAmount": "50,00", "currency": "EUR"}),
            ),
            "an amount is a decimal string such as \"50.00\"",
        ),
        rejects(
            "an exponent amount",
            cap(
                json!({"type": "transact", "resource": "orders/**", "maxAmount": "1e3", "currency": "EUR"}),
            ),
            "an amount is a decimal string",
        ),
        rejects(
            "a lower-case currency",
            cap(
                json!({"type": "transact", "resource": "orders/**", "maxAmount": "5", "currency": "eur"}),
            ),
            "a currency is a three-letter ISO 4217 code",
        ),
        rejects(
            "an empty segment",
            cap(json!({"type": "read", "resource": "calendars//events"})),
            "a resource pattern is segments separated by '/'",
        ),
        rejects(
            "a star inside a name",
            cap(json!({"type": "read", "resource": "cal*/events"})),
            "no '*' inside a name",
        ),
        rejects(
            "a '..' segment",
            cap(json!({"type": "read", "resource": "calendars/../admin"})),
            "cannot have '.' or '..' segments",
        ),
        rejects(
            "an unknown type",
            cap(json!({"type": "admin", "resource": "**"})),
            "Unsupported value: \"admin\"",
        ),
        rejects(
            "an action with a space",
            cap(json!({"type": "write", "resource": "**", "actions": ["create event"]})),
            "an action uses only letters, digits",
        ),
        rejects(
            "an action twice",
            cap(json!({"type": "write", "resource": "**", "actions": ["create", "create"]})),
            "Duplicate value",
        ),
        rejects(
            "both expiresAt and duration",
            set(grant(), "/spec/expiresAt", json!("2026-12-24T23:00:00Z")),
            "set exactly one of expiresAt",
        ),
        rejects(
            "neither expiresAt nor duration",
            remove(grant(), "/spec/duration"),
            "set exactly one of expiresAt",
        ),
        rejects(
            "an expiry that is not a time",
            set(
                remove(grant(), "/spec/duration"),
                "/spec/expiresAt",
                json!("tomorrow"),
            ),
            "must be of type date-time",
        ),
        rejects(
            "a duration in words",
            set(grant(), "/spec/duration", json!("1 hour")),
            "a duration is a positive whole number and a unit",
        ),
        rejects(
            "an agentRef that is no name",
            set(grant(), "/spec/agentRef/name", json!("Calendar_Assistant")),
            "a name is a Kubernetes object name",
        ),
        rejects(
            "a provider with a space",
            set(grant(), "/spec/serviceProvider", json!("calendar example")),
            "serviceProvider is visible ASCII without spaces",
        ),
        rejects(
            "an empty reason",
            set(grant(), "/spec/reason", json!("")),
            "spec.reason in body should be at least 1 chars long",
        ),
        // BehavioralEnvelope
        accepts(
            "a window across midnight",
            set(envelope(), "/spec/timeWindows/0/start", json!("22:00")),
        ),
        accepts(
            "a one-hour token lifetime",
            set(envelope(), "/spec/maxTokenTtl", json!("60m")),
        ),
        rejects(
            "no limits at all",
            set(envelope(), "/spec", json!({})),
            "an envelope sets at least one of rateLimits, timeWindows, transactions, maxTokenTtl or approvals",
        ),
        accepts(
            "an envelope requiring two approvers and nothing else",
            set(envelope(), "/spec", json!({"approvals": {"required": 2}})),
        ),
        rejects(
            "an envelope requiring no approver",
            set(envelope(), "/spec/approvals", json!({"required": 0})),
            "should be greater than or equal to 1",
        ),
        rejects(
            "a misspelled limit",
            set(envelope(), "/spec", json!({"ratelimits": []})),
            "check the spelling",
        ),
        rejects(
            "zero requests",
            set(envelope(), "/spec/rateLimits/0/requests", json!(0)),
            "requests in body should be greater than or equal to 1",
        ),
        rejects(
            "zero burst",
            set(envelope(), "/spec/rateLimits/0/burst", json!(0)),
            "burst in body should be greater than or equal to 1",
        ),
        rejects(
            "a period in weeks",
            set(envelope(), "/spec/rateLimits/0/period", json!("1w")),
            "a duration is a positive whole number and a unit",
        ),
        rejects(
            "an hour without a leading zero",
            set(envelope(), "/spec/timeWindows/0/start", json!("9:00")),
            "a time of day is HH:MM on a 24-hour clock",
        ),
        rejects(
            "24:00",
            set(envelope(), "/spec/timeWindows/0/end", json!("24:00")),
            "a time of day is HH:MM",
        ),
        rejects(
            "a window without days",
            set(envelope(), "/spec/timeWindows/0/days", json!([])),
            "should have at least 1 items",
        ),
        rejects(
            "a day twice",
            set(
                envelope(),
                "/spec/timeWindows/0/days",
                json!(["mon", "mon"]),
            ),
            "Duplicate value: \"mon\"",
        ),
        rejects(
            "a token lifetime of two hours",
            set(envelope(), "/spec/maxTokenTtl", json!("2h")),
            "maxTokenTtl is at most 1h",
        ),
        rejects(
            "a token lifetime of a day",
            set(envelope(), "/spec/maxTokenTtl", json!("1d")),
            "maxTokenTtl is at most 1h",
        ),
        rejects(
            "a daily limit with two points",
            set(budget(), "/spec/transactions/maxPerDay", json!("200.5.0")),
            "an amount is a decimal string",
        ),
        rejects(
            "a negative limit",
            set(
                budget(),
                "/spec/transactions/maxPerTransaction",
                json!("-5"),
            ),
            "an amount is a decimal string",
        ),
        // Agent
        rejects(
            "an RSA key",
            set(agent(), "/spec/publicKey/kty", json!("RSA")),
            "Unsupported value: \"RSA\"",
        ),
        rejects(
            "a P-384 key",
            set(agent(), "/spec/publicKey/crv", json!("P-384")),
            "Unsupported value: \"P-384\"",
        ),
        rejects(
            "a short coordinate",
            set(agent(), "/spec/publicKey/x", json!("AAAA")),
            "publicKey.x and publicKey.y are the key's 32-byte coordinates",
        ),
        rejects(
            "no display name",
            set(agent(), "/spec/displayName", json!("")),
            "should be at least 1 chars long",
        ),
        // Approver
        accepts(
            "every namespace",
            set(approver(), "/spec/scope/namespaces", json!(["*"])),
        ),
        rejects(
            "an email without @",
            set(approver(), "/spec/email", json!("dana")),
            "email is an address like dana@example.com",
        ),
        rejects(
            "'*' with others",
            set(approver(), "/spec/scope/namespaces", json!(["*", "agents"])),
            "\"*\" (every namespace) stands alone",
        ),
        rejects(
            "an upper-case namespace",
            set(approver(), "/spec/scope/namespaces", json!(["Agents"])),
            "each entry is a namespace name",
        ),
        rejects(
            "no namespaces",
            set(approver(), "/spec/scope/namespaces", json!([])),
            "should have at least 1 items",
        ),
    ]
}

#[tokio::test]
async fn the_schemas_accept_and_refuse_as_the_table_says() {
    let env = Env::new("schema-table").await;
    let cases = cases();
    let refused = cases
        .iter()
        .filter(|c| matches!(c.want, Want::Refused(_)))
        .count();
    assert!(refused >= 15, "only {refused} refusals in the table");
    let mut failures = Vec::new();
    for case in &cases {
        let got = refusal(env.dry_create(&case.doc).await);
        match (&case.want, got) {
            (Want::Accepted, Err(e)) if e == "accepted" => {}
            (Want::Accepted, Ok(message)) => {
                failures.push(format!("{}: refused: {message}", case.what));
            }
            (Want::Refused(want), Ok(message)) if message.contains(want) => {}
            (Want::Refused(want), Ok(message)) => failures.push(format!(
                "{}: refused, but the message lacks {want:?}: {message}",
                case.what
            )),
            (_, Err(e)) => failures.push(format!("{}: {e}", case.what)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}
