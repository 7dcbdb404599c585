//! `agentauth grants revoke`: emergency revocation of every CapabilityGrant
//! of one agent, or of one service provider, at once (docs/runbook.md,
//! "Emergency revocation").
//!
//! ```text
//!  --agent ns/name | --provider aud [--namespace N | --all-namespaces]
//!      ──list (pages of 500)──▶ grants whose agentRef / serviceProvider match
//!      ──already spec.revoked──▶ reported, not written
//!      ──merge patch {spec: {revoked: true}} (field manager agentauth-cli,
//!        the reason as an annotation), 8 at a time──▶ revoked / failed
//! ```
//!
//! Setting `spec.revoked: true` is the same write as `kubectl patch` or the
//! approval UI's revoke: the CRD's rules and the webhook accept it on any
//! grant, decided or not, and it cannot be undone. The operator then moves
//! each grant to `Revoked` and publishes the revocation to every verifier.
//! A pending grant is revoked too, so that nobody approves it during the
//! incident. Nothing here needs the operator to run: the revocation is
//! stored in Kubernetes, and takes effect at the verifiers when an operator
//! leads again.

use std::fmt;
use std::process::ExitCode;

use agentauth_crds::grant::MAX_SERVICE_PROVIDER_LEN;
use agentauth_crds::{CapabilityGrant, GrantPhase};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

/// The field manager of the patches this command writes (`managedFields`).
pub const FIELD_MANAGER: &str = "agentauth-cli";

/// The annotation that records `--reason` on each grant this command revokes.
pub const REASON_ANNOTATION: &str = "agentauth.dev/revocation-reason";

/// The longest `--reason`, in bytes.
pub const MAX_REASON_LEN: usize = 1024;

/// How many patches are in flight at once: enough to revoke thousands of
/// grants in seconds, few enough not to trip the apiserver's priority and
/// fairness limits for one client.
const CONCURRENCY: usize = 8;

/// Grants listed per request.
const PAGE: u32 = 500;

/// `agentauth grants` subcommands.
#[derive(clap::Subcommand)]
pub enum GrantsCommand {
    /// Revoke every CapabilityGrant of an agent, or for a service provider,
    /// at once (spec.revoked: true; cannot be undone). Pending grants are
    /// revoked too. Exits 1 if any matching grant could not be revoked.
    Revoke(RevokeArgs),
}

/// `agentauth grants revoke` flags.
#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("target")
        .args(["agent", "provider"])
        .required(true)
        .multiple(true)
))]
pub struct RevokeArgs {
    /// The Agent whose grants to revoke, `namespace/name`, e.g.
    /// `agents/shopping-agent` (its grants live in its namespace).
    #[arg(long, value_parser = parse_agent)]
    pub agent: Option<AgentRef>,

    /// The service provider whose grants to revoke: the grants'
    /// spec.serviceProvider (their tokens' audience), compared exactly,
    /// e.g. `https://shop.example.com`. With --agent: only that agent's
    /// grants for this provider.
    #[arg(long, value_parser = parse_provider)]
    pub provider: Option<String>,

    /// With --provider: only grants in this namespace.
    #[arg(
        long,
        short = 'n',
        conflicts_with_all = ["all_namespaces", "agent"]
    )]
    pub namespace: Option<String>,

    /// With --provider: grants in every namespace.
    #[arg(long, short = 'A', conflicts_with = "agent")]
    pub all_namespaces: bool,

    /// Why, for the record: kept on each revoked grant as the annotation
    /// agentauth.dev/revocation-reason (the audit log records the revocation).
    #[arg(long, value_parser = parse_reason)]
    pub reason: Option<String>,

    /// List the grants that would be revoked; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// An Agent, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRef {
    /// The Agent's namespace (where its grants are).
    pub namespace: String,
    /// The Agent's name (the grants' `spec.agentRef.name`).
    pub name: String,
}

impl fmt::Display for AgentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Parses `namespace/name`.
fn parse_agent(value: &str) -> Result<AgentRef, String> {
    let shape = "expected the Agent as namespace/name, e.g. agents/shopping-agent";
    let (namespace, name) = value.split_once('/').ok_or_else(|| shape.to_owned())?;
    if !is_dns_label(namespace) {
        return Err(format!(
            "{namespace:?} is not a namespace name (lower-case letters, digits and '-', \
             at most 63); {shape}"
        ));
    }
    if !is_object_name(name) {
        return Err(format!(
            "{name:?} is not an Agent name (lower-case letters, digits, '-' and '.', \
             at most 253); {shape}"
        ));
    }
    Ok(AgentRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

fn parse_provider(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(
            "the service provider is empty; give the grants' spec.serviceProvider, \
                    e.g. https://shop.example.com"
                .into(),
        );
    }
    if value.len() > MAX_SERVICE_PROVIDER_LEN {
        return Err(format!(
            "a service provider is at most {MAX_SERVICE_PROVIDER_LEN} bytes"
        ));
    }
    Ok(value.to_owned())
}

fn parse_reason(value: &str) -> Result<String, String> {
    if value.len() > MAX_REASON_LEN {
        return Err(format!("a reason is at most {MAX_REASON_LEN} bytes"));
    }
    Ok(value.to_owned())
}

/// A DNS-1123 label: a namespace name.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: an object name.
fn is_object_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Where to look, and which grants match.
#[derive(Debug, PartialEq, Eq)]
pub struct Selector {
    /// `None`: every namespace.
    pub namespace: Option<String>,
    /// The grants' `spec.agentRef.name`, when given.
    pub agent: Option<String>,
    /// The grants' `spec.serviceProvider`, when given.
    pub provider: Option<String>,
}

impl Selector {
    /// The selector the flags describe, or why they describe none.
    pub fn from_args(args: &RevokeArgs) -> Result<Self, RevokeError> {
        let namespace = match (&args.agent, &args.namespace, args.all_namespaces) {
            (Some(agent), _, _) => Some(agent.namespace.clone()),
            (None, Some(namespace), _) => {
                if !is_dns_label(namespace) {
                    return Err(RevokeError::Usage(format!(
                        "{namespace:?} is not a namespace name"
                    )));
                }
                Some(namespace.clone())
            }
            (None, None, true) => None,
            (None, None, false) => {
                return Err(RevokeError::Usage(
                    "with --provider alone, say where: --namespace <namespace> or \
                     --all-namespaces"
                        .into(),
                ));
            }
        };
        Ok(Selector {
            namespace,
            agent: args.agent.as_ref().map(|a| a.name.clone()),
            provider: args.provider.clone(),
        })
    }

    /// Whether `grant` is one this selector names.
    pub fn matches(&self, grant: &CapabilityGrant) -> bool {
        self.agent
            .as_ref()
            .is_none_or(|a| *a == grant.spec.agent_ref.name)
            && self
                .provider
                .as_ref()
                .is_none_or(|p| *p == grant.spec.service_provider)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut what = Vec::new();
        if let Some(agent) = &self.agent {
            what.push(format!("agent {agent}"));
        }
        if let Some(provider) = &self.provider {
            what.push(format!("provider {provider}"));
        }
        match &self.namespace {
            Some(ns) => write!(f, "{} in namespace {ns}", what.join(", ")),
            None => write!(f, "{} in every namespace", what.join(", ")),
        }
    }
}

/// What went wrong before any grant could be judged.
#[derive(Debug)]
pub enum RevokeError {
    /// The flags do not name a set of grants.
    Usage(String),
    /// No Kubernetes client (kubeconfig or in-cluster account).
    Client(kube::Error),
    /// Listing the grants failed.
    List(kube::Error),
}

impl fmt::Display for RevokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevokeError::Usage(message) => f.write_str(message),
            RevokeError::Client(e) => write!(
                f,
                "cannot reach Kubernetes (KUBECONFIG or the in-cluster account): {e}"
            ),
            RevokeError::List(e) => write!(
                f,
                "cannot list CapabilityGrants (needs RBAC list on capabilitygrants.agentauth.dev): {e}"
            ),
        }
    }
}

/// One matching grant and what happened to it.
#[derive(Debug)]
pub struct Outcome {
    /// `namespace/name`.
    pub grant: String,
    /// Its agent (`spec.agentRef.name`).
    pub agent: String,
    /// Its service provider.
    pub provider: String,
    /// Its phase when listed.
    pub phase: &'static str,
    /// What happened.
    pub result: Result<Done, String>,
}

/// What happened to a grant that did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    /// `spec.revoked` is now true.
    Revoked,
    /// It was revoked before; nothing written.
    AlreadyRevoked,
    /// `--dry-run`: it would be revoked.
    WouldRevoke,
    /// Deleted between the list and the patch (deletion revokes it too).
    Gone,
}

/// Revokes (or, dry, lists) every grant `selector` matches.
pub async fn revoke(
    client: Client,
    selector: &Selector,
    reason: Option<&str>,
    dry_run: bool,
) -> Result<Vec<Outcome>, RevokeError> {
    let (mut outcomes, to_patch) = list_matching(&client, selector, dry_run).await?;
    outcomes.extend(patch_all(&client, to_patch, revocation_patch(reason)).await);
    outcomes.sort_by(|a, b| a.grant.cmp(&b.grant));
    Ok(outcomes)
}

/// Lists the grants `selector` matches, page by page: the outcomes already
/// known (revoked before, or `dry_run`), and the grants to patch with
/// their namespaces.
async fn list_matching(
    client: &Client,
    selector: &Selector,
    dry_run: bool,
) -> Result<(Vec<Outcome>, Vec<(String, Outcome)>), RevokeError> {
    let api: Api<CapabilityGrant> = match &selector.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut outcomes = Vec::new();
    let mut to_patch = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list(&params).await.map_err(RevokeError::List)?;
        for grant in page.items.into_iter().filter(|g| selector.matches(g)) {
            let already = grant.spec.revoked;
            let outcome = Outcome {
                grant: format!(
                    "{}/{}",
                    grant.namespace().unwrap_or_default(),
                    grant.name_any()
                ),
                agent: grant.spec.agent_ref.name.clone(),
                provider: grant.spec.service_provider.clone(),
                phase: grant
                    .status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .map_or("Pending", GrantPhase::as_str),
                result: Ok(if already {
                    Done::AlreadyRevoked
                } else {
                    Done::WouldRevoke
                }),
            };
            if already || dry_run {
                outcomes.push(outcome);
            } else {
                to_patch.push((grant.namespace().unwrap_or_default(), outcome));
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok((outcomes, to_patch))
}

/// Applies `patch` to every grant of `to_patch`, [`CONCURRENCY`] at a
/// time; each outcome says what happened to its grant.
async fn patch_all(
    client: &Client,
    to_patch: Vec<(String, Outcome)>,
    patch: serde_json::Value,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut pending = to_patch.into_iter();
    loop {
        while in_flight.len() < CONCURRENCY {
            let Some((namespace, mut outcome)) = pending.next() else {
                break;
            };
            let api: Api<CapabilityGrant> = Api::namespaced(client.clone(), &namespace);
            let patch = patch.clone();
            in_flight.spawn(async move {
                let name = outcome
                    .grant
                    .split_once('/')
                    .map_or("", |(_, n)| n)
                    .to_owned();
                let params = PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PatchParams::default()
                };
                outcome.result = match api.patch(&name, &params, &Patch::Merge(&patch)).await {
                    Ok(_) => Ok(Done::Revoked),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(Done::Gone),
                    Err(e) => Err(e.to_string()),
                };
                outcome
            });
        }
        match in_flight.join_next().await {
            Some(Ok(outcome)) => outcomes.push(outcome),
            // A patch task cannot panic short of a bug in kube; say so
            // rather than lose the grant it held.
            Some(Err(e)) => outcomes.push(Outcome {
                grant: "(unknown)".into(),
                agent: String::new(),
                provider: String::new(),
                phase: "",
                result: Err(format!("the patch task failed: {e}")),
            }),
            None => break,
        }
    }
    outcomes
}

/// The merge patch that revokes a grant, with `reason` recorded.
pub fn revocation_patch(reason: Option<&str>) -> serde_json::Value {
    match reason {
        Some(reason) => serde_json::json!({
            "metadata": {"annotations": {REASON_ANNOTATION: reason}},
            "spec": {"revoked": true},
        }),
        None => serde_json::json!({"spec": {"revoked": true}}),
    }
}

/// Runs a `grants` subcommand.
pub fn main(command: GrantsCommand) -> ExitCode {
    let GrantsCommand::Revoke(args) = command;
    let selector = match Selector::from_args(&args) {
        Ok(selector) => selector,
        Err(error) => {
            eprintln!("agentauth grants revoke: {error}");
            return ExitCode::from(2);
        }
    };
    let outcome = crate::runtime::block_on(async {
        let client = Client::try_default().await.map_err(RevokeError::Client)?;
        revoke(client, &selector, args.reason.as_deref(), args.dry_run).await
    });
    let outcomes = match outcome {
        Ok(Ok(outcomes)) => outcomes,
        Ok(Err(error)) => {
            eprintln!("agentauth grants revoke: {error}");
            return ExitCode::FAILURE;
        }
        Err(error) => {
            eprintln!("agentauth: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    report(&selector, &outcomes, args.dry_run)
}

/// Prints one line per grant (stdout), each failure (stderr) and a summary.
fn report(selector: &Selector, outcomes: &[Outcome], dry_run: bool) -> ExitCode {
    if outcomes.is_empty() {
        println!("no CapabilityGrant matches {selector}; nothing to revoke");
        return ExitCode::SUCCESS;
    }
    let mut failed = Vec::new();
    let (mut revoked, mut already, mut gone) = (0, 0, 0);
    for o in outcomes {
        let what = format!(
            "{} (agent {}, provider {}, was {})",
            o.grant, o.agent, o.provider, o.phase
        );
        match &o.result {
            Ok(Done::Revoked) => {
                revoked += 1;
                println!("revoked          {what}");
            }
            Ok(Done::WouldRevoke) => {
                revoked += 1;
                println!("would revoke     {what}");
            }
            Ok(Done::AlreadyRevoked) => {
                already += 1;
                println!("already revoked  {what}");
            }
            Ok(Done::Gone) => {
                gone += 1;
                println!("deleted meanwhile {what}");
            }
            Err(error) => {
                eprintln!(
                    "agentauth grants revoke: cannot revoke {}: {error}",
                    o.grant
                );
                failed.push(o.grant.as_str());
            }
        }
    }
    let verb = if dry_run { "would revoke" } else { "revoked" };
    println!(
        "{selector}: {verb} {revoked}, already revoked {already}, deleted {gone}, failed {} \
         (of {} matching grants){}",
        failed.len(),
        outcomes.len(),
        if dry_run {
            "; dry run, nothing written"
        } else {
            ""
        }
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "agentauth grants revoke: {} of {} grants NOT revoked: {}; fix the cause above \
             and run the same command again (it skips grants already revoked)",
            failed.len(),
            outcomes.len(),
            failed.join(", ")
        );
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_namespace_slash_name() {
        assert_eq!(
            parse_agent("agents/shopping-agent"),
            Ok(AgentRef {
                namespace: "agents".into(),
                name: "shopping-agent".into()
            })
        );
        for bad in [
            "shopping-agent",
            "/x",
            "agents/",
            "Agents/x",
            "a/b/c",
            "a/B",
        ] {
            assert!(parse_agent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn providers_and_reasons_are_bounded() {
        assert!(parse_provider(" ").is_err());
        assert!(parse_provider(&"x".repeat(MAX_SERVICE_PROVIDER_LEN + 1)).is_err());
        assert!(parse_reason(&"x".repeat(MAX_REASON_LEN + 1)).is_err());
        assert_eq!(
            revocation_patch(Some("key leaked")),
            serde_json::json!({
                "metadata": {"annotations": {"agentauth.dev/revocation-reason": "key leaked"}},
                "spec": {"revoked": true},
            })
        );
    }
}
