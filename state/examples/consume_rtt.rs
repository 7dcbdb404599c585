//! Round-trip time of one `consume` (the verifier's one Redis call) against
//! a local `redis-server`, one call at a time: p50 / p99 / p99.9 over 10 000
//! calls after 1 000 warm-up calls, for an envelope with one rate limit and
//! a daily amount limit; then a bare `PING` on the same connection, the floor.
//!
//! ```text
//! cargo run --release -p agentauth-state --example consume_rtt [-- CALLS]
//! ```
//!
//! Starts its own Redis through the test harness (needs `redis-server` on `PATH`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a measuring tool")]

use std::time::{Duration, Instant};

use agentauth_core::envelope::MinorLimits;
use agentauth_core::gcra::RateLimit;
use agentauth_core::money::Currency;
use agentauth_state::{ConsumeRequest, RedisConfig, RedisState, SharedState, Transaction};
use agentauth_testenv::RedisServer;

/// A fresh proof's `iat`: now, in seconds.
fn iat_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |n| n.parse().expect("CALLS is a number"));
    let server = RedisServer::start().await.expect("start redis-server");
    let state = RedisState::connect(RedisConfig::new(server.url()))
        .await
        .expect("connect");
    let limit = RateLimit {
        requests: 1_000_000,
        period: "1d".parse().unwrap(),
        burst: 1_000_000,
        applies_to: None,
    }
    .params()
    .unwrap();
    let limits = [(0, limit)];
    let transaction = Transaction {
        amount_minor: 1,
        currency: Currency::EUR,
        limits: MinorLimits {
            currency: Currency::EUR,
            max_per_transaction: Some(5_000),
            max_per_day: Some(u64::MAX / 2),
        },
    };
    let mut samples = Vec::with_capacity(calls);
    for i in 0..calls + 1_000 {
        let jti = format!("proof-{i}");
        let request = ConsumeRequest {
            uid: "6a1f0c52-3d7e-4b8a-9f10-2c4d5e6f7a8b",
            jti: &jti,
            jti_ttl_ms: 120_000,
            iat: iat_now(),
            rate_limits: &limits,
            transaction: Some(transaction),
        };
        let started = Instant::now();
        let outcome = state.consume(&request).await.expect("consume");
        let took = started.elapsed();
        assert!(outcome.is_allowed(), "{outcome:?}");
        if i >= 1_000 {
            samples.push(took);
        }
    }
    report("consume", samples);

    // The floor: a bare PING through the same connection.
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        state.ping().await.expect("ping");
        samples.push(started.elapsed());
    }
    report("PING (floor)", samples);
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let total: Duration = samples.iter().sum();
    println!(
        "{what} over {} calls: mean {:?}, p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        samples.len(),
        total / u32::try_from(samples.len()).unwrap(),
        at(0.50),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1]
    );
}
