//! The native half of `agentauth.McpClient` (`python/agentauth/mcp.py`):
//! the SDK's MCP client with messages crossing as JSON text, which the
//! Python half turns into dicts. Each call is an awaitable on the shared
//! runtime, the GIL released while it waits.

use std::sync::Arc;

use agentauth::McpClient;
use pyo3::prelude::*;

use crate::awaitable::awaitable;
use crate::client::PyClient;
use crate::errors::to_py;

/// A client of one MCP endpoint behind `agentauth mcp-gateway`.
#[pyclass(name = "_McpClient", module = "agentauth", frozen)]
pub struct PyMcpClient {
    inner: Arc<McpClient>,
}

fn parse(py: Python<'_>, json: &str) -> PyResult<serde_json::Value> {
    serde_json::from_str(json).map_err(|e| {
        to_py(
            py,
            &agentauth::Error::Config(format!("params must be JSON: {e}")),
        )
    })
}

#[pymethods]
impl PyMcpClient {
    #[new]
    fn new(
        py: Python<'_>,
        client: &PyClient,
        service_provider_id: &str,
        endpoint: &str,
    ) -> PyResult<Self> {
        let inner = McpClient::new(client.inner().clone(), service_provider_id, endpoint)
            .map_err(|e| to_py(py, &e))?;
        Ok(PyMcpClient {
            inner: Arc::new(inner),
        })
    }

    /// The session id the server gave at `initialize`.
    #[getter]
    fn session_id(&self) -> Option<String> {
        self.inner.session_id()
    }

    /// `initialize` + `notifications/initialized`; the result as JSON.
    fn initialize<'py>(&self, py: Python<'py>, client_name: String) -> PyResult<Bound<'py, PyAny>> {
        let mcp = self.inner.clone();
        awaitable(py, async move {
            mcp.initialize(&client_name).await.map(|v| v.to_string())
        })
    }

    /// Request `method` with `params` (JSON); the result as JSON.
    fn request<'py>(
        &self,
        py: Python<'py>,
        method: String,
        params: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let params = parse(py, &params)?;
        let mcp = self.inner.clone();
        awaitable(py, async move {
            mcp.request(&method, params).await.map(|v| v.to_string())
        })
    }

    /// Notification `method` with `params` (JSON).
    fn notify<'py>(
        &self,
        py: Python<'py>,
        method: String,
        params: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let params = parse(py, &params)?;
        let mcp = self.inner.clone();
        awaitable(py, async move { mcp.notify(&method, params).await })
    }

    /// Ends the session.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mcp = self.inner.clone();
        awaitable(py, async move { mcp.close().await })
    }
}
