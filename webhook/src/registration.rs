//! The `ValidatingWebhookConfiguration` that makes the apiserver call this
//! webhook, for tests and `agentauth dev` (the Helm chart renders the same
//! rules for a cluster, with a Service reference instead of a URL).
//!
//! Every create and update of the four resources, and of the status
//! subresources that carry authority, goes through the webhook;
//! `failurePolicy: Fail` means that when the webhook cannot be reached the
//! apiserver refuses the write (fail closed). A `namespaceSelector` limits
//! the namespaced resources to matching namespaces; Approvers are
//! cluster-scoped, and the apiserver sends every Approver write regardless.

use std::net::SocketAddr;

use agentauth_crds::{GROUP, VERSION};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

/// The webhook's name inside its configuration: the apiserver quotes it in
/// every refusal (`admission webhook "validate.agentauth.dev" denied the request: …`).
pub const WEBHOOK_NAME: &str = "validate.agentauth.dev";

/// The path the webhook serves admission reviews on.
pub const PATH: &str = "/validate";

/// How long the apiserver waits for a review.
pub const TIMEOUT_SECONDS: i32 = 5;

/// The resources (and subresources) the webhook validates.
pub const RESOURCES: &[&str] = &[
    "agents",
    "agents/status",
    "behavioralenvelopes",
    "capabilitygrants",
    "capabilitygrants/status",
    "approvers",
    "approvers/status",
];

/// Where the webhook is and what the apiserver must trust.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    /// The configuration's `metadata.name`, e.g. `agentauth-webhook`.
    pub name: String,
    /// The review URL, e.g. from [`url_for`].
    pub url: String,
    /// The CA certificate(s) (PEM) that signed the webhook's serving certificate.
    pub ca_bundle_pem: String,
    /// Only namespaced objects in namespaces matching this selector are
    /// sent; `None` sends all.
    pub namespace_selector: Option<LabelSelector>,
}

/// `https://<addr>/validate`.
pub fn url_for(addr: SocketAddr) -> String {
    format!("https://{addr}{PATH}")
}

/// The rule every registration uses: CREATE and UPDATE of [`RESOURCES`].
pub fn rules() -> Vec<RuleWithOperations> {
    vec![RuleWithOperations {
        api_groups: Some(vec![GROUP.to_owned()]),
        api_versions: Some(vec![VERSION.to_owned()]),
        operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
        resources: Some(RESOURCES.iter().map(|r| (*r).to_owned()).collect()),
        scope: Some("*".to_owned()),
    }]
}

/// The configuration for `registration`: one webhook, `failurePolicy: Fail`,
/// `sideEffects: None`, `admissionReviewVersions: [v1]`, a 5 s timeout.
pub fn validating_webhook_configuration(
    registration: &Registration,
) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(registration.name.clone()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: WEBHOOK_NAME.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: WebhookClientConfig {
                url: Some(registration.url.clone()),
                ca_bundle: Some(ByteString(registration.ca_bundle_pem.as_bytes().to_vec())),
                service: None,
            },
            failure_policy: Some("Fail".to_owned()),
            match_policy: Some("Equivalent".to_owned()),
            namespace_selector: registration.namespace_selector.clone(),
            rules: Some(rules()),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            ..ValidatingWebhook::default()
        }]),
    }
}

/// Server-side applies the configuration for `registration` (field manager
/// `agentauth-webhook`). The apiserver takes a moment to start calling a
/// new webhook; callers that need it in force must wait for a refusal.
pub async fn apply(
    client: Client,
    registration: &Registration,
) -> Result<ValidatingWebhookConfiguration, kube::Error> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let config = validating_webhook_configuration(registration);
    api.patch(
        &registration.name,
        &PatchParams::apply("agentauth-webhook").force(),
        &Patch::Apply(&config),
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_configuration_fails_closed_and_covers_status() {
        let config = validating_webhook_configuration(&Registration {
            name: "agentauth-webhook".into(),
            url: url_for("127.0.0.1:8443".parse().unwrap()),
            ca_bundle_pem: "-----BEGIN CERTIFICATE-----".into(),
            namespace_selector: None,
        });
        let json = serde_json::to_value(&config).unwrap();
        let hook = &json["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(hook["timeoutSeconds"], 5);
        assert_eq!(hook["admissionReviewVersions"], serde_json::json!(["v1"]));
        assert_eq!(
            hook["clientConfig"]["url"],
            "https://127.0.0.1:8443/validate"
        );
        let resources = hook["rules"][0]["resources"].as_array().unwrap();
        for sub in ["capabilitygrants/status", "approvers/status"] {
            assert!(resources.iter().any(|r| r == sub), "{sub}");
        }
        // caBundle is base64 of the PEM on the wire.
        assert!(
            hook["clientConfig"]["caBundle"]
                .as_str()
                .unwrap()
                .starts_with("LS0t")
        );
    }
}
