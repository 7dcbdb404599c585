//! SDK errors as Python exceptions. The classes live in Python
//! (`agentauth/errors.py`, so they can be subclassed, pickled and
//! documented like any other); this module asks its `_from_native` factory
//! for the right one:
//!
//! ```text
//!  agentauth::Error ─▶ (kind, code, message, status) ─▶ agentauth.errors._from_native(...) ─▶ raise
//! ```
//!
//! `kind` says where the error arose (`server`, `denied`, `no_grant`,
//! `timeout`, `key`, `config`, `transport`, `protocol`); `code` is the
//! stable code when there is one.

use agentauth::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// The Python exception for `error`.
pub fn to_py(py: Python<'_>, error: &Error) -> PyErr {
    make(py, error).unwrap_or_else(|e| e)
}

fn make(py: Python<'_>, error: &Error) -> PyResult<PyErr> {
    let (kind, status) = match error {
        Error::Server { status, .. } => ("server", Some(*status)),
        Error::Denied { .. } => ("denied", None),
        Error::NoGrant { .. } => ("no_grant", None),
        Error::Timeout { .. } => ("timeout", None),
        Error::Key(_) => ("key", None),
        Error::Config(_) => ("config", None),
        Error::Transport(_) => ("transport", None),
        Error::Protocol(_) => ("protocol", None),
    };
    let factory = py
        .import("agentauth.errors")
        .and_then(|m| m.getattr("_from_native"));
    let Ok(factory) = factory else {
        return Ok(PyRuntimeError::new_err(error.to_string()));
    };
    let code = error.code_str();
    let exception = factory.call1((kind, code, error.message(), status))?;
    Ok(PyErr::from_value(exception))
}
