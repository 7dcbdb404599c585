//! What every experiment shares: starting the system, the load over both
//! verifiers, waiting, and failing with the report and the logs.
#![allow(dead_code, clippy::panic)]

use std::time::Duration;

use agentauth_chaos::load::{Record, Target};
use agentauth_chaos::{Load, Options, Report, System};

/// Offered verifications per second over both verifiers.
pub const RATE: u32 = 150;

/// Starts the system, or fails the test with the reason.
pub async fn start(options: Options) -> System {
    match System::start(options).await {
        Ok(system) => {
            println!(
                "system up in {:?} (logs in {})",
                system.started_in,
                system.dir().display()
            );
            system
        }
        Err(e) => panic!("the system did not start: {e}"),
    }
}

/// Both verifiers, no skew.
pub fn targets(system: &System) -> Vec<Target> {
    system
        .verifiers
        .iter()
        .map(|v| Target {
            name: v.name().to_owned(),
            url: v.url(),
            skew_secs: 0,
        })
        .collect()
}

/// Starts [`RATE`] verifications per second over both verifiers as every agent.
pub fn load(system: &System) -> Load {
    let agents = system.agents.iter().map(|a| a.credentials()).collect();
    Load::start(agents, targets(system), RATE)
}

/// Sleeps `secs` seconds.
pub async fn wait(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

/// Publishes the report; fails the test listing the failed checks, with the
/// services' log tails.
pub fn finish(report: &Report, system: &System, record: &Record) {
    if let Some(path) = report.publish() {
        println!("report written to {}", path.display());
    }
    let failures = report.failures();
    if !failures.is_empty() {
        panic!(
            "failed checks: {failures:#?}\n{} samples\n{}",
            record.samples.len(),
            system.logs(20)
        );
    }
}
