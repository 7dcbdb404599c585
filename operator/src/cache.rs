//! Informer caches of the four resources, kept by every replica.
//!
//! The agent API and the approval API answer from these (DESIGN §4.3: no
//! apiserver round trip on the token path), readiness waits for their first
//! full list, and the grant gauges are read off them at scrape time. The
//! controllers do not read them: the grant controller keeps its own stores of
//! related objects, fed by the watches that trigger its reconciles
//! ([`crate::controllers`]), so that a reconcile always sees the change that
//! caused it.
//!
//! [`Caches::approval_verified`] re-verifies a grant's recorded approval for
//! the token endpoint, whoever wrote the grant's status (DESIGN §4.2: the
//! operator verifies it again before it issues anything). One ES256
//! verification costs about as much as the rest of an issuance, so the result
//! is remembered per grant, keyed by the resourceVersions of the grant, its
//! Agent, its envelope and the Approver: any change to any of them (a new
//! approval, a new key, new limits, a removed passkey) verifies again.

use std::collections::HashMap;
use std::sync::Mutex;

use agentauth_core::approval::Decision;
use agentauth_core::{Error, ErrorCode};
use agentauth_crds::Invalid;
use agentauth_crds::approval::quorum::Parties;
use agentauth_crds::approval::{CounterCheck, quorum, tally};
use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant};
use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use crate::context::RelyingParty;

/// Read-only views of every resource, fed by watches.
#[derive(Clone)]
pub struct Caches {
    /// Agents, by namespace/name.
    pub agents: Store<Agent>,
    /// Grants, by namespace/name.
    pub grants: Store<CapabilityGrant>,
    /// Envelopes, by namespace/name.
    pub envelopes: Store<BehavioralEnvelope>,
    /// Approvers, by name.
    pub approvers: Store<Approver>,
    /// Verification results of recorded approvals, by grant uid.
    pub verified: VerifiedApprovals,
}

/// Remembered results of [`tally`], one per grant.
#[derive(Clone, Default)]
pub struct VerifiedApprovals {
    by_grant: Arc<Mutex<Memo>>,
}

/// Each grant uid's verification result and what it was computed from.
type Memo = HashMap<String, (Versions, Result<(), Error>)>;

/// What a verification result was computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Versions {
    grant: Option<String>,
    agent: Option<String>,
    envelope: Option<String>,
    approvers: Vec<Option<String>>,
}

/// More grants than this in the memo: it is cleared (grants that were
/// deleted leave entries behind; a clear costs one verification per grant).
const MAX_REMEMBERED: usize = 100_000;

impl Caches {
    /// Starts a watch per resource and returns once each cache is complete.
    pub async fn start(client: &Client) -> Result<Caches, reflector::store::WriterDropped> {
        let caches = Caches {
            agents: watch(Api::all(client.clone())),
            grants: watch(Api::all(client.clone())),
            envelopes: watch(Api::all(client.clone())),
            approvers: watch(Api::all(client.clone())),
            verified: VerifiedApprovals::default(),
        };
        caches.agents.wait_until_ready().await?;
        caches.grants.wait_until_ready().await?;
        caches.envelopes.wait_until_ready().await?;
        caches.approvers.wait_until_ready().await?;
        Ok(caches)
    }

    /// The agent `name` in `namespace`.
    pub fn agent(&self, namespace: &str, name: &str) -> Option<Arc<Agent>> {
        self.agents.get(&ObjectRef::new(name).within(namespace))
    }

    /// The grant `name` in `namespace`.
    pub fn grant(&self, namespace: &str, name: &str) -> Option<Arc<CapabilityGrant>> {
        self.grants.get(&ObjectRef::new(name).within(namespace))
    }

    /// The envelope `name` in `namespace`.
    pub fn envelope(&self, namespace: &str, name: &str) -> Option<Arc<BehavioralEnvelope>> {
        self.envelopes.get(&ObjectRef::new(name).within(namespace))
    }

    /// The approver `name`.
    pub fn approver(&self, name: &str) -> Option<Arc<Approver>> {
        self.approvers.get(&ObjectRef::new(name))
    }

    /// Whether `grant`'s recorded approval verifies now against the cached
    /// Agent, envelope and Approver ([`tally`]: the passkey
    /// signature, scope, separation of duties, and the envelope digest and
    /// agent key thumbprint it binds). Refusals: `grant_suspended` (a
    /// genuine approval of another envelope or key), `envelope_invalid` (the
    /// named envelope is missing), `approval_invalid` (anything else).
    pub fn approval_verified(
        &self,
        grant: &CapabilityGrant,
        relying_party: &RelyingParty,
    ) -> Result<(), Error> {
        let namespace = grant.metadata.namespace.as_deref().unwrap_or_default();
        let agent = self.agent(namespace, &grant.spec.agent_ref.name);
        let envelope = grant
            .spec
            .envelope_ref
            .as_ref()
            .and_then(|r| self.envelope(namespace, &r.name));
        let entries = quorum::recorded(grant.status.as_ref());
        let approvers: Vec<Arc<Approver>> = entries
            .iter()
            .filter_map(|(_, a)| self.approver(&a.approver))
            .collect();
        let uid = grant.metadata.uid.clone().unwrap_or_default();
        let versions = Versions {
            grant: grant.metadata.resource_version.clone(),
            agent: agent
                .as_ref()
                .and_then(|a| a.metadata.resource_version.clone()),
            envelope: envelope
                .as_ref()
                .and_then(|e| e.metadata.resource_version.clone()),
            approvers: approvers
                .iter()
                .map(|a| a.metadata.resource_version.clone())
                .collect(),
        };
        if let Some((seen, result)) = self.verified.lock().get(&uid)
            && *seen == versions
        {
            return result.clone();
        }
        let approvers: Vec<&Approver> = approvers.iter().map(AsRef::as_ref).collect();
        let result = match agent.as_deref() {
            None => Err(Error::new(
                ErrorCode::ApprovalInvalid,
                "the grant's agent does not exist, so its approval cannot be checked",
            )),
            Some(agent) => quorum_approved(
                grant,
                &Parties {
                    envelope: envelope.as_deref(),
                    agent,
                    approvers: &approvers,
                    rp_id: &relying_party.id,
                    origins: &relying_party.origins,
                },
            )
            .map_err(|e| match e.code {
                ErrorCode::GrantNotApproved => Error::new(e.code, e.message),
                ErrorCode::GrantSuspended => Error::new(ErrorCode::GrantSuspended, e.message),
                ErrorCode::EnvelopeNotFound => Error::new(ErrorCode::EnvelopeInvalid, e.message),
                code => Error::new(
                    ErrorCode::ApprovalInvalid,
                    format!("the recorded approval does not verify ({code}): {e}"),
                ),
            }),
        };
        let mut memo = self.verified.lock();
        if memo.len() >= MAX_REMEMBERED {
            memo.clear();
        }
        memo.insert(uid, (versions, result.clone()));
        result
    }
}

/// Every recorded decision of `grant` verified and counted
/// ([`tally`]); `grant_not_approved` unless they reach the quorum and
/// `status.approval` records an approval. Tokens are never issued below
/// the quorum, whatever `status.phase` says.
fn quorum_approved(grant: &CapabilityGrant, parties: &Parties<'_>) -> Result<(), Invalid> {
    let tally = tally(grant, parties, &|_| CounterCheck::Recorded)?;
    if tally.decision == Some(Decision::Approved) {
        return Ok(());
    }
    Err(Invalid::new(
        "status.approval",
        ErrorCode::GrantNotApproved,
        format!("the grant is not approved ({})", tally.progress()),
    ))
}

impl VerifiedApprovals {
    /// The memo; a poisoned lock (a panic elsewhere while holding it) still
    /// holds whole entries, each written in one insert.
    fn lock(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.by_grant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn watch<K>(api: Api<K>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "watch error; retrying with backoff");
            }
        }
    });
    store
}
