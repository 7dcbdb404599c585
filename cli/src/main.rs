//! `agentauth`: one binary for AgentAuth's services and tools (DESIGN §2).
//! Each subcommand's flags have environment fallbacks; `--help` lists them.
//!
//! `agentauth dev` exists only in a build with the `dev` feature (./dev.sh):
//! it brings the local control plane harness and the software passkey, test
//! code the release binary and the image must not hold (DESIGN §13).

mod approver;
mod audit;
#[cfg(feature = "dev")]
mod dev;
mod grants;
mod root_key;
mod runtime;

/// mimalloc rather than glibc malloc: the verifier allocates a few small
/// buffers per request, and malloc/free were ~9 % of its CPU under load;
/// with mimalloc its throughput rose ~10 % (bench/results/verify.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the operator: controllers (leader only), agent API, token issuance.
    Operator(agentauth_operator::config::OperatorConfig),
    /// Run the node-local verifier: POST /v1/verify and the Envoy ext_authz service.
    Verifier(agentauth_verifier::config::VerifierConfig),
    /// Run the validating admission webhook (HTTPS): what the CRD schemas cannot
    /// check, and the passkey signature of every approval.
    Webhook(agentauth_webhook::WebhookConfig),
    /// Run the MCP gateway: AgentAuth in front of an MCP server (streamable
    /// HTTP), each tool call checked with the node-local verifier through a
    /// declared tool map (docs/mcp.md).
    McpGateway(agentauth_mcp_gateway::GatewayConfig),
    /// Run the audit archiver: seal the audit stream into KMS-signed,
    /// Merkle-checkpointed segments in a directory or S3.
    Archiver(agentauth_archiver::config::ArchiverArgs),
    /// The sealed audit archive: verify it, prove a record, show records.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Administer human approvers (enrollment tokens for their passkeys).
    #[command(subcommand)]
    Approver(approver::ApproverCommand),
    /// CapabilityGrants in bulk: emergency revocation of every grant of an
    /// agent or of a service provider.
    #[command(subcommand)]
    Grants(grants::GrantsCommand),
    /// The root signing key: generate a local one, or print the public JWK
    /// every verifier pins (the Helm chart's rootKey.publicJwk).
    #[command(subcommand)]
    RootKey(root_key::RootKeyCommand),
    /// Run the whole system on this machine (control plane, Redis, operator,
    /// webhook, two verifiers, the examples) with per-service logs; Ctrl-C stops it.
    #[cfg(feature = "dev")]
    Dev(dev::DevArgs),
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
        Command::Operator(config) => {
            runtime::init_logging();
            return report(runtime::block_on(agentauth_operator::server::run(
                config,
                runtime::shutdown_signal(),
            )));
        }
        Command::Verifier(config) => {
            runtime::init_logging();
            return report(runtime::block_on(agentauth_verifier::server::run(
                config,
                runtime::shutdown_signal(),
            )));
        }
        Command::McpGateway(config) => {
            runtime::init_logging();
            return report(runtime::block_on(agentauth_mcp_gateway::run(
                config,
                runtime::shutdown_signal(),
            )));
        }
        Command::Archiver(args) => {
            runtime::init_logging();
            return report(runtime::block_on(agentauth_archiver::server::run(
                args,
                runtime::shutdown_signal(),
            )));
        }
        Command::Audit(command) => return audit::main(command),
        #[cfg(feature = "dev")]
        Command::Dev(args) => return dev::main(args),
        Command::Approver(command) => return approver::main(command),
        Command::Grants(command) => return grants::main(command),
        Command::RootKey(command) => return root_key::main(command),
        Command::Webhook(config) => {
            runtime::init_logging();
            return report(runtime::block_on(agentauth_webhook::run(
                config,
                runtime::shutdown_signal(),
            )));
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agentauth: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Turns a service's outcome into an exit code. Service errors carry their
/// causes in their messages.
fn report<E: std::fmt::Display>(outcome: Result<Result<(), E>, std::io::Error>) -> ExitCode {
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
