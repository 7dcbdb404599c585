//! [`Invalid`]: why a spec was refused, with the field to fix.
//!
//! Every spec's `validate()` returns it. The webhook turns it into an
//! admission denial (`field` becomes the field path of the causes), the
//! operator into a `Ready=False, reason=Invalid` condition; the stable `code`
//! comes from core so metrics and audit records key on the same strings as
//! everywhere else.

use agentauth_core::{Error, ErrorCode};

/// A spec that failed validation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The field path from the resource root, e.g. `spec.capabilities[2]`.
    pub field: String,
    /// The stable code (e.g. `capability_invalid`).
    pub code: ErrorCode,
    /// What is wrong, in words a person can act on.
    pub message: String,
}

impl Invalid {
    /// An error at `field` with its own code and message.
    pub fn new(field: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            code,
            message: message.into(),
        }
    }

    /// A core validation error found at `field`.
    pub fn at(field: impl Into<String>, error: Error) -> Self {
        Invalid::new(field, error.code, error.message)
    }
}

/// Attaches a field path to core results: `limit.validate().at("spec.rateLimits[0]")?`.
pub trait At<T> {
    /// Converts the error into an [`Invalid`] at `field`.
    fn at(self, field: impl Into<String>) -> Result<T, Invalid>;
}

impl<T> At<T> for Result<T, Error> {
    fn at(self, field: impl Into<String>) -> Result<T, Invalid> {
        self.map_err(|e| Invalid::at(field, e))
    }
}

/// Checks a required free-text field: not blank, at most `max` bytes, no
/// control characters (they would forge lines in logs and terminals).
pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.trim().is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            ErrorCode::RequestInvalid,
            format!("must be 1 to {max} bytes of text without control characters"),
        ));
    }
    Ok(())
}

/// Checks a Kubernetes object name (RFC 1123 subdomain: lower-case letters,
/// digits, '-' and '.', starting and ending alphanumeric, at most 253 bytes).
pub(crate) fn check_name(field: &str, name: &str) -> Result<(), Invalid> {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| alnum(b) || b == b'-' || b == b'.')
        && name.bytes().next().is_some_and(alnum)
        && name.bytes().last().is_some_and(alnum);
    if !ok {
        return Err(Invalid::new(
            field,
            ErrorCode::RequestInvalid,
            format!(
                "{:?} is not a Kubernetes object name (lower-case letters, digits, '-' and '.', \
                 starting and ending with a letter or digit, at most 253 characters)",
                name.chars().take(64).collect::<String>()
            ),
        ));
    }
    Ok(())
}
