//! `agentauth audit verify | prove | show`: the sealed archive, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use agentauth_archiver::config::{StoreArgs, TrustArgs};
use agentauth_archiver::proof::{self, EventId, InclusionProof};
use agentauth_archiver::show::{self, Filter};
use agentauth_archiver::verify::{self, VerifyOptions};

/// The archive's commands.
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check every sealed segment: checkpoint signatures and chain, Merkle
    /// roots, each producer's hash chain, heartbeats; name the first broken
    /// record. With --proof, check one inclusion proof without the archive.
    Verify(Box<VerifyArgs>),
    /// Print the inclusion proof of one record (`<producer>#<seq>` or its hash).
    Prove {
        /// The record: `<producer>#<seq>` (e.g. `verifier/node-a#41`) or its hash.
        event: String,
        /// Where the archive is.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List sealed records, filtered, for a person investigating an incident.
    Show(ShowArgs),
}

/// `agentauth audit verify` flags.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Where the archive is.
    #[command(flatten)]
    store: StoreArgs,
    /// The keys checkpoints may be signed by.
    #[command(flatten)]
    trust: TrustArgs,
    /// The checkpoint hash the archive must end at (printed by the last
    /// verify): detects segments dropped from the end.
    #[arg(long)]
    head: Option<String>,
    /// Check this inclusion proof (JSON from `agentauth audit prove`) instead
    /// of the archive.
    #[arg(long)]
    proof: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `agentauth audit show` flags.
#[derive(clap::Args)]
pub struct ShowArgs {
    /// Where the archive is.
    #[command(flatten)]
    store: StoreArgs,
    /// Only this agent (`namespace/name`).
    #[arg(long)]
    agent: Option<String>,
    /// Only this grant (`namespace/name`).
    #[arg(long)]
    grant: Option<String>,
    /// Only this kind (`verification`, `token_issued`, `grant_approved`, …).
    #[arg(long)]
    kind: Option<String>,
    /// Only `allow` or `deny`.
    #[arg(long)]
    decision: Option<String>,
    /// Only this producer.
    #[arg(long)]
    producer: Option<String>,
    /// Records at or after this time (RFC 3339, e.g. 2026-12-07T10:00:00Z).
    #[arg(long)]
    since: Option<jiff::Timestamp>,
    /// Records before this time (RFC 3339).
    #[arg(long)]
    until: Option<jiff::Timestamp>,
    /// One JSON record per line instead of readable lines.
    #[arg(long)]
    json: bool,
}

/// Runs an audit command.
pub fn main(command: AuditCommand) -> ExitCode {
    let outcome = crate::runtime::block_on(async move {
        match command {
            AuditCommand::Verify(args) => verify_command(*args).await,
            AuditCommand::Prove { event, store } => prove_command(&event, &store).await,
            AuditCommand::Show(args) => show_command(args).await,
        }
    });
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(message)) => {
            eprintln!("agentauth audit: {message}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("agentauth audit: cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn verify_command(args: VerifyArgs) -> Result<ExitCode, String> {
    let trusted = args.trust.keys().await?;
    if let Some(path) = &args.proof {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let proof: InclusionProof = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not an inclusion proof: {e}", path.display()))?;
        return Ok(match proof::verify_proof(&proof, &trusted) {
            Ok(()) => {
                println!(
                    "ok: the record is leaf {} of {} in {}, under a checkpoint signed by a pinned key",
                    proof.index, proof.size, proof.segment
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("BROKEN: {}: {}", e.code, e.message);
                ExitCode::FAILURE
            }
        });
    }
    let store = args.store.open().await.map_err(|e| e.to_string())?;
    let options = VerifyOptions {
        trusted,
        head: args.head.clone(),
    };
    Ok(match verify::verify(store.as_ref(), &options).await {
        Ok(summary) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": true,
                        "segments": summary.segments,
                        "records": summary.records,
                        "producers": summary.producers,
                        "head": summary.head,
                    })
                );
            } else {
                println!(
                    "ok: {} segments, {} records, {} producers in {}; head checkpoint {}",
                    summary.segments,
                    summary.records,
                    summary.producers.len(),
                    store.describe(),
                    summary.head
                );
            }
            ExitCode::SUCCESS
        }
        Err(problem) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": false,
                        "kind": problem.kind.as_str(),
                        "segment": problem.segment,
                        "line": problem.line,
                        "producer": problem.record.as_ref().map(|r| &r.0),
                        "seq": problem.record.as_ref().map(|r| r.1),
                        "message": problem.message,
                    })
                );
            } else {
                println!("BROKEN: {problem}");
            }
            ExitCode::FAILURE
        }
    })
}

async fn prove_command(event: &str, store: &StoreArgs) -> Result<ExitCode, String> {
    let id = EventId::parse(event)?;
    let store = store.open().await.map_err(|e| e.to_string())?;
    let proof = proof::prove(store.as_ref(), &id)
        .await
        .map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&proof).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}

async fn show_command(args: ShowArgs) -> Result<ExitCode, String> {
    let store = args.store.open().await.map_err(|e| e.to_string())?;
    let filter = Filter {
        agent: args.agent,
        grant: args.grant,
        kind: args.kind,
        decision: args.decision,
        producer: args.producer,
        since: args.since,
        until: args.until,
    };
    let records = show::show(store.as_ref(), &filter)
        .await
        .map_err(|e| e.to_string())?;
    for (_, event) in &records {
        if args.json {
            println!(
                "{}",
                serde_json::to_string(event).map_err(|e| e.to_string())?
            );
        } else {
            println!("{}", show::one_line(event));
        }
    }
    if !args.json {
        eprintln!("{} records", records.len());
    }
    Ok(ExitCode::SUCCESS)
}
