//! What the CRD schemas add to core's JSON schemas: CEL rules with messages a
//! person can act on, and the size bounds that keep the apiserver's CEL cost
//! estimate within budget.
//!
//! ```text
//!  core type ──schemars──▶ JSON schema (patterns, ranges)
//!                              │  #[schemars(transform = schema::core_rules)]
//!                              ▼
//!                          + x-kubernetes-validations next to each known pattern
//!                          + maxLength / maxItems where core set none
//! ```
//!
//! Core's schemas describe values (an amount matches `^(0|[1-9][0-9]*)…`);
//! they know nothing of Kubernetes. The apiserver's own message for a failed
//! `pattern` quotes the regular expression, which says little at a terminal,
//! so [`core_rules`] puts a CEL rule with a plain message beside every pattern
//! it recognizes (the pattern stays: it is the precise statement). Keying on
//! the pattern text keeps one table for every place a core type appears; a
//! test fails when a pattern in the generated CRDs has no companion rule.
//!
//! Every string a CEL rule reads has a `maxLength` and every list a rule
//! iterates has a `maxItems`: the apiserver estimates each rule's worst-case
//! cost from those bounds and refuses a CRD whose estimate is over budget.

use schemars::Schema;
use serde_json::{Map, Value, json};

use agentauth_core::capability::{MAX_ACTIONS, MAX_FILTER_LEN, MAX_NAME_LEN};
use agentauth_core::money::DECIMAL_PATTERN;

/// The schema extension that holds CEL rules.
pub const VALIDATIONS: &str = "x-kubernetes-validations";

/// Core's pattern of `HH:MM` times (window.rs).
const HHMM_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";
/// Core's pattern of periods such as `1m` (gcra.rs).
const PERIOD_PATTERN: &str = "^[1-9][0-9]{0,8}(ms|s|m|h|d)$";
/// Core's pattern of currency codes (money.rs).
const CURRENCY_PATTERN: &str = "^[A-Z]{3}$";
/// Core's pattern of resource patterns (capability/pattern.rs).
const RESOURCE_PATTERN: &str = r"^([!-)+-.0-~]+|\*\*?)(/([!-)+-.0-~]+|\*\*?))*$";
/// Actions and custom capability names (core's `check_word`).
const WORD_PATTERN: &str = "^[A-Za-z0-9._:/-]+$";

/// A core pattern, the `maxLength` it implies, and the rule and message
/// that say the same in words.
struct Known {
    pattern: &'static str,
    max_length: u64,
    rule: &'static str,
    message: &'static str,
}

const KNOWN: &[Known] = &[
    Known {
        pattern: DECIMAL_PATTERN,
        max_length: 32,
        rule: r"self.matches('^(0|[1-9][0-9]*)([.][0-9]+)?$')",
        message: "an amount is a decimal string such as \"50.00\": digits, optionally a point \
                  and decimals; no sign, exponent, spaces or leading zeros",
    },
    Known {
        pattern: HHMM_PATTERN,
        max_length: 5,
        rule: "self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')",
        message: "a time of day is HH:MM on a 24-hour clock, from 00:00 to 23:59, e.g. \"09:00\"",
    },
    Known {
        pattern: PERIOD_PATTERN,
        max_length: 11,
        rule: "self.matches('^[1-9][0-9]{0,8}(ms|s|m|h|d)$')",
        message: "a duration is a positive whole number and a unit (ms, s, m, h or d), \
                  e.g. \"1m\" or \"24h\"",
    },
    Known {
        pattern: CURRENCY_PATTERN,
        max_length: 3,
        rule: "self.matches('^[A-Z]{3}$')",
        message: "a currency is a three-letter ISO 4217 code in upper case, e.g. \"EUR\"",
    },
    Known {
        pattern: RESOURCE_PATTERN,
        max_length: 512,
        rule: r"self.matches('^([!-)+-.0-~]+|[*][*]?)(/([!-)+-.0-~]+|[*][*]?))*$')",
        message: "a resource pattern is segments separated by '/', each a name, '*' (any one \
                  segment) or '**' (any number of segments), e.g. \"calendars/*/events/**\"; \
                  no spaces, no empty segments, no '*' inside a name",
    },
];

/// A CEL rule and its message, as the apiserver reads them.
pub fn rule(rule: &str, message: &str) -> Value {
    json!({ "rule": rule, "message": message })
}

/// Appends CEL rules to a schema object.
pub fn add_rules(schema: &mut Map<String, Value>, rules: impl IntoIterator<Item = Value>) {
    let list = schema
        .entry(VALIDATIONS)
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list {
        list.extend(rules);
    }
}

/// Sets `key` unless the schema already has it (core's bounds win).
fn set_default(schema: &mut Map<String, Value>, key: &str, value: Value) {
    schema.entry(key).or_insert(value);
}

/// A schemars transform: wherever the schema (at any depth) has one of core's
/// known patterns, adds the CEL rule that says it in words, and a
/// `maxLength` when core set none.
pub fn core_rules(schema: &mut Schema) {
    if let Some(object) = schema.as_object_mut() {
        walk(object, &mut |s| {
            let pattern = s.get("pattern").and_then(Value::as_str);
            if let Some(k) = KNOWN.iter().find(|k| Some(k.pattern) == pattern) {
                set_default(s, "maxLength", k.max_length.into());
                add_rules(s, [rule(k.rule, k.message)]);
            }
        });
    }
}

/// Calls `f` on `schema` and every schema nested in it.
fn walk(schema: &mut Map<String, Value>, f: &mut impl FnMut(&mut Map<String, Value>)) {
    f(schema);
    for (key, value) in schema.iter_mut() {
        match (key.as_str(), value) {
            ("properties", Value::Object(props)) => {
                for sub in props.values_mut() {
                    if let Value::Object(sub) = sub {
                        walk(sub, f);
                    }
                }
            }
            ("items" | "additionalProperties" | "not", Value::Object(sub)) => walk(sub, f),
            ("anyOf" | "oneOf" | "allOf", Value::Array(subs)) => {
                for sub in subs {
                    if let Value::Object(sub) = sub {
                        walk(sub, f);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Every pattern in a generated schema that has no CEL rule beside it; the
/// tests keep this list to the ones deliberately left without a message.
pub fn patterns_without_rules(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if let Value::Object(object) = schema {
        let mut object = object.clone();
        walk(&mut object, &mut |s| {
            if let Some(p) = s.get("pattern").and_then(Value::as_str)
                && s.get(VALIDATIONS).is_none()
            {
                found.push(p.to_owned());
            }
        });
    }
    found
}

/// Returns the object schema of property `name`, if the schema has it.
pub fn property<'a>(schema: &'a mut Schema, name: &str) -> Option<&'a mut Map<String, Value>> {
    schema
        .as_object_mut()?
        .get_mut("properties")?
        .as_object_mut()?
        .get_mut(name)?
        .as_object_mut()
}

/// A schemars transform for a list of capabilities (`spec.capabilities`):
/// core's rules, bounds on the free-text fields, and the rules that tie a
/// capability's fields to its type.
pub fn capabilities(schema: &mut Schema) {
    core_rules(schema);
    let Some(items) = schema
        .as_object_mut()
        .and_then(|s| s.get_mut("items"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    add_rules(
        items,
        [
            rule(
                "self.type != 'custom' || has(self.name)",
                "a custom capability needs a name, the provider's operation, e.g. name: send-email",
            ),
            rule(
                "self.type == 'custom' || !has(self.name)",
                "only custom capabilities have a name; remove name or use type: custom",
            ),
            rule(
                "self.type == 'transact' || (!has(self.maxAmount) && !has(self.currency))",
                "maxAmount and currency apply only to transact capabilities",
            ),
            rule(
                "has(self.maxAmount) == has(self.currency)",
                "maxAmount and currency go together: give both or neither",
            ),
        ],
    );
    let Some(props) = items.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    let word = || json!({ "maxLength": MAX_NAME_LEN, "pattern": WORD_PATTERN });
    let word_rule = |what: &str| {
        rule(
            "self.matches('^[A-Za-z0-9._:/-]+$')",
            &format!("{what} uses only letters, digits and - . _ : /"),
        )
    };
    if let Some(Value::Object(name)) = props.get_mut("name") {
        merge(name, word());
        add_rules(name, [word_rule("a capability name")]);
    }
    if let Some(Value::Object(actions)) = props.get_mut("actions") {
        merge(
            actions,
            json!({ "minItems": 1, "maxItems": MAX_ACTIONS, "x-kubernetes-list-type": "set" }),
        );
        if let Some(Value::Object(item)) = actions.get_mut("items") {
            merge(item, word());
            add_rules(item, [word_rule("an action")]);
        }
    }
    if let Some(Value::Object(filter)) = props.get_mut("filter") {
        merge(
            filter,
            json!({ "minLength": 1, "maxLength": MAX_FILTER_LEN }),
        );
    }
    if let Some(Value::Object(resource)) = props.get_mut("resource") {
        add_rules(
            resource,
            [rule(
                "!self.matches('(^|/)[.][.]?(/|$)')",
                "a resource pattern cannot have '.' or '..' segments: a provider could read \
                 them as a path that climbs out of its prefix",
            )],
        );
    }
}

/// A schemars transform for `Agent.spec.publicKey` (core's `EcPublicJwk`):
/// only EC P-256 signing keys, coordinates of the right length.
pub fn public_key(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    add_rules(
        object,
        [rule(
            "self.x.matches('^[A-Za-z0-9_-]{43}$') && self.y.matches('^[A-Za-z0-9_-]{43}$')",
            "publicKey.x and publicKey.y are the key's 32-byte coordinates in base64url \
             without padding (43 characters each)",
        )],
    );
    let Some(props) = object.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    let bounds = [
        ("kty", json!({ "enum": ["EC"] })),
        ("crv", json!({ "enum": ["P-256"] })),
        ("x", json!({ "maxLength": 64 })),
        ("y", json!({ "maxLength": 64 })),
        ("kid", json!({ "maxLength": 256 })),
        ("alg", json!({ "enum": ["ES256"] })),
        ("use", json!({ "enum": ["sig"] })),
        (
            "key_ops",
            json!({ "maxItems": 8, "items": { "maxLength": 32 } }),
        ),
    ];
    for (name, extra) in bounds {
        if let Some(Value::Object(p)) = props.get_mut(name) {
            merge(p, extra);
        }
    }
}

/// Merges `extra` into `schema`, recursing into objects present in both.
fn merge(schema: &mut Map<String, Value>, extra: Value) {
    let Value::Object(extra) = extra else { return };
    for (key, value) in extra {
        match (schema.get_mut(&key), value) {
            (Some(Value::Object(have)), Value::Object(more)) => merge(have, Value::Object(more)),
            (_, value) => {
                schema.insert(key, value);
            }
        }
    }
}
