//! Hot functions of the verification path, measured with criterion.
//!
//! `es256_verify` runs both backends on the same inputs in the same run, so
//! the comparison that chose aws-lc-rs for verification does not depend on
//! the machine's load at different times. Run with
//! `cargo bench -p agentauth-core --bench core`; figures go to
//! `bench/results/core.md`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;

use agentauth_core::audit::{Chain, Draft, kinds};
use agentauth_core::capability::{Capability, RequestedAction};
use agentauth_core::dpop::{self, Request, Window};
use agentauth_core::es256::SigningKey;
use agentauth_core::gcra::{self, RateLimit};
use agentauth_core::jwk::KeyCache;
use agentauth_core::token::{self, AccessTokenClaims, Confirmation, Expectations, GrantRef};
use agentauth_core::{capability, jcs};
use criterion::{Criterion, criterion_group, criterion_main};

const NOW: i64 = 1_800_000_000;
const URL: &str = "https://payments.example/api/orders";

fn capabilities(n: usize) -> Vec<Capability> {
    (0..n)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "type": if i % 2 == 0 { "read" } else { "write" },
                "resource": format!("service-{i}/*/items/**"),
                "actions": ["list", "get", "create"],
            }))
            .unwrap()
        })
        .collect()
}

fn claims(n_caps: usize) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://agentauth.example".into(),
        sub: "shop/shopper".into(),
        aud: "payments".into(),
        client_id: "shop/shopper".into(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 300,
        jti: dpop::new_jti(),
        cnf: Confirmation {
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
        },
        authorization_details: capabilities(n_caps).iter().map(Into::into).collect(),
        grant: GrantRef {
            uid: "4b0c7c2a-0000-4000-8000-00000000c0de".into(),
            generation: 1,
        },
        env: Some("sha256-envelope".into()),
    }
}

fn es256(c: &mut Criterion) {
    let key = SigningKey::generate();
    let public = key.verifying_key().unwrap();
    let message = vec![b'x'; 400];
    let sig = key.sign(&message);
    let mut g = c.benchmark_group("es256_verify");
    g.bench_function("p256", |b| {
        b.iter(|| assert!(public.verify_with_p256(black_box(&message), black_box(&sig))))
    });
    g.bench_function("aws-lc-rs", |b| {
        b.iter(|| assert!(public.verify(black_box(&message), black_box(&sig))))
    });
    g.finish();
}

fn dpop_verify(c: &mut Criterion) {
    let key = SigningKey::generate();
    let access_token = "x".repeat(900);
    let request = Request {
        method: "POST",
        url: URL,
        access_token: Some(&access_token),
        nonce: None,
    };
    let proof = dpop::create(&key, &request, NOW, &dpop::new_jti()).unwrap();
    // Side by side: the verifier's path (normalized URL) with the agent's key
    // validated per proof, and with it taken from the key cache.
    let mut g = c.benchmark_group("dpop_proof_verify_normalized");
    g.bench_function("key_per_proof", |b| {
        b.iter(|| {
            dpop::verify_normalized(black_box(&proof), &request, Window::default(), NOW).unwrap()
        })
    });
    let keys = KeyCache::new(16);
    g.bench_function("key_cached", |b| {
        b.iter(|| {
            dpop::verify_normalized_cached(
                black_box(&proof),
                &request,
                Window::default(),
                NOW,
                &keys,
            )
            .unwrap()
        })
    });
    g.finish();
    c.bench_function("dpop_proof_verify", |b| {
        b.iter(|| dpop::verify(black_box(&proof), &request, Window::default(), NOW).unwrap())
    });
}

fn token_verify(c: &mut Criterion) {
    let key = SigningKey::generate();
    let keys = HashMap::from([("k1".to_string(), key.verifying_key().unwrap())]);
    let t = token::sign("k1", &claims(5), &key).unwrap();
    let expect = Expectations {
        issuer: "https://agentauth.example".into(),
        audience: "payments".into(),
        leeway_secs: 5,
    };
    c.bench_function("access_token_verify", |b| {
        b.iter(|| token::verify(black_box(&t), &keys, &expect, NOW).unwrap())
    });
    c.bench_function("access_token_hash", |b| {
        b.iter(|| token::token_hash(black_box(&t)))
    });
}

fn capability_match(c: &mut Criterion) {
    let granted = capabilities(20);
    let last: RequestedAction = serde_json::from_value(serde_json::json!({
        "type": "write", "resource": "service-19/eu/items/a/b/c", "action": "create"
    }))
    .unwrap();
    let miss: RequestedAction = serde_json::from_value(serde_json::json!({
        "type": "delete", "resource": "service-3/eu/items/a", "action": "purge"
    }))
    .unwrap();
    let mut g = c.benchmark_group("capability_match_20");
    g.bench_function("hit_last", |b| {
        b.iter(|| capability::permits(black_box(&granted), black_box(&last)))
    });
    g.bench_function("miss", |b| {
        b.iter(|| capability::permits(black_box(&granted), black_box(&miss)))
    });
    g.finish();
}

fn gcra_step(c: &mut Criterion) {
    let limit: RateLimit =
        serde_json::from_value(serde_json::json!({"requests": 60, "period": "1m", "burst": 10}))
            .unwrap();
    let params = limit.params().unwrap();
    c.bench_function("gcra_step", |b| {
        let mut tat = None;
        let mut now = 1_000_000u64;
        b.iter(|| {
            now += 1_000_000;
            let d = gcra::step(tat, black_box(now), params);
            tat = Some(d.new_tat);
            d
        })
    });
}

fn audit_chain(c: &mut Criterion) {
    let mut chain = Chain::new("verifier/node-a");
    let draft = Draft {
        kind: kinds::VERIFICATION.into(),
        agent: Some("shop/shopper".into()),
        grant: Some("shop/groceries".into()),
        decision: Some("allow".into()),
        reason: None,
        details: serde_json::Map::new(),
    };
    c.bench_function("audit_chain_append", |b| {
        b.iter(|| {
            chain
                .append(black_box(draft.clone()), 1_800_000_000_000)
                .unwrap()
        })
    });
    let spec = serde_json::json!({"agentRef": "shopper", "serviceProvider": "payments",
        "capabilities": capabilities(5), "envelopeRef": "daily-limits", "duration": "24h"});
    c.bench_function("spec_digest_jcs", |b| {
        b.iter(|| jcs::digest_b64(black_box(&spec)).unwrap())
    });
}

criterion_group!(
    benches,
    es256,
    dpop_verify,
    token_verify,
    capability_match,
    gcra_step,
    audit_chain
);
criterion_main!(benches);
