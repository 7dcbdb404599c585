//! What an agent asks for, in the shape of the issue's examples:
//! `Capability::Read { resource, filter }`, or `Capability::read("calendars/**")`.
//!
//! Each variant becomes core's [`agentauth_core::capability::Capability`]
//! (the CapabilityGrant spec's form), validated by core's rules before
//! anything is sent; [`Capability::Detailed`] takes core's type as is for
//! what the short forms cannot say (`actions`, `constraints`).

use agentauth_core::capability::Capability as CoreCapability;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// One thing a grant allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Read resources matching `resource` (`*` / `**` segment globs).
    Read {
        /// The resource pattern.
        resource: String,
        /// A provider-defined filter, passed on in the token.
        filter: Option<String>,
    },
    /// Create or change resources.
    Write {
        /// The resource pattern.
        resource: String,
        /// A provider-defined filter.
        filter: Option<String>,
    },
    /// Delete resources.
    Delete {
        /// The resource pattern.
        resource: String,
        /// A provider-defined filter.
        filter: Option<String>,
    },
    /// Move money, up to `max_amount` (a decimal string) in `currency` per
    /// transaction when given.
    Transact {
        /// The resource pattern.
        resource: String,
        /// The per-transaction limit, e.g. `"25.00"`.
        max_amount: Option<String>,
        /// The ISO 4217 currency of the limit.
        currency: Option<String>,
    },
    /// A provider-defined operation `name`.
    Custom {
        /// The operation's name.
        name: String,
        /// The resource pattern.
        resource: String,
    },
    /// Core's capability, with every field.
    Detailed(CoreCapability),
}

impl Capability {
    /// `read` on `resource`.
    pub fn read(resource: impl Into<String>) -> Self {
        Capability::Read {
            resource: resource.into(),
            filter: None,
        }
    }

    /// `write` on `resource`.
    pub fn write(resource: impl Into<String>) -> Self {
        Capability::Write {
            resource: resource.into(),
            filter: None,
        }
    }

    /// `delete` on `resource`.
    pub fn delete(resource: impl Into<String>) -> Self {
        Capability::Delete {
            resource: resource.into(),
            filter: None,
        }
    }

    /// `transact` on `resource`, optionally capped per transaction.
    pub fn transact(resource: impl Into<String>, max: Option<(&str, &str)>) -> Self {
        Capability::Transact {
            resource: resource.into(),
            max_amount: max.map(|(amount, _)| amount.to_owned()),
            currency: max.map(|(_, currency)| currency.to_owned()),
        }
    }

    /// The custom operation `name` on `resource`.
    pub fn custom(name: impl Into<String>, resource: impl Into<String>) -> Self {
        Capability::Custom {
            name: name.into(),
            resource: resource.into(),
        }
    }

    /// Core's form, validated (`capability_invalid`, `resource_pattern_invalid`, …).
    pub fn to_core(&self) -> Result<CoreCapability> {
        let value = match self {
            Capability::Detailed(c) => {
                c.validate().map_err(invalid)?;
                return Ok(c.clone());
            }
            Capability::Read { resource, filter } => with_filter("read", resource, filter),
            Capability::Write { resource, filter } => with_filter("write", resource, filter),
            Capability::Delete { resource, filter } => with_filter("delete", resource, filter),
            Capability::Transact {
                resource,
                max_amount,
                currency,
            } => {
                let mut v = Map::new();
                v.insert("type".into(), json!("transact"));
                v.insert("resource".into(), json!(resource));
                if let Some(amount) = max_amount {
                    v.insert("maxAmount".into(), json!(amount));
                }
                if let Some(currency) = currency {
                    v.insert("currency".into(), json!(currency));
                }
                Value::Object(v)
            }
            Capability::Custom { name, resource } => {
                json!({"type": "custom", "name": name, "resource": resource})
            }
        };
        let capability: CoreCapability = serde_json::from_value(value)
            .map_err(|e| Error::Config(format!("invalid capability: {e}")))?;
        capability.validate().map_err(invalid)?;
        Ok(capability)
    }
}

fn with_filter(kind: &str, resource: &str, filter: &Option<String>) -> Value {
    match filter {
        Some(filter) => json!({"type": kind, "resource": resource, "filter": filter}),
        None => json!({"type": kind, "resource": resource}),
    }
}

fn invalid(e: agentauth_core::Error) -> Error {
    Error::Config(format!("invalid capability: {} ({})", e.message, e.code))
}

impl From<CoreCapability> for Capability {
    fn from(c: CoreCapability) -> Self {
        Capability::Detailed(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentauth_core::capability::CapabilityType;

    #[test]
    fn short_forms_become_core_capabilities() {
        let read = Capability::Read {
            resource: "calendar".into(),
            filter: Some("owner=me".into()),
        }
        .to_core()
        .unwrap();
        assert_eq!(read.kind, CapabilityType::Read);
        assert_eq!(read.filter.as_deref(), Some("owner=me"));
        let pay = Capability::transact("orders/**", Some(("25.00", "EUR")))
            .to_core()
            .unwrap();
        assert_eq!(pay.kind, CapabilityType::Transact);
        assert!(pay.max_amount.is_some() && pay.currency.is_some());
        let custom = Capability::custom("export", "reports/*").to_core().unwrap();
        assert_eq!(custom.name.as_deref(), Some("export"));
        let detailed = Capability::from(read.clone()).to_core().unwrap();
        assert_eq!(detailed, read);
    }

    #[test]
    fn invalid_capabilities_are_refused_before_sending() {
        assert!(Capability::read("").to_core().is_err());
        assert!(
            Capability::transact("o", Some(("1.5e3", "EUR")))
                .to_core()
                .is_err()
        );
        assert!(Capability::custom("", "r").to_core().is_err());
    }
}
