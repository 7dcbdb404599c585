//! The value types Python sees: `Capability`, `Grant`, `Token`, and the
//! key helpers (`generate_key`, `key_thumbprint`, `agent_manifest`).

use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use agentauth::{AgentIdentity, AgentKey, Capability, Grant, Token};
use pyo3::prelude::*;

use crate::errors::to_py;

/// One thing a grant allows; made with `Capability.read(...)` and friends.
#[pyclass(name = "Capability", module = "agentauth", frozen)]
#[derive(Clone)]
pub struct PyCapability {
    pub inner: Capability,
}

#[pymethods]
impl PyCapability {
    /// Read resources matching `resource`.
    #[staticmethod]
    #[pyo3(signature = (resource, filter = None))]
    fn read(resource: String, filter: Option<String>) -> Self {
        PyCapability {
            inner: Capability::Read { resource, filter },
        }
    }

    /// Create or change resources matching `resource`.
    #[staticmethod]
    #[pyo3(signature = (resource, filter = None))]
    fn write(resource: String, filter: Option<String>) -> Self {
        PyCapability {
            inner: Capability::Write { resource, filter },
        }
    }

    /// Delete resources matching `resource`.
    #[staticmethod]
    #[pyo3(signature = (resource, filter = None))]
    fn delete(resource: String, filter: Option<String>) -> Self {
        PyCapability {
            inner: Capability::Delete { resource, filter },
        }
    }

    /// Move money on `resource`, up to `max_amount` (a decimal string) in
    /// `currency` per transaction when given.
    #[staticmethod]
    #[pyo3(signature = (resource, max_amount = None, currency = None))]
    fn transact(resource: String, max_amount: Option<String>, currency: Option<String>) -> Self {
        PyCapability {
            inner: Capability::Transact {
                resource,
                max_amount,
                currency,
            },
        }
    }

    /// The provider-defined operation `name` on `resource`.
    #[staticmethod]
    fn custom(name: String, resource: String) -> Self {
        PyCapability {
            inner: Capability::Custom { name, resource },
        }
    }

    /// `read`, `write`, `delete`, `transact` or `custom`.
    #[getter(r#type)]
    fn kind(&self) -> &'static str {
        match &self.inner {
            Capability::Read { .. } => "read",
            Capability::Write { .. } => "write",
            Capability::Delete { .. } => "delete",
            Capability::Transact { .. } => "transact",
            Capability::Custom { .. } => "custom",
            Capability::Detailed(c) => c.kind.as_str(),
        }
    }

    /// The resource pattern.
    #[getter]
    fn resource(&self) -> String {
        match &self.inner {
            Capability::Read { resource, .. }
            | Capability::Write { resource, .. }
            | Capability::Delete { resource, .. }
            | Capability::Transact { resource, .. }
            | Capability::Custom { resource, .. } => resource.clone(),
            Capability::Detailed(c) => c.resource.to_string(),
        }
    }

    fn __repr__(&self) -> String {
        format!("Capability.{}({:?})", self.kind(), self.resource())
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

/// A grant as the operator shows it to its agent.
#[pyclass(name = "Grant", module = "agentauth", frozen, get_all)]
pub struct PyGrant {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// The agent, `namespace/name`.
    pub agent: String,
    /// The service provider (the tokens' audience).
    pub service_provider: String,
    /// `Pending`, `Approved`, `Denied`, `Revoked` or `Expired`.
    pub phase: String,
    /// Whether it was revoked.
    pub revoked: bool,
    /// When it ends (RFC 3339), once known.
    pub expires_at: Option<String>,
    /// `namespace/name`.
    pub reference: String,
    /// Whether tokens can be had for it now.
    pub is_approved: bool,
    /// The operator's most telling message about it.
    pub message: String,
}

impl From<Grant> for PyGrant {
    fn from(g: Grant) -> Self {
        PyGrant {
            reference: g.reference(),
            is_approved: g.is_approved(),
            message: g.message(),
            namespace: g.namespace,
            name: g.name,
            uid: g.uid,
            agent: g.agent,
            service_provider: g.service_provider,
            phase: g.phase,
            revoked: g.revoked,
            expires_at: g.expires_at,
        }
    }
}

#[pymethods]
impl PyGrant {
    fn __repr__(&self) -> String {
        format!("Grant({:?}, phase={:?})", self.reference, self.phase)
    }
}

/// An access token and when it expires.
#[pyclass(name = "Token", module = "agentauth", frozen, get_all)]
pub struct PyToken {
    /// The DPoP-bound access token.
    pub access_token: String,
    /// The grant it was issued for, `namespace/name`.
    pub grant: String,
    /// When it expires, seconds since the epoch.
    pub expires_at: f64,
}

impl From<Token> for PyToken {
    fn from(t: Token) -> Self {
        PyToken {
            expires_at: t
                .expires_at
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            access_token: t.access_token,
            grant: t.grant,
        }
    }
}

#[pymethods]
impl PyToken {
    fn __repr__(&self) -> String {
        format!(
            "Token(grant={:?}, expires_at={})",
            self.grant, self.expires_at
        )
    }
}

/// Generates a P-256 key into a new file at `path` (mode 0600); returns its
/// RFC 7638 thumbprint. Refuses to overwrite a file.
#[pyfunction]
pub fn generate_key(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let key = AgentKey::generate().map_err(|e| to_py(py, &e))?;
    key.save(&path).map_err(|e| to_py(py, &e))?;
    Ok(key.thumbprint().to_owned())
}

/// The thumbprint of the key in `path` (refused when others can read it).
#[pyfunction]
pub fn key_thumbprint(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let key = AgentKey::load(&path).map_err(|e| to_py(py, &e))?;
    Ok(key.thumbprint().to_owned())
}

/// The `Agent` YAML to apply for the key in `key_file`.
#[pyfunction]
#[pyo3(signature = (namespace, name, display_name, owner, key_file, description = None))]
pub fn agent_manifest(
    py: Python<'_>,
    namespace: &str,
    name: &str,
    display_name: &str,
    owner: &str,
    key_file: PathBuf,
    description: Option<&str>,
) -> PyResult<String> {
    let key = AgentKey::load(&key_file).map_err(|e| to_py(py, &e))?;
    let identity = AgentIdentity {
        namespace,
        name,
        display_name,
        owner,
        description,
    };
    agentauth::agent_manifest(&identity, &key).map_err(|e| to_py(py, &e))
}
