//! Rate limits of a behavioral envelope: the Generic Cell Rate Algorithm
//! (GCRA) as a pure state transition.
//!
//! A rate limit `{requests: 60, period: "1m", burst: 10}` lets requests
//! arrive at a sustained 60 per minute and lets up to 10 of them arrive at
//! the same instant after a quiet spell. The whole state of one limit is one
//! integer, the *theoretical arrival time* (TAT): the instant at which the
//! limit would be back to "one request allowed right now". The verifier keeps
//! it in shared state (DESIGN §7, one Redis key per grant and limit, updated
//! by a Lua script that mirrors [`step`] line by line).
//!
//! # Units
//!
//! All instants and durations are **integer microseconds** (`u64`), never
//! floats. Microseconds because Redis `TIME` reports them and because Lua
//! numbers are doubles: unix time in µs stays below 2^53 (exact in a double)
//! until the year 2255, unix time in ns does not fit at all, and ms is too
//! coarse for the emission interval of fast limits. The epoch is whatever the
//! caller uses, as long as it uses one; the verifier passes unix µs.
//!
//! # The formula
//!
//! ```text
//! T   = floor(period_µs / requests)        emission interval (validate: T ≥ 100 µs)
//! τ   = T × (burst − 1)                    tolerance (validate: τ ≤ 365 days)
//!
//! tat = max(stored_tat, now)               no stored state ⇒ tat = now
//! if tat − now > τ  or  tat + T > 2^64−1:  over the burst (or overflow: fail closed)
//!     allowed     = false
//!     new_tat     = tat                    unchanged: a refusal costs nothing
//!     retry_after = tat − τ − now          at now + retry_after it is allowed
//! else:
//!     allowed     = true
//!     new_tat     = tat + T
//!     retry_after = 0
//! reset_after = new_tat − now              until the full burst is back (a key TTL)
//! remaining   = 0                          if reset_after > τ
//!             = floor((τ − reset_after) / T) + 1   otherwise
//! ```
//!
//! On refusal `tat − now > τ ≥ 0`, so `tat` is the stored value and storing
//! `new_tat` rewrites what was there. The one exception is the overflow test,
//! which refuses with `new_tat = now`; `tat + T` cannot overflow before the
//! year 586 912, and the Lua script (whose numbers are exact only below 2^53)
//! may omit that test.
//!
//! # Guarantees
//!
//! - From any state, among allowed requests at instants `a ≤ b`, at most
//!   `burst + floor((b − a) / T)` are allowed: each allowed request moves the
//!   TAT forward by at least `T`, and a request is allowed only while the TAT
//!   is at most `τ` ahead of it.
//! - A stream arriving every `T` (or slower) from a rested state (no state,
//!   or `stored_tat ≤ now`) is never refused.
//! - `now` going backwards (clock skew between verifiers) never grants more:
//!   `max(stored_tat, now)` keeps the later TAT and a smaller `now` only
//!   makes `tat − now > τ` likelier. A verifier whose clock runs ahead
//!   spends future capacity, so the others are refused until it catches up:
//!   skew errs on the side of refusal.
//!
//! `T` is rounded down, so the effective rate exceeds `requests / period` by
//! less than `1 / T` relative — under 1 % with `T ≥ 100 µs` — and a client
//! that keeps exactly to the configured rate is never refused.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};

mod applies_to;
pub use applies_to::AppliesTo;

/// The shortest emission interval, in µs (10 000 requests per second): keeps
/// the rounding of `T` under 1 % and is far beyond what an agent needs.
pub const MIN_EMISSION_INTERVAL_US: u64 = 100;
/// The longest tolerance, in µs (365 days): a spent burst comes back within a
/// year, so TATs stay far below 2^53 in the Lua script and key TTLs bounded.
pub const MAX_TOLERANCE_US: u64 = 365 * DAY_US;
/// The longest period, in ms (one day): longer budgets belong to daily sums.
pub const MAX_PERIOD_MS: u64 = 86_400_000;

const DAY_US: u64 = 86_400_000_000;

/// One rate limit of a behavioral envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// How many requests are allowed per `period`, sustained (at least 1).
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub requests: u32,
    /// The period over which `requests` are counted: a positive integer and a
    /// unit, one of `ms`, `s`, `m`, `h`, `d` (e.g. `"1m"`); at most `"1d"`.
    pub period: Period,
    /// How many requests may arrive at the same instant after a quiet spell
    /// (at least 1; 1 means no bursting). Defaults to 1.
    #[serde(default = "one")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub burst: u32,
    /// Which requests this limit counts (absent: every request of the
    /// grant), e.g. `{type: transact, resource: "payments/**"}` for a limit
    /// on payments alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applies_to: Option<AppliesTo>,
}

fn one() -> u32 {
    1
}

impl RateLimit {
    /// Checks the limit: `requests ≥ 1`, `burst ≥ 1` (0 would refuse every
    /// request, which is not a rate limit), `T ≥ 100 µs`, `τ ≤ 365 days`.
    pub fn validate(&self) -> Result<()> {
        self.params().map(|_| ())
    }

    /// Validates the limit and computes its GCRA parameters.
    pub fn params(&self) -> Result<GcraParams> {
        let invalid = |m: String| Error::new(ErrorCode::EnvelopeInvalid, m);
        if let Some(applies_to) = &self.applies_to {
            applies_to.validate()?;
        }
        if self.requests == 0 {
            return Err(invalid("rate limit requests must be at least 1".into()));
        }
        if self.burst == 0 {
            return Err(invalid(
                "rate limit burst must be at least 1 (1 means no bursting)".into(),
            ));
        }
        let t = self.period.as_micros() / u64::from(self.requests);
        if t < MIN_EMISSION_INTERVAL_US {
            return Err(invalid(format!(
                "rate limit {} per {} is faster than 10000 per second",
                self.requests, self.period
            )));
        }
        let tau = t.saturating_mul(u64::from(self.burst) - 1);
        if tau > MAX_TOLERANCE_US {
            return Err(invalid(format!(
                "rate limit burst {} takes longer than 365 days to refill at {} per {}",
                self.burst, self.requests, self.period
            )));
        }
        Ok(GcraParams {
            emission_interval: t,
            tolerance: tau,
        })
    }
}

/// The GCRA parameters of a validated [`RateLimit`], in µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GcraParams {
    emission_interval: u64,
    tolerance: u64,
}

impl GcraParams {
    /// The emission interval `T = floor(period / requests)`, in µs.
    pub const fn emission_interval(self) -> u64 {
        self.emission_interval
    }

    /// The tolerance `τ = T × (burst − 1)`, in µs.
    pub const fn tolerance(self) -> u64 {
        self.tolerance
    }
}

/// The outcome of one [`step`]; every duration is in µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Whether the request conforms to the limit.
    pub allowed: bool,
    /// The TAT to store; when refused, the stored one (see the module doc).
    pub new_tat: u64,
    /// How long to wait until a request would be allowed (0 when allowed).
    pub retry_after: u64,
    /// How many more requests would be allowed at `now`.
    pub remaining: u32,
    /// How long until the full burst is available again.
    pub reset_after: u64,
}

impl Decision {
    /// `retry_after` in ms, rounded up so that waiting that long suffices.
    pub const fn retry_after_ms(&self) -> u64 {
        self.retry_after.div_ceil(1000)
    }

    /// `reset_after` in ms, rounded up (the `resetMs` of the verifier API).
    pub const fn reset_after_ms(&self) -> u64 {
        self.reset_after.div_ceil(1000)
    }
}

/// Decides one request at `now` (µs) against the stored TAT (`None` when the
/// limit has no state yet); see the module documentation for the formula.
pub fn step(tat: Option<u64>, now: u64, params: GcraParams) -> Decision {
    let t = params.emission_interval;
    let tau = params.tolerance;
    let tat = tat.map_or(now, |stored| stored.max(now));
    let ahead = tat - now; // tat ≥ now by construction
    let (allowed, new_tat, retry_after) = match tat.checked_add(t) {
        Some(next) if ahead <= tau => (true, next, 0),
        _ => (false, tat, ahead.saturating_sub(tau)),
    };
    let reset_after = new_tat - now; // new_tat ≥ tat ≥ now
    let remaining = if reset_after > tau {
        0
    } else {
        // ≤ burst, so it fits; checked_div keeps a zero T (never validated) from panicking.
        let n = ((tau - reset_after).checked_div(t).unwrap_or(0)).saturating_add(1);
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    Decision {
        allowed,
        new_tat,
        retry_after,
        remaining,
        reset_after,
    }
}

/// The length of a rate-limit period, written as a positive integer and a
/// unit: `ms`, `s`, `m` (minutes), `h` or `d` (e.g. `"30s"`, `"1m"`).
///
/// No leading zeros, signs, spaces or fractions, so a value has exactly one
/// spelling in its unit and [`Display`](fmt::Display) reproduces the text it
/// was parsed from (`"60s"` stays `"60s"`; equality compares the spelling,
/// [`Period::as_millis`] the length). Bounds: 1 ms to 1 day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Period {
    count: u32,
    unit: Unit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Unit {
    Ms,
    S,
    M,
    H,
    D,
}

impl Unit {
    const ALL: [Unit; 5] = [Unit::Ms, Unit::S, Unit::M, Unit::H, Unit::D];

    fn suffix_and_millis(self) -> (&'static str, u64) {
        match self {
            Unit::Ms => ("ms", 1),
            Unit::S => ("s", 1_000),
            Unit::M => ("m", 60_000),
            Unit::H => ("h", 3_600_000),
            Unit::D => ("d", 86_400_000),
        }
    }
}

impl Period {
    /// Parses `"<count><unit>"`; refuses anything else with `envelope_invalid`.
    pub fn parse(s: &str) -> Result<Period> {
        let invalid = || {
            Error::new(
                ErrorCode::EnvelopeInvalid,
                format!(
                    "period {:?} is not a positive integer followed by ms, s, m, h or d, \
                     between 1ms and 1d",
                    s.chars().take(16).collect::<String>()
                ),
            )
        };
        // 9 digits cannot overflow a u32; anything longer is out of bounds anyway.
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 || s.starts_with('0') {
            return Err(invalid());
        }
        let (number, suffix) = s.split_at(digits);
        let count: u32 = number.parse().map_err(|_| invalid())?;
        let unit = Unit::ALL
            .into_iter()
            .find(|u| u.suffix_and_millis().0 == suffix)
            .ok_or_else(invalid)?;
        if u64::from(count) * unit.suffix_and_millis().1 > MAX_PERIOD_MS {
            return Err(invalid());
        }
        Ok(Period { count, unit })
    }

    /// The length in milliseconds.
    pub fn as_millis(self) -> u64 {
        u64::from(self.count) * self.unit.suffix_and_millis().1
    }

    /// The length in microseconds.
    pub fn as_micros(self) -> u64 {
        self.as_millis() * 1000
    }

    /// The length as a [`Duration`](std::time::Duration): how every
    /// service turns a period flag (`--lease-duration 15s`) into a timer.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.as_millis())
    }
}

impl FromStr for Period {
    type Err = Error;

    fn from_str(s: &str) -> Result<Period> {
        Period::parse(s)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.suffix_and_millis().0)
    }
}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Period::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Period {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Period".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[1-9][0-9]{0,8}(ms|s|m|h|d)$",
            "description": "A positive integer and a unit (ms, s, m, h, d), e.g. \"1m\"; 1ms to 1d.",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(requests: u32, period: &str, burst: u32) -> GcraParams {
        let period = period.parse().unwrap();
        RateLimit {
            requests,
            period,
            burst,
            applies_to: None,
        }
        .params()
        .unwrap()
    }

    fn decision(allowed: bool, new_tat: u64, retry: u64, remaining: u32, reset: u64) -> Decision {
        Decision {
            allowed,
            new_tat,
            retry_after: retry,
            remaining,
            reset_after: reset,
        }
    }

    #[test]
    fn first_request_is_allowed_with_burst_minus_one_remaining() {
        let p = params(60, "1m", 10);
        assert_eq!(
            (p.emission_interval(), p.tolerance()),
            (1_000_000, 9_000_000)
        );
        assert_eq!(
            step(None, 5_000, p),
            decision(true, 1_005_000, 0, 9, 1_000_000)
        );
    }

    #[test]
    fn burst_then_refuse_with_exact_retry_after_and_unchanged_tat() {
        let p = params(60, "1m", 3);
        let mut tat = None;
        for remaining in [2, 1, 0] {
            let d = step(tat, 0, p);
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
            tat = Some(d.new_tat);
        }
        let d = step(tat, 400_000, p);
        assert_eq!(d, decision(false, 3_000_000, 600_000, 0, 2_600_000));
        assert_eq!((d.retry_after_ms(), d.reset_after_ms()), (600, 2_600));
        assert!(!step(tat, 999_999, p).allowed);
        assert_eq!(
            step(tat, 1_000_000, p),
            decision(true, 4_000_000, 0, 0, 3_000_000)
        );
    }

    #[test]
    fn refills_one_request_per_emission_interval() {
        let p = params(2, "1s", 1);
        let first = step(None, 0, p);
        assert!(!step(Some(first.new_tat), 499_999, p).allowed);
        let second = step(Some(first.new_tat), 500_000, p);
        assert_eq!(second, decision(true, 1_000_000, 0, 0, 500_000));
        // After a quiet spell the state is as fresh as no state at all.
        let later = step(Some(second.new_tat), 10_000_000, p);
        assert_eq!(later, step(None, 10_000_000, p));
    }

    #[test]
    fn backwards_clock_and_extremes_do_not_panic_or_grant_more() {
        let p = params(1, "1s", 2);
        let a = step(None, 10_000_000, p);
        let b = step(Some(a.new_tat), 10_000_000, p);
        assert!(a.allowed && b.allowed);
        // A verifier whose clock is 10 s behind must wait for the TAT, not get a new burst.
        assert_eq!(
            step(Some(b.new_tat), 0, p),
            decision(false, 12_000_000, 11_000_000, 0, 12_000_000)
        );
        assert!(!step(Some(u64::MAX), u64::MAX, p).allowed);
        assert!(!step(None, u64::MAX, p).allowed);
        assert!(!step(Some(u64::MAX), 0, p).allowed);
        let zero = GcraParams {
            emission_interval: 0,
            tolerance: 0,
        };
        assert!(step(None, 0, zero).allowed);
    }
}
