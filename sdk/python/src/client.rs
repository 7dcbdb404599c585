//! `AgentAuthClient` for Python: every network call is an awaitable run on
//! the shared tokio runtime, with the GIL released while it waits.
//!
//! ```python
//! client = AgentAuthClient("https://registry.example.com", namespace="team-a",
//!                          agent="calendar-bot", key_file="agent.jwk")
//! grant = await client.request_grant(service_provider_id="https://calendar.example.com",
//!                                    capabilities=[Capability.read("calendar")])
//! await client.wait_for_approval(grant.reference, timeout=600)
//! headers = await client.authenticate_headers("https://calendar.example.com", "POST", "/api/events")
//! ```

use std::collections::HashMap;
use std::time::Duration;

use agentauth::{AgentAuthClient, AgentAuthConfig, GrantOptions};
use pyo3::prelude::*;

use crate::awaitable::awaitable;
use crate::errors::to_py;
use crate::types::{PyCapability, PyGrant, PyToken};

/// The agent's client of the AgentAuth operator.
#[pyclass(name = "AgentAuthClient", module = "agentauth", frozen)]
pub struct PyClient {
    inner: AgentAuthClient,
}

fn seconds(py: Python<'_>, value: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        to_py(
            py,
            &agentauth::Error::Config(format!(
                "{what} must be a non-negative number of seconds, not {value}"
            )),
        )
    })
}

impl PyClient {
    /// The Rust client (for the MCP client).
    pub(crate) fn inner(&self) -> &AgentAuthClient {
        &self.inner
    }
}

#[pymethods]
impl PyClient {
    /// A client for the operator at `operator_url` (HTTPS, or HTTP on
    /// loopback). The agent and key default to `AGENTAUTH_AGENT`
    /// (`namespace/name`) and `AGENTAUTH_KEY_FILE`.
    #[new]
    // Each Python keyword argument is a Rust parameter.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (operator_url, *, namespace = None, agent = None, key_file = None,
                        token_lifetime = None, refresh_before = None, request_timeout = None))]
    fn new(
        py: Python<'_>,
        operator_url: &str,
        namespace: Option<&str>,
        agent: Option<&str>,
        key_file: Option<std::path::PathBuf>,
        token_lifetime: Option<f64>,
        refresh_before: Option<f64>,
        request_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let mut config = AgentAuthConfig::new(operator_url).map_err(|e| to_py(py, &e))?;
        match (namespace, agent) {
            (Some(namespace), Some(agent)) => config = config.agent(namespace, agent),
            (None, None) => {}
            _ => {
                return Err(to_py(
                    py,
                    &agentauth::Error::Config("give both namespace and agent, or neither".into()),
                ));
            }
        }
        if let Some(path) = key_file {
            config = config.key_file(path);
        }
        if let Some(secs) = token_lifetime {
            config = config.token_lifetime(seconds(py, secs, "token_lifetime")?);
        }
        if let Some(secs) = refresh_before {
            config = config.refresh_before(seconds(py, secs, "refresh_before")?);
        }
        if let Some(secs) = request_timeout {
            config = config.request_timeout(seconds(py, secs, "request_timeout")?);
        }
        let inner = AgentAuthClient::new(config).map_err(|e| to_py(py, &e))?;
        Ok(PyClient { inner })
    }

    /// The agent, `namespace/name`.
    #[getter]
    fn agent(&self) -> String {
        self.inner.agent()
    }

    /// The RFC 7638 thumbprint of the agent's key.
    #[getter]
    fn thumbprint(&self) -> String {
        self.inner.key().thumbprint().to_owned()
    }

    /// Asks for a grant; it is `Pending` until a human decides.
    #[pyo3(signature = (service_provider_id, capabilities, *, envelope = None, duration = None,
                        expires_at = None, reason = None, idempotency_key = None))]
    // Each Python keyword argument is a Rust parameter.
    #[allow(clippy::too_many_arguments)]
    fn request_grant<'py>(
        &self,
        py: Python<'py>,
        service_provider_id: String,
        capabilities: Vec<PyRef<'py, PyCapability>>,
        envelope: Option<String>,
        duration: Option<String>,
        expires_at: Option<String>,
        reason: Option<String>,
        idempotency_key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let capabilities = capabilities.iter().map(|c| c.inner.clone()).collect();
        let options = GrantOptions {
            envelope,
            duration,
            expires_at,
            reason,
            idempotency_key,
        };
        let client = self.inner.clone();
        awaitable(py, async move {
            client
                .request_grant_with(&service_provider_id, capabilities, options)
                .await
                .map(PyGrant::from)
        })
    }

    /// Uses the existing grant `namespace/name` for `service_provider_id`.
    fn use_grant(&self, service_provider_id: &str, grant: &str) {
        self.inner.use_grant(service_provider_id, grant);
    }

    /// The current state of `grant` (`namespace/name`).
    fn get_grant<'py>(&self, py: Python<'py>, grant: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.inner.clone();
        awaitable(py, async move {
            client.get_grant(&grant).await.map(PyGrant::from)
        })
    }

    /// Waits for a human's decision on `grant` (`namespace/name`), at most
    /// `timeout` seconds: the approved grant, or `GrantDeniedError`, or
    /// `AgentAuthTimeoutError`.
    #[pyo3(signature = (grant, timeout = 600.0))]
    fn wait_for_approval<'py>(
        &self,
        py: Python<'py>,
        grant: String,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = seconds(py, timeout, "timeout")?;
        let client = self.inner.clone();
        awaitable(py, async move {
            client
                .wait_for_approval(&grant, timeout)
                .await
                .map(PyGrant::from)
        })
    }

    /// A token for `service_provider_id`: cached while fresh, refreshed
    /// before it expires, one issuance for concurrent callers.
    fn get_token<'py>(
        &self,
        py: Python<'py>,
        service_provider_id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.inner.clone();
        awaitable(py, async move {
            client
                .get_token(&service_provider_id)
                .await
                .map(PyToken::from)
        })
    }

    /// Forgets the cached token for `service_provider_id`.
    fn invalidate_token<'py>(
        &self,
        py: Python<'py>,
        service_provider_id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.inner.clone();
        awaitable(py, async move {
            client.invalidate_token(&service_provider_id).await;
            Ok::<(), agentauth::Error>(())
        })
    }

    /// `{"Authorization": "DPoP …", "DPoP": "<proof>"}` for a request
    /// `method` on `url` (absolute, or a path under a URL-shaped provider id).
    fn authenticate_headers<'py>(
        &self,
        py: Python<'py>,
        service_provider_id: String,
        method: String,
        url: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.inner.clone();
        awaitable(py, async move {
            let headers = client
                .authenticate_headers(&service_provider_id, &method.to_ascii_uppercase(), &url)
                .await?;
            Ok(HashMap::from([
                ("Authorization".to_owned(), headers.authorization),
                ("DPoP".to_owned(), headers.dpop),
            ]))
        })
    }

    fn __repr__(&self) -> String {
        format!("AgentAuthClient(agent={:?})", self.inner.agent())
    }
}
