//! The population a load run drives: many Agents (each with its own key),
//! two envelopes (a rate limit, a spending limit), and per agent one grant
//! at each example audience (shop, calendar), asked for by the SDK and
//! approved with a software passkey through the approval API, as a person
//! would.
//!
//! ```text
//!  kube apply  BehavioralEnvelope load-rate, load-spend; Agent load-agent-NN (spec.publicKey)
//!  wait        status.keyThumbprint = the key's (the operator accepts proofs of it)
//!  SDK         request_grant_with(shop | calendar, capabilities, envelope)  ─▶ Pending
//!  passkey     `agentauth dev approve` once (enrolls dana-fischer), then SoftApprover::approve
//!  SDK         wait_for_approval ─▶ Approved
//! ```
//!
//! The agents' owner is not the approver: an approver never approves a
//! grant for an agent it owns. No envelope has a time window, so a run
//! does not depend on the hour (the example `office-hours` would).

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth::{AgentAuthClient, AgentAuthConfig, AgentKey, Capability, GrantOptions};
use agentauth_crds::{Agent, BehavioralEnvelope};
use agentauth_soft_passkey::SoftApprover;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::LoadError;
use crate::dev::Dev;

/// The namespace the example approver may approve grants in.
pub const NAMESPACE: &str = "agents";
/// The example approver (`examples/approvers.yaml`).
pub const APPROVER: &str = "dana-fischer";
/// The shop's audience (the example provider).
pub const SHOP: &str = "https://shop.example.com";
/// The calendar's audience.
pub const CALENDAR: &str = "https://calendar.example.com";
/// The envelope with a rate limit.
pub const RATE_ENVELOPE: &str = "load-rate";
/// The envelope with spending limits.
pub const SPEND_ENVELOPE: &str = "load-spend";
/// The spending envelope's limit per transaction, in whole euros.
pub const MAX_PER_TRANSACTION_EUR: u32 = 50;

const FIELD_MANAGER: &str = "agentauth-load";

/// What limits a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantKind {
    /// Reads, no envelope: every request inside it is allowed.
    Plain,
    /// Reads under `load-rate` (a GCRA limit): `rate_limited` is expected.
    RateLimited,
    /// Reads and payments under `load-spend`: amount denials are expected.
    Spending,
}

/// One load agent and its SDK client (which holds its key).
#[derive(Clone)]
pub struct LoadAgent {
    /// `namespace/name`.
    pub name: String,
    /// The agent's SDK client.
    pub client: AgentAuthClient,
}

/// One approved grant.
#[derive(Clone, Debug)]
pub struct LoadGrant {
    /// Index into [`Population::agents`].
    pub agent: usize,
    /// `namespace/name`.
    pub reference: String,
    /// The token audience.
    pub audience: String,
    /// What limits it.
    pub kind: GrantKind,
}

/// Everything a scenario needs to act as agents and approver.
#[derive(Clone)]
pub struct Population {
    /// The agents.
    pub agents: Vec<LoadAgent>,
    /// Their approved grants.
    pub grants: Vec<LoadGrant>,
    /// The approver's software passkey, logged in.
    pub approver: Arc<tokio::sync::Mutex<SoftApprover>>,
}

impl Population {
    /// The grants of `kind`.
    pub fn of_kind(&self, kind: GrantKind) -> Vec<LoadGrant> {
        self.grants
            .iter()
            .filter(|g| g.kind == kind)
            .cloned()
            .collect()
    }
}

/// Creates `agents` agents with two approved grants each.
pub async fn setup(dev: &Dev, agents: usize) -> Result<Population, LoadError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = kube_client(dev).await?;
    apply_envelopes(&client).await?;
    let mut population = Vec::new();
    for i in 0..agents {
        let name = format!("load-agent-{i:02}");
        let key = AgentKey::generate().map_err(sdk)?;
        apply_agent(&client, &name, &key).await?;
        let config = AgentAuthConfig::new(&dev.endpoints.operator)
            .map_err(sdk)?
            .agent(NAMESPACE, &name)
            .key(key);
        let agent = AgentAuthClient::new(config).map_err(sdk)?;
        population.push(LoadAgent {
            name: format!("{NAMESPACE}/{name}"),
            client: agent,
        });
    }
    for agent in &population {
        wait_for_key(&client, agent).await?;
    }
    let mut grants = Vec::new();
    for (i, agent) in population.iter().enumerate() {
        let shop_kind = [
            GrantKind::Plain,
            GrantKind::RateLimited,
            GrantKind::Spending,
        ][i % 3];
        for (audience, kind) in [(SHOP, shop_kind), (CALENDAR, GrantKind::Plain)] {
            let reference = request(agent, audience, kind).await?;
            grants.push(LoadGrant {
                agent: i,
                reference,
                audience: audience.to_owned(),
                kind,
            });
        }
    }
    let approver = enroll_approver(dev, &grants).await?;
    {
        let mut passkey = approver.lock().await;
        // The first grant was approved by `agentauth dev approve` (enrolling).
        for grant in grants.iter().skip(1) {
            let (namespace, name) = split(&grant.reference)?;
            passkey
                .approve(namespace, name)
                .await
                .map_err(|e| LoadError::Fixtures(format!("approving {}: {e}", grant.reference)))?;
        }
    }
    for grant in &grants {
        population[grant.agent]
            .client
            .wait_for_approval(&grant.reference, Duration::from_secs(30))
            .await
            .map_err(sdk)?;
    }
    Ok(Population {
        agents: population,
        grants,
        approver,
    })
}

/// The capabilities a grant of `kind` at `audience` asks for.
pub fn capabilities(audience: &str, kind: GrantKind) -> Vec<Capability> {
    match (audience, kind) {
        (CALENDAR, _) => vec![Capability::read("calendars/**")],
        (_, GrantKind::Spending) => vec![
            Capability::read("catalog/**"),
            Capability::transact("orders/*/payment", None),
        ],
        _ => vec![Capability::read("catalog/**")],
    }
}

/// Asks for a grant for `agent` (Pending until approved); its reference.
pub async fn request(
    agent: &LoadAgent,
    audience: &str,
    kind: GrantKind,
) -> Result<String, LoadError> {
    let options = GrantOptions {
        envelope: match kind {
            GrantKind::Plain => None,
            GrantKind::RateLimited => Some(RATE_ENVELOPE.to_owned()),
            GrantKind::Spending => Some(SPEND_ENVELOPE.to_owned()),
        },
        duration: Some("4h".to_owned()),
        reason: Some("load test".to_owned()),
        ..GrantOptions::default()
    };
    let grant = agent
        .client
        .request_grant_with(audience, capabilities(audience, kind), options)
        .await
        .map_err(sdk)?;
    Ok(grant.reference())
}

/// Enrolls the approver's passkey with the walk-through command (it makes
/// the one-time enrollment token as an admin would) while approving the
/// first grant, then logs the saved passkey in for the rest.
async fn enroll_approver(
    dev: &Dev,
    grants: &[LoadGrant],
) -> Result<Arc<tokio::sync::Mutex<SoftApprover>>, LoadError> {
    let first = grants
        .first()
        .ok_or_else(|| LoadError::Fixtures("no grant to approve".into()))?;
    let (ok, out) = dev.command(&["dev", "approve", &first.reference, "--approver", APPROVER])?;
    if !ok {
        return Err(LoadError::Fixtures(format!(
            "agentauth dev approve {}: {out}",
            first.reference
        )));
    }
    let path = dev
        .state
        .join("passkeys")
        .join(format!("{APPROVER}.passkey"));
    let endpoints = &dev.endpoints;
    let mut passkey = SoftApprover::load(&path, &endpoints.operator, &endpoints.approval_origin)
        .map_err(|e| LoadError::Fixtures(format!("{}: {e}", path.display())))?;
    passkey
        .login(APPROVER)
        .await
        .map_err(|e| LoadError::Fixtures(format!("passkey login: {e}")))?;
    Ok(Arc::new(tokio::sync::Mutex::new(passkey)))
}

async fn kube_client(dev: &Dev) -> Result<Client, LoadError> {
    let error =
        |e: String| LoadError::Fixtures(format!("{}: {e}", dev.endpoints.kubeconfig.display()));
    let kubeconfig =
        Kubeconfig::read_from(&dev.endpoints.kubeconfig).map_err(|e| error(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| error(e.to_string()))?;
    Client::try_from(config).map_err(|e| error(e.to_string()))
}

async fn apply(
    client: &Client,
    resource: &ApiResource,
    doc: serde_json::Value,
) -> Result<(), LoadError> {
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, resource);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&doc),
    )
    .await
    .map_err(|e| LoadError::Fixtures(format!("the apiserver refused {name}: {e}")))?;
    Ok(())
}

async fn apply_envelopes(client: &Client) -> Result<(), LoadError> {
    let resource = ApiResource::erase::<BehavioralEnvelope>(&());
    let api_version = format!("{}/v1alpha1", agentauth_crds::GROUP);
    // 600 a minute with a burst of 20: the mixed profile offers more per
    // grant, so `rate_limited` denials are part of it.
    apply(
        client,
        &resource,
        json!({"apiVersion": api_version, "kind": "BehavioralEnvelope",
               "metadata": {"name": RATE_ENVELOPE, "namespace": NAMESPACE},
               "spec": {"rateLimits": [{"requests": 600, "period": "1m", "burst": 20}],
                        "maxTokenTtl": "5m"}}),
    )
    .await?;
    // Payments of 1–60 EUR: above 50 is `amount_over_limit`; the daily cap
    // is reached during a soak (`daily_amount_over_limit`).
    apply(
        client,
        &resource,
        json!({"apiVersion": api_version, "kind": "BehavioralEnvelope",
               "metadata": {"name": SPEND_ENVELOPE, "namespace": NAMESPACE},
               "spec": {"transactions": {"currency": "EUR",
                                         "maxPerTransaction": format!("{MAX_PER_TRANSACTION_EUR}.00"),
                                         "maxPerDay": "20000.00"},
                        "maxTokenTtl": "5m"}}),
    )
    .await
}

async fn apply_agent(client: &Client, name: &str, key: &AgentKey) -> Result<(), LoadError> {
    let jwk = key.public_jwk();
    apply(
        client,
        &ApiResource::erase::<Agent>(&()),
        json!({"apiVersion": format!("{}/v1alpha1", agentauth_crds::GROUP), "kind": "Agent",
               "metadata": {"name": name, "namespace": NAMESPACE},
               "spec": {"displayName": format!("Load agent {name}"),
                        "owner": "load-tests@example.com",
                        "publicKey": {"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y}}}),
    )
    .await
}

async fn wait_for_key(client: &Client, agent: &LoadAgent) -> Result<(), LoadError> {
    let agents: Api<Agent> = Api::namespaced(client.clone(), NAMESPACE);
    let (_, name) = split(&agent.name)?;
    let started = Instant::now();
    loop {
        let current = agents
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|a| a.status)
            .and_then(|s| s.key_thumbprint);
        if current.as_deref() == Some(agent.client.key().thumbprint()) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(LoadError::Fixtures(format!(
                "the operator did not record the key of {} within 30 s",
                agent.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `namespace/name` split.
pub fn split(reference: &str) -> Result<(&str, &str), LoadError> {
    reference
        .split_once('/')
        .ok_or_else(|| LoadError::Fixtures(format!("not namespace/name: {reference}")))
}

/// An SDK error as a fixture error.
pub fn sdk(error: agentauth::Error) -> LoadError {
    LoadError::Fixtures(format!("{} ({})", error.message(), error.code_str()))
}
