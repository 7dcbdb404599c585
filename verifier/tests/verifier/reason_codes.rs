//! Every reason code the verifier can give, reached by performing the
//! request that earns it (STYLE: a security test performs the attack).
//!
//! One test per family of codes, so that one failure does not hide the
//! rest. Each family test asserts it reached exactly the codes its list
//! names; [`every_reason_code_is_reached`] checks that the lists together
//! cover every code of the verifier's check table.

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

const TOKEN_HEADER: &[&str] = &[
    "token_type_invalid",
    "token_algorithm_unsupported",
    "token_critical_unsupported",
];
const KEYS_AND_SIGNATURE: &[&str] = &[
    "token_key_unknown",
    "key_certificate_invalid",
    "token_signature_invalid",
    "token_claims_invalid",
];
const CLAIMS: &[&str] = &[
    "token_issuer_invalid",
    "token_audience_invalid",
    "token_expired",
    "token_not_yet_valid",
];
const DPOP: &[&str] = &[
    "dpop_missing",
    "dpop_invalid",
    "jwk_private_key_refused",
    "dpop_method_mismatch",
    "dpop_url_mismatch",
    "dpop_stale",
    "dpop_ath_mismatch",
    "dpop_key_mismatch",
    "dpop_replayed",
];
const GRANT_STATE: &[&str] = &[
    "grant_unknown",
    "grant_not_approved",
    "grant_revoked",
    "grant_expired",
];
const CAPABILITY: &[&str] = &[
    "capability_not_granted",
    "resource_pattern_invalid",
    "amount_invalid",
    "currency_unknown",
    "currency_mismatch",
    "amount_over_limit",
];
const ENVELOPE: &[&str] = &[
    "outside_time_window",
    "envelope_invalid",
    "time_zone_unknown",
];
const LIMITS: &[&str] = &["daily_amount_over_limit", "rate_limited", "grant_revoked"];
const STATE_DOWN: &[&str] = &["state_unavailable"];
const NONCE: &[&str] = &["use_dpop_nonce"];
const UNREADABLE: &[&str] = &[
    "token_malformed",
    "request_invalid",
    "input_too_large",
    "json_invalid",
];

/// Every family's codes.
const FAMILIES: &[&[&str]] = &[
    TOKEN_HEADER,
    KEYS_AND_SIGNATURE,
    CLAIMS,
    DPOP,
    GRANT_STATE,
    CAPABILITY,
    ENVELOPE,
    LIMITS,
    STATE_DOWN,
    NONCE,
    UNREADABLE,
];

/// One verifier on an in-process state with one grant (a rate limit of
/// one an hour, burst 2, and 60 EUR a day) and a token for it.
struct Run {
    fx: Fixture,
    state: Arc<dyn SharedState>,
    v: Running,
    uid: String,
    token: String,
    caps: Value,
    now: i64,
    seen: BTreeSet<String>,
}

impl Run {
    async fn new() -> Run {
        let fx = Fixture::new().await;
        let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
        let v = start(&fx, state.clone()).await;
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
        Run {
            fx,
            state,
            v,
            uid,
            token,
            caps,
            now,
            seen: BTreeSet::new(),
        }
    }

    /// Asserts that `body` is denied with `code`.
    async fn expect(&mut self, code: &str, body: Value) {
        let got = self.v.reason(&body).await;
        assert_eq!(got, code, "{body}");
        self.seen.insert(code.to_owned());
    }

    /// A request with token `t` and a good proof for it.
    fn with(&self, t: String) -> Value {
        let mut b = self.fx.body(&t, read("orders/1"));
        b["dpop"] = json!(self.fx.proof(&t, "POST", URL));
        b
    }

    /// A token of the run's claims under `header`, signed by the issuing key.
    fn raw(&self, header: Value) -> String {
        let claims = serde_json::to_value(self.fx.claims(&self.uid, self.caps.clone())).unwrap();
        self.fx.sign_raw(header, claims)
    }

    /// A token for a new grant `g` (put into the state first).
    async fn token_for(&self, g: &agentauth_state::GrantState) -> String {
        self.state.put_grant(g).await.unwrap();
        self.fx.token(&g.uid, self.caps.clone()).await
    }

    /// Asserts that exactly `family`'s codes were reached, and stops.
    async fn done(self, family: &[&str]) {
        let want: BTreeSet<String> = family.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(self.seen, want);
        self.v.stop().await;
    }
}

fn pay(amount: &str, currency: &str) -> Value {
    json!({"type": "transact", "resource": "pay/eu", "amount": amount, "currency": currency})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_answer_names_agent_and_grant() {
    let run = Run::new().await;
    let (_, answer) = run
        .v
        .verify(&run.fx.body(&run.token, read("orders/42")))
        .await;
    assert_eq!(answer["allow"], json!(true), "{answer}");
    assert_eq!(
        (answer["agent"].as_str(), answer["grant"].as_str()),
        (Some(AGENT), Some(GRANT))
    );
    assert_eq!(answer["rateLimit"]["remaining"], json!(1));
    run.done(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_header_codes() {
    let mut run = Run::new().await;
    let kid = run.fx.root_kid.clone();
    let t = run.raw(json!({"typ": "JWT", "alg": "ES256", "kid": kid}));
    run.expect("token_type_invalid", run.with(t)).await;
    let t = swap_alg(&run.raw(json!({"typ": "at+jwt", "alg": "ES256", "kid": kid})));
    run.expect("token_algorithm_unsupported", run.with(t)).await;
    let t = run.raw(json!({"typ": "at+jwt", "alg": "ES256", "kid": kid, "crit": ["x"]}));
    run.expect("token_critical_unsupported", run.with(t)).await;
    run.done(TOKEN_HEADER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_and_signature_codes() {
    let mut run = Run::new().await;
    let t = run.raw(json!({"typ": "at+jwt", "alg": "ES256", "kid": "nobody"}));
    run.expect("token_key_unknown", run.with(t)).await;
    let foreign = run
        .fx
        .foreign
        .sign_token(&run.fx.claims(&run.uid, run.caps.clone()))
        .await
        .unwrap();
    run.expect("key_certificate_invalid", run.with(foreign))
        .await;
    let flipped = flip_signature(&run.token);
    run.expect("token_signature_invalid", run.with(flipped))
        .await;
    let bad_caps = run.fx.claims(
        &run.uid,
        json!([{"type": "transact", "resource": "pay/**", "maxAmount": "5"}]),
    );
    let t = run.fx.sign(&bad_caps).await;
    run.expect("token_claims_invalid", run.with(t)).await;
    run.done(KEYS_AND_SIGNATURE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_codes() {
    let mut run = Run::new().await;
    let now = run.now;
    let mut c = run.fx.claims(&run.uid, run.caps.clone());
    c.iss = "https://evil.test".into();
    let t = run.fx.sign(&c).await;
    run.expect("token_issuer_invalid", run.with(t)).await;
    let mut c = run.fx.claims(&run.uid, run.caps.clone());
    c.aud = "other.test".into();
    let t = run.fx.sign(&c).await;
    run.expect("token_audience_invalid", run.with(t)).await;
    let mut c = run.fx.claims(&run.uid, run.caps.clone());
    (c.iat, c.nbf, c.exp) = (now - 600, now - 600, now - 300);
    let t = run.fx.sign(&c).await;
    run.expect("token_expired", run.with(t)).await;
    let mut c = run.fx.claims(&run.uid, run.caps.clone());
    (c.nbf, c.exp) = (now + 600, now + 900);
    let t = run.fx.sign(&c).await;
    run.expect("token_not_yet_valid", run.with(t)).await;
    run.done(CLAIMS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_codes() {
    let mut run = Run::new().await;
    let (fx, token, now) = (&run.fx, run.token.clone(), run.now);
    let mut b = fx.body(&token, read("orders/1"));
    b.as_object_mut().unwrap().remove("dpop");
    let missing = b;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!("not.a.proof");
    let invalid = b;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(private_key_proof(&token));
    let private = b;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(fx.proof(&token, "GET", URL));
    let method = b;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(fx.proof(&token, "POST", "https://shop.test/elsewhere"));
    let url = b;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(fx.proof_with(&fx.agent, &token, "POST", URL, now - 600));
    let stale = b;
    let other = fx.token(&run.uid, run.caps.clone()).await;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(fx.proof(&other, "POST", URL));
    let ath = b;
    let mut b = fx.body(&token, read("orders/1"));
    b["dpop"] = json!(fx.proof_with(&SigningKey::generate(), &token, "POST", URL, now));
    let key = b;
    let replayed = fx.body(&token, read("orders/2"));
    run.expect("dpop_missing", missing).await;
    run.expect("dpop_invalid", invalid).await;
    run.expect("jwk_private_key_refused", private).await;
    run.expect("dpop_method_mismatch", method).await;
    run.expect("dpop_url_mismatch", url).await;
    run.expect("dpop_stale", stale).await;
    run.expect("dpop_ath_mismatch", ath).await;
    run.expect("dpop_key_mismatch", key).await;
    assert_eq!(run.v.reason(&replayed).await, "allowed");
    run.expect("dpop_replayed", replayed).await;
    assert!(
        run.v
            .metric("agentauth_verifications_total{decision=\"deny\",reason=\"dpop_replayed\"}")
            .await
            >= 1.0
    );
    run.done(DPOP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_state_codes() {
    let mut run = Run::new().await;
    let t = run.fx.token(&super::support::uid(), run.caps.clone()).await;
    run.expect("grant_unknown", run.fx.body(&t, read("orders/1")))
        .await;
    for (phase, code) in [
        (GrantPhase::Pending, "grant_not_approved"),
        (GrantPhase::Revoked, "grant_revoked"),
        (GrantPhase::Expired, "grant_expired"),
    ] {
        let mut g = run.fx.grant(&super::support::uid(), None);
        g.phase = phase;
        let t = run.token_for(&g).await;
        run.expect(code, run.fx.body(&t, read("orders/1"))).await;
    }
    run.done(GRANT_STATE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_codes() {
    let mut run = Run::new().await;
    let t = run
        .token_for(&run.fx.grant(&super::support::uid(), None))
        .await;
    run.expect(
        "capability_not_granted",
        run.fx.body(&t, read("invoices/1")),
    )
    .await;
    run.expect(
        "resource_pattern_invalid",
        run.fx.body(&t, read("orders/*")),
    )
    .await;
    run.expect("amount_invalid", run.fx.body(&t, pay("1.234", "EUR")))
        .await;
    run.expect("currency_unknown", run.fx.body(&t, pay("1.00", "XQQ")))
        .await;
    run.expect("currency_mismatch", run.fx.body(&t, pay("1.00", "USD")))
        .await;
    run.expect("amount_over_limit", run.fx.body(&t, pay("50.01", "EUR")))
        .await;
    run.done(CAPABILITY).await;
}

/// Time windows, and envelopes that do not compile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_codes() {
    let mut run = Run::new().await;
    let hour = (run.now / 3600 + 2) % 24;
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
        let t = run
            .token_for(&run.fx.grant(&super::support::uid(), Some(envelope)))
            .await;
        run.expect(code, run.fx.body(&t, read("orders/1"))).await;
    }
    run.done(ENVELOPE).await;
}

/// The one round trip: rate limit (burst 2), amounts, a revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_amount_codes() {
    let mut run = Run::new().await;
    let token = run.token.clone();
    // Spend the burst.
    for resource in ["orders/42", "orders/2"] {
        assert_eq!(
            run.v.reason(&run.fx.body(&token, read(resource))).await,
            "allowed"
        );
    }
    assert_eq!(
        run.v
            .reason(&run.fx.body(&token, pay("30.00", "EUR")))
            .await,
        "rate_limited"
    );
    let rich = super::support::uid();
    let t = run
        .token_for(&run.fx.grant(
            &rich,
            Some(json!({"transactions": {"currency": "EUR", "maxPerDay": "60.00"}})),
        ))
        .await;
    assert_eq!(
        run.v.reason(&run.fx.body(&t, pay("40.00", "EUR"))).await,
        "allowed"
    );
    run.expect(
        "daily_amount_over_limit",
        run.fx.body(&t, pay("30.00", "EUR")),
    )
    .await;
    run.expect("rate_limited", run.fx.body(&token, read("orders/9")))
        .await;
    run.state
        .revoke_grant(&rich, run.fx.clock.now_ms())
        .await
        .unwrap();
    run.expect("grant_revoked", run.fx.body(&t, read("orders/9")))
        .await;
    run.done(LIMITS).await;
}

/// A state that does not answer: fail closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_unavailable_fails_closed() {
    let mut run = Run::new().await;
    let down = start_with(&run.fx, dead_redis(), |_| {}, false).await;
    let (_, answer) = down
        .verify(&run.fx.body(&run.token, read("orders/1")))
        .await;
    assert_eq!(answer["reason"], json!("state_unavailable"), "{answer}");
    assert_eq!(down.get("/readyz").await.0, 503);
    run.seen.insert("state_unavailable".into());
    run.done(STATE_DOWN).await;
}

/// Server nonces on: a proof without one is told to use the nonce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonce_required_code() {
    let mut run = Run::new().await;
    let key_file = run.fx.dir.path().join("nonce.key");
    std::fs::write(&key_file, [5u8; 32]).unwrap();
    let nonces = start_with(
        &run.fx,
        run.state.clone(),
        |c| c.dpop_nonce_key_file = Some(key_file),
        true,
    )
    .await;
    let (_, answer) = nonces
        .verify(&run.fx.body(&run.token, read("orders/1")))
        .await;
    assert_eq!(answer["reason"], json!("use_dpop_nonce"), "{answer}");
    assert!(answer["dpopNonce"].is_string(), "{answer}");
    run.seen.insert("use_dpop_nonce".into());
    run.done(NONCE).await;
}

/// Unreadable requests: 400 problem+json with the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_request_codes() {
    let mut run = Run::new().await;
    let token = run.token.clone();
    for (code, body) in [
        (
            "token_malformed",
            run.with(token[..token.len() / 2].to_owned()),
        ),
        ("request_invalid", {
            let mut b = run.fx.body(&token, read("o"));
            b["url"] = json!("https://shöp.test/");
            b
        }),
        ("input_too_large", {
            let mut b = run.fx.body(&token, read("o"));
            b["dpop"] = json!("a".repeat(4000));
            b
        }),
        ("json_invalid", json!({"token": 1})),
    ] {
        let (status, ct, text) = run.v.post(serde_json::to_vec(&body).unwrap()).await;
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
        run.seen.insert(code.to_owned());
    }
    run.done(UNREADABLE).await;
}

/// Every code named in the verifier's check table is reached by one of
/// the family tests above (each asserts it reached its whole list).
#[test]
fn every_reason_code_is_reached() {
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
    let seen: BTreeSet<String> = FAMILIES
        .iter()
        .flat_map(|family| family.iter().map(|c| (*c).to_owned()))
        .collect();
    let missing: Vec<_> = named.difference(&seen).collect();
    assert!(missing.is_empty(), "codes never reached: {missing:?}");
    assert!(UNREACHABLE.iter().all(|(c, _)| !named.contains(*c)));
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

/// A rate limit with `appliesTo` counts only the actions it names (here:
/// payments, one an hour); reads pass it untouched, and its state is its
/// own, apart from the envelope's other limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_counts_only_the_actions_it_applies_to() {
    let run = Run::new().await;
    let uid = super::support::uid();
    let envelope = json!({"rateLimits": [
        {"requests": 100, "period": "1h", "burst": 100},
        {"requests": 1, "period": "1h", "burst": 1,
         "appliesTo": {"type": "transact", "resource": "pay/**"}},
    ]});
    let t = run.token_for(&run.fx.grant(&uid, Some(envelope))).await;
    let reason = |body: Value| {
        let v = &run.v;
        async move { v.reason(&body).await }
    };
    for resource in ["orders/1", "orders/2", "orders/3"] {
        assert_eq!(reason(run.fx.body(&t, read(resource))).await, "allowed");
    }
    assert_eq!(reason(run.fx.body(&t, pay("1.00", "EUR"))).await, "allowed");
    assert_eq!(
        reason(run.fx.body(&t, pay("1.00", "EUR"))).await,
        "rate_limited"
    );
    assert_eq!(reason(run.fx.body(&t, read("orders/4"))).await, "allowed");
    run.v.stop().await;
}
