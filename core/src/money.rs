//! Money: ISO 4217 currencies and decimal amounts held as integer minor units.
//!
//! Amounts cross every boundary — CRD YAML (`maxPerTransaction: "50.00"`), the
//! agent API, tokens, verifier requests — as decimal **strings**, and are
//! compared only as integer **minor units** (`u64` cents, yen, fils, …) of
//! their [`Currency`]. Never floats: `0.1 + 0.2 > 0.3` in binary floating
//! point, and a limit must not depend on rounding.
//!
//! ```text
//!  "50.00" ──parse_amount(EUR, exponent 2)──▶ 5000 ──compare / add──▶ 5000
//!  "50.00" ◀──────────format_amount────────── 5000
//! ```
//!
//! # The decimal syntax
//!
//! `^(0|[1-9][0-9]*)(\.[0-9]+)?$`, at most [`MAX_DECIMAL_LEN`] characters,
//! and at most the currency's exponent of decimals (`"1.234"` EUR and `"1.0"`
//! JPY are refused, `"1.5"` EUR is 150 cents). Everything else is refused
//! with `amount_invalid`: JSON numbers (the serde form is a string), signs,
//! exponents (`1e3`), spaces, `".5"`, `"5."`, non-ASCII digits, values that
//! overflow `u64` minor units, and leading zeros (`"007"`; `"0.50"` is
//! fine): one amount should have one spelling a person reads the same way.
//! [`format_amount`] writes the canonical form, exactly `exponent` decimals.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};

mod currencies;

/// Decimal strings longer than this are refused before parsing
/// (`input_too_large`). `u64::MAX` minor units of a 4-decimal currency is 21
/// characters, so 32 leaves room for any legitimate value.
pub const MAX_DECIMAL_LEN: usize = 32;

/// The regular expression every decimal amount matches (in schemas too).
pub const DECIMAL_PATTERN: &str = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$";

/// An active ISO 4217 currency and its minor-unit exponent.
///
/// Only codes from the built-in table exist, so holding a `Currency` proves
/// the code is known. Codes are upper case (`"eur"` is refused). The table is
/// ISO 4217 List One (2025) without the codes whose minor unit is "N.A."
/// (precious metals, XDR, XSU, XUA, bond units, XTS, XXX): they have no
/// decimal form, so no limit can be written in them. ANG and BGN, being
/// replaced by XCG and EUR in 2025–2026, stay so grants written in them keep
/// loading — removing a code breaks stored resources and needs a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

impl Currency {
    /// The euro.
    pub const EUR: Currency = Currency {
        code: "EUR",
        exponent: 2,
    };
    /// The US dollar.
    pub const USD: Currency = Currency {
        code: "USD",
        exponent: 2,
    };
    /// The Japanese yen (no minor unit).
    pub const JPY: Currency = Currency {
        code: "JPY",
        exponent: 0,
    };

    /// Looks up an alphabetic code; unknown codes fail with `currency_unknown`.
    pub fn from_code(code: &str) -> Result<Currency> {
        currencies::TABLE
            .binary_search_by(|&(c, _)| c.cmp(code))
            .ok()
            .and_then(|i| currencies::TABLE.get(i))
            .map(|&(code, exponent)| Currency { code, exponent })
            .ok_or_else(|| {
                // Echo only what could be a code, never a long or odd input.
                let shown = if code.len() <= 8 {
                    format!("{code:?}")
                } else {
                    format!("of {} bytes", code.len())
                };
                Error::new(
                    ErrorCode::CurrencyUnknown,
                    format!("currency {shown} is not an active ISO 4217 code"),
                )
            })
    }

    /// The three-letter code, e.g. `"EUR"`.
    pub const fn code(self) -> &'static str {
        self.code
    }

    /// Decimals of the minor unit: 2 for EUR, 0 for JPY, 3 for KWD, 4 for CLF.
    pub const fn exponent(self) -> u8 {
        self.exponent
    }

    /// Every currency of the table, in code order.
    pub fn all() -> impl ExactSizeIterator<Item = Currency> {
        currencies::TABLE
            .iter()
            .map(|&(code, exponent)| Currency { code, exponent })
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl FromStr for Currency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Currency> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Currency::from_code(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Currency {
    fn schema_name() -> Cow<'static, str> {
        "Currency".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "An active ISO 4217 currency code in upper case, e.g. \"EUR\".",
        })
    }
}

/// Converts a decimal string into integer minor units of `currency`.
///
/// `"50.00"` EUR is 5000, `"1.5"` EUR is 150, `"500"` JPY is 500. Refuses
/// everything outside the syntax of the [module docs](self): too long with
/// `input_too_large`, the rest with `amount_invalid`.
pub fn parse_amount(decimal: &str, currency: &Currency) -> Result<u64> {
    let (int, frac) = split_decimal(decimal)?;
    let exponent = usize::from(currency.exponent);
    if frac.len() > exponent {
        let shown = brief(decimal);
        return Err(Error::new(
            ErrorCode::AmountInvalid,
            format!(
                "amount {shown} has {} decimals; {} allows at most {exponent}",
                frac.len(),
                currency.code
            ),
        ));
    }
    let overflow = || {
        Error::new(
            ErrorCode::AmountInvalid,
            format!(
                "amount {} is too large for {}",
                brief(decimal),
                currency.code
            ),
        )
    };
    let mut minor: u64 = 0;
    for &digit in int.iter().chain(frac) {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(digit - b'0')))
            .ok_or_else(overflow)?;
    }
    for _ in frac.len()..exponent {
        minor = minor.checked_mul(10).ok_or_else(overflow)?;
    }
    Ok(minor)
}

/// Writes minor units as the canonical decimal: exactly `exponent` decimals
/// (`5000` EUR is `"50.00"`, `5` KWD is `"0.005"`, `500` JPY is `"500"`).
/// [`parse_amount`] reads it back to the same value.
pub fn format_amount(minor: u64, currency: &Currency) -> String {
    let exponent = usize::from(currency.exponent);
    let digits = minor.to_string();
    if exponent == 0 {
        return digits;
    }
    // Left-pad so that there is at least one digit before the point.
    let padded = format!("{digits:0>width$}", width = exponent + 1);
    let (int, frac) = padded.split_at(padded.len() - exponent);
    format!("{int}.{frac}")
}

/// Checks the currency-independent syntax; returns the integer and fraction
/// digits (the fraction empty when there is no point).
fn split_decimal(decimal: &str) -> Result<(&[u8], &[u8])> {
    if decimal.len() > MAX_DECIMAL_LEN {
        return Err(Error::new(
            ErrorCode::InputTooLarge,
            format!(
                "an amount has at most {MAX_DECIMAL_LEN} characters, not {}",
                decimal.len()
            ),
        ));
    }
    let invalid = || {
        Error::new(
            ErrorCode::AmountInvalid,
            format!(
                "amount {} is not a decimal string like \"12.50\" (digits, an optional point and decimals; \
                 no sign, exponent, spaces or leading zeros)",
                brief(decimal)
            ),
        )
    };
    let bytes = decimal.as_bytes();
    let (int, frac) = match bytes.iter().position(|&b| b == b'.') {
        Some(dot) => (&bytes[..dot], Some(&bytes[dot + 1..])),
        None => (bytes, None),
    };
    let all_digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    if !all_digits(int) || (int.len() > 1 && int[0] == b'0') {
        return Err(invalid());
    }
    match frac {
        None => Ok((int, &[])),
        Some(frac) if all_digits(frac) => Ok((int, frac)),
        Some(_) => Err(invalid()),
    }
}

/// Shows an input in a message: quoted and escaped, cut short if long.
fn brief(s: &str) -> String {
    if s.len() <= MAX_DECIMAL_LEN {
        format!("{s:?}")
    } else {
        format!("of {} bytes", s.len())
    }
}

/// A non-negative decimal amount as written, e.g. `"50.00"`, checked for the
/// syntax of the [module docs](self) but not yet for a currency's exponent
/// (that needs the currency: [`Decimal::to_minor`]).
///
/// It stays a string because that is what a person wrote and what is
/// signed; comparisons go through minor units.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decimal(String);

impl Decimal {
    /// Checks the syntax (`amount_invalid`, `input_too_large`).
    pub fn new(decimal: impl Into<String>) -> Result<Decimal> {
        let decimal = decimal.into();
        split_decimal(&decimal)?;
        Ok(Decimal(decimal))
    }

    /// The canonical decimal for `minor` units of `currency`.
    pub fn from_minor(minor: u64, currency: &Currency) -> Decimal {
        Decimal(format_amount(minor, currency))
    }

    /// The value in minor units of `currency`; refuses more decimals than the
    /// currency has and overflow (`amount_invalid`).
    pub fn to_minor(&self, currency: &Currency) -> Result<u64> {
        parse_amount(&self.0, currency)
    }

    /// The decimal as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Decimal {
    type Err = Error;
    fn from_str(s: &str) -> Result<Decimal> {
        Decimal::new(s)
    }
}

impl Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // A JSON number fails here as a type error: amounts are strings.
        let s = String::deserialize(d)?;
        Decimal::new(s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Decimal {
    fn schema_name() -> Cow<'static, str> {
        "Decimal".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": DECIMAL_PATTERN,
            "maxLength": MAX_DECIMAL_LEN,
            "description": "A non-negative decimal amount as a string, e.g. \"50.00\"; \
                            at most as many decimals as the currency has.",
        })
    }
}

/// An amount with its currency, the form limits take in resources:
/// `{amount: "50.00", currency: EUR}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Money {
    /// The amount as a decimal string, e.g. `"50.00"`.
    pub amount: Decimal,
    /// The ISO 4217 currency code, e.g. `EUR`.
    pub currency: Currency,
}

impl Money {
    /// `minor` units of `currency`, written canonically.
    pub fn from_minor(minor: u64, currency: Currency) -> Money {
        Money {
            amount: Decimal::from_minor(minor, &currency),
            currency,
        }
    }

    /// The amount in minor units; refuses more decimals than the currency has.
    pub fn minor(&self) -> Result<u64> {
        self.amount.to_minor(&self.currency)
    }

    /// Checks that the amount fits the currency.
    pub fn validate(&self) -> Result<()> {
        self.minor().map(|_| ())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests;
