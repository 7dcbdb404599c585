//! Attacks on access tokens: each test forges or misuses a token and asserts
//! the refusal and its stable code.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use agentauth_core::es256::{SigningKey, VerifyingKey};
use agentauth_core::token::{self, AccessTokenClaims, Confirmation, Expectations, GrantRef};
use agentauth_core::{ErrorCode, b64};

const NOW: i64 = 1_800_000_000;

fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://agentauth.example".into(),
        sub: "shop/shopper".into(),
        aud: "payments".into(),
        client_id: "shop/shopper".into(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 300,
        jti: "tok-0001-abcdefghijkl".into(),
        cnf: Confirmation {
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
        },
        authorization_details: vec![],
        grant: GrantRef {
            uid: "uid-1".into(),
            generation: 1,
        },
        env: None,
    }
}

fn expect() -> Expectations {
    Expectations {
        issuer: "https://agentauth.example".into(),
        audience: "payments".into(),
        leeway_secs: 5,
    }
}

struct Issuer {
    key: SigningKey,
    keys: HashMap<String, VerifyingKey>,
}

fn issuer() -> Issuer {
    let key = SigningKey::generate();
    let keys = HashMap::from([("k1".to_string(), key.verifying_key().unwrap())]);
    Issuer { key, keys }
}

fn code(result: Result<token::SignedToken, agentauth_core::Error>) -> ErrorCode {
    result.unwrap_err().code
}

/// Builds a token with an arbitrary header, signed (or not) by `key`.
fn forge(
    header: serde_json::Value,
    claims: &AccessTokenClaims,
    key: Option<&SigningKey>,
) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(serde_json::to_vec(claims).unwrap())
    );
    let sig = key
        .map(|k| b64::encode(k.sign(input.as_bytes())))
        .unwrap_or_default();
    format!("{input}.{sig}")
}

#[test]
fn a_genuine_token_verifies() {
    let i = issuer();
    let t = token::sign("k1", &claims(), &i.key).unwrap();
    let signed = token::verify(&t, &i.keys, &expect(), NOW + 10).unwrap();
    assert_eq!(signed.claims, claims());
    assert_eq!(signed.kid, "k1");
}

#[test]
fn alg_none_hs256_and_rs256_are_refused() {
    let i = issuer();
    for alg in ["none", "HS256", "RS256", "ES384", "es256"] {
        let t = forge(
            serde_json::json!({"typ": "at+jwt", "alg": alg, "kid": "k1"}),
            &claims(),
            Some(&i.key),
        );
        assert_eq!(
            code(token::verify(&t, &i.keys, &expect(), NOW)),
            ErrorCode::TokenAlgorithmUnsupported,
            "{alg}"
        );
    }
}

#[test]
fn unknown_critical_headers_are_refused() {
    let i = issuer();
    let t = forge(
        serde_json::json!({"typ": "at+jwt", "alg": "ES256", "kid": "k1", "crit": ["exp"], "exp": 1}),
        &claims(),
        Some(&i.key),
    );
    assert_eq!(
        code(token::verify(&t, &i.keys, &expect(), NOW)),
        ErrorCode::TokenCriticalUnsupported
    );
}

#[test]
fn wrong_typ_is_refused_so_a_dpop_proof_or_id_token_cannot_pass_as_access_token() {
    let i = issuer();
    for typ in [Some("JWT"), Some("dpop+jwt"), None] {
        let mut h = serde_json::json!({"alg": "ES256", "kid": "k1"});
        if let Some(typ) = typ {
            h["typ"] = typ.into();
        }
        let t = forge(h, &claims(), Some(&i.key));
        assert_eq!(
            code(token::verify(&t, &i.keys, &expect(), NOW)),
            ErrorCode::TokenTypeInvalid
        );
    }
}

#[test]
fn a_token_signed_by_an_untrusted_key_under_a_trusted_kid_is_refused() {
    let i = issuer();
    let attacker = SigningKey::generate();
    let t = token::sign("k1", &claims(), &attacker).unwrap();
    assert_eq!(
        code(token::verify(&t, &i.keys, &expect(), NOW)),
        ErrorCode::TokenSignatureInvalid
    );
    let t = token::sign("k2", &claims(), &attacker).unwrap();
    assert_eq!(
        code(token::verify(&t, &i.keys, &expect(), NOW)),
        ErrorCode::TokenKeyUnknown
    );
    let t = forge(
        serde_json::json!({"typ": "at+jwt", "alg": "ES256"}),
        &claims(),
        Some(&i.key),
    );
    assert_eq!(
        code(token::verify(&t, &i.keys, &expect(), NOW)),
        ErrorCode::TokenKeyUnknown
    );
}

#[test]
fn claims_swapped_under_a_genuine_signature_are_refused() {
    let i = issuer();
    let t = token::sign("k1", &claims(), &i.key).unwrap();
    let mut better = claims();
    better.aud = "bank".into();
    better.exp = NOW + 3000;
    let parts: Vec<&str> = t.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64::encode(serde_json::to_vec(&better).unwrap()),
        parts[2]
    );
    assert_eq!(
        code(token::verify(&forged, &i.keys, &expect(), NOW)),
        ErrorCode::TokenSignatureInvalid
    );
}

#[test]
fn time_audience_and_issuer_are_enforced() {
    let i = issuer();
    let t = token::sign("k1", &claims(), &i.key).unwrap();
    assert_eq!(
        code(token::verify(&t, &i.keys, &expect(), NOW + 305)),
        ErrorCode::TokenExpired
    );
    assert!(
        token::verify(&t, &i.keys, &expect(), NOW + 304).is_ok(),
        "leeway honoured"
    );
    assert_eq!(
        code(token::verify(&t, &i.keys, &expect(), NOW - 6)),
        ErrorCode::TokenNotYetValid
    );
    let other_aud = Expectations {
        audience: "bank".into(),
        ..expect()
    };
    assert_eq!(
        code(token::verify(&t, &i.keys, &other_aud, NOW)),
        ErrorCode::TokenAudienceInvalid
    );
    let other_iss = Expectations {
        issuer: "https://evil.example".into(),
        ..expect()
    };
    assert_eq!(
        code(token::verify(&t, &i.keys, &other_iss, NOW)),
        ErrorCode::TokenIssuerInvalid
    );
}

#[test]
fn an_issuer_cannot_sign_a_token_longer_than_an_hour() {
    let i = issuer();
    let mut long = claims();
    long.exp = NOW + 3601;
    assert_eq!(
        token::sign("k1", &long, &i.key).unwrap_err().code,
        ErrorCode::TokenClaimsInvalid
    );
    let mut backwards = claims();
    backwards.exp = NOW - 1;
    assert_eq!(
        token::sign("k1", &backwards, &i.key).unwrap_err().code,
        ErrorCode::TokenClaimsInvalid
    );
}

#[test]
fn malformed_tokens_are_refused_with_a_code_not_a_panic() {
    let i = issuer();
    let good = token::sign("k1", &claims(), &i.key).unwrap();
    let (head, _) = good.rsplit_once('.').unwrap();
    let dup = {
        let payload = r#"{"iss":"a","iss":"b"}"#;
        format!(
            "{}.{}.{}",
            good.split('.').next().unwrap(),
            b64::encode(payload),
            "AA"
        )
    };
    let padded = format!("{good}=");
    let cases = [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        head,
        &padded,
        &dup,
        "eyJhbGciOiJFUzI1NiJ9.e30.!!!",
    ];
    for t in cases {
        let c = code(token::verify(t, &i.keys, &expect(), NOW));
        assert!(
            matches!(c, ErrorCode::TokenMalformed | ErrorCode::TokenTypeInvalid),
            "{t:?} gave {c}"
        );
    }
    let huge = "a".repeat(token::MAX_TOKEN_LEN + 1);
    assert_eq!(
        code(token::verify(&huge, &i.keys, &expect(), NOW)),
        ErrorCode::InputTooLarge
    );
}
