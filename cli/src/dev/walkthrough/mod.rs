//! The walk-through commands a newcomer types in a second terminal while
//! `agentauth dev` runs (docs/dev.md), each a thin use of the real parts:
//!
//! ```text
//!  agent-key  ─ SDK AgentKey::generate ─▶ <state>/agents/<ns>.<agent>.key (0600) ─▶ Agent spec.publicKey
//!  request    ─ SDK request_grant (DPoP-signed POST /v1/grants) ─▶ a Pending grant
//!  approve    ─ software passkey: enroll (one-time token) on first use, log in, approve
//!  call       ─ SDK token (POST /v1/token) + DPoP proof ─▶ example provider ─▶ verifier-a
//!  revoke     ─ spec.revoked: true ─▶ the operator publishes it ─▶ verifiers deny
//! ```
//!
//! They find the running system through `<state>/run/endpoints.json`.
//! Grants and tokens are remembered under `<state>/run/` (fresh every run);
//! agent keys and passkeys under `<state>/agents/` and `<state>/passkeys/`.
//! The passkey is a software key in a file: for development only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentauth::{AgentAuthClient, AgentAuthConfig, Capability, GrantOptions};
use agentauth_crds::CapabilityGrant;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::DevError;
use super::endpoints::Endpoints;

mod agent;
mod approver;

/// The walk-through subcommands of `agentauth dev`.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Walk {
    /// Give an agent a fresh key: saved (0600) in the state folder, its
    /// public half written to the Agent's spec.publicKey.
    AgentKey {
        /// The agent, `namespace/name`.
        agent: String,
    },
    /// Ask the operator for a grant, as the agent (DPoP-signed request).
    Request {
        /// The agent, `namespace/name`.
        agent: String,
        /// The service provider (default: the example provider's).
        #[arg(long)]
        provider: Option<String>,
        /// A capability, `type:resource` (read, write, delete, transact),
        /// e.g. `read:catalog/**`; repeat for several.
        #[arg(long = "capability", required = true)]
        capabilities: Vec<String>,
        /// The BehavioralEnvelope (in the agent's namespace) that limits it.
        #[arg(long)]
        envelope: Option<String>,
        /// How long it lasts once approved.
        #[arg(long, default_value = "1h")]
        duration: String,
    },
    /// Approve a grant with the approver's software passkey (enrolled with
    /// a one-time token on first use).
    Approve {
        /// The grant, `namespace/name`.
        grant: String,
        /// The Approver.
        #[arg(long, default_value = "dana-fischer")]
        approver: String,
    },
    /// Call the provider as the agent (DPoP-bound token and proof) and
    /// print its answer: the verifier's decision.
    Call {
        /// The agent, `namespace/name`.
        agent: String,
        /// The service provider (default: the example provider's).
        #[arg(long)]
        provider: Option<String>,
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
    },
    /// Revoke a grant (spec.revoked: true).
    Revoke {
        /// The grant, `namespace/name`.
        grant: String,
    },
    /// The example provider (started by `agentauth dev`).
    #[command(hide = true)]
    Provider(super::provider::ProviderArgs),
}

/// How long the commands wait for the operator to react.
const REACTION: Duration = Duration::from_secs(20);

/// Runs one walk-through command.
pub async fn run(walk: Walk, state_dir: &Path) -> Result<(), DevError> {
    super::cluster::ensure_crypto_provider();
    if let Walk::Provider(args) = walk {
        return super::provider::run(args)
            .await
            .map_err(DevError::Walkthrough);
    }
    let endpoints = Endpoints::load(state_dir)?;
    match walk {
        Walk::AgentKey { agent } => agent::agent_key(&endpoints, state_dir, &agent).await,
        Walk::Request {
            agent,
            provider,
            capabilities,
            envelope,
            duration,
        } => {
            let provider = provider.unwrap_or_else(|| endpoints.provider_audience.clone());
            let capabilities = capabilities
                .iter()
                .map(|c| parse_capability(c))
                .collect::<Result<Vec<_>, _>>()?;
            let options = GrantOptions {
                envelope,
                duration: Some(duration),
                ..GrantOptions::default()
            };
            let client = agent_client(&endpoints, state_dir, &agent)?;
            let grant = client
                .request_grant_with(&provider, capabilities, options)
                .await
                .map_err(sdk)?;
            let mut grants = load_map(&grants_file(state_dir, &agent));
            grants.insert(provider.clone(), serde_json::json!(grant.reference()));
            save_map(&grants_file(state_dir, &agent), &grants)?;
            // Only the name on stdout, for `GRANT=$(agentauth dev request …)`.
            println!("{}", grant.reference());
            eprintln!(
                "grant {} requested for {provider}: {}; next: agentauth dev approve {}",
                grant.reference(),
                grant.phase,
                grant.reference()
            );
            Ok(())
        }
        Walk::Approve { grant, approver } => {
            approver::approve(&endpoints, state_dir, &grant, &approver).await
        }
        Walk::Call {
            agent,
            provider,
            method,
            url,
        } => {
            let provider = provider.unwrap_or_else(|| endpoints.provider_audience.clone());
            agent::call(&endpoints, state_dir, &agent, &provider, &method, &url).await
        }
        Walk::Revoke { grant } => {
            let (namespace, name) = split_ref(&grant)?;
            let grants: Api<CapabilityGrant> =
                Api::namespaced(kube_client(&endpoints).await?, namespace);
            let patch = serde_json::json!({"spec": {"revoked": true}});
            grants
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| DevError::Walkthrough(format!("cannot revoke {grant}: {e}")))?;
            let phase = approver::wait_for_phase(&grants, name, "Revoked").await;
            println!("grant {grant} revoked (phase {phase})");
            Ok(())
        }
        Walk::Provider(_) => Ok(()),
    }
}

fn agent_client(
    endpoints: &Endpoints,
    state_dir: &Path,
    agent: &str,
) -> Result<AgentAuthClient, DevError> {
    let (namespace, name) = split_ref(agent)?;
    let path = key_file(state_dir, agent);
    if !path.exists() {
        return Err(DevError::Walkthrough(format!(
            "{agent} has no key yet: run `agentauth dev agent-key {agent}` first"
        )));
    }
    let config = AgentAuthConfig::new(&endpoints.operator)
        .map_err(sdk)?
        .agent(namespace, name)
        .key_file(path);
    AgentAuthClient::new(config).map_err(sdk)
}

async fn kube_client(endpoints: &Endpoints) -> Result<Client, DevError> {
    let error = |message: String| DevError::Kubeconfig {
        path: endpoints.kubeconfig.clone(),
        message,
    };
    let kubeconfig =
        Kubeconfig::read_from(&endpoints.kubeconfig).map_err(|e| error(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| error(e.to_string()))?;
    Client::try_from(config).map_err(|e| error(e.to_string()))
}

/// `type:resource` as an SDK capability.
pub fn parse_capability(text: &str) -> Result<Capability, DevError> {
    let invalid = || {
        DevError::Walkthrough(format!(
            "capability {text:?}: write type:resource, e.g. read:catalog/** (types: read, write, delete, transact)"
        ))
    };
    let (kind, resource) = text.split_once(':').ok_or_else(invalid)?;
    if resource.is_empty() {
        return Err(invalid());
    }
    Ok(match kind {
        "read" => Capability::read(resource),
        "write" => Capability::write(resource),
        "delete" => Capability::delete(resource),
        "transact" => Capability::transact(resource, None),
        _ => return Err(invalid()),
    })
}

fn split_ref(reference: &str) -> Result<(&str, &str), DevError> {
    match reference.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace, name))
        }
        _ => Err(DevError::Walkthrough(format!(
            "{reference:?}: write namespace/name, e.g. agents/shopping-agent"
        ))),
    }
}

fn sdk(error: agentauth::Error) -> DevError {
    DevError::Walkthrough(format!("{} ({})", error.message(), error.code_str()))
}

fn key_file(state_dir: &Path, agent: &str) -> PathBuf {
    state_dir
        .join("agents")
        .join(format!("{}.key", agent.replace('/', ".")))
}

fn grants_file(state_dir: &Path, agent: &str) -> PathBuf {
    state_dir
        .join("run")
        .join(format!("{}.grants.json", agent.replace('/', ".")))
}

fn tokens_file(state_dir: &Path, agent: &str) -> PathBuf {
    state_dir
        .join("run")
        .join(format!("{}.tokens.json", agent.replace('/', ".")))
}

fn load_map(path: &Path) -> BTreeMap<String, serde_json::Value> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn save_map(path: &Path, map: &BTreeMap<String, serde_json::Value>) -> Result<(), DevError> {
    let bytes = serde_json::to_vec_pretty(map).map_err(|e| DevError::Walkthrough(e.to_string()))?;
    super::cluster::write_private(path, &bytes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_type_colon_resource() {
        assert_eq!(
            parse_capability("read:catalog/**").unwrap(),
            Capability::read("catalog/**")
        );
        assert!(parse_capability("read").is_err());
        assert!(parse_capability("read:").is_err());
        assert!(parse_capability("fly:away").is_err());
    }

    #[test]
    fn references_are_namespace_slash_name() {
        assert_eq!(split_ref("agents/shop").unwrap(), ("agents", "shop"));
        assert!(split_ref("shop").is_err());
        assert!(split_ref("a/b/c").is_err());
        assert!(split_ref("/b").is_err());
    }
}
