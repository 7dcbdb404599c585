//! Every reason code the verifier can give, reached by performing the
//! request that earns it (STYLE: a security test performs the attack).

use std::collections::BTreeSet;
use std::sync::Arc;

use agentauth_core::es256::SigningKey;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_state::{GrantPhase, InProcessState, SharedState};
use serde_json::{Value, json};

use crate::support::*;

/// Codes that no verification can produce, and why.
const UNREACHABLE: &[(&str, &str)] =
    &[("dpop_nonce_invalid", "the verifier requires no DPoP nonce")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reason_code_is_reached() {
    let fx = Fixture::new().await;
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let v = start(&fx, state.clone()).await;
    let mut seen = BTreeSet::new();
    let now = fx.now();
    let caps = json!([
        {"type": "read", "resource": "orders/**"},
        {"type": "transact", "resource": "pay/**", "maxAmount": "50.00", "currency": "EUR"},
    ]);
    let envelope = json!({
        "rateLimits": [{"requests": 1, "period": "1h", "burst": 2}],
        "transactions": {"currency": "EUR", "maxPerDay": "60.00"},
    });
    let uid = uid();
    state
        .put_grant(&fx.grant(&uid, Some(envelope)))
        .await
        .unwrap();
    let token = fx.token(&uid, caps.clone()).await;
    let pay = |amount: &str, currency: &str| json!({"type": "transact", "resource": "pay/eu", "amount": amount, "currency": currency});
    let mut expect = async |code: &str, body: Value| {
        let got = v.reason(&body).await;
        assert_eq!(got, code, "{body}");
        seen.insert(code.to_owned());
    };

    // The happy path first: allowed, and the answer names agent and grant.
    let (_, answer) = v.verify(&fx.body(&token, read("orders/42"))).await;
    assert_eq!(answer["allow"], json!(true), "{answer}");
    assert_eq!(
        (answer["agent"].as_str(), answer["grant"].as_str()),
        (Some(AGENT), Some(GRANT))
    );
    assert_eq!(answer["rateLimit"]["remaining"], json!(1));

    // 1. Token header.
    let claims = serde_json::to_value(fx.claims(&uid, caps.clone())).unwrap();
    let raw = |header: Value| fx.sign_raw(header, claims.clone());
    let with = |t: String| {
        let mut b = fx.body(&t, read("orders/1"));
        b["dpop"] = json!(fx.proof(&t, "POST", URL));
        b
    };
    expect(
        "token_type_invalid",
        with(raw(
            json!({"typ": "JWT", "alg": "ES256", "kid": fx.root_kid}),
        )),
    )
    .await;
    expect(
        "token_algorithm_unsupported",
        with(swap_alg(&raw(
            json!({"typ": "at+jwt", "alg": "ES256", "kid": fx.root_kid}),
        ))),
    )
    .await;
    expect(
        "token_critical_unsupported",
        with(raw(
            json!({"typ": "at+jwt", "alg": "ES256", "kid": fx.root_kid, "crit": ["x"]}),
        )),
    )
    .await;
    // 2. Keys and signature.
    expect(
        "token_key_unknown",
        with(raw(
            json!({"typ": "at+jwt", "alg": "ES256", "kid": "nobody"}),
        )),
    )
    .await;
    let foreign = fx
        .foreign
        .sign_token(&fx.claims(&uid, caps.clone()))
        .await
        .unwrap();
    expect("key_certificate_invalid", with(foreign)).await;
    expect("token_signature_invalid", with(flip_signature(&token))).await;
    let bad_caps = fx.claims(
        &uid,
        json!([{"type": "transact", "resource": "pay/**", "maxAmount": "5"}]),
    );
    expect("token_claims_invalid", with(fx.sign(&bad_caps).await)).await;
    // 3. Claims.
    let mut c = fx.claims(&uid, caps.clone());
    c.iss = "https://evil.test".into();
    expect("token_issuer_invalid", with(fx.sign(&c).await)).await;
    let mut c = fx.claims(&uid, caps.clone());
    c.aud = "other.test".into();
    expect("token_audience_invalid", with(fx.sign(&c).await)).await;
    let mut c = fx.claims(&uid, caps.clone());
    (c.iat, c.nbf, c.exp) = (now - 600, now - 600, now - 300);
    expect("token_expired", with(fx.sign(&c).await)).await;
    let mut c = fx.claims(&uid, caps.clone());
    (c.nbf, c.exp) = (now + 600, now + 900);
    expect("token_not_yet_valid", with(fx.sign(&c).await)).await;
    // 4. DPoP.
    let mut b = fx.body(&token, read("orders/1"));
    b.as_object_mut().unwrap().remove("dpop");
    expect("dpop_missing", b).await;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!("not.a.proof");
    expect("dpop_invalid", b).await;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(private_key_proof(&token));
    expect("jwk_private_key_refused", b).await;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(fx.proof(&token, "GET", URL));
    expect("dpop_method_mismatch", b).await;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(fx.proof(&token, "POST", "https://shop.test/elsewhere"));
    expect("dpop_url_mismatch", b).await;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(fx.proof_with(&fx.agent, &token, "POST", URL, now - 600));
    expect("dpop_stale", b).await;
    let other = fx.token(&uid, caps.clone()).await;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(fx.proof(&other, "POST", URL));
    expect("dpop_ath_mismatch", b).await;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(fx.proof_with(&SigningKey::generate(), &token, "POST", URL, now));
    expect("dpop_key_mismatch", b).await;
    let b = fx.body(&token, read("orders/2"));
    assert_eq!(v.reason(&b).await, "allowed");
    expect("dpop_replayed", b).await;
    // 5. Grant state.
    expect(
        "grant_unknown",
        fx.body(
            &fx.token(&super::support::uid(), caps.clone()).await,
            read("orders/1"),
        ),
    )
    .await;
    for (phase, code) in [
        (GrantPhase::Pending, "grant_not_approved"),
        (GrantPhase::Revoked, "grant_revoked"),
        (GrantPhase::Expired, "grant_expired"),
    ] {
        let u = super::support::uid();
        let mut g = fx.grant(&u, None);
        g.phase = phase;
        state.put_grant(&g).await.unwrap();
        expect(
            code,
            fx.body(&fx.token(&u, caps.clone()).await, read("orders/1")),
        )
        .await;
    }
    // 6. Capability.
    let free = super::support::uid();
    state.put_grant(&fx.grant(&free, None)).await.unwrap();
    let t = fx.token(&free, caps.clone()).await;
    expect("capability_not_granted", fx.body(&t, read("invoices/1"))).await;
    expect("resource_pattern_invalid", fx.body(&t, read("orders/*"))).await;
    expect("amount_invalid", fx.body(&t, pay("1.234", "EUR"))).await;
    expect("currency_unknown", fx.body(&t, pay("1.00", "XQQ"))).await;
    expect("currency_mismatch", fx.body(&t, pay("1.00", "USD"))).await;
    expect("amount_over_limit", fx.body(&t, pay("50.01", "EUR"))).await;
    // 7. Time windows and envelopes that do not compile.
    let hour = (now / 3600 + 2) % 24;
    let closed = json!({"timeWindows": [{"days": ["mon","tue","wed","thu","fri","sat","sun"],
        "start": format!("{hour:02}:00"), "end": format!("{:02}:00", (hour + 1) % 24), "timeZone": "UTC"}]});
    for (envelope, code) in [
        (closed, "outside_time_window"),
        (
            json!({"rateLimits": [{"requests": 1, "period": "1h", "burst": 0}]}),
            "envelope_invalid",
        ),
        (
            json!({"timeWindows": [{"days": ["mon"], "start": "00:00", "end": "00:00", "timeZone": "Mars/Olympus"}]}),
            "time_zone_unknown",
        ),
    ] {
        let u = super::support::uid();
        state
            .put_grant(&fx.grant(&u, Some(envelope)))
            .await
            .unwrap();
        expect(
            code,
            fx.body(&fx.token(&u, caps.clone()).await, read("orders/1")),
        )
        .await;
    }
    // 8. The one round trip: rate limit (burst 2, one spent above), amounts.
    assert_eq!(
        v.reason(&fx.body(&token, pay("30.00", "EUR"))).await,
        "rate_limited"
    );
    let rich = super::support::uid();
    state
        .put_grant(&fx.grant(
            &rich,
            Some(json!({"transactions": {"currency": "EUR", "maxPerDay": "60.00"}})),
        ))
        .await
        .unwrap();
    let t = fx.token(&rich, caps.clone()).await;
    assert_eq!(v.reason(&fx.body(&t, pay("40.00", "EUR"))).await, "allowed");
    expect("daily_amount_over_limit", fx.body(&t, pay("30.00", "EUR"))).await;
    expect("rate_limited", fx.body(&token, read("orders/9"))).await;
    state.revoke_grant(&rich, fx.clock.now_ms()).await.unwrap();
    expect("grant_revoked", fx.body(&t, read("orders/9"))).await;

    // A state that does not answer: fail closed.
    let dead = dead_redis();
    let down = start_with(&fx, dead, |_| {}, false).await;
    let (_, answer) = down.verify(&fx.body(&token, read("orders/1"))).await;
    assert_eq!(answer["reason"], json!("state_unavailable"), "{answer}");
    assert_eq!(down.get("/readyz").await.0, 503);
    seen.insert("state_unavailable".into());

    // Server nonces on: a proof without one is told to use the nonce.
    let key_file = fx.dir.path().join("nonce.key");
    std::fs::write(&key_file, [5u8; 32]).unwrap();
    let nonces = start_with(
        &fx,
        state.clone(),
        |c| c.dpop_nonce_key_file = Some(key_file),
        true,
    )
    .await;
    let (_, answer) = nonces.verify(&fx.body(&token, read("orders/1"))).await;
    assert_eq!(answer["reason"], json!("use_dpop_nonce"), "{answer}");
    assert!(answer["dpopNonce"].is_string(), "{answer}");
    seen.insert("use_dpop_nonce".into());

    // Unreadable requests: 400 problem+json with the code.
    for (code, body) in [
        ("token_malformed", with(token[..token.len() / 2].to_owned())),
        ("request_invalid", {
            let mut b = fx.body(&token, read("o"));
            b["url"] = json!("https://shöp.test/");
            b
        }),
        ("input_too_large", {
            let mut b = fx.body(&token, read("o"));
            b["dpop"] = json!("a".repeat(4000));
            b
        }),
        ("json_invalid", json!({"token": 1})),
    ] {
        let (status, ct, text) = v.post(serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(
            (status, ct.as_str()),
            (400, "application/problem+json"),
            "{text}"
        );
        let problem: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(problem["code"], json!(code), "{problem}");
        assert_eq!(
            problem["type"],
            json!(format!("https://agentauth.dev/errors/{code}"))
        );
        seen.insert(code.to_owned());
    }

    // Every code named in the verifier's check table was reached.
    let table = include_str!("../../src/verify.rs");
    let named: BTreeSet<String> = table
        .lines()
        .filter(|l| l.starts_with("//! | "))
        .flat_map(|l| {
            l.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|s| s.chars().all(|c| c.is_ascii_lowercase() || c == '_') && s.contains('_'))
        .collect();
    let missing: Vec<_> = named.difference(&seen).collect();
    assert!(missing.is_empty(), "codes never reached: {missing:?}");
    assert!(UNREACHABLE.iter().all(|(c, _)| !named.contains(*c)));
    assert!(
        v.metric("agentauth_verifications_total{decision=\"deny\",reason=\"dpop_replayed\"}")
            .await
            >= 1.0
    );
    v.stop().await;
}

/// The same token with `alg` changed to HS256 (signature left as it was).
fn swap_alg(token: &str) -> String {
    let (header, rest) = token.split_once('.').unwrap();
    let mut h: Value = serde_json::from_slice(
        &agentauth_core::b64::decode(header, agentauth_core::ErrorCode::TokenMalformed).unwrap(),
    )
    .unwrap();
    h["alg"] = json!("HS256");
    format!(
        "{}.{rest}",
        agentauth_core::b64::encode(serde_json::to_vec(&h).unwrap())
    )
}

/// The same token with one signature byte changed (still 64 bytes).
fn flip_signature(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut bytes =
        agentauth_core::b64::decode(sig, agentauth_core::ErrorCode::TokenMalformed).unwrap();
    bytes[10] ^= 0x55;
    format!("{input}.{}", agentauth_core::b64::encode(bytes))
}

/// A proof whose `jwk` header carries a private scalar (written by hand:
/// the library's JWK type never serializes one).
fn private_key_proof(token: &str) -> String {
    use agentauth_core::b64;
    let key = SigningKey::generate();
    let mut jwk =
        serde_json::to_value(EcPublicJwk::from_key(&key.verifying_key().unwrap())).unwrap();
    jwk["d"] = json!(b64::encode(key.to_scalar()));
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    let ath = b64::encode(agentauth_core::token::token_hash(token));
    let claims = json!({"jti": agentauth_core::dpop::new_jti(), "htm": "POST", "htu": URL, "iat": 0, "ath": ath});
    let input = format!(
        "{}.{}",
        b64::encode(serde_json::to_vec(&header).unwrap()),
        b64::encode(serde_json::to_vec(&claims).unwrap())
    );
    format!("{input}.{}", b64::encode(key.sign(input.as_bytes())))
}

/// A Redis state on a port where nothing listens.
pub fn dead_redis() -> Arc<dyn SharedState> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = agentauth_state::RedisConfig::new(format!("redis://127.0.0.1:{port}/"));
    config.hot_timeout = std::time::Duration::from_millis(50);
    Arc::new(agentauth_state::RedisState::new(config).unwrap())
}
