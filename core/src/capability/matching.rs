//! The two questions asked of capabilities: does a grant permit this request
//! ([`permits`], per verification, hot), and is one grant an attenuation of
//! another ([`is_subset`], when a sub-grant is requested).

use serde::{Deserialize, Serialize};

use super::{Capability, CapabilityType, Resource, brief};
use crate::error::{Error, ErrorCode, Result};
use crate::money::{Currency, Decimal, format_amount, parse_amount};

/// What a service provider is about to do, as it tells the verifier
/// (DESIGN §5: `action: {type, resource, amount?, currency?}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestedAction {
    /// The operation type: read, write, delete, transact or custom.
    #[serde(rename = "type")]
    pub kind: CapabilityType,
    /// The concrete resource, e.g. "orders/eu/42" (no wildcards).
    pub resource: String,
    /// The action, e.g. "get"; needed when the capability lists actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// For transact, required: the amount as a decimal string, e.g. "12.50".
    /// Kept as the raw string so a malformed amount is a decision
    /// (amount_invalid), not a malformed request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(pattern(crate::money::DECIMAL_PATTERN)))]
    pub amount: Option<String>,
    /// For transact, required: the ISO 4217 currency of the amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// For custom, required: the provider-defined operation name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why the closest capability refused, best first: a denial says
/// `amount_over_limit` only if some capability would have allowed the
/// request but for the amount, `currency_mismatch` only if one would have
/// but for the currency.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Near {
    Nothing,
    Currency(Currency),
    /// The largest limit that was too small, in minor units of the currency.
    Amount(u64, Currency),
}

/// Decides whether `granted` covers `requested`: some capability of the same
/// type (for custom, the same name) whose pattern matches the resource,
/// whose `actions` (if listed) contain the action, and — for transact —
/// whose currency is the request's and whose `maxAmount` is at least the
/// amount, compared in minor units. A transact capability without
/// `maxAmount` and `currency` sets no limit of its own: any amount in any
/// currency (the envelope's transaction limits still apply).
///
/// A request without an action is refused by capabilities that list
/// actions. Denials: `capability_not_granted`; `amount_over_limit` or
/// `currency_mismatch` when that was the only obstacle; `amount_invalid` for
/// a missing or malformed amount or currency on transact (or one on any other
/// type); `resource_pattern_invalid` / `input_too_large` for a resource that
/// is not concrete. Capabilities are trusted to be validated; one that is
/// not (a `maxAmount` without its currency) permits nothing.
///
/// Allocates only to write a denial message.
pub fn permits(granted: &[Capability], requested: &RequestedAction) -> Result<()> {
    let resource = Resource::parse(&requested.resource)?;
    let amount = requested_amount(requested)?;
    let mut near = Near::Nothing;
    for cap in granted {
        if cap.kind != requested.kind
            || cap.name.as_deref() != requested.name.as_deref()
            || !action_allowed(cap.actions.as_deref(), requested.action.as_deref())
            || !cap.resource.matches(&resource)
        {
            continue;
        }
        let Some((minor, currency)) = amount else {
            return Ok(());
        };
        match (&cap.max_amount, cap.currency) {
            (None, None) => return Ok(()),
            (Some(max), Some(cap_currency)) if cap_currency == currency => {
                match max.to_minor(&cap_currency) {
                    Ok(limit) if minor <= limit => return Ok(()),
                    Ok(limit) => near = near.max(Near::Amount(limit, currency)),
                    Err(_) => {}
                }
            }
            (Some(_), Some(cap_currency)) => near = near.max(Near::Currency(cap_currency)),
            _ => {}
        }
    }
    Err(denial(requested, amount, near))
}

fn action_allowed(listed: Option<&[String]>, requested: Option<&str>) -> bool {
    match (listed, requested) {
        (None, _) => true,
        (Some(listed), Some(action)) => listed.iter().any(|a| a == action),
        (Some(_), None) => false,
    }
}

/// The amount of a transact request in minor units, checked; `None` for the
/// other types, which must not carry one.
fn requested_amount(requested: &RequestedAction) -> Result<Option<(u64, Currency)>> {
    let invalid = |m: &str| Err(Error::new(ErrorCode::AmountInvalid, m));
    match (requested.kind, &requested.amount, requested.currency) {
        (CapabilityType::Transact, Some(amount), Some(currency)) => {
            Ok(Some((parse_amount(amount, &currency)?, currency)))
        }
        (CapabilityType::Transact, _, _) => {
            invalid("a transact action needs an amount and a currency")
        }
        (_, None, None) => Ok(None),
        (t, _, _) => Err(Error::new(
            ErrorCode::AmountInvalid,
            format!("a {t} action carries no amount or currency; only transact does"),
        )),
    }
}

fn denial(requested: &RequestedAction, amount: Option<(u64, Currency)>, near: Near) -> Error {
    let mut what = requested.kind.to_string();
    if let Some(name) = &requested.name {
        what = format!("{what} {}", brief(name));
    }
    if let Some(action) = &requested.action {
        what = format!("{what} action {}", brief(action));
    }
    if let Some((minor, currency)) = amount {
        what = format!("{what} of {} {currency}", format_amount(minor, &currency));
    }
    let on = brief(&requested.resource);
    match near {
        Near::Amount(limit, currency) => Error::new(
            ErrorCode::AmountOverLimit,
            format!(
                "{what} on {on} exceeds the granted per-transaction limit of {} {currency}",
                format_amount(limit, &currency)
            ),
        ),
        Near::Currency(granted) => Error::new(
            ErrorCode::CurrencyMismatch,
            format!("{what} on {on} is in the wrong currency: the grant allows {granted}"),
        ),
        Near::Nothing => Error::new(
            ErrorCode::CapabilityNotGranted,
            format!("no granted capability covers {what} on {on}"),
        ),
    }
}

/// Whether `child` is an attenuation of `parent`: every child capability is
/// covered by one parent capability, so that whatever the child permits, the
/// parent permits (an empty child is trivially covered).
///
/// A parent capability covers a child one when they have the same type (for
/// custom the same name), the child's pattern is contained in the parent's
/// ([`ResourcePattern::is_subset_of`](super::ResourcePattern::is_subset_of)),
/// the child's actions are among the parent's (a parent without `actions`
/// allows any; a child without them asks for all, so needs such a parent),
/// and a parent `maxAmount` is matched by a child `maxAmount` no larger in
/// the same currency. `filter` and `constraints` are opaque here, so the
/// rule is conservative: where the parent has one, the child must have the
/// identical one; where it has none, the child may add one (it only narrows).
/// Both lists are trusted to be validated.
pub fn is_subset(child: &[Capability], parent: &[Capability]) -> bool {
    child.iter().all(|c| parent.iter().any(|p| covers(p, c)))
}

fn covers(parent: &Capability, child: &Capability) -> bool {
    parent.kind == child.kind
        && parent.name == child.name
        && match (&parent.actions, &child.actions) {
            (None, _) => true,
            (Some(p), Some(c)) => c.iter().all(|a| p.contains(a)),
            (Some(_), None) => false,
        }
        && within_limit(parent, child)
        && parent
            .filter
            .as_ref()
            .is_none_or(|f| child.filter.as_ref() == Some(f))
        && parent
            .constraints
            .as_ref()
            .is_none_or(|k| child.constraints.as_ref() == Some(k))
        && child.resource.is_subset_of(&parent.resource)
}

fn within_limit(parent: &Capability, child: &Capability) -> bool {
    let minor = |max: &Decimal, currency: &Currency| max.to_minor(currency).ok();
    match (
        &parent.max_amount,
        &parent.currency,
        &child.max_amount,
        &child.currency,
    ) {
        (None, None, _, _) => true,
        (Some(pm), Some(pc), Some(cm), Some(cc)) => {
            pc == cc && matches!((minor(cm, cc), minor(pm, pc)), (Some(c), Some(p)) if c <= p)
        }
        _ => false,
    }
}
