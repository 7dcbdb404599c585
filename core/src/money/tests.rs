#![allow(clippy::unwrap_used)]

use super::*;

fn cur(code: &str) -> Currency {
    Currency::from_code(code).unwrap()
}

#[test]
fn table_is_sorted_unique_upper_case_codes() {
    for pair in currencies::TABLE.windows(2) {
        assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
    }
    for &(code, exponent) in currencies::TABLE {
        assert!(
            code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()),
            "{code}"
        );
        assert!(exponent <= 4, "{code}");
    }
    assert_eq!(Currency::all().len(), currencies::TABLE.len());
}

#[test]
fn exponents_of_known_currencies() {
    let cases = [
        ("EUR", 2),
        ("USD", 2),
        ("GBP", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("ISK", 0),
        ("CLP", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("JOD", 3),
        ("OMR", 3),
        ("TND", 3),
        ("LYD", 3),
        ("IQD", 3),
        ("CLF", 4),
        ("UYW", 4),
        ("UYI", 0),
        ("XCG", 2),
        ("ZWG", 2),
        ("SLE", 2),
        ("VED", 2),
    ];
    for (code, exponent) in cases {
        assert_eq!(cur(code).exponent(), exponent, "{code}");
        assert_eq!(cur(code).code(), code);
    }
    assert_eq!(Currency::EUR, cur("EUR"));
    assert_eq!(Currency::USD, cur("USD"));
    assert_eq!(Currency::JPY, cur("JPY"));
}

#[test]
fn unknown_and_unlisted_codes_are_refused() {
    // Lower case, withdrawn (HRK, SLL, ZWL), no minor unit (XAU, XDR, XXX, XTS), junk.
    for code in [
        "eur", "Eur", "HRK", "SLL", "ZWL", "XAU", "XDR", "XXX", "XTS", "EU", "EURO", "", " EUR",
        "€",
    ] {
        let err = Currency::from_code(code).unwrap_err();
        assert_eq!(err.code, ErrorCode::CurrencyUnknown, "{code:?}");
    }
    let long = "X".repeat(100);
    assert!(
        !Currency::from_code(&long)
            .unwrap_err()
            .message
            .contains(&long)
    );
}

#[test]
fn currency_serde_is_the_code() {
    assert_eq!(serde_json::to_string(&Currency::EUR).unwrap(), "\"EUR\"");
    assert_eq!(
        serde_json::from_str::<Currency>("\"KWD\"").unwrap(),
        cur("KWD")
    );
    assert!(serde_json::from_str::<Currency>("\"ABC\"").is_err());
    assert!(serde_json::from_str::<Currency>("978").is_err());
}

#[test]
fn accepted_amounts() {
    let (eur, jpy, kwd, clf) = (Currency::EUR, Currency::JPY, cur("KWD"), cur("CLF"));
    let cases: &[(&str, &Currency, u64)] = &[
        ("0", &eur, 0),
        ("0.5", &eur, 50),
        ("0.50", &eur, 50),
        ("0.05", &eur, 5),
        ("1", &eur, 100),
        ("1.5", &eur, 150),
        ("50.00", &eur, 5000),
        ("184467440737095516.15", &eur, u64::MAX),
        ("500", &jpy, 500),
        ("18446744073709551615", &jpy, u64::MAX),
        ("1.234", &kwd, 1234),
        ("0.001", &kwd, 1),
        ("1.0001", &clf, 10001),
    ];
    for &(s, c, minor) in cases {
        assert_eq!(parse_amount(s, c), Ok(minor), "{s} {c}");
    }
}

#[test]
fn refused_amounts() {
    use ErrorCode::{AmountInvalid, InputTooLarge};
    let eur = Currency::EUR;
    let cases: &[(&str, &Currency, ErrorCode)] = &[
        ("", &eur, AmountInvalid),
        ("1e3", &eur, AmountInvalid),
        ("1E3", &eur, AmountInvalid),
        ("-1", &eur, AmountInvalid),
        ("+1", &eur, AmountInvalid),
        (" 1", &eur, AmountInvalid),
        ("1 ", &eur, AmountInvalid),
        ("1\n", &eur, AmountInvalid),
        (".5", &eur, AmountInvalid),
        ("5.", &eur, AmountInvalid),
        (".", &eur, AmountInvalid),
        ("1.2.3", &eur, AmountInvalid),
        ("1,50", &eur, AmountInvalid),
        ("1_000", &eur, AmountInvalid),
        ("007", &eur, AmountInvalid),
        ("00", &eur, AmountInvalid),
        ("00.5", &eur, AmountInvalid),
        ("0x10", &eur, AmountInvalid),
        ("NaN", &eur, AmountInvalid),
        ("inf", &eur, AmountInvalid),
        ("١٢", &eur, AmountInvalid), // Arabic-Indic digits
        ("１", &eur, AmountInvalid), // full-width digit
        ("1.234", &eur, AmountInvalid),
        ("1.0", &Currency::JPY, AmountInvalid),
        ("184467440737095516.16", &eur, AmountInvalid),
        ("18446744073709551616", &Currency::JPY, AmountInvalid),
        ("99999999999999999999999", &Currency::JPY, AmountInvalid),
        ("100000000000000000000000000000000", &eur, InputTooLarge),
    ];
    for &(s, c, code) in cases {
        let err = parse_amount(s, c).unwrap_err();
        assert_eq!(err.code, code, "{s:?} {c}: {err}");
    }
}

#[test]
fn format_is_canonical_and_round_trips() {
    let cases: &[(u64, &str, &str)] = &[
        (0, "EUR", "0.00"),
        (5, "EUR", "0.05"),
        (150, "EUR", "1.50"),
        (5000, "EUR", "50.00"),
        (500, "JPY", "500"),
        (0, "JPY", "0"),
        (5, "KWD", "0.005"),
        (10001, "CLF", "1.0001"),
        (u64::MAX, "EUR", "184467440737095516.15"),
    ];
    for &(minor, code, s) in cases {
        let c = cur(code);
        assert_eq!(format_amount(minor, &c), s);
        assert_eq!(parse_amount(s, &c), Ok(minor));
    }
}

#[test]
fn decimal_checks_syntax_and_serde_is_a_string() {
    assert_eq!(
        Decimal::new("50.00").unwrap().to_minor(&Currency::EUR),
        Ok(5000)
    );
    // Syntax is fine, the exponent is checked against a currency later.
    let d = Decimal::new("1.234").unwrap();
    assert_eq!(
        d.to_minor(&Currency::EUR).unwrap_err().code,
        ErrorCode::AmountInvalid
    );
    assert_eq!(
        Decimal::new("-1").unwrap_err().code,
        ErrorCode::AmountInvalid
    );
    assert_eq!(serde_json::to_string(&d).unwrap(), "\"1.234\"");
    assert!(
        serde_json::from_str::<Decimal>("50.0").is_err(),
        "JSON numbers are refused"
    );
    assert!(
        serde_json::from_str::<Decimal>("50").is_err(),
        "JSON numbers are refused"
    );
    assert!(serde_json::from_str::<Decimal>("\"1e3\"").is_err());
    assert_eq!(Decimal::from_minor(5, &Currency::EUR).as_str(), "0.05");
}

#[test]
fn money_serde_and_validate() {
    let m: Money = serde_json::from_str(r#"{"amount":"50.00","currency":"EUR"}"#).unwrap();
    assert_eq!(m.minor(), Ok(5000));
    assert_eq!(m, Money::from_minor(5000, Currency::EUR));
    assert_eq!(m.to_string(), "50.00 EUR");
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"amount":"50.00","currency":"EUR"}"#
    );
    let m: Money = serde_json::from_str(r#"{"amount":"5.5","currency":"JPY"}"#).unwrap();
    assert_eq!(m.validate().unwrap_err().code, ErrorCode::AmountInvalid);
    assert!(serde_json::from_str::<Money>(r#"{"amount":"1","currency":"EUR","x":1}"#).is_err());
}
