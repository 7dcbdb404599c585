//! Attacks on DPoP proofs (RFC 9449 §11): each test performs the attack and
//! asserts the refusal and its code. Replay itself is refused by the shared
//! state of the services; here we check that the same proof yields the same
//! `jti` so that they can.
#![allow(clippy::unwrap_used)]

use agentauth_core::dpop::{self, Request, Window};
use agentauth_core::es256::SigningKey;
use agentauth_core::jwk::{EcPublicJwk, KeyCache};
use agentauth_core::{ErrorCode, b64};
use proptest::prelude::*;

const NOW: i64 = 1_800_000_000;
const URL: &str = "https://calendar.example/api/events";
const TOKEN: &str = "header.payload.signature";

fn request() -> Request<'static> {
    Request {
        method: "POST",
        url: URL,
        access_token: Some(TOKEN),
        nonce: None,
    }
}

fn proof(key: &SigningKey) -> String {
    dpop::create(key, &request(), NOW, &dpop::new_jti()).unwrap()
}

fn verify(p: &str) -> Result<dpop::VerifiedProof, agentauth_core::Error> {
    dpop::verify(p, &request(), Window::default(), NOW)
}

/// Re-signs a proof after editing its header and claims as JSON.
fn tamper(
    key: &SigningKey,
    edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value),
) -> String {
    let p = proof(key);
    let mut parts = p.split('.');
    let mut header: serde_json::Value = serde_json::from_slice(
        &b64::decode(parts.next().unwrap(), ErrorCode::DpopInvalid).unwrap(),
    )
    .unwrap();
    let mut claims: serde_json::Value = serde_json::from_slice(
        &b64::decode(parts.next().unwrap(), ErrorCode::DpopInvalid).unwrap(),
    )
    .unwrap();
    edit(&mut header, &mut claims);
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(claims.to_string())
    );
    format!("{input}.{}", b64::encode(key.sign(input.as_bytes())))
}

#[test]
fn a_fresh_proof_verifies_and_names_its_key_and_jti() {
    let key = SigningKey::generate();
    let p = proof(&key);
    let v = verify(&p).unwrap();
    let jwk = EcPublicJwk::from_key(&key.verifying_key().unwrap());
    assert_eq!(v.jkt, jwk.to_public_key().unwrap().thumbprint);
    assert_eq!(
        verify(&p).unwrap().jti,
        v.jti,
        "a replay carries the same jti for the replay check"
    );
}

#[test]
fn a_stolen_token_with_the_thiefs_own_proof_binds_to_the_wrong_key() {
    let agent = SigningKey::generate();
    let thief = SigningKey::generate();
    let agent_jkt = verify(&proof(&agent)).unwrap().jkt;
    let thief_jkt = verify(&proof(&thief)).unwrap().jkt;
    assert_ne!(
        agent_jkt, thief_jkt,
        "the verifier compares jkt with cnf.jkt and refuses"
    );
}

#[test]
fn a_proof_whose_header_key_did_not_sign_it_is_refused() {
    let signer = SigningKey::generate();
    let victim = EcPublicJwk::from_key(&SigningKey::generate().verifying_key().unwrap());
    let p = tamper(&signer, |h, _| {
        h["jwk"] = serde_json::to_value(&victim).unwrap()
    });
    assert_eq!(verify(&p).unwrap_err().code, ErrorCode::DpopInvalid);
}

#[test]
fn a_proof_carrying_its_private_key_is_refused() {
    let key = SigningKey::generate();
    let p = tamper(&key, |h, _| {
        h["jwk"]["d"] = b64::encode(key.to_scalar()).into()
    });
    assert_eq!(
        verify(&p).unwrap_err().code,
        ErrorCode::JwkPrivateKeyRefused
    );
}

#[test]
fn wrong_type_and_algorithms_are_refused() {
    let key = SigningKey::generate();
    for (field, value) in [
        ("typ", "JWT"),
        ("typ", "at+jwt"),
        ("alg", "none"),
        ("alg", "HS256"),
    ] {
        let p = tamper(&key, |h, _| h[field] = value.into());
        assert_eq!(
            verify(&p).unwrap_err().code,
            ErrorCode::DpopInvalid,
            "{field}={value}"
        );
    }
    let p = tamper(&key, |h, _| {
        h.as_object_mut().unwrap().remove("jwk");
    });
    assert_eq!(verify(&p).unwrap_err().code, ErrorCode::DpopInvalid);
}

#[test]
fn a_proof_for_another_token_method_url_or_time_is_refused() {
    let key = SigningKey::generate();
    let cases: [(&str, serde_json::Value, ErrorCode); 6] = [
        (
            "ath",
            b64::encode([7u8; 32]).into(),
            ErrorCode::DpopAthMismatch,
        ),
        ("htm", "GET".into(), ErrorCode::DpopMethodMismatch),
        ("htm", "post".into(), ErrorCode::DpopMethodMismatch),
        (
            "htu",
            "https://calendar.example/api/admin".into(),
            ErrorCode::DpopUrlMismatch,
        ),
        ("iat", (NOW - 61).into(), ErrorCode::DpopStale),
        ("iat", (NOW + 61).into(), ErrorCode::DpopStale),
    ];
    for (claim, value, code) in cases {
        let p = tamper(&key, |_, c| c[claim] = value.clone());
        assert_eq!(verify(&p).unwrap_err().code, code, "{claim}={value}");
    }
    let p = tamper(&key, |_, c| {
        c.as_object_mut().unwrap().remove("ath");
    });
    assert_eq!(verify(&p).unwrap_err().code, ErrorCode::DpopAthMismatch);
}

#[test]
fn weak_jtis_are_refused() {
    let key = SigningKey::generate();
    for jti in ["", "short", "a b c d e f g h i j", &"x".repeat(129)] {
        let p = tamper(&key, |_, c| c["jti"] = jti.into());
        assert_eq!(
            verify(&p).unwrap_err().code,
            ErrorCode::DpopInvalid,
            "{jti:?}"
        );
    }
}

#[test]
fn a_required_nonce_must_be_echoed() {
    let key = SigningKey::generate();
    let with_nonce = Request {
        nonce: Some("server-nonce-1"),
        ..request()
    };
    let p = proof(&key);
    assert_eq!(
        dpop::verify(&p, &with_nonce, Window::default(), NOW)
            .unwrap_err()
            .code,
        ErrorCode::DpopNonceInvalid
    );
    let p = dpop::create(&key, &with_nonce, NOW, &dpop::new_jti()).unwrap();
    assert!(dpop::verify(&p, &with_nonce, Window::default(), NOW).is_ok());
}

#[test]
fn oversized_and_malformed_proofs_are_refused() {
    let huge = "a".repeat(dpop::MAX_PROOF_LEN + 1);
    assert_eq!(verify(&huge).unwrap_err().code, ErrorCode::InputTooLarge);
    for p in ["", "a.b", "a.b.c", "e30.e30.", "e30.e30.e30.e30"] {
        assert_eq!(verify(p).unwrap_err().code, ErrorCode::DpopInvalid, "{p:?}");
    }
}

#[test]
fn verify_normalized_matches_verify_for_a_normalized_url() {
    let key = SigningKey::generate();
    let p = proof(&key);
    let url = agentauth_core::htu::normalize(URL, ErrorCode::RequestInvalid).unwrap();
    let normalized = Request {
        url: &url,
        ..request()
    };
    let window = Window::default();
    assert_eq!(
        dpop::verify_normalized(&p, &normalized, window, NOW).unwrap(),
        verify(&p).unwrap()
    );
    // The URL is trusted as given: a different one still does not match.
    let other = Request {
        url: "https://calendar.example/api/other",
        ..request()
    };
    let refused = dpop::verify_normalized(&p, &other, window, NOW).unwrap_err();
    assert_eq!(refused.code, ErrorCode::DpopUrlMismatch);
}

/// Threat: replay at the window's edge — a proof accepted one second after
/// its `jti` was forgotten could be spent twice.
///
/// Walks a manual clock in 250 ms steps over a proof's whole acceptance
/// span, for every first-use instant in that span: at every instant the
/// proof is still accepted, the `jti` stored at first use with
/// `replay_ttl_ms` has not expired. The old TTL (`max_age + max_skew`
/// seconds) fails this at the last second of the span.
#[test]
fn the_replay_ttl_covers_every_instant_a_proof_is_accepted() {
    let key = SigningKey::generate();
    for window in [
        Window::default(),
        Window {
            max_age_secs: 5,
            max_skew_secs: 0,
        },
        Window {
            max_age_secs: 1,
            max_skew_secs: 3,
        },
    ] {
        let iat = NOW;
        let p = dpop::create(&key, &request(), iat, &dpop::new_jti()).unwrap();
        let start_ms = (iat - window.max_skew_secs - 2) * 1000;
        let end_ms = (iat + window.max_age_secs + 3) * 1000;
        let accepted: Vec<i64> = (start_ms..end_ms)
            .step_by(250)
            .filter(|t| dpop::verify(&p, &request(), window, t.div_euclid(1000)).is_ok())
            .collect();
        let ttl = i64::try_from(window.replay_ttl_ms()).unwrap();
        let span = (accepted[0], accepted[accepted.len() - 1]);
        for &first in &accepted {
            for &later in accepted.iter().filter(|&&t| t >= first) {
                assert!(
                    later < first + ttl,
                    "{window:?}: a proof first used at {first} ms is still accepted at {later} ms, \
                     after its jti expired at {} ms",
                    first + ttl
                );
            }
        }
        // The span really is one second longer than max_age + max_skew.
        let old_ttl = (window.max_age_secs + window.max_skew_secs) * 1000;
        assert!(span.1 - span.0 >= old_ttl, "{window:?}: {span:?}");
        assert!(
            window.replay_ttl_ms() >= dpop::REPLAY_CLOCK_MARGIN_MS,
            "the TTL includes the clock margin"
        );
    }
}

// The verifier validates an agent's DPoP key once and keeps it
// (`KeyCache`): a proof must get exactly the answer it would get without the
// cache, whatever the cache already holds, the attacks above included.

/// A proof by `signer` whose header and claims were edited as JSON.
fn edited(
    signer: &SigningKey,
    header_key: &SigningKey,
    edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value),
) -> String {
    let honest = dpop::create(header_key, &request(), NOW, &dpop::new_jti()).unwrap();
    let mut parts = honest.split('.');
    let mut decode = || -> serde_json::Value {
        serde_json::from_slice(&b64::decode(parts.next().unwrap(), ErrorCode::DpopInvalid).unwrap())
            .unwrap()
    };
    let (mut header, mut claims) = (decode(), decode());
    edit(&mut header, &mut claims);
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(claims.to_string())
    );
    format!("{input}.{}", b64::encode(signer.sign(input.as_bytes())))
}

/// The proofs an attacker (or a broken client) sends with a key the cache
/// may already hold.
fn variant(n: u8, agent: &SigningKey, other: &SigningKey) -> String {
    match n % 10 {
        0 => edited(agent, agent, |_, _| {}),
        // The agent's key in the header, signed by another key.
        1 => edited(other, agent, |_, _| {}),
        // The private scalar sent along: refused even when the key is known.
        2 => edited(agent, agent, |h, _| h["jwk"]["d"] = "AAAA".into()),
        3 => edited(agent, agent, |h, _| h["jwk"]["kty"] = "RSA".into()),
        4 => edited(agent, agent, |h, _| h["jwk"]["alg"] = "ES384".into()),
        5 => edited(agent, agent, |h, _| h["jwk"]["use"] = "enc".into()),
        // The same point, x padded: not the same encoding, refused.
        6 => edited(agent, agent, |h, _| {
            let x = h["jwk"]["x"].as_str().unwrap().to_owned();
            h["jwk"]["x"] = format!("{x}=").into();
        }),
        7 => edited(agent, agent, |_, c| c["iat"] = (NOW - 3600).into()),
        8 => edited(agent, agent, |_, c| {
            c["htu"] = "https://evil.example/".into()
        }),
        _ => edited(agent, agent, |h, _| {
            // A point off the curve: y of another key.
            let y = b64::encode(other.verifying_key().unwrap().y());
            h["jwk"]["y"] = y.into();
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Threat: a cached key lends its validation to a proof it should not
    /// (another signer, a private key sent along, another key type or
    /// algorithm, a second encoding of the point, a point off the curve).
    #[test]
    fn a_cached_key_answers_as_an_uncached_one(
        primed in any::<bool>(),
        sequence in proptest::collection::vec(any::<u8>(), 1..6),
    ) {
        let agent = SigningKey::generate();
        let other = SigningKey::generate();
        let cache = KeyCache::new(16);
        if primed {
            let honest = variant(0, &agent, &other);
            dpop::verify_normalized_cached(&honest, &request(), Window::default(), NOW, &cache)
                .unwrap();
        }
        for n in sequence {
            let proof = variant(n, &agent, &other);
            let plain = dpop::verify_normalized(&proof, &request(), Window::default(), NOW);
            let cached =
                dpop::verify_normalized_cached(&proof, &request(), Window::default(), NOW, &cache);
            match (&plain, &cached) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(a), Err(b)) => prop_assert_eq!(a.code, b.code),
                _ => prop_assert!(false, "variant {}: {:?} vs {:?}", n % 10, plain, cached),
            }
        }
    }
}

#[test]
fn the_cache_keeps_only_valid_keys_and_stays_bounded() {
    let cache = KeyCache::new(2);
    let other = SigningKey::generate();
    for _ in 0..5 {
        let agent = SigningKey::generate();
        let off_curve = variant(9, &agent, &other);
        assert!(
            dpop::verify_normalized_cached(&off_curve, &request(), Window::default(), NOW, &cache)
                .is_err()
        );
        let honest = variant(0, &agent, &other);
        dpop::verify_normalized_cached(&honest, &request(), Window::default(), NOW, &cache)
            .unwrap();
        assert!(cache.len() <= cache.capacity(), "{} keys", cache.len());
    }
    assert!(!cache.is_empty());
}
