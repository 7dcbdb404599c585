//! Every decoder, fed arbitrary or mutated input, returns a typed error and
//! never panics. These run briefly in `./test.sh` (proptest's default 256
//! cases each); the cargo-fuzz targets in `fuzz/` drive the same entry points
//! for longer runs.
#![allow(clippy::unwrap_used)]

use agentauth_core::audit::AuditEvent;
use agentauth_core::dpop::{self, Request, Window};
use agentauth_core::es256::SigningKey;
use agentauth_core::webauthn::{self, Assertion, Credential, Expected};
use agentauth_core::{htu, jcs, jwk, token};
use proptest::prelude::*;

fn request() -> Request<'static> {
    Request {
        method: "GET",
        url: "https://h.example/x",
        access_token: None,
        nonce: None,
    }
}

/// Mutations of a valid JWS: flipped bytes, truncation, duplicated parts.
fn mutated(valid: String) -> impl Strategy<Value = String> {
    let len = valid.len();
    (0..len, any::<u8>(), 0..len).prop_map(move |(i, b, cut)| {
        let mut bytes = valid.clone().into_bytes();
        bytes[i] = b'!'.max(b % 127);
        let s = String::from_utf8_lossy(&bytes).into_owned();
        if b % 2 == 0 {
            s
        } else {
            s[..cut.min(s.len())].to_owned()
        }
    })
}

fn valid_proof() -> String {
    let key = SigningKey::generate();
    dpop::create(&key, &request(), 1_800_000_000, &dpop::new_jti()).unwrap()
}

proptest! {
    #[test]
    fn token_decoder(input in ".{0,600}") {
        let keys = std::collections::HashMap::new();
        let _ = token::verify_signature(&input, &keys);
    }

    #[test]
    fn token_decoder_on_base64_shaped_input(a in "[A-Za-z0-9_-]{0,200}", b in "[A-Za-z0-9_-]{0,200}", c in "[A-Za-z0-9_-]{0,100}") {
        let keys = std::collections::HashMap::new();
        let _ = token::verify_signature(&format!("{a}.{b}.{c}"), &keys);
    }

    #[test]
    fn proof_decoder(input in ".{0,600}") {
        let _ = dpop::verify(&input, &request(), Window::default(), 1_800_000_000);
    }

    #[test]
    fn proof_decoder_on_mutated_proofs(p in mutated(valid_proof())) {
        let _ = dpop::verify(&p, &request(), Window::default(), 1_800_000_000);
    }

    #[test]
    fn jwk_decoder(input in ".{0,300}") {
        let _ = jwk::parse_public_jwk(&input);
    }

    #[test]
    fn jwk_decoder_on_json_shaped_input(x in "[A-Za-z0-9_-]{0,50}", y in "[A-Za-z0-9_-]{0,50}", crv in "P-2[0-9]{2}") {
        let _ = jwk::parse_public_jwk(&format!(r#"{{"kty":"EC","crv":"{crv}","x":"{x}","y":"{y}"}}"#));
    }

    #[test]
    fn audit_record_decoder(input in ".{0,400}") {
        if let Ok(e) = AuditEvent::from_json(&input) {
            let _ = e.compute_hash();
        }
    }

    #[test]
    fn canonicalizer_on_any_json(input in "[\\[\\]{}:,\"0-9a-z.eE+-]{0,80}") {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&input) {
            let _ = jcs::canonicalize(&v);
        }
    }

    #[test]
    fn url_normalizer(input in ".{0,200}") {
        let _ = htu::normalize(&input, agentauth_core::ErrorCode::RequestInvalid);
    }

    #[test]
    fn webauthn_assertion_decoder(data in prop::collection::vec(any::<u8>(), 0..80), client in ".{0,200}", sig in prop::collection::vec(any::<u8>(), 0..80)) {
        let key = SigningKey::generate().verifying_key().unwrap();
        let origins = vec!["https://a.example".to_string()];
        let _ = webauthn::verify(
            &Assertion { authenticator_data: &data, client_data_json: client.as_bytes(), signature: &sig },
            &Expected { challenge: &[0; 32], rp_id: "a.example", origins: &origins, require_user_verification: true },
            &Credential { key: &key, sign_count: 0 },
        );
    }
}
