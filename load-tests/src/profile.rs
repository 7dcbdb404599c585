//! The profiles: what runs, at which rate, for how long, against which
//! bounds.
//!
//! - **smoke**: seconds per scenario at low rates, inside `cargo test`
//!   (a debug build, on a machine running other tests). It proves every
//!   scenario works end to end at its offered rate with at most 1 % errors
//!   or unexpected denials ([`SMOKE_BAD`]); its latency bounds are loose
//!   (10× the targets) because a debug build on a busy CI machine says
//!   nothing about speed.
//! - **full**: the targets (issue 16; DESIGN §11 via bench/README.md) on
//!   a release build: warm 10,000/s p99 < 5 ms, cold 1,000/s p99 < 20 ms,
//!   issuance 500/s p99 < 50 ms, plus the approval flow and the mixed
//!   profile.
//! - **soak**: the mixed profile at a steady rate for ≥ 10 minutes
//!   ([`crate::soak`]).

use std::time::Duration;

use crate::attack::Plan;
use crate::thresholds::Limits;

/// A scenario of a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Warm verification.
    Warm,
    /// Cold verification.
    Cold,
    /// Token issuance.
    Issuance,
    /// Grant request → approval → first verified call.
    Approval,
    /// The mixed realistic profile.
    Mixed,
}

impl Kind {
    /// Its name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Warm => "warm",
            Kind::Cold => "cold",
            Kind::Issuance => "issuance",
            Kind::Approval => "approval",
            Kind::Mixed => "mixed",
        }
    }
}

/// One scenario run of a profile.
#[derive(Clone, Debug)]
pub struct Stage {
    /// The scenario.
    pub kind: Kind,
    /// Offered per second.
    pub rate: f64,
    /// Users and run time.
    pub plan: Plan,
    /// Its bounds.
    pub limits: Limits,
}

/// A named list of stages over a population of agents.
#[derive(Clone, Debug)]
pub struct Profile {
    /// `smoke` or `full`.
    pub name: &'static str,
    /// How many agents (each with a shop and a calendar grant).
    pub agents: usize,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

fn stage(kind: Kind, rate: f64, users: usize, secs: u64, p99_ms: f64, bad: f64) -> Stage {
    Stage {
        kind,
        rate,
        plan: Plan {
            users,
            run_time: Duration::from_secs(secs),
        },
        limits: Limits {
            min_throughput: rate,
            max_p99_ms: p99_ms,
            max_unexpected_ratio: bad,
            max_error_ratio: bad,
        },
    }
}

/// The share of errors and of unexpected denials the smoke profile
/// tolerates: on a starved CI machine a Redis round trip can exceed the
/// services' 50 ms hot-path timeout, and they then fail closed
/// (`state_unavailable`) as designed. One in a hundred, not more.
pub const SMOKE_BAD: f64 = 0.01;

/// Seconds, low rates, loose latency bounds, near-near-strict correctness.
pub fn smoke() -> Profile {
    Profile {
        name: "smoke",
        agents: 4,
        stages: vec![
            stage(Kind::Warm, 200.0, 8, 4, 50.0, SMOKE_BAD),
            stage(Kind::Cold, 100.0, 4, 4, 200.0, SMOKE_BAD),
            stage(Kind::Issuance, 50.0, 4, 4, 500.0, SMOKE_BAD),
            stage(Kind::Approval, 1.0, 2, 4, 20_000.0, 0.0),
            stage(Kind::Mixed, 100.0, 8, 4, 200.0, SMOKE_BAD),
        ],
    }
}

/// The targets, on a release build.
pub fn full() -> Profile {
    Profile {
        name: "full",
        agents: 24,
        stages: vec![
            stage(Kind::Warm, 10_000.0, 64, 20, 5.0, 0.0),
            stage(Kind::Cold, 1_000.0, 32, 20, 20.0, 0.0),
            stage(Kind::Issuance, 500.0, 32, 20, 50.0, 0.0),
            // No target in the issue: one person approving every ~2 s is
            // far above a human's pace; the bound is the time an agent
            // waits once the approver has decided.
            stage(Kind::Approval, 0.5, 2, 30, 5_000.0, 0.0),
            stage(Kind::Mixed, 1_000.0, 32, 30, 20.0, 0.001),
        ],
    }
}

impl Profile {
    /// Only the stages named in `names` (all when empty), each at `rate`
    /// when given.
    pub fn select(mut self, names: &[String], rate: Option<f64>) -> Self {
        if !names.is_empty() {
            self.stages
                .retain(|s| names.iter().any(|n| n == s.kind.name()));
        }
        if let Some(rate) = rate {
            for s in &mut self.stages {
                s.rate = rate;
                s.limits.min_throughput = rate;
            }
        }
        self
    }
}
