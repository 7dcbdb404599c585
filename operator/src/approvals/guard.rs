//! The checks in front of every approval API handler, as extractors:
//!
//! ```text
//!  Sec-Fetch-Site: cross-site, or an Origin not in --approval-origin ──▶ 403 cross_site_request
//!  no cookie, unknown / expired / idle session ─────────────────────────▶ 401 session_invalid
//!  POST without the session's X-CSRF-Token (constant-time compare) ─────▶ 403 csrf_invalid
//!  LoggedIn only: the session is not logged in ─────────────────────────▶ 401 session_invalid
//! ```
//!
//! With `SameSite=Strict` cookies and the CSRF header, the site checks are
//! defence in depth; they also stop cross-site GETs from reading pending
//! grants.

use std::sync::Arc;

use agentauth_core::ErrorCode;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};

use super::reply::Refusal;
use super::session::CSRF_HEADER;
use super::setup::Approvals;

/// Refuses cross-site requests: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` that is not an approval origin.
pub fn check_site(approvals: &Approvals, headers: &HeaderMap) -> Result<(), Refusal> {
    let fetch_site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    if fetch_site == Some(b"cross-site") {
        return Err(Refusal::new(
            ErrorCode::CrossSiteRequest,
            "the browser marked this request cross-site (Sec-Fetch-Site)",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| {
            approvals
                .ctx
                .relying_party
                .origins
                .iter()
                .any(|a| a.trim_end_matches('/') == o)
        });
        if !allowed {
            return Err(Refusal::new(
                ErrorCode::CrossSiteRequest,
                "the request's Origin is not an approval origin",
            ));
        }
    }
    Ok(())
}

/// Compares two tokens in time independent of where they differ.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A request with a live session (any, logged in or not), its site checked
/// and, for a POST, its CSRF token.
#[derive(Clone, Debug)]
pub struct AnySession {
    /// The session id.
    pub id: String,
    /// The Approver it is logged in as.
    pub approver: Option<String>,
}

/// A request with a session logged in as an Approver.
#[derive(Clone, Debug)]
pub struct LoggedIn {
    /// The session id.
    pub id: String,
    /// The Approver's name.
    pub approver: String,
}

impl FromRequestParts<Arc<Approvals>> for AnySession {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        approvals: &Arc<Approvals>,
    ) -> Result<Self, Refusal> {
        check_site(approvals, &parts.headers)?;
        let sessions = &approvals.sessions;
        let no_session = || {
            Refusal::new(
                ErrorCode::SessionInvalid,
                "no live approval session; GET /approvals/api/session and log in again",
            )
        };
        let id = sessions.id_from(&parts.headers).ok_or_else(no_session)?;
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes().to_vec());
        let needs_csrf = parts.method != Method::GET && parts.method != Method::HEAD;
        let (approver, csrf_ok) = sessions
            .with(&id, |s| {
                let ok = presented
                    .as_deref()
                    .is_some_and(|p| same_token(p, s.csrf.as_bytes()));
                (s.approver.clone(), ok)
            })
            .ok_or_else(no_session)?;
        if needs_csrf && !csrf_ok {
            return Err(Refusal::new(
                ErrorCode::CsrfInvalid,
                "POST requests need the session's token in the X-CSRF-Token header",
            ));
        }
        Ok(AnySession { id, approver })
    }
}

impl FromRequestParts<Arc<Approvals>> for LoggedIn {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        approvals: &Arc<Approvals>,
    ) -> Result<Self, Refusal> {
        let session = AnySession::from_request_parts(parts, approvals).await?;
        let approver = session.approver.ok_or_else(|| {
            Refusal::new(
                ErrorCode::SessionInvalid,
                "this session is not logged in; log in with a passkey first",
            )
        })?;
        Ok(LoggedIn {
            id: session.id,
            approver,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abc", b"abd") && !same_token(b"abc", b"ab"));
    }
}
