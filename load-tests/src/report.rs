//! Markdown for `bench/results/load.md`: the machine, the exact command,
//! and per scenario the throughput, latency percentiles, outcomes by
//! reason and every check, pass or fail.

use std::fmt::Write as _;

use crate::recorder::Summary;
use crate::run::RunResult;
use crate::soak::{SoakResult, WATCHED};
use crate::thresholds::Check;

/// The machine a run was measured on.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Logical CPUs.
    pub nproc: usize,
    /// `/proc/cpuinfo` model name.
    pub cpu: String,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started.
    pub load_before: String,
    /// … and when it ended.
    pub load_after: String,
}

/// The current 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl Machine {
    /// This machine now (`load_after` is filled in at the end).
    pub fn now() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            load_before: load_average(),
            load_after: String::new(),
        }
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "Machine: {} CPUs ({}); load average (1/5/15 min) {} at the start, {} at the end.\n",
            self.nproc, self.cpu, self.load_before, self.load_after
        );
    }
}

fn outcomes(summary: &Summary) -> String {
    summary
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn checks_table(out: &mut String, checks: &[Check]) {
    let _ = writeln!(out, "| scenario | check | limit | measured | result |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for c in checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            c.scenario,
            c.what,
            c.limit,
            c.measured,
            if c.passed { "pass" } else { "**FAIL**" }
        );
    }
    let _ = writeln!(out);
}

/// A profile run as Markdown.
pub fn render_run(run: &RunResult, command: &str, machine: &Machine, when: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Profile `{}`, {when}\n", run.profile);
    let _ = writeln!(out, "```sh\n{command}\n```\n");
    machine.render(&mut out);
    let _ = writeln!(
        out,
        "Setup: {} agents, {} grants requested and approved with the software passkey in {:.1} s.\n",
        run.agents,
        run.grants,
        run.setup.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| scenario | users | run | offered /s | achieved /s | requests | p50 ms | p90 ms | p99 ms | max ms | outcomes |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &run.stages {
        let m = &s.summary;
        let _ = writeln!(
            out,
            "| {} | {} | {} s | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            s.stage.kind.name(),
            s.stage.plan.users,
            s.stage.plan.run_time.as_secs(),
            s.stage.rate,
            m.throughput,
            m.count,
            Summary::ms(m.p50_us),
            Summary::ms(m.p90_us),
            Summary::ms(m.p99_us),
            Summary::ms(m.max_us),
            outcomes(m)
        );
    }
    let _ = writeln!(out);
    let checks: Vec<Check> = run
        .stages
        .iter()
        .flat_map(|s| s.checks.iter().cloned())
        .collect();
    checks_table(&mut out, &checks);
    out
}

/// A soak as Markdown: settings, the mixed profile's numbers, the RSS
/// series (start, second minute, last minute, end, max), the checks.
pub fn render_soak(soak: &SoakResult, command: &str, machine: &Machine, when: &str) -> String {
    let mut out = String::new();
    let c = &soak.config;
    let _ = writeln!(
        out,
        "### Soak, {when}: mixed profile at {}/s, {} users, {} agents, {} s, a sample every {} s\n",
        c.rate,
        c.users,
        c.agents,
        c.duration.as_secs(),
        c.sample_every.as_secs()
    );
    let _ = writeln!(out, "```sh\n{command}\n```\n");
    machine.render(&mut out);
    let m = &soak.summary;
    let _ = writeln!(
        out,
        "Achieved {:.1}/s over {} requests; p50 {} ms, p90 {} ms, p99 {} ms, max {} ms.\n\nOutcomes: {}.\n\nErrors and unexpected denials per minute: {:?}.\n",
        m.throughput,
        m.count,
        Summary::ms(m.p50_us),
        Summary::ms(m.p90_us),
        Summary::ms(m.p99_us),
        Summary::ms(m.max_us),
        outcomes(m),
        m.bad_per_minute
    );
    let _ = writeln!(
        out,
        "| process | RSS MiB at start | mean 2nd minute | mean last minute | at end | max |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let end = soak.samples.last().map_or(0.0, |s| s.at_secs);
    let mut names: Vec<String> = soak
        .samples
        .iter()
        .flat_map(|s| s.rss_kib.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names.sort_by_key(|n| !WATCHED.contains(&n.as_str()));
    for name in names {
        let series: Vec<(f64, f64)> = soak
            .samples
            .iter()
            .filter_map(|s| Some((s.at_secs, *s.rss_kib.get(&name)? as f64 / 1024.0)))
            .collect();
        let mean = |from: f64, to: f64| {
            let v: Vec<f64> = series
                .iter()
                .filter(|(t, _)| *t >= from && *t < to)
                .map(|(_, r)| *r)
                .collect();
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let _ = writeln!(
            out,
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            series.first().map_or(0.0, |s| s.1),
            mean(60.0, 120.0),
            mean(end - 60.0, end + 1.0),
            series.last().map_or(0.0, |s| s.1),
            series.iter().map(|s| s.1).fold(0.0, f64::max)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "`agentauth audit verify`: {}\n",
        soak.audit_verify.1.trim().replace('\n', " / ")
    );
    checks_table(&mut out, &soak.checks);
    out
}
