//! Published test vectors: RFC 7638 (JWK thumbprint), RFC 9449 (DPoP) and
//! RFC 8785 (JSON canonicalization).
#![allow(clippy::unwrap_used)]

use agentauth_core::dpop::{self, Request, Window};
use agentauth_core::jwk::{EcPublicJwk, parse_public_jwk, thumbprint_of_members};
use agentauth_core::{ErrorCode, b64, jcs, token};
use serde_json::Value;

/// RFC 7638 §3.1: the RSA example key and its thumbprint. AgentAuth keys are
/// EC, but the procedure (required members, sorted, no whitespace, SHA-256)
/// is the same function.
#[test]
fn rfc7638_rsa_example_thumbprint() {
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let members = [("kty", "RSA"), ("n", n), ("e", "AQAB")];
    assert_eq!(
        thumbprint_of_members(&members),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

const RFC9449_JWK: &str = r#"{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}"#;
const RFC9449_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
/// RFC 9449 Figure 2 (§4.1): a proof for `POST https://server.example.com/token`.
const RFC9449_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
const RFC9449_IAT: i64 = 1_562_262_616;

fn token_request() -> Request<'static> {
    Request {
        method: "POST",
        url: "https://server.example.com/token",
        access_token: None,
        nonce: None,
    }
}

#[test]
fn rfc9449_example_key_thumbprint() {
    assert_eq!(
        parse_public_jwk(RFC9449_JWK).unwrap().thumbprint,
        RFC9449_JKT
    );
}

#[test]
fn rfc9449_example_proof_verifies_at_its_time() {
    let proof = dpop::verify(
        RFC9449_PROOF,
        &token_request(),
        Window::default(),
        RFC9449_IAT + 5,
    )
    .unwrap();
    assert_eq!(proof.jkt, RFC9449_JKT);
    assert_eq!(proof.jti, "-BwC3ESc6acc2lTc");
    assert_eq!(proof.iat, RFC9449_IAT);
}

#[test]
fn rfc9449_example_proof_is_refused_elsewhere_and_later() {
    let later = dpop::verify(
        RFC9449_PROOF,
        &token_request(),
        Window::default(),
        RFC9449_IAT + 61,
    );
    assert_eq!(later.unwrap_err().code, ErrorCode::DpopStale);
    let get = Request {
        method: "GET",
        ..token_request()
    };
    assert_eq!(
        dpop::verify(RFC9449_PROOF, &get, Window::default(), RFC9449_IAT)
            .unwrap_err()
            .code,
        ErrorCode::DpopMethodMismatch
    );
    let other = Request {
        url: "https://server.example.com/token2",
        ..token_request()
    };
    assert_eq!(
        dpop::verify(RFC9449_PROOF, &other, Window::default(), RFC9449_IAT)
            .unwrap_err()
            .code,
        ErrorCode::DpopUrlMismatch
    );
    // The same request spelled differently is the same request (§4.3).
    let spelled = Request {
        url: "HTTPS://Server.Example.com:443/token?x=1",
        ..token_request()
    };
    assert!(dpop::verify(RFC9449_PROOF, &spelled, Window::default(), RFC9449_IAT).is_ok());
    // It carries no ath, so it cannot accompany an access token.
    let with_token = Request {
        access_token: Some("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        ..token_request()
    };
    assert_eq!(
        dpop::verify(RFC9449_PROOF, &with_token, Window::default(), RFC9449_IAT)
            .unwrap_err()
            .code,
        ErrorCode::DpopAthMismatch
    );
}

/// RFC 9449 §7.1: the `ath` of the example access token.
#[test]
fn rfc9449_example_ath() {
    let ath = b64::encode(token::token_hash(
        "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU",
    ));
    assert_eq!(ath, "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
}

#[test]
fn rfc9449_example_jwk_round_trips() {
    let jwk: EcPublicJwk = serde_json::from_str(RFC9449_JWK).unwrap();
    let key = jwk.to_public_key().unwrap();
    assert_eq!(EcPublicJwk::from_key(&key.key).x, jwk.x);
}

/// RFC 8785 §3.2.2: the main example (strings, numbers, literals).
#[test]
fn rfc8785_main_example() {
    let input = r#"{
        "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
        "literals": [null, true, false]
    }"#;
    let value: Value = serde_json::from_str(input).unwrap();
    assert_eq!(
        jcs::canonicalize(&value).unwrap(),
        r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
    );
}

/// RFC 8785 §3.2.3: members sorted by UTF-16 code units, not code points.
#[test]
fn rfc8785_sorting_example() {
    let input = r#"{
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\ud83d\ude00": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let value: Value = serde_json::from_str(input).unwrap();
    let canonical = jcs::canonicalize(&value).unwrap();
    let order: Vec<&str> = [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small",
        "Euro Sign",
        "Emoji",
        "Hebrew",
    ]
    .into_iter()
    .collect();
    let positions: Vec<usize> = order.iter().map(|s| canonical.find(s).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{canonical}");
}

/// RFC 8785 Appendix B: IEEE 754 doubles and their canonical spelling.
#[test]
fn rfc8785_number_serialization() {
    let cases = [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ];
    for (bits, expected) in cases {
        let f = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        let value = Value::Number(serde_json::Number::from_f64(f).unwrap());
        assert_eq!(jcs::canonicalize(&value).unwrap(), expected, "{bits}");
    }
}
