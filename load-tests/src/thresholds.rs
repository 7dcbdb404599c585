//! The targets as checks that fail a run. Each check names its scenario,
//! what it bounds, the limit and what was measured, so a failure says at
//! once which target was missed and by how much.
//!
//! Throughput (steady state, see [`Summary::throughput`]) is checked
//! against the offered rate with a 3 % allowance for pacing jitter.

use crate::recorder::Summary;

/// The share of the offered rate a run must achieve.
pub const THROUGHPUT_ALLOWANCE: f64 = 0.97;

/// The bounds of one scenario.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Completed per second at least (usually the offered rate).
    pub min_throughput: f64,
    /// 99th percentile latency at most, milliseconds.
    pub max_p99_ms: f64,
    /// Denials for a reason the scenario does not expect, as a share of
    /// requests, at most.
    pub max_unexpected_ratio: f64,
    /// Errors (no decision) as a share of requests, at most.
    pub max_error_ratio: f64,
}

/// One check and its result.
#[derive(Clone, Debug)]
pub struct Check {
    /// The scenario.
    pub scenario: String,
    /// What is bounded.
    pub what: &'static str,
    /// The bound, as written in the report.
    pub limit: String,
    /// What was measured.
    pub measured: String,
    /// Whether the bound held.
    pub passed: bool,
}

/// Every check of `scenario`'s `summary` against `limits`.
pub fn check(scenario: &str, limits: &Limits, summary: &Summary) -> Vec<Check> {
    let ratio = |n: u64| {
        if summary.count == 0 {
            1.0
        } else {
            n as f64 / summary.count as f64
        }
    };
    let error_ratio = ratio(summary.errors);
    let denial_ratio = ratio(summary.unexpected_denials);
    let p99_ms = summary.p99_us as f64 / 1000.0;
    let floor = limits.min_throughput * THROUGHPUT_ALLOWANCE;
    let mk = |what, limit: String, measured: String, passed| Check {
        scenario: scenario.to_owned(),
        what,
        limit,
        measured,
        passed,
    };
    vec![
        mk(
            "throughput",
            format!("≥ {}/s (×{THROUGHPUT_ALLOWANCE})", limits.min_throughput),
            format!("{:.1}/s", summary.throughput),
            summary.count > 0 && summary.throughput >= floor,
        ),
        mk(
            "p99",
            format!("< {} ms", limits.max_p99_ms),
            format!("{p99_ms:.3} ms"),
            summary.count > 0 && p99_ms < limits.max_p99_ms,
        ),
        mk(
            "unexpected denials",
            format!("≤ {:.2} %", limits.max_unexpected_ratio * 100.0),
            format!(
                "{} ({:.3} %)",
                summary.unexpected_denials,
                denial_ratio * 100.0
            ),
            denial_ratio <= limits.max_unexpected_ratio,
        ),
        mk(
            "errors",
            format!("≤ {:.2} %", limits.max_error_ratio * 100.0),
            format!("{} ({:.3} %)", summary.errors, error_ratio * 100.0),
            error_ratio <= limits.max_error_ratio,
        ),
    ]
}

/// The failed checks, one line each, for the end of a run.
pub fn failures(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| {
            format!(
                "FAILED {} {}: measured {}, limit {}",
                c.scenario, c.what, c.measured, c.limit
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(throughput: f64, p99_us: u64, denials: u64, errors: u64) -> Summary {
        Summary {
            count: 1000,
            throughput,
            p99_us,
            unexpected_denials: denials,
            errors,
            ..Summary::default()
        }
    }

    const WARM: Limits = Limits {
        min_throughput: 10_000.0,
        max_p99_ms: 5.0,
        max_unexpected_ratio: 0.0,
        max_error_ratio: 0.0,
    };

    #[test]
    fn a_run_within_every_bound_passes() {
        let checks = check("warm", &WARM, &summary(9_800.0, 4_900, 0, 0));
        assert!(failures(&checks).is_empty(), "{checks:?}");
    }

    #[test]
    fn each_missed_bound_is_named() {
        let checks = check("warm", &WARM, &summary(7_000.0, 6_000, 2, 1));
        let failed = failures(&checks);
        assert_eq!(failed.len(), 4, "{failed:?}");
        assert!(failed[0].starts_with("FAILED warm throughput: measured 7000.0/s"));
        assert!(failed[1].contains("p99: measured 6.000 ms, limit < 5 ms"));
        assert!(failed[2].contains("unexpected denials: measured 2"));
        assert!(failed[3].contains("errors: measured 1"));
    }

    #[test]
    fn an_empty_run_fails() {
        let checks = check("cold", &WARM, &Summary::default());
        assert!(!failures(&checks).is_empty());
    }
}
