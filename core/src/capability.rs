//! Capabilities: what a grant lets an agent do, in the two spellings it
//! travels in, and the two questions asked of them.
//!
//! ```text
//!  CapabilityGrant.spec.capabilities          token.authorization_details (RFC 9396)
//!  {type: transact, resource: shop/**, ...}   {"type": "agentauth:transact", "resource": ...}
//!          Capability ───────── From ──────────▶ AuthorizationDetail
//!                     ◀──── TryFrom (validates) ─┘
//!
//!  permits(&[Capability], &RequestedAction)  the verifier, per request: allow, or the
//!                                            stable reason (capability_not_granted,
//!                                            amount_over_limit, currency_mismatch, ...)
//!  is_subset(child, parent)                  may a sub-grant be attenuated from a parent?
//! ```
//!
//! Both spellings are one generic struct, [`Capability<K>`], so the content
//! is defined once; only the `type` differs (`transact` for people writing
//! YAML, `agentauth:transact` for RFC 9396 consumers). Filters and
//! constraints are not interpreted here: they travel in the token and the
//! service provider applies them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
use crate::money::{Currency, Decimal};

mod matching;
mod pattern;
#[cfg(test)]
mod tests;

pub use matching::{RequestedAction, is_subset, permits};
pub use pattern::{MAX_RESOURCE_LEN, MAX_SEGMENTS, Resource, ResourcePattern};

/// The most capabilities one grant may list.
pub const MAX_CAPABILITIES: usize = 64;
/// The most entries in `actions`.
pub const MAX_ACTIONS: usize = 32;
/// The longest action or custom capability name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// The longest `filter`, in bytes.
pub const MAX_FILTER_LEN: usize = 512;
/// The longest `constraints` object, in bytes of compact JSON. Capabilities
/// are copied into every token, which must stay small.
pub const MAX_CONSTRAINTS_LEN: usize = 1024;

/// What kind of operation a capability allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapabilityType {
    /// Read resources.
    Read,
    /// Create or change resources.
    Write,
    /// Delete resources.
    Delete,
    /// Move money; may carry a per-transaction `maxAmount` in a `currency`.
    Transact,
    /// An operation the service provider defines, identified by `name`.
    Custom,
}

impl CapabilityType {
    /// Every type, in declaration order.
    pub const ALL: [CapabilityType; 5] = [
        Self::Read,
        Self::Write,
        Self::Delete,
        Self::Transact,
        Self::Custom,
    ];

    /// The short form people write: `"read"`, `"transact"`, …
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
            Self::Transact => "transact",
            Self::Custom => "custom",
        }
    }

    /// The RFC 9396 `type`: `"agentauth:read"`, `"agentauth:transact"`, …
    pub const fn detail_type(self) -> &'static str {
        match self {
            Self::Read => "agentauth:read",
            Self::Write => "agentauth:write",
            Self::Delete => "agentauth:delete",
            Self::Transact => "agentauth:transact",
            Self::Custom => "agentauth:custom",
        }
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for CapabilityType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CapabilityType".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // A plain string enum, which Kubernetes structural schemas take as is.
        let names: Vec<&str> = CapabilityType::ALL.iter().map(|t| t.as_str()).collect();
        schemars::json_schema!({
            "type": "string",
            "enum": names,
            "description": "The operation: read, write, delete, transact (moving money) or custom \
                            (provider-defined, named by `name`).",
        })
    }
}

impl fmt::Display for CapabilityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`CapabilityType`] spelled as an RFC 9396 authorization details `type`,
/// `agentauth:<type>`. Other `type`s (other authorization servers' details)
/// do not deserialize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DetailType(pub CapabilityType);

impl Serialize for DetailType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0.detail_type())
    }
}

impl<'de> Deserialize<'de> for DetailType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        CapabilityType::ALL
            .into_iter()
            .find(|t| t.detail_type() == s)
            .map(DetailType)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "authorization detail type {} is not agentauth's",
                    brief(&s)
                ))
            })
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for DetailType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DetailType".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = CapabilityType::ALL
            .iter()
            .map(|t| t.detail_type())
            .collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

/// One thing a grant allows: an operation type on the resources a pattern
/// matches, optionally narrowed.
///
/// `K` is how `type` is spelled: [`CapabilityType`] (`transact`, the default,
/// in CapabilityGrant specs) or [`DetailType`] (`agentauth:transact`, as an
/// [`AuthorizationDetail`] in tokens). Read a capability from outside with
/// serde, then call [`Capability::validate`]: the field types check
/// themselves, `validate` checks how they fit together. From a detail:
/// `let c: Capability = detail.try_into()?` (a bare `Capability::try_from`
/// cannot pick `K`; write `<Capability>::try_from`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(
        description = "One thing the grant allows: an operation type on the resources a pattern \
                            matches, optionally narrowed by actions, a filter, constraints or, for \
                            transact, a per-transaction maxAmount."
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capability<K = CapabilityType> {
    /// The operation: read, write, delete, transact or custom.
    #[serde(rename = "type")]
    pub kind: K,
    /// For type custom only, and required there: the provider-defined
    /// operation, e.g. "send-email" (letters, digits, - . _ : /).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The resources covered: segments separated by '/', each a literal, '*'
    /// (one segment) or '**' (any number of segments, including none).
    pub resource: ResourcePattern,
    /// The actions allowed, e.g. ["get", "list"]. Omitted: every action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
    /// A provider-defined filter narrowing the resources, passed on in the
    /// token for the service provider to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Provider-defined constraints (any JSON object), passed on in the token
    /// for the service provider to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "constraints_schema"))]
    pub constraints: Option<BTreeMap<String, serde_json::Value>>,
    /// For type transact: the largest amount of one transaction, as a decimal
    /// string, e.g. "50.00". Requires currency. Omitted: no per-capability
    /// limit (the envelope's limits still apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<Decimal>,
    /// For type transact: the ISO 4217 currency of maxAmount, e.g. EUR;
    /// transactions in other currencies are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
}

/// A capability as an RFC 9396 `authorization_details` object, as it appears
/// in access tokens: `{"type": "agentauth:read", "resource": ...}`.
pub type AuthorizationDetail = Capability<DetailType>;

#[cfg(feature = "schema")]
fn constraints_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // Free-form, and structural for Kubernetes: an object whose fields the
    // apiserver keeps instead of pruning.
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "Provider-defined constraints (any JSON object), passed on in the token.",
    })
}

impl<K> Capability<K> {
    /// The same content with `type` spelled differently.
    pub fn with_kind<L>(self, kind: L) -> Capability<L> {
        let Capability {
            kind: _,
            name,
            resource,
            actions,
            filter,
            constraints,
            max_amount,
            currency,
        } = self;
        Capability {
            kind,
            name,
            resource,
            actions,
            filter,
            constraints,
            max_amount,
            currency,
        }
    }
}

impl From<Capability> for AuthorizationDetail {
    fn from(c: Capability) -> Self {
        let kind = DetailType(c.kind);
        c.with_kind(kind)
    }
}

impl From<&Capability> for AuthorizationDetail {
    fn from(c: &Capability) -> Self {
        c.clone().into()
    }
}

impl TryFrom<AuthorizationDetail> for Capability {
    type Error = Error;

    /// Converts and validates: a detail read from a token gets the same
    /// checks as a capability read from a grant.
    fn try_from(d: AuthorizationDetail) -> Result<Capability> {
        let kind = d.kind.0;
        let c = d.with_kind(kind);
        c.validate()?;
        Ok(c)
    }
}

impl Capability {
    /// Checks what the field types cannot: `name` exactly for custom,
    /// `maxAmount` and `currency` only for transact and only together (the
    /// amount fitting the currency's decimals), non-empty distinct actions,
    /// and the size limits of this module. Fails with `capability_invalid`
    /// (`amount_invalid` for a bad `maxAmount`).
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(Error::new(ErrorCode::CapabilityInvalid, m));
        let t = self.kind;
        match (&self.name, t) {
            (None, CapabilityType::Custom) => {
                return invalid("a custom capability needs a name".into());
            }
            (Some(name), CapabilityType::Custom) => check_word("name", name)?,
            (Some(_), _) => {
                return invalid(format!("only custom capabilities have a name, not {t}"));
            }
            (None, _) => {}
        }
        if let Some(actions) = &self.actions {
            if actions.is_empty() || actions.len() > MAX_ACTIONS {
                return invalid(format!(
                    "actions lists 1 to {MAX_ACTIONS} actions (omit it to allow every action), not {}",
                    actions.len()
                ));
            }
            for (i, action) in actions.iter().enumerate() {
                check_word("action", action)?;
                if actions[..i].contains(action) {
                    return invalid(format!("action {} is listed twice", brief(action)));
                }
            }
        }
        if let Some(filter) = &self.filter
            && (filter.is_empty()
                || filter.len() > MAX_FILTER_LEN
                || filter.chars().any(char::is_control))
        {
            return invalid(format!(
                "filter has 1 to {MAX_FILTER_LEN} bytes and no control characters"
            ));
        }
        if let Some(constraints) = &self.constraints {
            let len = serde_json::to_vec(constraints).map_or(usize::MAX, |v| v.len());
            if len > MAX_CONSTRAINTS_LEN {
                return invalid(format!(
                    "constraints take {len} bytes of JSON; at most {MAX_CONSTRAINTS_LEN}"
                ));
            }
        }
        match (&self.max_amount, &self.currency, t) {
            (None, None, _) => Ok(()),
            (Some(max), Some(currency), CapabilityType::Transact) => {
                max.to_minor(currency).map(|_| ())
            }
            (_, _, CapabilityType::Transact) => {
                invalid("maxAmount and currency go together: give both or neither".into())
            }
            _ => invalid(format!(
                "only transact capabilities have maxAmount or currency, not {t}"
            )),
        }
    }

    /// Validates a grant's list: 1 to [`MAX_CAPABILITIES`] capabilities, each
    /// valid; the message names the first bad one (`capabilities[2]: …`).
    pub fn validate_all(capabilities: &[Capability]) -> Result<()> {
        if capabilities.is_empty() || capabilities.len() > MAX_CAPABILITIES {
            return Err(Error::new(
                ErrorCode::CapabilityInvalid,
                format!(
                    "a grant lists 1 to {MAX_CAPABILITIES} capabilities, not {}",
                    capabilities.len()
                ),
            ));
        }
        for (i, c) in capabilities.iter().enumerate() {
            c.validate()
                .map_err(|e| Error::new(e.code, format!("capabilities[{i}]: {}", e.message)))?;
        }
        Ok(())
    }
}

/// Actions and custom names: 1 to [`MAX_NAME_LEN`] of `A-Z a-z 0-9 - . _ : /`,
/// so they read the same in YAML, tokens, logs and metrics labels.
fn check_word(what: &str, s: &str) -> Result<()> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-._:/".contains(&b);
    if s.is_empty() || s.len() > MAX_NAME_LEN || !s.bytes().all(ok) {
        return Err(Error::new(
            ErrorCode::CapabilityInvalid,
            format!(
                "{what} {} must be 1 to {MAX_NAME_LEN} letters, digits or - . _ : /",
                brief(s)
            ),
        ));
    }
    Ok(())
}

/// Shows an outside string in a message: quoted and escaped, cut to 64
/// characters, so a hostile input cannot flood logs or forge lines.
pub(crate) fn brief(s: &str) -> String {
    const SHOWN: usize = 64;
    match s.char_indices().nth(SHOWN) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &s[..cut], s.len()),
    }
}
