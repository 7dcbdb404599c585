//! Informer caches of the four resources, kept by every replica.
//!
//! The agent API answers from these (DESIGN §4.3: no apiserver round trip on
//! the token path); the controllers of the leader read related objects
//! (an grant's Agent, Envelope, Approver) from them too.

use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant};
use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

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
}

impl Caches {
    /// Starts a watch per resource and returns once each cache is complete.
    pub async fn start(client: &Client) -> Result<Caches, reflector::store::WriterDropped> {
        let caches = Caches {
            agents: watch(Api::all(client.clone())),
            grants: watch(Api::all(client.clone())),
            envelopes: watch(Api::all(client.clone())),
            approvers: watch(Api::all(client.clone())),
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
