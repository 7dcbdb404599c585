//! The verifier validates an agent's DPoP key once and keeps it
//! ([`KeyCache`]); these tests check that a proof gets exactly the answer it
//! would get without the cache, whatever the cache already holds — the
//! attacks of `dpop_attacks.rs` included.
#![allow(clippy::unwrap_used)]

use agentauth_core::dpop::{self, Request, Window};
use agentauth_core::es256::SigningKey;
use agentauth_core::jwk::KeyCache;
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
