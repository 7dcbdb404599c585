//! The approval API's settings and the name it writes under. A leaf, so the
//! session store and the writers can read them without the module root.

use std::time::Duration;

/// The field manager of every write the approval API makes (passkeys,
/// decisions, revocations), so `managedFields` tell its writes apart from
/// the controllers'.
pub const FIELD_MANAGER: &str = "agentauth-approval-api";

/// The approval API's settings.
#[derive(Clone, Debug)]
pub struct ApprovalsConfig {
    /// The longest a session lives.
    pub session_ttl: Duration,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// Whether the session cookie is `Secure` (`__Host-` prefixed).
    pub secure_cookies: bool,
    /// The namespace holding enrollment-token Secrets (the operator's own).
    pub token_namespace: String,
}
