//! `agentauth`: one binary for AgentAuth's services and tools (DESIGN §2).
//! For now it prints and writes the CRD manifests; the operator, verifier,
//! webhook and audit archiver arrive as subcommands of their own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// AgentAuth: humans approve what AI agents may do, as Kubernetes resources.
#[derive(Parser)]
#[command(name = "agentauth", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The CustomResourceDefinitions (Agent, BehavioralEnvelope, CapabilityGrant, Approver).
    #[command(subcommand)]
    Crds(Crds),
}

#[derive(Subcommand)]
enum Crds {
    /// Print every CRD as one multi-document YAML stream (for `kubectl apply -f -`).
    Print,
    /// Write one `<plural>.agentauth.dev.yaml` file per CRD into DIR.
    Write {
        /// The folder to write into (created if missing), e.g. crds/generated.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Crds(Crds::Print) => agentauth_crds::crds_yaml().map(|yaml| print!("{yaml}")),
        Command::Crds(Crds::Write { dir }) => agentauth_crds::write_dir(&dir).map(|files| {
            for file in files {
                println!("wrote {}", dir.join(file).display());
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agentauth: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
