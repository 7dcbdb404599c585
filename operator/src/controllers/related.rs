//! The objects a grant depends on — its Agent, its envelope, the Approver
//! who decided it — kept in the grant controller's own stores, and the
//! mappings that reconcile a grant when one of them changes.
//!
//! The stores are fed by the same watch events that trigger the grant
//! reconciles (a reflector updates its store before it passes the event on),
//! so a reconcile caused by a change always reads that change or a later one.
//! Reading another cache, fed by another watch, could race and miss it.

use std::sync::Arc;
use std::time::Duration;

use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant};
use futures::StreamExt;
use futures::stream::BoxStream;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// How long a reconcile waits for the related stores' first full list.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Watch events of one related kind, each passed on after its store saw it.
pub(super) type Events<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The event streams that feed [`Related`]; the grant controller polls them.
pub(super) struct Streams {
    pub(super) agents: Events<Agent>,
    pub(super) envelopes: Events<BehavioralEnvelope>,
    pub(super) approvers: Events<Approver>,
}

/// Stores of the objects grants refer to.
pub(super) struct Related {
    agents: Store<Agent>,
    envelopes: Store<BehavioralEnvelope>,
    approvers: Store<Approver>,
    /// Set once every store is complete; reconciles wait on this, never on
    /// the stores themselves (see [`Related::synced`]).
    synced: tokio::sync::OnceCell<()>,
}

impl Related {
    /// Stores for these APIs and the streams that fill them.
    pub(super) fn start(
        agents: Api<Agent>,
        envelopes: Api<BehavioralEnvelope>,
        approvers: Api<Approver>,
    ) -> (Related, Streams) {
        let (agents, agent_events) = reflect(agents);
        let (envelopes, envelope_events) = reflect(envelopes);
        let (approvers, approver_events) = reflect(approvers);
        let related = Related {
            agents,
            envelopes,
            approvers,
            synced: tokio::sync::OnceCell::new(),
        };
        let streams = Streams {
            agents: agent_events,
            envelopes: envelope_events,
            approvers: approver_events,
        };
        (related, streams)
    }

    /// Waits until every store holds a complete list; `false` when that
    /// takes longer than [`SYNC_TIMEOUT`] (the watches are failing).
    ///
    /// One reconcile at a time waits on the stores, the others on a
    /// `OnceCell`: kube-runtime 5's `Store::wait_until_ready` wakes only the
    /// last of several concurrent waiters (its one-shot channel keeps one
    /// waker), so a second waiter would leave the first asleep for good.
    pub(super) async fn synced(&self) -> bool {
        let wait = || async {
            let all = async {
                self.agents.wait_until_ready().await.is_ok()
                    && self.envelopes.wait_until_ready().await.is_ok()
                    && self.approvers.wait_until_ready().await.is_ok()
            };
            match tokio::time::timeout(SYNC_TIMEOUT, all).await {
                Ok(true) => Ok(()),
                _ => Err(()),
            }
        };
        self.synced.get_or_try_init(wait).await.is_ok()
    }

    /// The Agent `name` in `namespace`.
    pub(super) fn agent(&self, namespace: &str, name: &str) -> Option<Arc<Agent>> {
        self.agents.get(&ObjectRef::new(name).within(namespace))
    }

    /// The BehavioralEnvelope `name` in `namespace`.
    pub(super) fn envelope(&self, namespace: &str, name: &str) -> Option<Arc<BehavioralEnvelope>> {
        self.envelopes.get(&ObjectRef::new(name).within(namespace))
    }

    /// The Approver `name`.
    pub(super) fn approver(&self, name: &str) -> Option<Arc<Approver>> {
        self.approvers.get(&ObjectRef::new(name))
    }
}

fn reflect<K>(api: Api<K>) -> (Store<K>, Events<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let events = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .boxed();
    (reader, events)
}

/// The grants of `agent`.
pub(super) fn grants_of_agent(
    grants: &Store<CapabilityGrant>,
    agent: &Agent,
) -> Vec<ObjectRef<CapabilityGrant>> {
    let name = agent.name_any();
    select(grants, agent.namespace(), |g| g.spec.agent_ref.name == name)
}

/// The grants whose limits `envelope` sets.
pub(super) fn grants_of_envelope(
    grants: &Store<CapabilityGrant>,
    envelope: &BehavioralEnvelope,
) -> Vec<ObjectRef<CapabilityGrant>> {
    let name = envelope.name_any();
    select(grants, envelope.namespace(), |g| {
        g.spec.envelope_ref.as_ref().is_some_and(|e| e.name == name)
    })
}

/// The undecided grants that carry a decision by `approver` (an approval
/// that could not be checked before may verify now).
pub(super) fn grants_decided_by(
    grants: &Store<CapabilityGrant>,
    approver: &Approver,
) -> Vec<ObjectRef<CapabilityGrant>> {
    let name = approver.name_any();
    grants
        .state()
        .iter()
        .filter(|g| {
            let status = g.status.as_ref();
            let undecided = status.and_then(|s| s.phase).is_none_or(|p| !p.is_final());
            let by = agentauth_crds::approval::quorum::recorded(status)
                .iter()
                .any(|(_, a)| a.approver == name);
            undecided && by
        })
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

fn select(
    grants: &Store<CapabilityGrant>,
    namespace: Option<String>,
    refers: impl Fn(&CapabilityGrant) -> bool,
) -> Vec<ObjectRef<CapabilityGrant>> {
    grants
        .state()
        .iter()
        .filter(|g| g.namespace() == namespace && refers(g))
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}
