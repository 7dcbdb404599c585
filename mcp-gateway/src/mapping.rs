//! From an MCP message to the action the verifier is asked about
//! (`action` of `POST /v1/verify`, DESIGN §5).
//!
//! ```text
//!  tools/call {name, arguments} ─▶ map.tools[name] ─▶ {type, resource (template filled),
//!                                                      action?, name?, amount?, currency?}
//!  anything else                ─▶ map.session (a fixed action)
//!  a tool the map lacks         ─▶ refused here (capability_not_granted), never forwarded
//! ```
//!
//! Amounts are decimal text end to end: a string argument is taken as
//! written, a JSON number through its shortest round-trip form (no
//! arithmetic on floats); either is checked against the currency's minor
//! units by [`agentauth_core::money::parse_amount`] and sent in canonical
//! form, so the verifier counts exactly what the tool will be told.

use agentauth_core::ErrorCode;
use agentauth_core::money::{self, Currency};
use serde_json::{Map, Value};

use crate::template;
use crate::toolmap::{CompiledRule, Source, ToolMap};

/// The action of a verification request (the wire type every provider-side
/// client shares).
pub use agentauth_core::verify_call::Action;

/// Why a call has no action: refused at the gateway, with a stable code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmapped {
    /// The stable code.
    pub code: ErrorCode,
    /// What to do about it.
    pub message: String,
}

/// The session action: what every message but a tool call needs.
pub fn session_action(map: &ToolMap) -> Action {
    let rule = &map.session.rule;
    Action {
        kind: rule.kind.as_str().to_owned(),
        resource: rule.resource.clone(),
        action: rule.action.clone(),
        name: rule.name.clone(),
        amount: None,
        currency: None,
    }
}

/// The action of calling tool `name` with `arguments`.
pub fn tool_action(
    map: &ToolMap,
    name: &str,
    arguments: &Map<String, Value>,
) -> Result<Action, Unmapped> {
    let Some(compiled) = map.tools.get(name) else {
        return Err(Unmapped {
            code: ErrorCode::CapabilityNotGranted,
            message: format!(
                "tool {:?} is not in this gateway's tool map, so no grant can cover it; \
                 ask the operator of the MCP server to map it",
                brief(name)
            ),
        });
    };
    let CompiledRule { rule, template } = compiled;
    let invalid = |e: template::TemplateError| Unmapped {
        code: ErrorCode::RequestInvalid,
        message: format!("tool {name}: {e}; fix the argument and call again"),
    };
    let resource = template.render(arguments).map_err(invalid)?;
    let (amount, currency) = match (&rule.amount, &rule.currency) {
        (Some(amount), Some(currency)) => {
            let (amount, currency) = money_of(name, amount, currency, arguments)?;
            (Some(amount), Some(currency))
        }
        _ => (None, None),
    };
    Ok(Action {
        kind: rule.kind.as_str().to_owned(),
        resource,
        action: rule.action.clone(),
        name: rule.name.clone(),
        amount,
        currency,
    })
}

/// The canonical amount and the currency code of a transact call.
fn money_of(
    tool: &str,
    amount: &Source,
    currency: &Source,
    arguments: &Map<String, Value>,
) -> Result<(String, String), Unmapped> {
    let code = match currency {
        Source::Value(code) => code.clone(),
        Source::Argument(arg) => match arguments.get(arg) {
            Some(Value::String(code)) => code.clone(),
            _ => {
                return Err(refuse(
                    ErrorCode::CurrencyUnknown,
                    format!(
                        "tool {tool}: argument {arg:?} must be an ISO 4217 code such as \"EUR\""
                    ),
                ));
            }
        },
    };
    let currency = Currency::from_code(&code)
        .map_err(|e| refuse(e.code, format!("tool {tool}: {}", e.message)))?;
    let decimal = match amount {
        Source::Value(text) => text.clone(),
        Source::Argument(arg) => match arguments.get(arg) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                return Err(refuse(
                    ErrorCode::AmountInvalid,
                    format!(
                        "tool {tool}: argument {arg:?} must be the amount, a decimal string such as \"12.50\""
                    ),
                ));
            }
        },
    };
    let minor = money::parse_amount(&decimal, &currency)
        .map_err(|e| refuse(e.code, format!("tool {tool}: {}", e.message)))?;
    Ok((
        money::format_amount(minor, &currency),
        currency.code().to_owned(),
    ))
}

fn refuse(code: ErrorCode, message: String) -> Unmapped {
    Unmapped { code, message }
}

/// A tool name as shown in a message: at most 64 characters.
fn brief(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn map() -> ToolMap {
        ToolMap::parse(
            r#"
session: {type: read, resource: mcp/payments}
tools:
  get_balance: {type: read, resource: "accounts/{account}"}
  send_payment:
    type: transact
    resource: "payments/{currency}"
    amount: {argument: amount}
    currency: {argument: currency}
  pay_fee: {type: transact, resource: fees, action: pay, amount: {argument: fee}, currency: {value: JPY}}
"#,
            "map.yaml",
        )
        .unwrap()
    }

    fn call(name: &str, args: Value) -> Result<Action, Unmapped> {
        tool_action(&map(), name, args.as_object().unwrap())
    }

    #[test]
    fn maps_tools_to_actions() {
        let a = call("send_payment", json!({"amount": "12.5", "currency": "EUR"})).unwrap();
        assert_eq!(
            (a.kind.as_str(), a.resource.as_str()),
            ("transact", "payments/EUR")
        );
        assert_eq!(
            (a.amount.as_deref(), a.currency.as_deref()),
            (Some("12.50"), Some("EUR"))
        );
        let n = call("send_payment", json!({"amount": 7, "currency": "EUR"})).unwrap();
        assert_eq!(n.amount.as_deref(), Some("7.00"));
        let f = call("pay_fee", json!({"fee": "500"})).unwrap();
        assert_eq!(
            (f.amount.as_deref(), f.action.as_deref()),
            (Some("500"), Some("pay"))
        );
        let r = call("get_balance", json!({"account": "acct-1"})).unwrap();
        assert_eq!((r.resource.as_str(), r.amount), ("accounts/acct-1", None));
        assert_eq!(session_action(&map()).resource, "mcp/payments");
    }

    #[test]
    fn refuses_unknown_tools_and_bad_arguments() {
        assert_eq!(
            call("drop_tables", json!({})).unwrap_err().code,
            ErrorCode::CapabilityNotGranted
        );
        let code = |name, args| call(name, args).unwrap_err().code;
        assert_eq!(
            code(
                "send_payment",
                json!({"amount": "1.001", "currency": "EUR"})
            ),
            ErrorCode::AmountInvalid
        );
        assert_eq!(
            code("send_payment", json!({"amount": "-1", "currency": "EUR"})),
            ErrorCode::AmountInvalid
        );
        assert_eq!(
            code("send_payment", json!({"amount": "1e3", "currency": "EUR"})),
            ErrorCode::AmountInvalid
        );
        assert_eq!(
            code("send_payment", json!({"amount": 1.005, "currency": "EUR"})),
            ErrorCode::AmountInvalid
        );
        assert_eq!(
            code("send_payment", json!({"amount": true, "currency": "EUR"})),
            ErrorCode::AmountInvalid
        );
        assert_eq!(
            code("send_payment", json!({"amount": "1", "currency": "EURO"})),
            ErrorCode::CurrencyUnknown
        );
        assert_eq!(
            code("send_payment", json!({"amount": "1"})),
            // The resource template reads the currency first.
            ErrorCode::RequestInvalid
        );
        assert_eq!(
            code("pay_fee", json!({"fee": "1.5"})),
            ErrorCode::AmountInvalid
        );
        assert_eq!(
            code("get_balance", json!({"account": "*"})),
            ErrorCode::RequestInvalid
        );
    }

    proptest! {
        /// Any string amount either maps to the exact minor units its
        /// digits say, or is refused; never rounded.
        #[test]
        fn amounts_are_exact_or_refused(int in 0u64..1_000_000, frac in 0u64..100, text in ".{0,12}") {
            let a = call("send_payment", json!({"amount": format!("{int}.{frac:02}"), "currency": "EUR"})).unwrap();
            prop_assert_eq!(a.amount, Some(format!("{int}.{frac:02}")));
            if let Ok(b) = call("send_payment", json!({"amount": text.clone(), "currency": "EUR"})) {
                let canonical = b.amount.unwrap();
                let minor = money::parse_amount(&canonical, &Currency::from_code("EUR").unwrap()).unwrap();
                prop_assert_eq!(minor, money::parse_amount(&text, &Currency::from_code("EUR").unwrap()).unwrap());
            }
        }
    }
}
