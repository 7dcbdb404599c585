//! Resource templates of the tool map: `payments/{currency}` names the
//! resource a tool call acts on, with `{name}` filled from the call's
//! argument `name`.
//!
//! An argument comes from the agent (and, through it, from whatever the
//! model read), so a filled-in value must stay inside its one segment: it
//! may not carry `/` (another segment), `*` (a pattern glob), `{`/`}`,
//! whitespace or percent escapes, and may not be `.` or `..`. Otherwise
//! `accounts/{account}` with `account = "*"` or `"a/../../admin"` would ask
//! the verifier about a resource the tool never touches.

use serde_json::Value;

/// The longest value an argument may put into a resource.
pub const MAX_VALUE_LEN: usize = 128;

/// A parsed resource template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Argument(String),
}

/// Why a template or a value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template itself is malformed (found when the map is loaded).
    #[error("resource template {template:?}: {reason}")]
    Malformed {
        /// The template.
        template: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The call lacks an argument the template needs.
    #[error("argument {0:?} is missing")]
    Missing(String),
    /// An argument's value cannot stand in a resource segment.
    #[error(
        "argument {name:?} is not a plain identifier (letters, digits, '-', '_', '.', ':', '@'; at most {MAX_VALUE_LEN} characters; not '.' or '..')"
    )]
    Invalid {
        /// The argument.
        name: String,
    },
}

impl Template {
    /// Parses `text`: literal characters allowed in a resource (no `*`,
    /// no whitespace) and `{name}` placeholders, `name` an identifier.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let malformed = |reason| TemplateError::Malformed {
            template: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(malformed("is empty"));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after
                    .find('}')
                    .ok_or_else(|| malformed("has an unclosed '{'"))?;
                let name = &after[..end];
                if !is_identifier(name) {
                    return Err(malformed(
                        "a placeholder must be {name}, name made of letters, digits and '_'",
                    ));
                }
                parts.push(Part::Argument(name.to_owned()));
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let literal = &rest[..end];
                if literal.contains('}') {
                    return Err(malformed("has a '}' without '{'"));
                }
                if literal.contains('*') || literal.chars().any(char::is_whitespace) {
                    return Err(malformed(
                        "may not contain '*' or whitespace: a tool acts on one concrete resource",
                    ));
                }
                parts.push(Part::Literal(literal.to_owned()));
                rest = &rest[end..];
            }
        }
        Ok(Template { parts })
    }

    /// The arguments the template reads.
    pub fn arguments(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Argument(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills the template from `arguments` (the `tools/call` arguments).
    pub fn render(
        &self,
        arguments: &serde_json::Map<String, Value>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Argument(name) => out.push_str(&segment_value(arguments, name)?),
            }
        }
        Ok(out)
    }
}

/// The value of argument `name` as one resource segment: a string or a
/// non-negative integer, checked by [`is_segment_value`].
pub fn segment_value(
    arguments: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<String, TemplateError> {
    let value = match arguments.get(name) {
        None | Some(Value::Null) => return Err(TemplateError::Missing(name.to_owned())),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(_) => {
            return Err(TemplateError::Invalid {
                name: name.to_owned(),
            });
        }
    };
    if is_segment_value(&value) {
        Ok(value)
    } else {
        Err(TemplateError::Invalid {
            name: name.to_owned(),
        })
    }
}

/// Whether `value` can stand in one resource segment without changing the
/// resource's shape.
pub fn is_segment_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_VALUE_LEN
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn args(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn renders_arguments_into_their_segment() {
        let t = Template::parse("payments/{currency}/to/{to}").unwrap();
        let out = t
            .render(&args(json!({"currency": "EUR", "to": "acct-7"})))
            .unwrap();
        assert_eq!(out, "payments/EUR/to/acct-7");
        assert_eq!(t.arguments().collect::<Vec<_>>(), ["currency", "to"]);
        let n = Template::parse("accounts/{id}").unwrap();
        assert_eq!(n.render(&args(json!({"id": 42}))).unwrap(), "accounts/42");
    }

    #[test]
    fn refuses_malformed_templates() {
        for bad in ["", "a/{x", "a/x}", "a/{}", "a/{x-y}", "a/*", "a/**", "a b"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_values_that_escape_their_segment() {
        let t = Template::parse("accounts/{a}").unwrap();
        for bad in [
            json!("*"),
            json!("a/b"),
            json!(".."),
            json!("."),
            json!(""),
            json!("a b"),
            json!("%2f"),
            json!("{x}"),
            json!(-1),
            json!(1.5),
            json!(true),
            json!(["a"]),
            json!(null),
        ] {
            assert!(t.render(&args(json!({"a": bad.clone()}))).is_err(), "{bad}");
        }
        assert_eq!(
            t.render(&args(json!({}))),
            Err(TemplateError::Missing("a".into()))
        );
    }

    proptest! {
        /// Whatever the agent sends, a rendered resource has exactly the
        /// template's segments and no glob.
        #[test]
        fn rendering_never_changes_the_shape(value in ".{0,40}") {
            let t = Template::parse("accounts/{a}/history").unwrap();
            if let Ok(out) = t.render(&args(json!({"a": value}))) {
                prop_assert_eq!(out.split('/').count(), 3);
                prop_assert!(!out.contains('*'));
                prop_assert!(!out.split('/').any(|s| s == ".." || s == "." || s.is_empty()));
            }
        }
    }
}
