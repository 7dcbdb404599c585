//! The contract of `SharedState::consume`, the verifier's one round trip:
//! rate limits, amounts, and the GCRA of the Lua script against
//! `gcra::step` itself. Every test runs against both implementations, as in
//! `contract.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed test panics"
)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use agentauth_core::gcra;
use agentauth_core::money::Currency;
use agentauth_state::{
    Allowance, Clock, ConsumeOutcome, ManualClock, RateLimitStatus, Transaction,
};

use support::{
    Backend, Kind, T0, consume, consume_indexed, consume_jti, eur, fresh_uid, jti, limit,
};

contract!(
    burst_then_exact_retry_after,
    burst_on_the_shared_clock,
    rate_limit_shared_by_two_clients_admits_the_total,
    daily_limit_holds_under_200_concurrent_requests,
    refused_requests_consume_nothing,
    transaction_checks_in_core_order,
    daily_sum_resets_at_utc_midnight,
    gcra_agrees_with_core_step,
    a_limit_counted_alone_keeps_its_envelope_position,
);

fn allowed(limit: usize, remaining: u32, reset_ms: u64) -> ConsumeOutcome {
    ConsumeOutcome::Allowed(Allowance {
        rate_limit: Some(RateLimitStatus {
            limit,
            remaining,
            reset_ms,
        }),
        spent_today_minor: None,
    })
}

fn spent(total: u64) -> ConsumeOutcome {
    ConsumeOutcome::Allowed(Allowance {
        rate_limit: None,
        spent_today_minor: Some(total),
    })
}

async fn burst_then_exact_retry_after(kind: Kind) {
    let clock = Arc::new(ManualClock::new(T0));
    let b = Backend::start(kind, Some(clock.clone())).await;
    let uid = fresh_uid("burst");
    let limits = [limit(60, "1m", 5)]; // T = 1 s, τ = 4 s
    for (k, remaining) in [4, 3, 2, 1, 0].into_iter().enumerate() {
        let reset_ms = 1000 * (k as u64 + 1);
        assert_eq!(
            consume(&*b.state, &uid, &limits, None).await,
            allowed(0, remaining, reset_ms)
        );
    }
    let refused = ConsumeOutcome::RateLimited {
        limit: 0,
        retry_after_ms: 1000,
    };
    assert_eq!(consume(&*b.state, &uid, &limits, None).await, refused);
    clock.advance(Duration::from_millis(999));
    let refused = ConsumeOutcome::RateLimited {
        limit: 0,
        retry_after_ms: 1,
    };
    assert_eq!(consume(&*b.state, &uid, &limits, None).await, refused);
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        consume(&*b.state, &uid, &limits, None).await,
        allowed(0, 0, 5000)
    );
}

/// A request that only the envelope's second limit counts (`appliesTo`)
/// steps that limit's state and reports its envelope position; the first
/// limit's state is its own.
async fn a_limit_counted_alone_keeps_its_envelope_position(kind: Kind) {
    let clock = Arc::new(ManualClock::new(T0));
    let b = Backend::start(kind, Some(clock.clone())).await;
    let uid = fresh_uid("applies-to");
    let hourly = limit(1, "1h", 1);
    let second = [(1, hourly)];
    assert_eq!(
        consume_indexed(&*b.state, &uid, &second).await,
        allowed(1, 0, 3_600_000)
    );
    assert_eq!(
        consume_indexed(&*b.state, &uid, &second).await,
        ConsumeOutcome::RateLimited {
            limit: 1,
            retry_after_ms: 3_600_000
        }
    );
    assert_eq!(
        consume_indexed(&*b.state, &uid, &[(0, hourly)]).await,
        allowed(0, 0, 3_600_000)
    );
}

async fn burst_on_the_shared_clock(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let uid = fresh_uid("clock");
    let limits = [limit(1, "1h", 3)];
    for remaining in [2, 1, 0] {
        let outcome = consume(&*b.state, &uid, &limits, None).await;
        let ConsumeOutcome::Allowed(Allowance {
            rate_limit: Some(status),
            ..
        }) = outcome
        else {
            panic!("{outcome:?}");
        };
        assert_eq!(status.remaining, remaining);
    }
    // The wait is one emission interval (1 h) less the time the burst took.
    match consume(&*b.state, &uid, &limits, None).await {
        ConsumeOutcome::RateLimited {
            limit: 0,
            retry_after_ms,
        } => {
            assert!(
                (3_590_000..=3_600_000).contains(&retry_after_ms),
                "{retry_after_ms}"
            );
        }
        other => panic!("{other:?}"),
    }
}

async fn rate_limit_shared_by_two_clients_admits_the_total(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let clients = [b.state.clone(), b.second().await];
    let uid = fresh_uid("shared");
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (state, uid) = (clients[i % 2].clone(), uid.clone());
            tokio::spawn(async move { consume(&*state, &uid, &[limit(10, "1h", 10)], None).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap().is_allowed());
    }
    assert_eq!(admitted, 10);
}

async fn daily_limit_holds_under_200_concurrent_requests(kind: Kind) {
    const DAY: u64 = 10_000; // 100.00 EUR
    let b = Backend::start(kind, None).await;
    let clients = [b.state.clone(), b.second().await];
    let uid = fresh_uid("daily");
    let amounts: Vec<u64> = (0..200).map(|i| (i * 37) % 500 + 1).collect();
    let tasks: Vec<_> = amounts
        .iter()
        .enumerate()
        .map(|(i, &amount)| {
            let (state, uid) = (clients[i % 2].clone(), uid.clone());
            let tx = eur(amount, Some(5_000), Some(DAY));
            tokio::spawn(async move { (amount, consume(&*state, &uid, &[], Some(tx)).await) })
        })
        .collect();
    let (mut sum, mut totals, mut refused) = (0, Vec::new(), Vec::new());
    for task in tasks {
        match task.await.unwrap() {
            (amount, ConsumeOutcome::Allowed(a)) => {
                sum += amount;
                totals.push(a.spent_today_minor.unwrap());
            }
            (amount, ConsumeOutcome::DailyAmountOverLimit { spent_today_minor }) => {
                assert!(spent_today_minor + amount > DAY);
                refused.push(amount);
            }
            (_, other) => panic!("{other:?}"),
        }
    }
    assert!(sum <= DAY, "{sum}");
    assert!(!refused.is_empty());
    // Exact: the stored sum is the sum of what was admitted, every admitted
    // request saw a distinct running total, and nothing refused would fit now.
    let now = consume(&*b.state, &uid, &[], Some(eur(0, Some(5_000), Some(DAY)))).await;
    assert_eq!(now, spent(sum));
    totals.sort_unstable();
    totals.dedup();
    assert_eq!(
        (totals.len() + refused.len(), totals.last()),
        (200, Some(&sum))
    );
    assert!(refused.iter().all(|r| sum + r > DAY));
}

async fn refused_requests_consume_nothing(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let s = &*b.state;
    let uid = fresh_uid("nothing");
    let two = [limit(2, "1h", 2)];
    let tx = |amount| eur(amount, Some(1_000), Some(1_500));
    let usd = Transaction {
        currency: Currency::USD,
        ..tx(1)
    };
    assert_eq!(
        consume(s, &uid, &two, Some(tx(2_000))).await,
        ConsumeOutcome::AmountOverLimit
    );
    assert_eq!(
        consume(s, &uid, &two, Some(usd)).await,
        ConsumeOutcome::CurrencyMismatch
    );
    let first = consume(s, &uid, &two, Some(tx(1_000))).await;
    assert!(
        matches!(
            first,
            ConsumeOutcome::Allowed(Allowance {
                rate_limit: Some(RateLimitStatus { remaining: 1, .. }),
                spent_today_minor: Some(1_000)
            })
        ),
        "{first:?}"
    );
    let over = ConsumeOutcome::DailyAmountOverLimit {
        spent_today_minor: 1_000,
    };
    assert_eq!(consume(s, &uid, &two, Some(tx(600))).await, over);
    let second = consume(s, &uid, &two, Some(tx(500))).await;
    assert!(
        matches!(
            second,
            ConsumeOutcome::Allowed(Allowance {
                rate_limit: Some(RateLimitStatus { remaining: 0, .. }),
                spent_today_minor: Some(1_500)
            })
        ),
        "{second:?}"
    );
    assert!(matches!(
        consume(s, &uid, &two, Some(tx(0))).await,
        ConsumeOutcome::RateLimited { .. }
    ));

    // A limit that refuses leaves the others untouched.
    let uid = fresh_uid("nothing");
    let both = [limit(100, "1h", 100), limit(1, "1h", 1)];
    assert!(consume(s, &uid, &both, None).await.is_allowed());
    assert!(matches!(
        consume(s, &uid, &both, None).await,
        ConsumeOutcome::RateLimited { limit: 1, .. }
    ));
    let status = consume(s, &uid, &both[..1], None).await;
    assert!(
        matches!(
            status,
            ConsumeOutcome::Allowed(Allowance {
                rate_limit: Some(RateLimitStatus { remaining: 98, .. }),
                ..
            })
        ),
        "{status:?}"
    );
}

async fn transaction_checks_in_core_order(kind: Kind) {
    let b = Backend::start(kind, None).await;
    let s = &*b.state;
    let uid = fresh_uid("order");
    let tx = |amount, currency| Transaction {
        currency,
        ..eur(amount, Some(5_000), Some(10_000))
    };
    let cases = [
        (9_999, Currency::USD, ConsumeOutcome::CurrencyMismatch),
        (9_999, Currency::EUR, ConsumeOutcome::AmountOverLimit),
        (5_000, Currency::EUR, spent(5_000)),
        (5_000, Currency::EUR, spent(10_000)),
        (
            1,
            Currency::EUR,
            ConsumeOutcome::DailyAmountOverLimit {
                spent_today_minor: 10_000,
            },
        ),
        (0, Currency::EUR, spent(10_000)),
    ];
    for (amount, currency, want) in cases {
        assert_eq!(
            consume(s, &uid, &[], Some(tx(amount, currency))).await,
            want,
            "{amount} {currency}"
        );
    }
    // Without limits only the currency and u64 overflow are checked, exactly.
    let uid = fresh_uid("order");
    assert_eq!(
        consume(s, &uid, &[], Some(eur(u64::MAX - 1, None, None))).await,
        spent(u64::MAX - 1)
    );
    assert_eq!(
        consume(s, &uid, &[], Some(eur(1, None, None))).await,
        spent(u64::MAX)
    );
    let over = ConsumeOutcome::DailyAmountOverLimit {
        spent_today_minor: u64::MAX,
    };
    assert_eq!(consume(s, &uid, &[], Some(eur(1, None, None))).await, over);
}

async fn daily_sum_resets_at_utc_midnight(kind: Kind) {
    const DAY_US: u64 = 86_400_000_000;
    let midnight = (T0 / DAY_US + 1) * DAY_US;
    let clock = Arc::new(ManualClock::new(midnight - 1));
    let b = Backend::start(kind, Some(clock.clone())).await;
    let uid = fresh_uid("midnight");
    let tx = |amount| Some(eur(amount, None, Some(100)));
    assert_eq!(consume(&*b.state, &uid, &[], tx(100)).await, spent(100));
    assert!(matches!(
        consume(&*b.state, &uid, &[], tx(1)).await,
        ConsumeOutcome::DailyAmountOverLimit { .. }
    ));
    clock.set(midnight);
    assert_eq!(consume(&*b.state, &uid, &[], tx(1)).await, spent(1));
}

/// The Lua script (and the in-process state) against `gcra::step` itself,
/// on a pinned clock: random arrivals, backwards jumps and long pauses over
/// three limits, and arrivals exactly at (and 1 µs before) the instant a
/// limit admits again, compared outcome by outcome with a model that applies
/// `step` to each limit and commits only when all admit.
///
/// The pinned clock replaces Redis `TIME` but not key expiry, which runs on
/// Redis's real clock; so the limits have emission intervals of 10 s and
/// more (a TAT key lives at least that long in real time, far longer than
/// the test), and the model matches while the keys do.
async fn gcra_agrees_with_core_step(kind: Kind) {
    let clock = Arc::new(ManualClock::new(T0));
    let b = Backend::start(kind, Some(clock.clone())).await;
    let uid = fresh_uid("gcra");
    let limits = [limit(6, "1m", 3), limit(30, "1h", 5), limit(96, "1d", 12)];
    let mut tats: [Option<u64>; 3] = [None; 3];
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut now = T0;
    let (mut admitted, mut refused_by) = (0, [0; 3]);
    for step in 0..400 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // The instant limit i admits again (its TAT less its tolerance): the
        // boundary where `<=` and `<` differ, hit exactly or 1 µs early.
        let i = usize::try_from((rng >> 32) % 3).unwrap();
        let boundary = tats[i].map_or(now, |tat| tat.saturating_sub(limits[i].tolerance()));
        now = match rng % 20 {
            0 => now.saturating_sub(30_000_000).max(T0), // a verifier behind
            1 => now + 3_600_000_000,                    // a long pause
            2..=5 => boundary.max(T0),
            6..=7 => boundary.saturating_sub(1).max(T0),
            _ => now + (rng >> 8) % 15_000_000, // up to 15 s
        };
        clock.set(now);
        let decisions: Vec<_> = limits
            .iter()
            .zip(tats)
            .map(|(p, tat)| gcra::step(tat, now, *p))
            .collect();
        let want = match decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.allowed)
            .fold(None, |worst: Option<(usize, u64)>, (i, d)| match worst {
                Some((_, w)) if w >= d.retry_after => worst,
                _ => Some((i, d.retry_after)),
            }) {
            Some((limit, wait)) => ConsumeOutcome::RateLimited {
                limit,
                retry_after_ms: wait.div_ceil(1000),
            },
            None => {
                let mut tightest: Option<RateLimitStatus> = None;
                for (i, d) in decisions.iter().enumerate() {
                    tats[i] = Some(d.new_tat);
                    let s = RateLimitStatus {
                        limit: i,
                        remaining: d.remaining,
                        reset_ms: d.reset_after_ms(),
                    };
                    tightest = match tightest {
                        Some(t)
                            if t.remaining < s.remaining
                                || (t.remaining == s.remaining && t.reset_ms >= s.reset_ms) =>
                        {
                            Some(t)
                        }
                        _ => Some(s),
                    };
                }
                ConsumeOutcome::Allowed(Allowance {
                    rate_limit: tightest,
                    spent_today_minor: None,
                })
            }
        };
        let got = consume_jti(&*b.state, &uid, &jti(), &limits).await;
        assert_eq!(got, want, "step {step} at +{} µs", now - T0);
        match got {
            ConsumeOutcome::RateLimited { limit, .. } => refused_by[limit] += 1,
            _ => admitted += 1,
        }
    }
    // Both sides of every limit were exercised, not just one.
    assert!(
        (100..300).contains(&admitted),
        "{admitted} of 400 admitted, refusals by limit {refused_by:?}"
    );
    assert!(
        refused_by.iter().all(|&n| n >= 5),
        "refusals by limit: {refused_by:?}"
    );
    assert_eq!(clock.now_us(), now);
}
