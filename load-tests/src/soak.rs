//! The soak: the mixed profile at a steady rate for ≥ 10 minutes while a
//! sampler reads, every `sample_every`:
//!
//! ```text
//!  /proc/<pid>/status VmRSS   of every service `agentauth dev` recorded (run/<name>.pid)
//!  GET /metrics               agentauth_audit_dropped_total of the operator and each verifier
//! ```
//!
//! (the archiver exports no drop counter: the archive verification covers
//! it) and then the archive is verified (`agentauth audit verify`). It passes
//! when memory is flat (each service's mean RSS over the last minute within
//! +15 % of its mean over the second minute), no audit event was dropped,
//! the archive verifies, errors do not grow (the mean of errors and
//! unexpected denials per minute over the last three minutes is at most
//! one above that of minutes two to four) and the mixed profile's own
//! bounds hold.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::LoadError;
use crate::attack::Plan;
use crate::dev::{Dev, Endpoints};
use crate::recorder::Summary;
use crate::run::target;
use crate::scenarios::mixed::Mixed;
use crate::thresholds::{self, Check, Limits};

/// The services whose memory must stay flat.
pub const WATCHED: &[&str] = &["operator", "verifier-a", "verifier-b", "archiver"];

/// Allowed growth of a service's RSS from the second to the last minute.
pub const RSS_GROWTH: f64 = 0.15;

/// How a soak runs.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// Agents (each with a shop and a calendar grant).
    pub agents: usize,
    /// Offered per second.
    pub rate: f64,
    /// Users.
    pub users: usize,
    /// How long.
    pub duration: Duration,
    /// Between samples.
    pub sample_every: Duration,
}

/// One sample.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Seconds since the load started.
    pub at_secs: f64,
    /// VmRSS in KiB, by service.
    pub rss_kib: BTreeMap<String, u64>,
    /// `agentauth_audit_dropped_total`, summed over labels, by service.
    pub audit_dropped: BTreeMap<String, f64>,
}

/// What a soak measured.
#[derive(Clone, Debug)]
pub struct SoakResult {
    /// The settings.
    pub config: SoakConfig,
    /// The mixed profile's measurements.
    pub summary: Summary,
    /// Every sample.
    pub samples: Vec<Sample>,
    /// `agentauth audit verify`: success and output.
    pub audit_verify: (bool, String),
    /// Every check.
    pub checks: Vec<Check>,
}

/// VmRSS of `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The sum of every `name{…} value` line of a Prometheus text page.
pub fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn sample(
    state: &Path,
    endpoints: &Endpoints,
    http: &reqwest::Client,
    at_secs: f64,
) -> Sample {
    let rss_kib = crate::dev::pids(state)
        .into_iter()
        .filter_map(|(name, pid)| Some((name, rss_kib(pid)?)))
        .collect();
    let mut audit_dropped = BTreeMap::new();
    let mut pages = vec![("operator".to_owned(), endpoints.operator.clone())];
    pages.extend(endpoints.verifiers.iter().cloned());
    for (name, base) in pages {
        let page = match http.get(format!("{base}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        audit_dropped.insert(name, metric_sum(&page, "agentauth_audit_dropped_total"));
    }
    Sample {
        at_secs,
        rss_kib,
        audit_dropped,
    }
}

/// Runs the soak against `dev`.
pub async fn run(dev: &Dev, config: &SoakConfig) -> Result<SoakResult, LoadError> {
    let target = target(dev, config.agents).await?;
    let mixed = Mixed::new(&target, config.rate, config.users)?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let sampler = {
        let (stop, http, every) = (stop.clone(), target.http.clone(), config.sample_every);
        let (state, endpoints) = (dev.state.clone(), dev.endpoints.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let s = sample(&state, &endpoints, &http, started.elapsed().as_secs_f64()).await;
                println!(
                    "soak: {:>5.0} s  rss KiB {:?}  audit dropped {:?}",
                    s.at_secs, s.rss_kib, s.audit_dropped
                );
                samples.push(s);
                let next = every.saturating_sub(Duration::from_millis(
                    u64::try_from(started.elapsed().as_millis()).unwrap_or(0)
                        % u64::try_from(every.as_millis().max(1)).unwrap_or(1),
                ));
                tokio::time::sleep(next).await;
            }
            samples
        })
    };
    let plan = Plan {
        users: config.users,
        run_time: config.duration,
    };
    let summary = mixed.run(&plan).await?;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler
        .await
        .map_err(|e| LoadError::Goose(format!("the sampler: {e}")))?;
    // The archiver seals every 2 s; give it time to catch up.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let audit_verify = verify_archive(dev)?;
    let checks = checks(config, &summary, &samples, &audit_verify);
    Ok(SoakResult {
        config: config.clone(),
        summary,
        samples,
        audit_verify,
        checks,
    })
}

fn verify_archive(dev: &Dev) -> Result<(bool, String), LoadError> {
    let Some(dir) = &dev.endpoints.archive_dir else {
        return Ok((false, "no archiver runs (no Redis?)".into()));
    };
    let (dir, key) = (
        dir.display().to_string(),
        dev.root_jwk().display().to_string(),
    );
    dev.command(&[
        "audit",
        "verify",
        "--archive-dir",
        &dir,
        "--public-key",
        &key,
    ])
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

fn checks(
    config: &SoakConfig,
    summary: &Summary,
    samples: &[Sample],
    audit_verify: &(bool, String),
) -> Vec<Check> {
    let mut out = memory_checks(samples);
    let dropped: f64 = samples
        .last()
        .map_or(0.0, |s| s.audit_dropped.values().sum());
    out.push(soak_check(
        "audit drops",
        "agentauth_audit_dropped_total = 0 everywhere".into(),
        format!("{dropped}"),
        dropped == 0.0 && !samples.is_empty(),
    ));
    out.push(soak_check(
        "audit archive",
        "`agentauth audit verify` ok".into(),
        audit_verify
            .1
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_owned(),
        audit_verify.0,
    ));
    out.push(error_growth_check(summary));
    let limits = Limits {
        min_throughput: config.rate,
        max_p99_ms: 20.0,
        max_unexpected_ratio: 0.0,
        max_error_ratio: 0.001,
    };
    out.extend(thresholds::check("soak", &limits, summary));
    out
}

fn soak_check(what: &'static str, limit: String, measured: String, passed: bool) -> Check {
    Check {
        scenario: "soak".into(),
        what,
        limit,
        measured,
        passed,
    }
}

/// Per watched process: the last minute's mean VmRSS against the second
/// minute's (the first is warm-up).
fn memory_checks(samples: &[Sample]) -> Vec<Check> {
    let end = samples.last().map_or(0.0, |s| s.at_secs);
    WATCHED
        .iter()
        .map(|name| {
            let rss = |from: f64, to: f64| {
                mean(
                    samples
                        .iter()
                        .filter(|s| s.at_secs >= from && s.at_secs < to)
                        .filter_map(|s| s.rss_kib.get(*name).map(|v| *v as f64)),
                )
            };
            let (second, last) = (rss(60.0, 120.0), rss(end - 60.0, end + 1.0));
            let passed =
                matches!((second, last), (Some(a), Some(b)) if b <= a * (1.0 + RSS_GROWTH));
            soak_check(
                "flat memory",
                format!(
                    "{name}: last-minute mean ≤ second-minute mean +{:.0} %",
                    RSS_GROWTH * 100.0
                ),
                format!(
                    "{name}: {:.1} → {:.1} MiB",
                    second.unwrap_or(0.0) / 1024.0,
                    last.unwrap_or(0.0) / 1024.0
                ),
                passed,
            )
        })
        .collect()
}

/// Errors per minute must not grow: the last 3 whole minutes against
/// minutes 2–4 (the last minute is partial and left out).
fn error_growth_check(summary: &Summary) -> Check {
    let minutes: Vec<f64> = summary
        .bad_per_minute
        .iter()
        .take(summary.bad_per_minute.len().saturating_sub(1))
        .map(|v| *v as f64)
        .collect();
    let early = mean(minutes.iter().skip(1).take(3).copied()).unwrap_or(0.0);
    let late = mean(minutes.iter().rev().take(3).copied()).unwrap_or(0.0);
    soak_check(
        "error growth",
        "mean/min of the last 3 min ≤ mean/min of min 2–4 + 1".into(),
        format!(
            "{early:.1} → {late:.1} per minute ({:?})",
            summary.bad_per_minute
        ),
        late <= early + 1.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines_are_summed_over_labels_and_nothing_else() {
        let page = "# HELP agentauth_audit_dropped_total x\n\
                    agentauth_audit_dropped_total{reason=\"queue_full\"} 2\n\
                    agentauth_audit_dropped_total{reason=\"unlinkable\"} 1\n\
                    agentauth_audit_dropped_totally 9\n";
        assert_eq!(metric_sum(page, "agentauth_audit_dropped_total"), 3.0);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
