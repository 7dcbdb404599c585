//! A fresh namespace per test, so tests sharing one control plane never see
//! each other's objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::{ControlPlane, Error};

/// Label on every namespace made by [`ControlPlane::test_namespace`]; on an
/// existing cluster `kubectl delete namespace -l agentauth.dev/testenv` removes them.
pub const TEST_NAMESPACE_LABEL: &str = "agentauth.dev/testenv";

/// Room left in the 63-character namespace name for the apiserver's 5-character suffix.
const MAX_PREFIX: usize = 40;

impl ControlPlane {
    /// Creates a namespace named `<prefix>-<random>` and returns its name.
    ///
    /// The prefix is lower-cased and anything outside `[a-z0-9-]` becomes `-`
    /// (so a test's function name works); the apiserver picks the suffix
    /// (`generateName`), which makes the name unique. Namespaces are not
    /// deleted: a local control plane has no namespace controller to finish a
    /// deletion, and is thrown away whole.
    pub async fn test_namespace(&self, prefix: &str) -> Result<String, Error> {
        let prefix = sanitize(prefix);
        let namespace = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!("{prefix}-")),
                labels: Some(BTreeMap::from([(
                    TEST_NAMESPACE_LABEL.to_owned(),
                    "true".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let api: Api<Namespace> = Api::all(self.client()?);
        let created = api
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|source| Error::Api {
                action: format!("create a namespace named {prefix}-*"),
                source,
            })?;
        created
            .metadata
            .name
            .ok_or_else(|| Error::UnexpectedResponse {
                action: format!("create a namespace named {prefix}-*"),
                message: "the created namespace has no name".to_owned(),
            })
    }
}

/// A DNS-label prefix: `[a-z0-9-]`, starting and ending alphanumeric, at most [`MAX_PREFIX`].
fn sanitize(prefix: &str) -> String {
    let mapped: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_PREFIX)
        .collect();
    let trimmed = mapped.trim_matches('-');
    if trimmed.is_empty() {
        "test".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn prefixes_become_dns_labels() {
        assert_eq!(sanitize("crd_installs"), "crd-installs");
        assert_eq!(sanitize("Mixed::Case"), "mixed--case");
        assert_eq!(sanitize("__"), "test");
        assert_eq!(sanitize(&"a".repeat(80)).len(), 40);
    }
}
