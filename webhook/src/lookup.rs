//! Reading the objects a write refers to: the grant's Agent and
//! BehavioralEnvelope, and the Approver an approval names.
//!
//! [`KubeLookup`] GETs them from the apiserver on every admission rather than
//! reading an informer cache. A cache can lag behind the apiserver, and the
//! approval check must see an Approver's passkeys and sign counters as they
//! are now: a counter read from a stale cache would let a replayed assertion
//! through. Admissions are rare (a human's decisions, GitOps applies), so
//! the extra round trip costs nothing that matters.

use std::future::Future;

use agentauth_crds::{Agent, Approver, BehavioralEnvelope};
use kube::{Api, Client};

/// A read that failed for another reason than "not found".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("failed to read {what}: {message}")]
pub struct LookupError {
    /// What was being read, e.g. `Agent team-a/assistant`.
    pub what: String,
    /// The cause.
    pub message: String,
}

/// Where the webhook reads referenced objects. `Ok(None)` means the object
/// does not exist.
pub trait Lookup: Send + Sync + 'static {
    /// The Agent `name` in `namespace`.
    fn agent(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Agent>, LookupError>> + Send;

    /// The BehavioralEnvelope `name` in `namespace`.
    fn envelope(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<BehavioralEnvelope>, LookupError>> + Send;

    /// The (cluster-scoped) Approver `name`.
    fn approver(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Approver>, LookupError>> + Send;
}

/// Reads through the Kubernetes API (the webhook's own identity needs `get`
/// on agents, behavioralenvelopes and approvers).
#[derive(Clone)]
pub struct KubeLookup {
    client: Client,
}

impl KubeLookup {
    /// Reads with `client`.
    pub fn new(client: Client) -> Self {
        KubeLookup { client }
    }
}

impl std::fmt::Debug for KubeLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLookup").finish_non_exhaustive()
    }
}

async fn get<K>(api: Api<K>, name: &str, what: String) -> Result<Option<K>, LookupError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.map_err(|e| LookupError {
        what,
        message: e.to_string(),
    })
}

impl Lookup for KubeLookup {
    async fn agent(&self, namespace: &str, name: &str) -> Result<Option<Agent>, LookupError> {
        let api = Api::namespaced(self.client.clone(), namespace);
        get(api, name, format!("Agent {namespace}/{name}")).await
    }

    async fn envelope(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BehavioralEnvelope>, LookupError> {
        let api = Api::namespaced(self.client.clone(), namespace);
        get(api, name, format!("BehavioralEnvelope {namespace}/{name}")).await
    }

    async fn approver(&self, name: &str) -> Result<Option<Approver>, LookupError> {
        let api = Api::all(self.client.clone());
        get(api, name, format!("Approver {name}")).await
    }
}
