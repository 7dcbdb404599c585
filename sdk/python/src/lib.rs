//! # agentauth-python — the SDK for Python agents
//!
//! The native module `agentauth._agentauth`, wrapped by the pure-Python
//! package `agentauth` (`python/agentauth/`), which adds the exception
//! classes and re-exports everything:
//!
//! ```text
//!  Python (asyncio) ─await─▶ AgentAuthClient (this crate) ─▶ agentauth::AgentAuthClient (Rust, tokio)
//!                   ◀────── Grant / Token / dict          ◀─ Ok
//!                   ◀────── agentauth.errors.<Class>       ◀─ Err(agentauth::Error) mapped by code
//! ```
//!
//! Awaitables are asyncio futures completed from a tokio runtime
//! (`awaitable.rs`); no call holds the GIL while it waits on the network.

#![forbid(unsafe_code)]

mod awaitable;
mod client;
mod errors;
mod mcp;
mod types;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _agentauth(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::PyClient>()?;
    m.add_class::<types::PyCapability>()?;
    m.add_class::<types::PyGrant>()?;
    m.add_class::<types::PyToken>()?;
    m.add_class::<mcp::PyMcpClient>()?;
    m.add_function(wrap_pyfunction!(types::generate_key, m)?)?;
    m.add_function(wrap_pyfunction!(types::agent_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(types::key_thumbprint, m)?)?;
    m.add_function(wrap_pyfunction!(awaitable::_drain, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
