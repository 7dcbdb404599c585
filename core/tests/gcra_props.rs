//! Properties of the GCRA step (`core/src/gcra.rs`): the burst-plus-rate
//! bound, steady streams at the configured rate, exact `retry_after` and
//! `remaining`, and no extra capacity from a clock that goes backwards.

#![allow(clippy::unwrap_used)]

use agentauth_core::ErrorCode;
use agentauth_core::gcra::{GcraParams, Period, RateLimit, step};
use proptest::prelude::*;

/// Valid limits across the whole accepted range, with their parameters.
fn limits() -> impl Strategy<Value = (RateLimit, GcraParams)> {
    let period = (
        1u32..=2000,
        prop::sample::select(vec!["ms", "s", "m", "h", "d"]),
    )
        .prop_filter_map("period within 1ms..1d", |(n, unit)| {
            Period::parse(&format!("{n}{unit}")).ok()
        });
    let requests = prop_oneof![1u32..=10, 1u32..=1000, 1u32..=100_000];
    (
        requests,
        period,
        prop_oneof![Just(1u32), 1u32..=20, 1u32..=500],
    )
        .prop_filter_map("limit validates", |(requests, period, burst)| {
            let limit = RateLimit {
                requests,
                period,
                burst,
                applies_to: None,
            };
            limit.params().ok().map(|p| (limit, p))
        })
}

/// Checks the bound over every pair of allowed arrivals, in arrival order:
/// `n` allowed from the i-th to the j-th satisfy `(n − burst) × T ≤ a_j − a_i`
/// (signed, so it also covers clocks that went backwards).
fn assert_bound(allowed: &[u64], burst: u32, t: u64) {
    for i in 0..allowed.len() {
        for j in i..allowed.len() {
            let n = (j - i + 1) as i128;
            let elapsed = i128::from(allowed[j]) - i128::from(allowed[i]);
            assert!(
                (n - i128::from(burst)) * i128::from(t) <= elapsed,
                "{n} allowed within {elapsed} µs, burst {burst}, T {t}"
            );
        }
    }
}

fn limit(requests: u32, period: &str, burst: u32) -> RateLimit {
    RateLimit {
        requests,
        period: period.parse().unwrap(),
        burst,
        applies_to: None,
    }
}

#[test]
fn periods_parse_display_and_refuse() {
    let good = [
        ("1ms", 1),
        ("30s", 30_000),
        ("60s", 60_000),
        ("1m", 60_000),
        ("1h", 3_600_000),
    ];
    for (text, ms) in good
        .into_iter()
        .chain([("1d", 86_400_000), ("1440m", 86_400_000)])
    {
        let p = Period::parse(text).unwrap();
        assert_eq!((p.as_millis(), p.to_string()), (ms, text.to_owned()));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("{text:?}"));
        assert_eq!(serde_json::from_str::<Period>(&json).unwrap(), p);
    }
    let bad = [
        "", "0s", "01s", "1", "s", "1.5s", "-1s", "+1s", " 1s", "1s ", "1S", "1w", "2d",
    ];
    for text in bad
        .into_iter()
        .chain(["86400001ms", "9999999999ms", "1µs", "1e3ms"])
    {
        let err = Period::parse(text).unwrap_err();
        assert_eq!(err.code, ErrorCode::EnvelopeInvalid, "{text:?}");
    }
    assert!(serde_json::from_str::<Period>("60").is_err());
}

#[test]
fn rate_limits_read_the_crd_shape_and_validate() {
    let json = r#"{"requests":60,"period":"1m","burst":10}"#;
    let rl: RateLimit = serde_json::from_str(json).unwrap();
    assert_eq!(rl, limit(60, "1m", 10));
    assert_eq!(serde_json::to_string(&rl).unwrap(), json);
    let rl: RateLimit = serde_json::from_str(r#"{"requests":1,"period":"1s"}"#).unwrap();
    assert_eq!(rl.burst, 1, "burst defaults to 1");
    // Refused: no requests, burst 0, faster than 10 000/s, a burst refilling in over 365 days.
    for bad in [
        limit(0, "1s", 1),
        limit(1, "1s", 0),
        limit(10_001, "1s", 1),
        limit(1, "1d", 367),
    ] {
        assert_eq!(
            bad.validate().unwrap_err().code,
            ErrorCode::EnvelopeInvalid,
            "{bad:?}"
        );
    }
    for ok in [
        limit(10_000, "1s", 1),
        limit(1, "1d", 366),
        limit(1, "1ms", 1),
        limit(5, "1s", 1000),
    ] {
        assert!(ok.validate().is_ok(), "{ok:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// "Never more than burst + elapsed × rate allowed", for any interval of a
    /// monotone arrival sequence from a fresh state; plus the exactness of
    /// every decision's fields.
    #[test]
    fn never_more_than_burst_plus_elapsed_times_rate(
        (limit, p) in limits(),
        start in 0u64..(1 << 52),
        gaps in prop::collection::vec(0u64..3000, 1..150),
    ) {
        let t = p.emission_interval();
        let (mut now, mut tat, mut allowed) = (start, None, Vec::new());
        for gap in gaps {
            // Gaps in thousandths of T: bursts, near misses and pauses alike.
            now += t * gap / 1000;
            let d = step(tat, now, p);
            if d.allowed {
                prop_assert_eq!(d.retry_after, 0);
                allowed.push(now);
            } else {
                prop_assert_eq!(Some(d.new_tat), tat, "a refusal changes nothing");
                prop_assert_eq!(d.remaining, 0);
                prop_assert!(d.retry_after > 0);
                prop_assert!(!step(tat, now + d.retry_after - 1, p).allowed);
                prop_assert!(step(tat, now + d.retry_after, p).allowed, "retry_after is exact");
            }
            prop_assert_eq!(d.reset_after, d.new_tat - now);
            // `remaining` is exactly how many more would pass at this instant.
            let (mut more, mut probe) = (0u32, Some(d.new_tat));
            while more <= limit.burst {
                let next = step(probe, now, p);
                if !next.allowed { break; }
                more += 1;
                probe = Some(next.new_tat);
            }
            prop_assert_eq!(more, d.remaining);
            tat = Some(d.new_tat);
        }
        assert_bound(&allowed, limit.burst, t);
        // Against the configured rate: T is rounded down by under 1 %.
        if let (Some(first), Some(last)) = (allowed.first(), allowed.last()) {
            let elapsed = u128::from(last - first);
            let slack = elapsed * u128::from(limit.requests) * 101 / (u128::from(limit.period.as_micros()) * 100);
            prop_assert!(allowed.len() as u128 <= u128::from(limit.burst) + slack);
        }
    }

    /// A client keeping exactly to the rate is never refused, whether it
    /// spaces requests by T or by the exact (fractional) period / requests.
    #[test]
    fn steady_stream_at_the_rate_is_never_refused((limit, p) in limits(), start in 0u64..(1 << 52), n in 1u64..300) {
        let (mut by_t, mut exact) = (None, None);
        let period = limit.period.as_micros();
        for k in 0..n {
            let d = step(by_t, start + k * p.emission_interval(), p);
            prop_assert!(d.allowed, "request {} at the emission interval refused", k);
            by_t = Some(d.new_tat);
            let at = start + u64::try_from(u128::from(k) * u128::from(period) / u128::from(limit.requests)).unwrap();
            let d = step(exact, at, p);
            prop_assert!(d.allowed, "request {} at the configured rate refused", k);
            exact = Some(d.new_tat);
        }
    }

    /// Clock skew: arbitrary instants in any order (around any base, up to
    /// the ends of u64) from any stored state never panic and never allow more
    /// than the bound; a refusal never moves the TAT.
    #[test]
    fn backwards_and_extreme_clocks_grant_nothing_extra(
        (limit, p) in limits(),
        base in prop_oneof![any::<u64>(), Just(0u64), Just(u64::MAX)],
        initial in prop::option::of(any::<u64>()),
        offsets in prop::collection::vec(-5_000_000_000i64..5_000_000_000, 1..120),
    ) {
        let (mut tat, mut allowed) = (initial, Vec::new());
        for offset in offsets {
            let now = base.saturating_add_signed(offset);
            let d = step(tat, now, p);
            if d.allowed {
                prop_assert!(d.new_tat >= tat.unwrap_or(0).max(now) + p.emission_interval());
                allowed.push(now);
            } else {
                // The stored TAT, or `now` at the very end of u64 (refused: overflow).
                prop_assert_eq!(d.new_tat, tat.map_or(now, |t| t.max(now)));
                prop_assert!(tat == Some(d.new_tat) || now > u64::MAX - p.emission_interval());
            }
            tat = Some(d.new_tat);
        }
        assert_bound(&allowed, limit.burst, p.emission_interval());
    }

    /// Periods round-trip through their text, and any text is either parsed
    /// or refused with `envelope_invalid`, never a panic.
    #[test]
    fn periods_round_trip_and_garbage_is_refused(n in 1u32..=86_400_000, unit in 0usize..5, junk in ".{0,20}") {
        let text = format!("{n}{}", ["ms", "s", "m", "h", "d"][unit]);
        if let Ok(p) = Period::parse(&text) {
            prop_assert_eq!(p.to_string(), text.clone());
            prop_assert_eq!(text.parse::<Period>().unwrap(), p);
            prop_assert!(p.as_millis() >= 1 && p.as_millis() <= 86_400_000);
        }
        match Period::parse(&junk) {
            Ok(p) => prop_assert_eq!(p.to_string(), junk),
            Err(e) => prop_assert_eq!(e.code, ErrorCode::EnvelopeInvalid),
        }
    }
}
