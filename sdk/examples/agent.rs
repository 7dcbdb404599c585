//! An agent that reads a calendar through AgentAuth: it asks for a grant,
//! waits for a human to approve it, then calls the example provider with a
//! DPoP-bound token; and shows a call outside its grant being refused.
//!
//! ```sh
//! # 1. a key and the Agent to apply (once)
//! cargo run -p agentauth --example agent -- --key-file agent.jwk manifest | kubectl apply -f -
//! # 2. ask, wait for the approval (approve in the UI), call
//! cargo run -p agentauth --example agent -- --key-file agent.jwk run
//! ```
//!
//! Every flag has an environment fallback (`--help`).

use std::path::PathBuf;
use std::time::Duration;

use agentauth::{
    AgentAuthClient, AgentAuthConfig, AgentIdentity, AgentKey, Capability, agent_manifest,
    check_response,
};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "An example AgentAuth agent calling the example calendar provider")]
struct Args {
    /// The operator's agent API.
    #[arg(
        long,
        env = "AGENTAUTH_OPERATOR_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    operator_url: String,
    /// The agent's namespace.
    #[arg(long, env = "AGENTAUTH_NAMESPACE", default_value = "default")]
    namespace: String,
    /// The agent's name.
    #[arg(long, env = "AGENTAUTH_AGENT_NAME", default_value = "calendar-bot")]
    name: String,
    /// The agent's key file (generated with mode 0600 when missing).
    #[arg(long, env = "AGENTAUTH_KEY_FILE", default_value = "agent.jwk")]
    key_file: PathBuf,
    /// The service provider id (the tokens' audience).
    #[arg(
        long,
        env = "PROVIDER_ID",
        default_value = "https://calendar.example.com"
    )]
    provider_id: String,
    /// Where the provider listens.
    #[arg(long, env = "PROVIDER_URL", default_value = "http://127.0.0.1:8090")]
    provider_url: String,
    /// How long to wait for a human's decision, in seconds.
    #[arg(long, default_value_t = 600)]
    wait_secs: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the Agent YAML to apply (generating the key if needed).
    Manifest {
        /// The accountable human.
        #[arg(long, default_value = "owner@example.com")]
        owner: String,
    },
    /// Ask for a grant, wait for approval, call the provider.
    Run,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let key = AgentKey::load_or_generate(&args.key_file)?;
    match &args.command {
        Command::Manifest { owner } => {
            let identity = AgentIdentity {
                namespace: &args.namespace,
                name: &args.name,
                display_name: "Calendar bot (example)",
                owner,
                description: Some("The AgentAuth SDK example agent"),
            };
            print!("{}", agent_manifest(&identity, &key)?);
            Ok(())
        }
        Command::Run => run(&args, key).await,
    }
}

async fn run(args: &Args, key: AgentKey) -> Result<(), Box<dyn std::error::Error>> {
    let config = AgentAuthConfig::new(&args.operator_url)?
        .agent(&args.namespace, &args.name)
        .key(key);
    let client = AgentAuthClient::new(config)?;
    let grant = client
        .request_grant(
            &args.provider_id,
            vec![Capability::Read {
                resource: "calendars/primary/**".to_string(),
                filter: None,
            }],
        )
        .await?;
    println!(
        "requested grant {} ({}); waiting up to {} s for a human to approve it",
        grant.reference(),
        grant.phase,
        args.wait_secs
    );
    let grant = client
        .wait_for_approval(&grant.reference(), Duration::from_secs(args.wait_secs))
        .await?;
    println!("grant {} approved", grant.reference());

    let http = reqwest::Client::new();
    for calendar in ["primary", "work"] {
        let url = format!("{}/calendars/{calendar}/events", args.provider_url);
        let mut request = http.get(&url).build()?;
        client
            .authenticate_request(&args.provider_id, &mut request)
            .await?;
        match check_response(http.execute(request).await?).await {
            Ok(response) => println!("GET {url}: {}", response.text().await?),
            Err(e) => println!("GET {url}: refused with {} ({})", e.code_str(), e.message()),
        }
    }
    Ok(())
}
