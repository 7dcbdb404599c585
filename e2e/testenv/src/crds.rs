//! Installing CustomResourceDefinitions: server-side apply, then wait for
//! `Established` so the new resources can be used at once.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

use crate::{ControlPlane, Error};

/// The field manager of everything this harness applies.
pub const FIELD_MANAGER: &str = "agentauth-testenv";

/// How long one CRD may take to become `Established`.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

impl ControlPlane {
    /// Applies every CustomResourceDefinition in the `*.yaml` / `*.yml` files of
    /// `dir` (each file may hold several `---` documents) and waits until each
    /// is `Established`. Returns the CRD names; an empty folder installs nothing.
    ///
    /// Any document that is not a CustomResourceDefinition is an error: the
    /// folder is meant to be `crds/generated/`.
    pub async fn install_crds(&self, dir: &Path) -> Result<Vec<String>, Error> {
        let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
            action: "list the CRD folder",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| Error::Io {
                    action: "list the CRD folder",
                    path: dir.to_path_buf(),
                    source,
                })?
                .path();
            let is_yaml = path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml");
            if is_yaml && path.is_file() {
                files.push(path);
            }
        }
        // A stable order makes failures reproducible.
        files.sort();

        let mut crds = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                action: "read the CRD file",
                path: path.clone(),
                source,
            })?;
            crds.extend(parse_crds(&text, &path.display().to_string())?);
        }
        self.install_crd_objects(crds).await
    }

    /// Like [`ControlPlane::install_crds`], for YAML text (one or more `---` documents).
    pub async fn install_crds_yaml(&self, yaml: &str) -> Result<Vec<String>, Error> {
        self.install_crd_objects(parse_crds(yaml, "inline YAML")?)
            .await
    }

    /// Like [`ControlPlane::install_crds`], for typed CRDs such as
    /// `kube::CustomResourceExt::crd()` returns.
    pub async fn install_crd_objects(
        &self,
        crds: impl IntoIterator<Item = CustomResourceDefinition>,
    ) -> Result<Vec<String>, Error> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client()?);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut names = Vec::new();
        for mut crd in crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            // Apply must not carry server-owned fields a generated file might hold.
            crd.status = None;
            crd.metadata.managed_fields = None;
            crd.metadata.resource_version = None;
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .map_err(|source| Error::Api {
                    action: format!("apply CustomResourceDefinition {name:?}"),
                    source,
                })?;
            names.push(name);
        }
        for name in &names {
            let established = await_condition(api.clone(), name, conditions::is_crd_established());
            match tokio::time::timeout(ESTABLISHED_TIMEOUT, established).await {
                Ok(Ok(_)) => {}
                Ok(Err(source)) => {
                    return Err(Error::CrdWatch {
                        name: name.clone(),
                        source,
                    });
                }
                Err(_) => {
                    return Err(Error::CrdNotEstablished {
                        name: name.clone(),
                        waited: ESTABLISHED_TIMEOUT,
                    });
                }
            }
        }
        Ok(names)
    }
}

/// The CRDs of a multi-document YAML text; empty documents are skipped.
fn parse_crds(yaml: &str, origin: &str) -> Result<Vec<CustomResourceDefinition>, Error> {
    let invalid = |message: String| Error::CrdYaml {
        origin: origin.to_owned(),
        message,
    };
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| invalid(e.to_string()))?;
    let mut crds = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue;
        }
        let kind = document.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if kind != "CustomResourceDefinition" {
            return Err(invalid(format!(
                "document {index} has kind {kind:?}, not CustomResourceDefinition"
            )));
        }
        let crd: CustomResourceDefinition = serde_json::from_value(document)
            .map_err(|e| invalid(format!("document {index}: {e}")))?;
        if crd.metadata.name.as_deref().unwrap_or("").is_empty() {
            return Err(invalid(format!("document {index} has no metadata.name")));
        }
        crds.push(crd);
    }
    Ok(crds)
}
