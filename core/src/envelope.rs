//! Behavioral envelopes: the limits every grant referring to one obeys.
//! This module holds the transaction (money) limits; rate limits are in
//! [`gcra`](crate::gcra) and time windows in [`window`](crate::window).
//!
//! A limit is written as decimal strings (`maxPerTransaction: "50.00"`) and
//! applied in integer minor units. [`check_transaction`] is the pure rule;
//! the running daily sum lives in shared state (DESIGN §7), where a Lua
//! script applies the same rule atomically with the add:
//!
//! ```text
//! allow  ⇔  currency = limits.currency
//!         ∧ amount ≤ maxPerTransaction                   (when set)
//!         ∧ spent_today + amount ≤ maxPerDay              (when set; the sum
//!                                                           must not overflow u64)
//! on allow: spent_today ← spent_today + amount            (returned)
//! on deny:  spent_today unchanged                         (a refusal costs nothing)
//! ```
//!
//! Checks run in that order, so a request failing several reports the first:
//! `currency_mismatch`, then `amount_over_limit`, then `daily_amount_over_limit`.
//! The sum overflowing `u64` is refused as over the daily limit even when no
//! daily limit is set: no real total reaches 1.8 × 10¹⁹ minor units, and the
//! stored sum must stay exact.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
use crate::money::{Currency, Decimal, format_amount};

/// The money limits of an envelope (`spec.transactions`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransactionLimits {
    /// The ISO 4217 currency of the limits, e.g. EUR; transactions in any
    /// other currency are refused.
    pub currency: Currency,
    /// The largest single transaction, as a decimal string, e.g. "50.00".
    /// Omitted: no per-transaction limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_transaction: Option<Decimal>,
    /// The most all transactions of one UTC day may add up to, as a decimal
    /// string, e.g. "200.00". Omitted: no daily limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_day: Option<Decimal>,
}

/// [`TransactionLimits`] in minor units, for the hot path and for the state
/// store's script arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MinorLimits {
    /// The currency of both limits.
    pub currency: Currency,
    /// Per-transaction limit in minor units, if any.
    pub max_per_transaction: Option<u64>,
    /// Daily limit in minor units, if any.
    pub max_per_day: Option<u64>,
}

impl TransactionLimits {
    /// Checks that each limit fits the currency's decimals (`amount_invalid`,
    /// naming the field) and that a per-transaction limit is not above the
    /// daily one (`envelope_invalid`: it could never be reached).
    pub fn validate(&self) -> Result<()> {
        self.to_minor().map(|_| ())
    }

    /// Validates and converts to minor units.
    pub fn to_minor(&self) -> Result<MinorLimits> {
        let minor = |field: &str, d: &Option<Decimal>| {
            d.as_ref()
                .map(|d| d.to_minor(&self.currency))
                .transpose()
                .map_err(|e| Error::new(e.code, format!("transactions.{field}: {}", e.message)))
        };
        let limits = MinorLimits {
            currency: self.currency,
            max_per_transaction: minor("maxPerTransaction", &self.max_per_transaction)?,
            max_per_day: minor("maxPerDay", &self.max_per_day)?,
        };
        if let (Some(tx), Some(day)) = (limits.max_per_transaction, limits.max_per_day)
            && tx > day
        {
            return Err(Error::new(
                ErrorCode::EnvelopeInvalid,
                "transactions.maxPerTransaction is above maxPerDay, so it could never be reached",
            ));
        }
        Ok(limits)
    }
}

/// Applies `limits` to one transaction of `amount_minor` in `currency` when
/// `spent_today_minor` was already spent today; returns the new daily total.
/// The rule and the order of checks are in the [module docs](self). Invalid
/// limits refuse every transaction (fail closed) with their validation error.
pub fn check_transaction(
    limits: &TransactionLimits,
    amount_minor: u64,
    currency: &Currency,
    spent_today_minor: u64,
) -> Result<u64> {
    check_transaction_minor(
        &limits.to_minor()?,
        amount_minor,
        currency,
        spent_today_minor,
    )
}

/// [`check_transaction`] with limits already in minor units.
pub fn check_transaction_minor(
    limits: &MinorLimits,
    amount_minor: u64,
    currency: &Currency,
    spent_today_minor: u64,
) -> Result<u64> {
    let c = limits.currency;
    if *currency != c {
        return Err(Error::new(
            ErrorCode::CurrencyMismatch,
            format!("a transaction in {currency} is refused: the envelope's limits are in {c}"),
        ));
    }
    let show = |minor: u64| format_amount(minor, &c);
    if let Some(max) = limits.max_per_transaction
        && amount_minor > max
    {
        return Err(Error::new(
            ErrorCode::AmountOverLimit,
            format!(
                "{} {c} exceeds the envelope's per-transaction limit of {} {c}",
                show(amount_minor),
                show(max)
            ),
        ));
    }
    let total = spent_today_minor.checked_add(amount_minor);
    match (total, limits.max_per_day) {
        (Some(total), None) => Ok(total),
        (Some(total), Some(max)) if total <= max => Ok(total),
        (_, max) => Err(Error::new(
            ErrorCode::DailyAmountOverLimit,
            format!(
                "{} {c} after {} {c} spent today exceeds the envelope's daily limit of {}",
                show(amount_minor),
                show(spent_today_minor),
                max.map_or_else(
                    || "u64 minor units".to_owned(),
                    |m| format!("{} {c}", show(m))
                ),
            ),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits(tx: Option<&str>, day: Option<&str>) -> TransactionLimits {
        TransactionLimits {
            currency: Currency::EUR,
            max_per_transaction: tx.map(|s| Decimal::new(s).unwrap()),
            max_per_day: day.map(|s| Decimal::new(s).unwrap()),
        }
    }

    #[test]
    fn serde_is_camel_case_strings() {
        let l: TransactionLimits = serde_json::from_str(
            r#"{"currency":"EUR","maxPerTransaction":"50.00","maxPerDay":"200"}"#,
        )
        .unwrap();
        assert_eq!(l, limits(Some("50.00"), Some("200")));
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"currency":"EUR","maxPerTransaction":"50.00","maxPerDay":"200"}"#
        );
        assert!(
            serde_json::from_str::<TransactionLimits>(r#"{"currency":"EUR","maxPerDay":200}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<TransactionLimits>(r#"{"currency":"EUR","maxperday":"1"}"#)
                .is_err()
        );
        let minor = l.to_minor().unwrap();
        assert_eq!(
            (minor.max_per_transaction, minor.max_per_day),
            (Some(5000), Some(20000))
        );
    }

    #[test]
    fn validate_table() {
        assert!(limits(None, None).validate().is_ok());
        assert!(limits(Some("50"), Some("50")).validate().is_ok());
        assert!(limits(Some("0"), None).validate().is_ok());
        let err = limits(Some("1.234"), None).validate().unwrap_err();
        assert_eq!(err.code, ErrorCode::AmountInvalid);
        assert!(
            err.message.starts_with("transactions.maxPerTransaction:"),
            "{err}"
        );
        let err = limits(None, Some("0.001")).validate().unwrap_err();
        assert!(err.message.starts_with("transactions.maxPerDay:"), "{err}");
        assert_eq!(
            limits(Some("51"), Some("50")).validate().unwrap_err().code,
            ErrorCode::EnvelopeInvalid
        );
    }

    #[test]
    fn check_transaction_table() {
        use ErrorCode::*;
        let l = limits(Some("50.00"), Some("100.00"));
        let eur = Currency::EUR;
        let cases: &[(u64, Currency, u64, std::result::Result<u64, ErrorCode>)] = &[
            (5000, eur, 0, Ok(5000)),
            (5000, eur, 5000, Ok(10000)),
            (0, eur, 10000, Ok(10000)),
            (5001, eur, 0, Err(AmountOverLimit)),
            (1, eur, 10000, Err(DailyAmountOverLimit)),
            (5000, eur, 5001, Err(DailyAmountOverLimit)),
            (1, eur, u64::MAX, Err(DailyAmountOverLimit)),
            (100, Currency::USD, 0, Err(CurrencyMismatch)),
            // The currency is checked first, then the single amount, then the day.
            (9999, Currency::USD, 99999, Err(CurrencyMismatch)),
            (9999, eur, 99999, Err(AmountOverLimit)),
        ];
        for &(amount, currency, spent, want) in cases {
            let got = check_transaction(&l, amount, &currency, spent).map_err(|e| e.code);
            assert_eq!(got, want, "{amount} {currency} after {spent}");
        }
    }

    #[test]
    fn no_limits_only_guard_currency_and_overflow() {
        let l = limits(None, None);
        assert_eq!(
            check_transaction(&l, u64::MAX, &Currency::EUR, 0),
            Ok(u64::MAX)
        );
        let err = check_transaction(&l, 1, &Currency::EUR, u64::MAX).unwrap_err();
        assert_eq!(err.code, ErrorCode::DailyAmountOverLimit);
        assert_eq!(
            check_transaction(&l, 1, &Currency::JPY, 0)
                .unwrap_err()
                .code,
            ErrorCode::CurrencyMismatch
        );
    }

    #[test]
    fn invalid_limits_fail_closed() {
        let l = limits(Some("0.001"), None);
        assert_eq!(
            check_transaction(&l, 0, &Currency::EUR, 0)
                .unwrap_err()
                .code,
            ErrorCode::AmountInvalid
        );
    }

    #[test]
    fn messages_name_amounts_in_decimals() {
        let err =
            check_transaction(&limits(Some("50.00"), None), 5001, &Currency::EUR, 0).unwrap_err();
        assert_eq!(
            err.message,
            "50.01 EUR exceeds the envelope's per-transaction limit of 50.00 EUR"
        );
    }
}
