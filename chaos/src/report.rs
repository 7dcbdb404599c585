//! Numbers from a [`Record`], and the experiment's Markdown report.
//!
//! ```text
//!  Record (samples + marks) ─▶ phases: [start, mark 1), [mark 1, mark 2), … [last mark, end]
//!     ─▶ per phase and verifier: requests, allows, denies by reason, errors, p50/p99
//!     ─▶ first(…), settled(…): time to detect, time to recover
//!  Report { injected, load, figures, checks } ─▶ $AGENTAUTH_CHAOS_RESULTS/<experiment>.md
//! ```
//!
//! A phase counts the requests *sent* in it: a request sent just before a
//! fault and answered after it belongs to the phase before.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::load::{Outcome, Record, Sample};

/// Names the folder the reports are written to.
pub const RESULTS_ENV: &str = "AGENTAUTH_CHAOS_RESULTS";

/// The samples sent in `[from, to)` that satisfy `keep`.
pub fn count(
    record: &Record,
    from: Duration,
    to: Duration,
    keep: impl Fn(&Sample) -> bool,
) -> usize {
    record
        .samples
        .iter()
        .filter(|s| s.sent >= from && s.sent < to && keep(s))
        .count()
}

/// The send time of the first sample at or after `from` that satisfies
/// `keep`, as a delay after `from`.
pub fn first(record: &Record, from: Duration, keep: impl Fn(&Sample) -> bool) -> Option<Duration> {
    record
        .samples
        .iter()
        .filter(|s| s.sent >= from && keep(s))
        .map(|s| s.sent)
        .min()
        .map(|at| at - from)
}

/// The delay after `from` from which every sample sent in `[from, to)`
/// satisfies `keep` (the start of the final unbroken run), if that run is
/// not empty.
pub fn settled(
    record: &Record,
    from: Duration,
    to: Duration,
    keep: impl Fn(&Sample) -> bool,
) -> Option<Duration> {
    let mut window: Vec<&Sample> = record
        .samples
        .iter()
        .filter(|s| s.sent >= from && s.sent < to)
        .collect();
    window.sort_by_key(|s| s.sent);
    let last_bad = window.iter().rposition(|s| !keep(s));
    let start = match last_bad {
        Some(i) => window.get(i + 1)?.sent,
        None => window.first()?.sent,
    };
    Some(start - from)
}

/// Whether a sample is an allow.
pub fn allowed(sample: &Sample) -> bool {
    sample.outcome == Outcome::Allow
}

/// Whether a sample is an allow, or a `state_unavailable` denial. On 2
/// shared cores the verifiers' 50 ms state deadline trips now and then (fail
/// closed, by design); experiments that judge something else count those
/// apart and bound them with [`starved_share_ok`].
pub fn allowed_or_starved(sample: &Sample) -> bool {
    allowed(sample) || denied("state_unavailable")(sample)
}

/// At most 1 % of `total` answers were `state_unavailable` for want of CPU.
pub fn starved_share_ok(starved: usize, total: usize) -> bool {
    starved * 100 <= total
}

/// Whether a sample is a deny with `reason`.
pub fn denied(reason: &str) -> impl Fn(&Sample) -> bool + '_ {
    move |sample| matches!(&sample.outcome, Outcome::Deny(r) if r == reason)
}

/// Seconds with millisecond precision, e.g. `1.234 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// `secs` of a measured delay, or `never`.
pub fn maybe_secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "never".to_owned(), secs)
}

/// The per-phase table: one row per phase and verifier.
pub fn phase_table(record: &Record) -> String {
    let end = record
        .samples
        .iter()
        .map(|s| s.sent)
        .max()
        .unwrap_or_default()
        + Duration::from_millis(1);
    let mut bounds = vec![("baseline".to_owned(), Duration::ZERO)];
    bounds.extend(record.marks.iter().cloned());
    let mut out = String::from(
        "| phase | sent in (s) | verifier | requests | allow | deny by reason | errors | p50 / p99 latency |\n\
         |---|---|---|---:|---:|---|---|---|\n",
    );
    for (i, (label, from)) in bounds.iter().enumerate() {
        let to = bounds.get(i + 1).map_or(end, |b| b.1);
        for (target, name) in record.targets.iter().enumerate() {
            let mut latencies = Vec::new();
            let mut allows = 0;
            let mut denies: BTreeMap<String, usize> = BTreeMap::new();
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            for s in record
                .samples
                .iter()
                .filter(|s| s.target == target && s.sent >= *from && s.sent < to)
            {
                latencies.push(s.latency);
                match &s.outcome {
                    Outcome::Allow => allows += 1,
                    Outcome::Deny(r) => *denies.entry(r.clone()).or_default() += 1,
                    Outcome::Error(e) => *errors.entry(e.clone()).or_default() += 1,
                }
            }
            latencies.sort();
            let pct = |p: usize| {
                latencies
                    .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
                    .map_or_else(|| "-".to_owned(), |d| format!("{} ms", d.as_millis()))
            };
            let join = |m: &BTreeMap<String, usize>| {
                if m.is_empty() {
                    "-".to_owned()
                } else {
                    m.iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            let _ = writeln!(
                out,
                "| {label} | {:.1}–{:.1} | {name} | {} | {allows} | {} | {} | {} / {} |",
                from.as_secs_f64(),
                to.as_secs_f64(),
                latencies.len(),
                join(&denies),
                join(&errors),
                pct(50),
                pct(99),
            );
        }
    }
    out
}

/// An experiment's findings, checks and report file.
#[derive(Debug, Default)]
pub struct Report {
    experiment: String,
    title: String,
    injected: String,
    load: String,
    expected: String,
    table: String,
    figures: Vec<(String, String)>,
    checks: Vec<(String, bool)>,
    notes: Vec<String>,
}

impl Report {
    /// A report for `experiment` (the file name and `chaos/run.sh` argument).
    pub fn new(experiment: &str, title: &str) -> Self {
        Report {
            experiment: experiment.to_owned(),
            title: title.to_owned(),
            ..Report::default()
        }
    }

    /// What was injected, and how.
    pub fn injected(&mut self, text: &str) -> &mut Self {
        text.clone_into(&mut self.injected);
        self
    }

    /// The expected behaviour, stated before the numbers.
    pub fn expected(&mut self, text: &str) -> &mut Self {
        text.clone_into(&mut self.expected);
        self
    }

    /// The load, described from its record.
    pub fn load(&mut self, record: &Record, agents: usize) -> &mut Self {
        self.load = format!(
            "{} verifications/s offered round-robin over {} ({} agents, each with an approved grant \
             and a DPoP-bound token; a fresh proof per request); {} requests answered, {} ticks skipped",
            record.rate,
            record.targets.join(" and "),
            agents,
            record.samples.len(),
            record.skipped
        );
        self.table = phase_table(record);
        self
    }

    /// A measured figure (`name`: `value`).
    pub fn figure(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.figures.push((name.to_owned(), value.into()));
        self
    }

    /// A pass/fail check.
    pub fn check(&mut self, name: &str, passed: bool) -> &mut Self {
        self.checks.push((name.to_owned(), passed));
        self
    }

    /// A free-form observation.
    pub fn note(&mut self, text: &str) -> &mut Self {
        self.notes.push(text.to_owned());
        self
    }

    /// The checks that failed.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|(_, passed)| !passed)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let verdict = if self.failures().is_empty() {
            "PASS"
        } else {
            "FAIL"
        };
        let mut out = format!("# Chaos: {} — {verdict}\n\n", self.title);
        let _ = writeln!(
            out,
            "- command: `chaos/run.sh {}` (cargo test -p agentauth-chaos --test {})",
            self.experiment, self.experiment
        );
        let _ = writeln!(out, "- machine: {}", machine());
        let _ = writeln!(out, "- injected: {}", self.injected);
        let _ = writeln!(out, "- load: {}", self.load);
        let _ = writeln!(out, "- expected: {}\n", self.expected);
        out.push_str("## Per phase\n\n");
        out.push_str(&self.table);
        out.push_str("\n## Figures\n\n");
        for (name, value) in &self.figures {
            let _ = writeln!(out, "- {name}: {value}");
        }
        out.push_str("\n## Checks\n\n");
        for (name, passed) in &self.checks {
            let _ = writeln!(out, "- [{}] {name}", if *passed { "x" } else { " " });
        }
        if !self.notes.is_empty() {
            out.push_str("\n## Notes\n\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }

    /// Prints the report, and writes `<experiment>.md` into
    /// `$AGENTAUTH_CHAOS_RESULTS` when it is set. Returns the file written.
    pub fn publish(&self) -> Option<PathBuf> {
        let text = self.markdown();
        println!("{text}");
        let dir = std::env::var_os(RESULTS_ENV).filter(|d| !d.is_empty())?;
        let dir = PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{}.md", self.experiment));
        std::fs::write(&path, text).ok()?;
        Some(path)
    }
}

/// `date, cores, CPU model, kernel`, for the report header.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_default();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{date}; {cores} cores ({cpu}), Linux {kernel}; debug build; shared with other jobs")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sample(ms: u64, target: usize, outcome: Outcome) -> Sample {
        Sample {
            sent: Duration::from_millis(ms),
            latency: Duration::from_millis(1),
            target,
            agent: 0,
            outcome,
        }
    }

    fn record() -> Record {
        let deny = || Outcome::Deny("state_unavailable".to_owned());
        Record {
            targets: vec!["verifier-a".into(), "verifier-b".into()],
            samples: vec![
                sample(100, 0, Outcome::Allow),
                sample(200, 1, Outcome::Allow),
                sample(1_050, 0, deny()),
                sample(1_100, 1, deny()),
                sample(2_100, 0, deny()),
                sample(2_200, 1, Outcome::Allow),
                sample(2_300, 0, Outcome::Allow),
                sample(2_400, 1, Outcome::Allow),
            ],
            marks: vec![
                ("fault".into(), Duration::from_secs(1)),
                ("healed".into(), Duration::from_secs(2)),
            ],
            rate: 10,
            skipped: 0,
        }
    }

    #[test]
    fn detection_and_recovery_are_measured_from_the_marks() {
        let r = record();
        let (fault, healed, end) = (
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(3),
        );
        assert_eq!(
            first(&r, fault, denied("state_unavailable")),
            Some(Duration::from_millis(50))
        );
        assert_eq!(count(&r, fault, healed, allowed), 0);
        // The last denial is at 2.1 s: everything from 2.2 s on is allowed.
        assert_eq!(
            settled(&r, healed, end, allowed),
            Some(Duration::from_millis(200))
        );
        assert_eq!(settled(&r, fault, healed, allowed), None);
    }

    #[test]
    fn the_table_has_a_row_per_phase_and_verifier() {
        let table = phase_table(&record());
        assert_eq!(table.lines().count(), 2 + 3 * 2, "{table}");
        assert!(
            table.contains("| fault | 1.0–2.0 | verifier-a | 1 | 0 | state_unavailable: 1 |"),
            "{table}"
        );
    }
}
