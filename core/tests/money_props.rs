//! Properties of decimal amounts: formatting round-trips for every currency,
//! parsing never panics and agrees with a wide-integer reference, and more
//! decimals than a currency has are always refused.
#![allow(clippy::unwrap_used)]

use agentauth_core::ErrorCode;
use agentauth_core::money::{Currency, Decimal, format_amount, parse_amount};
use proptest::prelude::*;

fn some_currencies() -> [Currency; 5] {
    ["EUR", "JPY", "KWD", "CLF", "USD"].map(|c| Currency::from_code(c).unwrap())
}

/// The value of a syntactically valid decimal in minor units, in `u128` so
/// that overflow of `u64` is visible; `None` for too many decimals.
fn reference(int: &str, frac: &str, exponent: usize) -> Option<u128> {
    if frac.len() > exponent {
        return None;
    }
    let padded = format!("{int}{frac}{}", "0".repeat(exponent - frac.len()));
    Some(padded.parse::<u128>().unwrap())
}

proptest! {
    #[test]
    fn format_then_parse_is_identity_for_every_currency(minor in any::<u64>()) {
        for c in Currency::all() {
            let s = format_amount(minor, &c);
            prop_assert_eq!(parse_amount(&s, &c), Ok(minor), "{} {}", s, c);
            // Canonical: exactly `exponent` decimals, and a valid Decimal.
            let decimals = s.split_once('.').map_or(0, |(_, f)| f.len());
            prop_assert_eq!(decimals, usize::from(c.exponent()));
            prop_assert_eq!(Decimal::new(s.clone()).unwrap().to_minor(&c), Ok(minor));
        }
    }

    #[test]
    fn parse_never_panics(s in any::<String>()) {
        for c in some_currencies() {
            let _ = parse_amount(&s, &c);
        }
        let _ = Decimal::new(s);
    }

    #[test]
    fn parse_never_panics_on_number_like_strings(s in "[0-9.eE+\\- ]{0,40}") {
        for c in some_currencies() {
            if let Ok(m) = parse_amount(&s, &c) {
                // Whatever is accepted is canonical up to trailing zeros.
                prop_assert_eq!(parse_amount(&format_amount(m, &c), &c), Ok(m));
            }
        }
    }

    #[test]
    fn parse_agrees_with_a_wide_reference(int in "0|[1-9][0-9]{0,21}", frac in "[0-9]{0,5}", dot in any::<bool>()) {
        let s = if dot && !frac.is_empty() { format!("{int}.{frac}") } else { int.clone() };
        let frac = if dot { frac.as_str() } else { "" };
        for c in some_currencies() {
            let got = parse_amount(&s, &c);
            match reference(&int, frac, usize::from(c.exponent())) {
                Some(v) if v <= u128::from(u64::MAX) => prop_assert_eq!(got, Ok(v as u64), "{} {}", s, c),
                _ => prop_assert_eq!(got.unwrap_err().code, ErrorCode::AmountInvalid, "{} {}", s, c),
            }
        }
    }

    #[test]
    fn too_many_decimals_are_refused(int in 0u64..1_000_000_000, extra in 1usize..=5, digit in 0u8..=9) {
        for c in Currency::all() {
            // Trailing zeros count too: "1.000" EUR is refused, not rounded.
            let frac: String = std::iter::repeat_n(char::from(b'0' + digit), usize::from(c.exponent()) + extra).collect();
            let err = parse_amount(&format!("{int}.{frac}"), &c).unwrap_err();
            prop_assert_eq!(err.code, ErrorCode::AmountInvalid);
        }
    }

    #[test]
    fn trailing_zeros_within_the_exponent_do_not_change_the_value(minor in any::<u64>()) {
        for c in Currency::all().filter(|c| c.exponent() > 0) {
            let canonical = format_amount(minor, &c);
            let trimmed = canonical.trim_end_matches('0').trim_end_matches('.');
            prop_assert_eq!(parse_amount(trimmed, &c), Ok(minor), "{} {}", trimmed, c);
        }
    }
}
