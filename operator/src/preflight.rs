//! What the operator checks before it starts: that the apiserver serves the
//! four AgentAuth resources. Without their CRDs every watch fails with 404
//! and retries forever, and the operator never becomes ready, with nothing
//! in its logs that says why; so it exits at once and says how to install
//! them.
//!
//! The check lists each resource (one item at most) rather than reading the
//! CustomResourceDefinitions: listing is what the operator's RBAC already
//! allows (it watches them), and it proves the version the operator speaks
//! is served, not only that a CRD of that name exists.

use std::fmt::Debug;

use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant};
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// How to install the CRDs, as the error says it.
pub const INSTALL_CRDS: &str = "install them with `agentauth crds print | kubectl apply -f -` \
                                (or install the Helm chart charts/agentauth, which ships them), \
                                then start the operator again";

/// Why the operator does not start.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The apiserver does not serve one or more of the resources.
    #[error(
        "the AgentAuth CRDs are not installed: the apiserver does not serve {missing}; {INSTALL_CRDS}"
    )]
    CrdsMissing {
        /// The missing resources, e.g. `capabilitygrants.agentauth.dev/v1alpha1`.
        missing: String,
    },
    /// The apiserver could not answer the check.
    #[error("failed to check that the AgentAuth CRDs are installed: {0}")]
    Kube(#[from] kube::Error),
}

/// Fails with [`PreflightError::CrdsMissing`] unless the apiserver serves
/// Agent, BehavioralEnvelope, CapabilityGrant and Approver.
pub async fn require_crds(client: &Client) -> Result<(), PreflightError> {
    let mut missing = Vec::new();
    for resource in [
        served::<Agent>(client).await?,
        served::<BehavioralEnvelope>(client).await?,
        served::<CapabilityGrant>(client).await?,
        served::<Approver>(client).await?,
    ] {
        if let Err(name) = resource {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PreflightError::CrdsMissing {
            missing: missing.join(", "),
        })
    }
}

/// `Ok(Ok(()))` when the apiserver serves `K`, `Ok(Err(name))` when it
/// answers 404 (not installed, or not this version).
async fn served<K>(client: &Client) -> Result<Result<(), String>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let api = Api::<K>::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(Ok(())),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Err(format!(
            "{}.{}/{}",
            K::plural(&()),
            K::group(&()),
            K::version(&())
        ))),
        Err(e) => Err(e),
    }
}
