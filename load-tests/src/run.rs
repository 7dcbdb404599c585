//! One profile run against a running `agentauth dev`: the population, then
//! each stage in order, each summary checked against its limits.

use std::time::{Duration, Instant};

use crate::LoadError;
use crate::dev::Dev;
use crate::fixtures;
use crate::profile::{Kind, Profile, Stage};
use crate::recorder::Summary;
use crate::scenarios::{self, Target};
use crate::thresholds::{self, Check};

/// What one stage measured and how it fared.
#[derive(Clone, Debug)]
pub struct StageResult {
    /// The stage.
    pub stage: Stage,
    /// Its measurements.
    pub summary: Summary,
    /// Its checks.
    pub checks: Vec<Check>,
}

/// What a profile run measured.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The profile's name.
    pub profile: &'static str,
    /// Agents and grants created.
    pub agents: usize,
    /// Grants created and approved during setup.
    pub grants: usize,
    /// How long the setup took.
    pub setup: Duration,
    /// Every stage.
    pub stages: Vec<StageResult>,
}

impl RunResult {
    /// Every failed check, one line each.
    pub fn failures(&self) -> Vec<String> {
        let checks: Vec<Check> = self
            .stages
            .iter()
            .flat_map(|s| s.checks.iter().cloned())
            .collect();
        thresholds::failures(&checks)
    }
}

/// The agents, grants and approver of a run, and a fixture client.
pub async fn target(dev: &Dev, agents: usize) -> Result<Target, LoadError> {
    let population = fixtures::setup(dev, agents).await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| LoadError::Fixtures(e.to_string()))?;
    Ok(Target {
        endpoints: dev.endpoints.clone(),
        population,
        http,
    })
}

/// Runs `profile` against `dev`, printing each stage's line as it ends.
pub async fn run(dev: &Dev, profile: &Profile) -> Result<RunResult, LoadError> {
    let started = Instant::now();
    let target = target(dev, profile.agents).await?;
    let setup = started.elapsed();
    println!(
        "load: {} agents, {} grants approved in {:.1} s",
        target.population.agents.len(),
        target.population.grants.len(),
        setup.as_secs_f64()
    );
    let mut stages = Vec::new();
    for stage in &profile.stages {
        let summary = run_stage(&target, stage).await?;
        let checks = thresholds::check(stage.kind.name(), &stage.limits, &summary);
        println!(
            "load: {:<9} offered {:>7.1}/s achieved {:>8.1}/s  p50 {} p90 {} p99 {} max {} ms  {:?}",
            stage.kind.name(),
            stage.rate,
            summary.throughput,
            Summary::ms(summary.p50_us),
            Summary::ms(summary.p90_us),
            Summary::ms(summary.p99_us),
            Summary::ms(summary.max_us),
            summary.outcomes
        );
        for failure in thresholds::failures(&checks) {
            println!("load: {failure}");
        }
        stages.push(StageResult {
            stage: stage.clone(),
            summary,
            checks,
        });
        // Let audit queues and connection pools settle between stages.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(RunResult {
        profile: profile.name,
        agents: target.population.agents.len(),
        grants: target.population.grants.len(),
        setup,
        stages,
    })
}

async fn run_stage(target: &Target, stage: &Stage) -> Result<Summary, LoadError> {
    let (rate, plan) = (stage.rate, &stage.plan);
    match stage.kind {
        Kind::Warm => scenarios::warm::run(target, rate, plan).await,
        Kind::Cold => scenarios::cold::run(target, rate, plan).await,
        Kind::Issuance => scenarios::issuance::run(target, rate, plan).await,
        Kind::Approval => scenarios::approval::run(target, rate, plan).await,
        Kind::Mixed => scenarios::mixed::run(target, rate, plan).await,
    }
}
