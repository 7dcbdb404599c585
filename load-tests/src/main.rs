//! `agentauth-load`: starts `agentauth dev`, runs a profile (smoke, full)
//! or the soak against it, prints every scenario's numbers and failed
//! checks, optionally appends the Markdown report to a file, and exits
//! non-zero when a check failed (1) or the run could not be made (2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agentauth_load::dev::{Dev, check_dev_binary, locate_agentauth};
use agentauth_load::report::{self, Machine};
use agentauth_load::{LoadError, profile, run, soak, thresholds};
use clap::{Parser, ValueEnum};

/// What to run.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// Seconds per scenario at low rates (what `cargo test` runs).
    Smoke,
    /// The targets: warm, cold, issuance, approval, mixed.
    Full,
    /// The mixed profile at a steady rate, sampling memory and audit drops.
    Soak,
}

/// Load tests of AgentAuth against a fresh `agentauth dev`.
#[derive(Debug, Parser)]
struct Args {
    /// The profile.
    #[arg(value_enum, default_value = "smoke")]
    mode: Mode,
    /// Only these scenarios (warm, cold, issuance, approval, mixed).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Offer this rate (per second) in every selected scenario instead.
    #[arg(long)]
    rate: Option<f64>,
    /// The `agentauth` binary built with `--features dev` (default: the one
    /// beside this program, or $AGENTAUTH_BIN).
    #[arg(long)]
    agentauth: Option<PathBuf>,
    /// The state folder of the dev run (default: a fresh one in /tmp,
    /// removed after a run that stopped cleanly).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Append the Markdown report to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Soak: minutes.
    #[arg(long, default_value_t = 10)]
    soak_minutes: u64,
    /// Soak: offered per second.
    #[arg(long, default_value_t = 300.0)]
    soak_rate: f64,
    /// Soak: users.
    #[arg(long, default_value_t = 16)]
    soak_users: usize,
    /// Agents to create (default: the profile's; 12 for the soak).
    #[arg(long)]
    agents: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentauth-load: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run_mode(&args)) {
        Ok((markdown, failures)) => {
            if let Some(path) = &args.report
                && let Err(e) = append(path, &markdown)
            {
                eprintln!("agentauth-load: {e}");
                return ExitCode::from(2);
            }
            if failures.is_empty() {
                println!("load: every check passed");
                ExitCode::SUCCESS
            } else {
                for f in &failures {
                    eprintln!("load: {f}");
                }
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("agentauth-load: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run_mode(args: &Args) -> Result<(String, Vec<String>), LoadError> {
    let binary = match &args.agentauth {
        Some(path) => check_dev_binary(path.clone())?,
        None => locate_agentauth()?,
    };
    let state = args.state_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("agentauth-load-{}", std::process::id()))
    });
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let when = utc_now();
    let mut machine = Machine::now();
    let dev = Dev::start(&binary, &state)?;
    println!("load: agentauth dev ready ({})", state.display());
    let outcome = match args.mode {
        Mode::Smoke | Mode::Full => {
            let chosen = match args.mode {
                Mode::Smoke => profile::smoke(),
                _ => profile::full(),
            };
            let mut chosen = chosen.select(&args.scenarios, args.rate);
            if let Some(agents) = args.agents {
                chosen.agents = agents;
            }
            run::run(&dev, &chosen).await.map(|result| {
                machine.load_after = report::load_average();
                (
                    report::render_run(&result, &command, &machine, &when),
                    result.failures(),
                )
            })
        }
        Mode::Soak => {
            let config = soak::SoakConfig {
                agents: args.agents.unwrap_or(12),
                rate: args.soak_rate,
                users: args.soak_users,
                duration: Duration::from_secs(args.soak_minutes * 60),
                sample_every: Duration::from_secs(10),
            };
            soak::run(&dev, &config).await.map(|result| {
                machine.load_after = report::load_average();
                (
                    report::render_soak(&result, &command, &machine, &when),
                    thresholds::failures(&result.checks),
                )
            })
        }
    };
    let stopped = dev.stop();
    let outcome = outcome?;
    println!("{}", outcome.0);
    if stopped.is_ok() && args.state_dir.is_none() {
        let _ = std::fs::remove_dir_all(&state);
    }
    stopped?;
    Ok(outcome)
}

fn append(path: &std::path::Path, text: &str) -> Result<(), LoadError> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| LoadError::io("open", path, e))?;
    writeln!(file, "{text}").map_err(|e| LoadError::io("write", path, e))
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
