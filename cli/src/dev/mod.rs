//! `agentauth dev`: the whole system on this machine, in one terminal.
//!
//! ```text
//!  cluster.rs     current kubeconfig if it answers, else local etcd + kube-apiserver;
//!                 CRDs, namespaces, the operator's own kubeconfig
//!  services.rs    the command line of every service (ports, URLs, files)
//!  supervisor.rs  redis, operator, webhook, verifier-a, verifier-b as child processes
//!                 under lifeline watchdogs; output prefixed per service (logs.rs)
//!  ready.rs       each /readyz (PING for Redis) before a deadline
//!  registration.rs, examples.rs   the webhook registered and in force; the examples applied
//!  banner.rs      what runs where and the next commands; then logs until Ctrl-C
//!  provider.rs    the example service provider (a child, like the others)
//!  walkthrough.rs the commands a newcomer types next (agent-key, request, approve, call, revoke)
//! ```
//!
//! Ctrl-C or SIGTERM stops the services (SIGTERM, SIGKILL after a few
//! seconds), then Redis, then the control plane, and exits 0. A service
//! that dies on its own stops the run with a non-zero exit. The state
//! folder keeps the root key between runs; everything else is fresh.

mod apiserver_log;
mod banner;
mod cluster;
mod endpoints;
mod error;
mod examples;
mod logs;
mod ports;
mod provider;
mod ready;
mod registration;
mod run;
mod services;
mod supervisor;
mod walkthrough;

use std::path::PathBuf;
use std::process::ExitCode;

pub use error::DevError;

/// `agentauth dev` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct DevArgs {
    /// A walk-through command against the running system; none: run it.
    #[command(subcommand)]
    pub walk: Option<walkthrough::Walk>,

    /// Folder for the root key, kubeconfigs, PID files and service data;
    /// the root key, agent keys and passkeys are kept between runs.
    #[arg(
        long,
        global = true,
        env = "AGENTAUTH_DEV_STATE_DIR",
        default_value = ".agentauth-dev"
    )]
    pub state_dir: PathBuf,

    /// First of six consecutive loopback ports (operator, verifier-a,
    /// verifier-b, webhook, example provider, redis); 0 picks free ports.
    #[arg(long, env = "AGENTAUTH_DEV_BASE_PORT", default_value_t = 8080)]
    pub base_port: u16,

    /// Keep state in process instead of starting redis-server (one verifier
    /// only: separate processes cannot share in-process state).
    #[arg(long, default_value_t = false)]
    pub no_redis: bool,

    /// Start the local control plane even when the current kubeconfig's
    /// cluster answers.
    #[arg(long, default_value_t = false)]
    pub local: bool,

    /// Folder of the built approval UI the operator serves under
    /// /approvals/ (default: approval-ui/dist of this checkout, when built).
    #[arg(long, env = "AGENTAUTH_UI_DIR")]
    pub ui_dir: Option<PathBuf>,

    /// Show every apiserver log line, not only warnings and errors.
    #[arg(long, default_value_t = false)]
    pub verbose: bool,

    /// Stop (as on Ctrl-C) when stdin reaches its end: for a parent process
    /// (a test) that must not leave the system running if it dies.
    #[arg(long, default_value_t = false, hide = true)]
    pub stop_on_stdin_eof: bool,
}

/// Runs `agentauth dev` until Ctrl-C, SIGTERM or a failing service.
pub fn main(args: DevArgs) -> ExitCode {
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("agentauth dev: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(walk) = args.walk.clone() {
        let outcome = runtime.block_on(walkthrough::run(walk, &args.state_dir));
        runtime.shutdown_timeout(std::time::Duration::from_secs(2));
        return match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("agentauth dev: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let code = runtime.block_on(run::run(args));
    // A control-plane build still running in a blocking task must not keep
    // the process alive; its processes stop with their lifelines.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

/// The runner's own warnings (e.g. from the control plane harness) go to
/// stderr; `RUST_LOG` filters (default `warn`, without kube's retry
/// errors while the local apiserver starts).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,kube_client::client::builder=off")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
