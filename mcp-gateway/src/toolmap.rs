//! The tool map: which AgentAuth action each MCP tool call performs.
//!
//! ```yaml
//! session:                       # every message that is not a tools/call
//!   type: read                   # (initialize, tools/list, ping, notifications,
//!   resource: mcp/payments       #  the SSE stream, ending the session)
//! tools:
//!   get_balance:
//!     type: read
//!     resource: accounts/{account}        # {name}: the call's argument `name`
//!   send_payment:
//!     type: transact
//!     resource: payments/{currency}
//!     action: pay                          # optional
//!     amount: {argument: amount}           # transact: a decimal string or a number
//!     currency: {argument: currency}       #   or {value: EUR}
//!   delete_account:
//!     type: delete
//!     resource: accounts/{account}
//! ```
//!
//! A tool the map does not name is refused at the gateway and never reaches
//! the MCP server. The file is YAML (JSON is YAML too), read strictly: an
//! unknown key, a transact tool without amount and currency, an amount on a
//! read tool, or a malformed template stops the gateway at startup with the
//! file and the key in the message. [`crate::mapping`] turns a call into an
//! action with this map.

use std::collections::BTreeMap;
use std::path::Path;

use agentauth_core::capability::CapabilityType;
use agentauth_core::money::Currency;
use serde::Deserialize;

use crate::template::{Template, TemplateError};

/// The largest tool map file read (a map of thousands of tools is far less).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One capability as the file declares it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRule {
    /// The action type.
    #[serde(rename = "type")]
    pub kind: CapabilityType,
    /// The resource template.
    pub resource: String,
    /// The action name, e.g. `pay`.
    #[serde(default)]
    pub action: Option<String>,
    /// For custom: the capability name.
    #[serde(default)]
    pub name: Option<String>,
    /// For transact: where the amount comes from.
    #[serde(default)]
    pub amount: Option<Source>,
    /// For transact: where the currency comes from.
    #[serde(default)]
    pub currency: Option<Source>,
}

/// Where an amount or a currency comes from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// The `tools/call` argument of this name.
    Argument(String),
    /// A fixed value.
    Value(String),
}

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolMapFile {
    session: ToolRule,
    #[serde(default)]
    tools: BTreeMap<String, ToolRule>,
}

/// A checked rule: the file's rule with its template parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledRule {
    /// The rule as declared.
    pub rule: ToolRule,
    /// Its resource template.
    pub template: Template,
}

/// A loaded, checked tool map.
#[derive(Clone, Debug)]
pub struct ToolMap {
    /// What every message that is not a `tools/call` needs. It has no
    /// arguments to read: its template must be a fixed resource.
    pub session: CompiledRule,
    /// Tool name → rule.
    pub tools: BTreeMap<String, CompiledRule>,
}

/// Why the tool map could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ToolMapError {
    /// The file could not be read.
    #[error("failed to read the tool map {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is larger than any sensible map.
    #[error("the tool map {path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// The YAML does not have the map's shape.
    #[error("the tool map {path} is malformed: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message (names the key).
        message: String,
    },
    /// A rule is inconsistent.
    #[error("the tool map {path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// `session` or `tools.<name>`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ToolMap {
    /// Reads and checks the map at `path`.
    pub fn load(path: &Path) -> Result<ToolMap, ToolMapError> {
        let shown = path.display().to_string();
        let read = |source| ToolMapError::Read {
            path: shown.clone(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_FILE_BYTES {
            return Err(ToolMapError::TooLarge { path: shown });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        ToolMap::parse(&text, &shown)
    }

    /// Parses and checks `text`; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<ToolMap, ToolMapError> {
        let file: ToolMapFile = serde_saphyr::from_str(text).map_err(|e| ToolMapError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |key: &str, message: String| ToolMapError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        let session = compile(file.session).map_err(|m| invalid("session", m))?;
        if session.template.arguments().next().is_some()
            || session.rule.kind == CapabilityType::Transact
        {
            return Err(invalid(
                "session",
                "must be a fixed resource without placeholders and not transact: protocol messages have no tool arguments".into(),
            ));
        }
        let mut tools = BTreeMap::new();
        for (name, rule) in file.tools {
            let key = format!("tools.{name}");
            if name.is_empty() || name.len() > 128 {
                return Err(invalid(&key, "a tool name has 1 to 128 characters".into()));
            }
            let compiled = compile(rule).map_err(|m| invalid(&key, m))?;
            tools.insert(name, compiled);
        }
        Ok(ToolMap { session, tools })
    }
}

/// Checks one rule's consistency and parses its template.
fn compile(rule: ToolRule) -> Result<CompiledRule, String> {
    let template = Template::parse(&rule.resource).map_err(|e: TemplateError| e.to_string())?;
    let transact = rule.kind == CapabilityType::Transact;
    match (transact, &rule.amount, &rule.currency) {
        (true, Some(amount), Some(currency)) => {
            if let Source::Value(_) = amount {
                return Err("amount must come from an argument ({argument: <name>}): a fixed amount is a price, put it in the tool".into());
            }
            if let Source::Value(code) = currency {
                Currency::from_code(code).map_err(|e| format!("currency: {}", e.message))?;
            }
        }
        (true, _, _) => return Err("a transact tool says where its amount and currency come from (amount: {argument: …}, currency: {argument: …} or {value: EUR})".into()),
        (false, None, None) => {}
        (false, _, _) => return Err(format!("amount and currency belong to transact tools, not {}", rule.kind)),
    }
    match (rule.kind, &rule.name) {
        (CapabilityType::Custom, None) => {
            return Err("a custom tool names its capability (name: …)".into());
        }
        (CapabilityType::Custom, Some(_)) | (_, None) => {}
        (_, Some(_)) => return Err("name belongs to custom tools".into()),
    }
    Ok(CompiledRule { rule, template })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = r#"
session: {type: read, resource: mcp/payments}
tools:
  get_balance: {type: read, resource: "accounts/{account}"}
  send_payment:
    type: transact
    resource: "payments/{currency}"
    action: pay
    amount: {argument: amount}
    currency: {argument: currency}
  pay_fee: {type: transact, resource: fees, amount: {argument: fee}, currency: {value: EUR}}
  export: {type: custom, name: export, resource: "reports/{id}"}
"#;

    fn rejects(text: &str, needle: &str) {
        match ToolMap::parse(text, "map.yaml") {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => {
                let message = e.to_string();
                assert!(message.contains("map.yaml"), "{message}");
                assert!(message.contains(needle), "{message} lacks {needle}");
            }
        }
    }

    #[test]
    fn accepts_a_good_map() {
        let map = ToolMap::parse(GOOD, "map.yaml").unwrap();
        assert_eq!(map.tools.len(), 4);
        assert_eq!(map.session.rule.resource, "mcp/payments");
    }

    #[test]
    fn refuses_inconsistent_maps_naming_the_key() {
        rejects("tools: {}", "session");
        rejects("session: {type: read, resource: x}\nextra: 1", "extra");
        rejects("session: {type: read, resource: \"x/{a}\"}", "session");
        rejects(
            "session: {type: read, resource: x}\ntools: {t: {type: read, resource: x, amount: {argument: a}}}",
            "tools.t",
        );
        rejects(
            "session: {type: read, resource: x}\ntools: {t: {type: transact, resource: x}}",
            "tools.t",
        );
        rejects(
            "session: {type: read, resource: x}\ntools: {t: {type: transact, resource: x, amount: {value: \"1\"}, currency: {value: EUR}}}",
            "tools.t",
        );
        rejects(
            "session: {type: read, resource: x}\ntools: {t: {type: transact, resource: x, amount: {argument: a}, currency: {value: XXY}}}",
            "tools.t",
        );
        rejects(
            "session: {type: read, resource: x}\ntools: {t: {type: custom, resource: x}}",
            "tools.t",
        );
        rejects(
            "session: {type: read, resource: x}\ntools: {t: {type: read, resource: \"x/*\"}}",
            "tools.t",
        );
        rejects(
            "session: {type: read, resource: x}\ntools: {t: {type: read, resource: x, typo: 1}}",
            "typo",
        );
        rejects("session: {type: fly, resource: x}", "fly");
    }
}
