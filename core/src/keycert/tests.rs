#![allow(clippy::unwrap_used)]

use super::*;
use crate::jwk::EcPublicJwk;
use crate::token::{self, AccessTokenClaims, Confirmation, Expectations, GrantRef};

const ISSUER: &str = "https://agentauth.example";
const NOW: i64 = 1_700_000_000;

struct Fixture {
    root: SigningKey,
    root_pin: RootKey,
    issuing: SigningKey,
    issuing_kid: String,
}

fn fixture() -> Fixture {
    let root = SigningKey::generate();
    let root_pin =
        RootKey::from_jwk(&EcPublicJwk::from_key(&root.verifying_key().unwrap())).unwrap();
    let issuing = SigningKey::generate();
    let public = issuing.verifying_key().unwrap();
    let jwk = EcPublicJwk::from_key(&public);
    Fixture {
        root,
        root_pin,
        issuing,
        issuing_kid: ec_thumbprint(&jwk.x, &jwk.y),
    }
}

impl Fixture {
    fn claims(&self) -> KeyCertificateClaims {
        let key = self.issuing.verifying_key().unwrap();
        KeyCertificateClaims::new(ISSUER, &key, NOW, NOW - 60, NOW + 86_400)
    }

    fn cert(&self) -> String {
        sign(&self.root_pin.kid, &self.claims(), &self.root).unwrap()
    }

    fn verify(&self, cert: &str, now: i64) -> Result<CertifiedKey> {
        verify_certificate(cert, &self.root_pin.kid, &self.root_pin.key, now)
    }

    fn entry(&self, cert: Option<String>) -> JwksEntry {
        JwksEntry::new(
            &self.issuing_kid,
            &self.issuing.verifying_key().unwrap(),
            cert,
        )
    }
}

/// Signs arbitrary header and claims, bypassing every issuer-side check.
fn sign_raw(header: &Header, claims: &serde_json::Value, key: &SigningKey) -> String {
    jws::sign(header, claims, key).unwrap()
}

fn refused(result: Result<CertifiedKey>, needle: &str) {
    let err = result.unwrap_err();
    assert_eq!(err.code, ErrorCode::KeyCertificateInvalid, "{err}");
    assert!(err.message.contains(needle), "{err}");
}

fn token_claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISSUER.into(),
        sub: "ns/agent".into(),
        aud: "shop".into(),
        client_id: "ns/agent".into(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 300,
        jti: "t1".into(),
        cnf: Confirmation { jkt: "jkt".into() },
        authorization_details: vec![],
        grant: GrantRef {
            uid: "uid".into(),
            generation: 1,
        },
        env: None,
    }
}

fn expect() -> Expectations {
    Expectations {
        issuer: ISSUER.into(),
        audience: "shop".into(),
        leeway_secs: 0,
    }
}

#[test]
fn a_certificate_round_trips() {
    let f = fixture();
    let certified = f.verify(&f.cert(), NOW).unwrap();
    assert_eq!(certified.kid, f.issuing_kid);
    assert_eq!(certified.key, f.issuing.verifying_key().unwrap());
    assert_eq!(certified.issuer, ISSUER);
    assert_eq!(
        (certified.not_before, certified.not_after),
        (NOW - 60, NOW + 86_400)
    );
}

#[test]
fn a_certificate_signed_by_another_key_is_refused() {
    let f = fixture();
    let attacker = SigningKey::generate();
    // Claims the pinned root's kid, but the attacker signed it.
    let forged = sign(&f.root_pin.kid, &f.claims(), &attacker).unwrap();
    refused(f.verify(&forged, NOW), "signature does not verify");
    // Names the attacker's own key as root.
    let other =
        RootKey::from_jwk(&EcPublicJwk::from_key(&attacker.verifying_key().unwrap())).unwrap();
    let own = sign(&other.kid, &f.claims(), &attacker).unwrap();
    refused(f.verify(&own, NOW), "not by the pinned root");
}

#[test]
fn validity_is_enforced_at_the_edges() {
    let f = fixture();
    let cert = f.cert();
    assert!(f.verify(&cert, NOW - 60).is_ok());
    refused(f.verify(&cert, NOW - 61), "not valid before");
    assert!(f.verify(&cert, NOW + 86_399).is_ok());
    refused(f.verify(&cert, NOW + 86_400), "expired");
}

#[test]
fn issuers_cannot_produce_insane_certificates() {
    let f = fixture();
    let mut claims = f.claims();
    claims.exp = claims.nbf + MAX_CERTIFICATE_LIFETIME_SECS + 1;
    assert_eq!(
        signing_input("root", &claims).unwrap_err().code,
        ErrorCode::KeyCertificateInvalid
    );
    let mut claims = f.claims();
    claims.exp = claims.nbf;
    assert!(signing_input("root", &claims).is_err());
}

#[test]
fn a_subject_that_is_not_the_jwk_thumbprint_is_refused() {
    let f = fixture();
    let mut claims = serde_json::to_value(f.claims()).unwrap();
    // The certified jwk is the issuing key, but sub names the root.
    claims["sub"] = f.root_pin.kid.clone().into();
    let cert = sign_raw(&header(&f.root_pin.kid), &claims, &f.root);
    refused(f.verify(&cert, NOW), "thumbprint");
    // A kid inside the jwk that disagrees with sub.
    let mut claims = serde_json::to_value(f.claims()).unwrap();
    claims["jwk"]["kid"] = "someone-else".into();
    let cert = sign_raw(&header(&f.root_pin.kid), &claims, &f.root);
    refused(f.verify(&cert, NOW), "kid differs");
}

#[test]
fn a_certified_private_key_is_refused() {
    let f = fixture();
    let mut claims = serde_json::to_value(f.claims()).unwrap();
    claims["jwk"]["d"] = "AAAA".into();
    let cert = sign_raw(&header(&f.root_pin.kid), &claims, &f.root);
    refused(f.verify(&cert, NOW), "not a public P-256 key");
}

#[test]
fn wrong_typ_alg_crit_and_extra_claims_are_refused() {
    let f = fixture();
    let claims = serde_json::to_value(f.claims()).unwrap();
    let mut h = header(&f.root_pin.kid);
    h.typ = Some("at+jwt".into());
    refused(f.verify(&sign_raw(&h, &claims, &f.root), NOW), "typ");
    let mut h = header(&f.root_pin.kid);
    h.crit = Some(serde_json::json!(["exp"]));
    refused(f.verify(&sign_raw(&h, &claims, &f.root), NOW), "critical");
    let mut h = header(&f.root_pin.kid);
    h.alg = "HS256".into();
    refused(f.verify(&sign_raw(&h, &claims, &f.root), NOW), "only ES256");
    let mut extra = claims.clone();
    extra["scope"] = "admin".into();
    let cert = sign_raw(&header(&f.root_pin.kid), &extra, &f.root);
    refused(f.verify(&cert, NOW), "unknown field");
    let huge = "a".repeat(MAX_CERTIFICATE_LEN + 1);
    assert_eq!(
        f.verify(&huge, NOW).unwrap_err().code,
        ErrorCode::InputTooLarge
    );
}

#[test]
fn a_certificate_is_not_a_token_nor_a_token_a_certificate() {
    let f = fixture();
    let keys = (f.root_pin.kid.clone(), f.root_pin.key.clone());
    // Refused whichever check comes first: the claims or the typ.
    let err = token::verify_signature(&f.cert(), &keys).unwrap_err();
    assert!(
        matches!(
            err.code,
            ErrorCode::TokenMalformed | ErrorCode::TokenTypeInvalid
        ),
        "{err}"
    );
    let token = token::sign(&f.root_pin.kid, &token_claims(), &f.root).unwrap();
    refused(f.verify(&token, NOW), "unknown field `aud`");
}

#[test]
fn tokens_verify_through_the_jwks_and_the_pinned_root() {
    let f = fixture();
    let jwks = Jwks {
        keys: vec![f.entry(Some(f.cert()))],
        root: Some(EcPublicJwk::from_key(&f.root_pin.key)),
    };
    let json = serde_json::to_string(&jwks).unwrap();
    assert!(json.contains("\"agentauth_cert\":"), "{json}");
    let parsed = Jwks::parse(&json).unwrap();
    assert_eq!(parsed, jwks);
    let trusted = TrustedKeys::from_jwks(&parsed, &f.root_pin, ISSUER, NOW);
    assert!(trusted.rejected().is_empty(), "{:?}", trusted.rejected());
    let token = token::sign(&f.issuing_kid, &token_claims(), &f.issuing).unwrap();
    let signed = token::verify(&token, &trusted.at(NOW), &expect(), NOW).unwrap();
    assert_eq!(signed.kid, f.issuing_kid);
    // Once the certificate has expired, the key is unknown.
    let err = token::verify_signature(&token, &trusted.at(NOW + 86_400)).unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenKeyUnknown);
}

#[test]
fn a_swapped_key_in_the_jwks_is_not_trusted() {
    let f = fixture();
    let attacker = SigningKey::generate();
    let attacker_public = attacker.verifying_key().unwrap();
    let attacker_jwk = EcPublicJwk::from_key(&attacker_public);
    let attacker_kid = ec_thumbprint(&attacker_jwk.x, &attacker_jwk.y);
    let jwks = Jwks {
        keys: vec![
            // The attacker's key under its own kid, with the real certificate.
            JwksEntry::new(&attacker_kid, &attacker_public, Some(f.cert())),
            // The attacker's key under the certified kid.
            JwksEntry::new(&f.issuing_kid, &attacker_public, Some(f.cert())),
            // The attacker's key without any certificate.
            JwksEntry::new(&attacker_kid, &attacker_public, None),
        ],
        root: None,
    };
    let trusted = TrustedKeys::from_jwks(&jwks, &f.root_pin, ISSUER, NOW);
    assert_eq!(trusted.kids().count(), 0);
    let codes: Vec<_> = trusted.rejected().iter().map(|(_, e)| e.code).collect();
    assert_eq!(
        codes,
        [
            ErrorCode::KeyCertificateInvalid,
            ErrorCode::JwkInvalid,
            ErrorCode::KeyCertificateInvalid
        ]
    );
    let token = token::sign(&attacker_kid, &token_claims(), &attacker).unwrap();
    let err = token::verify(&token, &trusted.at(NOW), &expect(), NOW).unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenKeyUnknown);
}

#[test]
fn a_certificate_for_another_issuer_is_not_trusted() {
    let f = fixture();
    let mut claims = f.claims();
    claims.iss = "https://other.example".into();
    let cert = sign(&f.root_pin.kid, &claims, &f.root).unwrap();
    let jwks = Jwks {
        keys: vec![f.entry(Some(cert))],
        root: None,
    };
    let trusted = TrustedKeys::from_jwks(&jwks, &f.root_pin, ISSUER, NOW);
    assert_eq!(trusted.kids().count(), 0);
    assert!(trusted.rejected()[0].1.message.contains("another issuer"));
}

#[test]
fn direct_mode_trusts_the_pinned_root_alone() {
    let f = fixture();
    let root_entry = JwksEntry::new(&f.root_pin.kid, &f.root_pin.key, None);
    let jwks = Jwks {
        keys: vec![root_entry],
        root: None,
    };
    let trusted = TrustedKeys::from_jwks(&jwks, &f.root_pin, ISSUER, NOW);
    assert_eq!(trusted.not_after(&f.root_pin.kid), Some(i64::MAX));
    let token = token::sign(&f.root_pin.kid, &token_claims(), &f.root).unwrap();
    assert!(token::verify(&token, &trusted.at(NOW), &expect(), NOW).is_ok());
    // The same document checked against another pinned root trusts nothing.
    let other = SigningKey::generate().verifying_key().unwrap();
    let other = RootKey::from_jwk(&EcPublicJwk::from_key(&other)).unwrap();
    let trusted = TrustedKeys::from_jwks(&jwks, &other, ISSUER, NOW);
    assert_eq!(trusted.kids().count(), 0);
}

#[test]
fn jwks_parsing_refuses_private_keys_and_oversized_documents() {
    let f = fixture();
    let mut entry = serde_json::to_value(f.entry(Some(f.cert()))).unwrap();
    entry["d"] = "AAAA".into();
    entry["x5t"] = "ignored".into();
    let jwks = Jwks::parse(&serde_json::json!({ "keys": [entry] }).to_string()).unwrap();
    let trusted = TrustedKeys::from_jwks(&jwks, &f.root_pin, ISSUER, NOW);
    assert_eq!(
        trusted.rejected()[0].1.code,
        ErrorCode::JwkPrivateKeyRefused
    );
    let huge = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "a".repeat(MAX_JWKS_LEN));
    assert_eq!(
        Jwks::parse(&huge).unwrap_err().code,
        ErrorCode::InputTooLarge
    );
    assert_eq!(Jwks::parse("{").unwrap_err().code, ErrorCode::JsonInvalid);
}

#[test]
fn a_root_jwk_with_a_foreign_kid_is_refused() {
    let mut jwk = EcPublicJwk::from_key(&SigningKey::generate().verifying_key().unwrap());
    jwk.kid = Some("my-root".into());
    assert_eq!(
        RootKey::from_jwk(&jwk).unwrap_err().code,
        ErrorCode::JwkInvalid
    );
}
