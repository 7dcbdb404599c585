//! `agentauth approver …`: administration of human approvers.
//!
//! `enroll-token <approver>` creates the one-time token a person needs to
//! register a passkey through the approval API, and prints it with the
//! enrollment URL. Only the token's SHA-256 is stored (a Secret in the
//! operator's namespace); the token itself is shown once.

use std::process::ExitCode;

use agentauth_core::gcra::Period;
use agentauth_operator::clock::{Clock as _, SystemClock};

/// `agentauth approver` subcommands.
#[derive(clap::Subcommand)]
pub enum ApproverCommand {
    /// Create a one-time enrollment token for an Approver and print it with
    /// the enrollment URL (the previous token of that Approver stops working).
    EnrollToken(EnrollTokenArgs),
}

/// `agentauth approver enroll-token` flags.
#[derive(clap::Args)]
pub struct EnrollTokenArgs {
    /// The Approver (cluster-scoped) the passkey will belong to.
    pub approver: String,

    /// How long the token stays usable, e.g. 1h, 30m (at most 7d).
    #[arg(long, default_value = "1h")]
    pub ttl: Period,

    /// The operator's namespace, where the token's hash is kept.
    #[arg(long, env = "POD_NAMESPACE", default_value = "agentauth-system")]
    pub namespace: String,

    /// The operator's public base URL, for the printed enrollment link.
    #[arg(
        long,
        env = "AGENTAUTH_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
}

/// The approval UI's enrollment page for `approver` with `token`. The token
/// rides in the fragment: browsers never send it to a server log.
pub fn enroll_url(base: &str, approver: &str, token: &str) -> String {
    let base = base.trim_end_matches('/');
    format!("{base}/approvals/enroll?approver={approver}#token={token}")
}

/// Runs an `approver` subcommand.
pub fn main(command: ApproverCommand) -> ExitCode {
    let ApproverCommand::EnrollToken(args) = command;
    let outcome = crate::runtime::block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("cannot reach Kubernetes: {e}"))?;
        let ttl = args.ttl.duration();
        agentauth_operator::approvals::tokens::create(
            client,
            &args.namespace,
            &args.approver,
            ttl,
            SystemClock.now_ms(),
        )
        .await
        .map_err(|e| e.to_string())
    });
    match outcome {
        Ok(Ok(token)) => {
            let base = args.public_url.trim_end_matches('/');
            println!(
                "enrollment token for approver {} (valid {}, single use):",
                args.approver, args.ttl
            );
            println!("{token}");
            println!("enroll at: {}", enroll_url(base, &args.approver, &token));
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            eprintln!("agentauth: {error}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("agentauth: cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}
