//! What every controller and API handler shares.

use std::sync::Arc;

use agentauth_state::SharedState;
use kube::Client;

use crate::audit::AuditSink;
use crate::cache::Caches;
use crate::clock::Clock;
use crate::metrics::Metrics;

/// The relying party approvals are made for (WebAuthn).
#[derive(Clone, Debug)]
pub struct RelyingParty {
    /// The RP id, e.g. `approvals.example.com` (`localhost` in dev).
    pub id: String,
    /// Origins the approval UI is served from.
    pub origins: Vec<String>,
}

/// Shared by the controllers and the agent API.
#[derive(Clone)]
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Informer caches.
    pub caches: Caches,
    /// Shared state (Redis or in-process).
    pub state: Arc<dyn SharedState>,
    /// Audit producer of this replica.
    pub audit: AuditSink,
    /// Metrics.
    pub metrics: Metrics,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The passkey relying party that approvals must be made for.
    pub relying_party: RelyingParty,
}
