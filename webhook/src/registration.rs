//! The `ValidatingWebhookConfiguration` and `MutatingWebhookConfiguration`
//! that make the apiserver call this webhook, for tests and `agentauth dev`
//! (a cluster deployment renders the same rules, with a Service reference
//! instead of a URL). [`apply`] registers both, under one name.
//!
//! Every create and update of the four resources, and of the status
//! subresources that carry authority, goes through `/validate`; every create
//! and update of an Agent goes through `/mutate` first, which records its
//! creator ([`crate::mutate`]). `failurePolicy: Fail` on both means that when
//! the webhook cannot be reached the apiserver refuses the write (fail
//! closed). A `namespaceSelector` limits the namespaced resources to
//! matching namespaces; Approvers are cluster-scoped, and the apiserver
//! sends every Approver write regardless.

use std::net::SocketAddr;

use agentauth_crds::{GROUP, VERSION};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhook,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

/// The webhook's name inside its configuration: the apiserver quotes it in
/// every refusal (`admission webhook "validate.agentauth.dev" denied the request: …`).
pub const WEBHOOK_NAME: &str = "validate.agentauth.dev";

/// The path the webhook serves admission reviews on.
pub const PATH: &str = "/validate";

/// The mutating webhook's name inside its configuration.
pub const MUTATING_WEBHOOK_NAME: &str = "mutate.agentauth.dev";

/// The path of the mutating endpoint (the Agent's creator).
pub const MUTATE_PATH: &str = "/mutate";

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

/// `https://<addr>/mutate`.
pub fn mutate_url_for(addr: SocketAddr) -> String {
    format!("https://{addr}{MUTATE_PATH}")
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

/// The mutating configuration for `registration`: CREATE and UPDATE of
/// `agents` (not its status) to `/mutate` on the same host, same CA,
/// `failurePolicy: Fail`. `registration.url` is the validating URL; its
/// path is replaced. `reinvocationPolicy: IfNeeded`, so another mutating
/// webhook that runs later and touches the annotation has it set again.
pub fn mutating_webhook_configuration(registration: &Registration) -> MutatingWebhookConfiguration {
    let url = registration.url.strip_suffix(PATH).map_or_else(
        || registration.url.clone(),
        |base| format!("{base}{MUTATE_PATH}"),
    );
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(registration.name.clone()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: MUTATING_WEBHOOK_NAME.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: WebhookClientConfig {
                url: Some(url),
                ca_bundle: Some(ByteString(registration.ca_bundle_pem.as_bytes().to_vec())),
                service: None,
            },
            failure_policy: Some("Fail".to_owned()),
            match_policy: Some("Equivalent".to_owned()),
            namespace_selector: registration.namespace_selector.clone(),
            reinvocation_policy: Some("IfNeeded".to_owned()),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![GROUP.to_owned()]),
                api_versions: Some(vec![VERSION.to_owned()]),
                operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
                resources: Some(vec!["agents".to_owned()]),
                scope: Some("Namespaced".to_owned()),
            }]),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            ..MutatingWebhook::default()
        }]),
    }
}

/// Server-side applies both configurations for `registration` (field
/// manager `agentauth-webhook`), the mutating one first: with only the
/// validating one in force, every Agent create would be refused. The
/// apiserver takes a moment to start calling a new webhook; callers that
/// need it in force must wait for a refusal.
pub async fn apply(client: Client, registration: &Registration) -> Result<(), kube::Error> {
    let params = PatchParams::apply("agentauth-webhook").force();
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    mutating
        .patch(
            &registration.name,
            &params,
            &Patch::Apply(&mutating_webhook_configuration(registration)),
        )
        .await?;
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client);
    validating
        .patch(
            &registration.name,
            &params,
            &Patch::Apply(&validating_webhook_configuration(registration)),
        )
        .await?;
    Ok(())
}

/// A P-256 public key (RFC 7517 appendix A.1) for the probe Agent: the
/// probe is a dry run, so nobody ever signs with it.
const PROBE_KEY: (&str, &str) = (
    "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
    "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
);

/// Why [`wait_for_mutation`] gave up.
#[derive(Debug, thiserror::Error)]
#[error("the mutating webhook was not in force after {waited:?}: {last}")]
pub struct NotInForce {
    /// How long it waited.
    pub waited: std::time::Duration,
    /// The last probe's outcome.
    pub last: String,
}

/// Waits (at most `timeout`) until the apiserver calls the mutating
/// endpoint for Agents in `namespace` (one the `namespaceSelector`
/// matches): a dry-run create of an Agent comes back with its creator
/// recorded. The apiserver picks the two configurations up independently,
/// so a caller that waited for the validating one must wait for this too,
/// or its first Agents may be refused (`created_by_invalid`) in between.
pub async fn wait_for_mutation(
    client: Client,
    namespace: &str,
    timeout: std::time::Duration,
) -> Result<(), NotInForce> {
    use kube::api::{ApiResource, DynamicObject, PostParams};
    let api: Api<DynamicObject> = Api::namespaced_with(
        client,
        namespace,
        &ApiResource::erase::<agentauth_crds::Agent>(&()),
    );
    let probe: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": format!("{GROUP}/{VERSION}"), "kind": "Agent",
        "metadata": {"name": "agentauth-webhook-probe", "namespace": namespace},
        "spec": {"displayName": "probe", "owner": "probe",
                 "publicKey": {"kty": "EC", "crv": "P-256", "x": PROBE_KEY.0, "y": PROBE_KEY.1}},
    }))
    .map_err(|e| NotInForce {
        waited: std::time::Duration::ZERO,
        last: format!("cannot build the probe: {e}"),
    })?;
    let params = PostParams {
        dry_run: true,
        field_manager: None,
    };
    let started = std::time::Instant::now();
    loop {
        let last = match api.create(&params, &probe).await {
            Ok(created)
                if created.metadata.annotations.as_ref().is_some_and(|a| {
                    a.contains_key(agentauth_crds::agent::CREATED_BY_ANNOTATION)
                }) =>
            {
                return Ok(());
            }
            Ok(_) => "the probe Agent came back without its creator".to_owned(),
            Err(e) => e.to_string(),
        };
        if started.elapsed() > timeout {
            return Err(NotInForce {
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Deletes both configurations named `name`, the validating one first (so
/// there is never a moment with validation but no mutation); one that is
/// not there is no error.
pub async fn remove(client: Client, name: &str) -> Result<(), kube::Error> {
    let gone = |result: Result<_, kube::Error>| match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    };
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    gone(
        validating
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ()),
    )?;
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client);
    gone(
        mutating
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ()),
    )
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
        let mutating = serde_json::to_value(mutating_webhook_configuration(&Registration {
            name: "agentauth-webhook".into(),
            url: url_for("127.0.0.1:8443".parse().unwrap()),
            ca_bundle_pem: "-----BEGIN CERTIFICATE-----".into(),
            namespace_selector: None,
        }))
        .unwrap();
        let hook = &mutating["webhooks"][0];
        assert_eq!(hook["name"], MUTATING_WEBHOOK_NAME);
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(hook["clientConfig"]["url"], "https://127.0.0.1:8443/mutate");
        assert_eq!(hook["rules"][0]["resources"], serde_json::json!(["agents"]));
        assert_eq!(
            hook["rules"][0]["operations"],
            serde_json::json!(["CREATE", "UPDATE"])
        );
        // caBundle is base64 of the PEM on the wire.
        assert!(
            hook["clientConfig"]["caBundle"]
                .as_str()
                .unwrap()
                .starts_with("LS0t")
        );
    }
}
