//! Registers the dev webhook with the apiserver
//! (`ValidatingWebhookConfiguration` and `MutatingWebhookConfiguration`
//! `agentauth-dev`, `failurePolicy: Fail`)
//! and waits until the apiserver really calls it; removes it again when the
//! run stops, so an existing cluster is not left refusing every write to a
//! webhook that is gone.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agentauth_crds::BehavioralEnvelope;
use agentauth_webhook::registration::{self, Registration};
use kube::Client;
use kube::api::{Api, PostParams};

use super::DevError;
use super::cluster::EXAMPLES_NAMESPACE;

/// The configuration's name.
pub const NAME: &str = "agentauth-dev";

/// How long the apiserver may take to start calling a new webhook.
const IN_FORCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies the registration for the webhook at `addr` (trusting `ca_pem`)
/// and waits until a dry-run create is refused by the webhook itself.
pub async fn register(client: &Client, addr: SocketAddr, ca_pem: &str) -> Result<(), DevError> {
    let registration = Registration {
        name: NAME.to_owned(),
        url: registration::url_for(addr),
        ca_bundle_pem: ca_pem.to_owned(),
        namespace_selector: None,
    };
    registration::apply(client.clone(), &registration)
        .await
        .map_err(|e| DevError::Kube {
            step: "register the webhook",
            source: e,
        })?;
    // An envelope in a time zone that does not exist: only the webhook
    // refuses it (the schema cannot know the zone database), so its refusal
    // proves the apiserver calls the webhook. A dry run stores nothing.
    let probe: BehavioralEnvelope = serde_json::from_value(serde_json::json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "BehavioralEnvelope",
        "metadata": {"name": "agentauth-dev-webhook-probe"},
        "spec": {"timeWindows": [{"days": ["mon"], "start": "09:00", "end": "17:00",
                                  "timeZone": "Mars/Olympus"}]},
    }))
    .map_err(|e| DevError::WebhookNotInForce(format!("cannot build the probe: {e}")))?;
    let api: Api<BehavioralEnvelope> = Api::namespaced(client.clone(), EXAMPLES_NAMESPACE);
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let started = Instant::now();
    loop {
        let last = match api.create(&params, &probe).await {
            Err(kube::Error::Api(status)) if status.message.contains("time_zone_unknown") => {
                // The mutating configuration (an Agent's creator) comes
                // into force on its own schedule: wait for it too.
                let left = IN_FORCE_TIMEOUT.saturating_sub(started.elapsed());
                return registration::wait_for_mutation(client.clone(), EXAMPLES_NAMESPACE, left)
                    .await
                    .map_err(|e| DevError::WebhookNotInForce(e.to_string()));
            }
            Err(e) => e.to_string(),
            Ok(_) => "the probe was accepted".to_owned(),
        };
        if started.elapsed() > IN_FORCE_TIMEOUT {
            return Err(DevError::WebhookNotInForce(last));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Removes the registration, validating and mutating (nothing happens if it
/// is not there).
pub async fn unregister(client: &Client) -> Result<(), kube::Error> {
    registration::remove(client.clone(), NAME).await
}
