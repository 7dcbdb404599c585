//! Approval-UI sessions: server-side, in this replica's memory, behind an
//! `HttpOnly`, `SameSite=Strict` cookie.
//!
//! ```text
//!  GET /session ──▶ no valid cookie? new anonymous session (256-bit id, CSRF token) + Set-Cookie
//!  POST …       ──▶ cookie ─▶ session (not past its TTL, not idle too long) ─▶ X-CSRF-Token == session's
//!  login/finish ──▶ the session id is replaced (no fixation) and the CSRF token renewed
//! ```
//!
//! The request checks (site, session, CSRF) are in [`super::guard`], the
//! `GET /session` handler in [`super::login`]. A session holds at most one
//! WebAuthn ceremony of type `C` ([`super::ceremony`] says which and checks
//! it); the store only keeps it and drops it at login. An anonymous session
//! serves one ceremony (its idle timeout is the ceremony timeout); when the
//! store is full the oldest anonymous session gives way.
//!
//! The cookie is `__Host-agentauth_session; Path=/; Secure` when cookies are
//! secure (the `__Host-` prefix requires `Path=/` and `Secure`), and
//! `agentauth_session; Path=/approvals` on a loopback development URL over
//! plain HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use agentauth_core::{ErrorCode, b64};
use axum::http::{HeaderMap, HeaderValue, header};

use super::config::ApprovalsConfig;
use super::reply::Refusal;
use crate::clock::Clock;

/// The cookie name when cookies are `Secure`.
pub const SECURE_COOKIE: &str = "__Host-agentauth_session";
/// The cookie name on a loopback development URL (no `Secure`).
pub const DEV_COOKIE: &str = "agentauth_session";
/// The header carrying the session's CSRF token on every POST.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a WebAuthn ceremony (enroll, login, decide) may take.
pub const CEREMONY_TIMEOUT: Duration = Duration::from_secs(300);
/// The most sessions one replica keeps, so anonymous requests cannot
/// exhaust memory: when full, expired sessions go first, then the oldest
/// anonymous one; only a store full of logged-in sessions refuses (503).
pub const MAX_SESSIONS: usize = 10_000;

/// One browser's session, holding at most one ceremony `C`.
#[derive(Debug)]
pub struct Session<C> {
    /// The CSRF token every POST must carry.
    pub csrf: String,
    /// When it was created (ms).
    pub created_ms: i64,
    /// When it was last used (ms).
    pub seen_ms: i64,
    /// The Approver it is logged in as.
    pub approver: Option<String>,
    /// The ceremony in progress.
    pub ceremony: Option<C>,
}

/// The sessions of this replica.
pub struct SessionStore<C> {
    clock: Arc<dyn Clock>,
    ttl_ms: i64,
    idle_ms: i64,
    secure: bool,
    sessions: Mutex<HashMap<String, Session<C>>>,
}

/// A 256-bit random value, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    b64::encode(bytes)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl<C> SessionStore<C> {
    /// An empty store with the configured lifetimes.
    pub fn new(clock: Arc<dyn Clock>, config: &ApprovalsConfig) -> Self {
        SessionStore {
            clock,
            ttl_ms: millis(config.session_ttl),
            idle_ms: millis(config.session_idle),
            secure: config.secure_cookies,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session<C>>> {
        // A panic while holding the lock cannot leave a session half-written
        // in a way that grants more than before: keep serving.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn alive(&self, session: &Session<C>, now: i64) -> bool {
        // A session nobody logged into only serves one ceremony.
        let idle_ms = if session.approver.is_some() {
            self.idle_ms
        } else {
            self.idle_ms.min(millis(CEREMONY_TIMEOUT))
        };
        now - session.created_ms < self.ttl_ms && now - session.seen_ms < idle_ms
    }

    /// Starts an anonymous session; returns its id and CSRF token.
    pub fn create(&self) -> Result<(String, String), Refusal> {
        let now = self.clock.now_ms();
        let mut sessions = self.lock();
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| self.alive(s, now));
        }
        if sessions.len() >= MAX_SESSIONS {
            // Anonymous sessions are cheap to make: the oldest one gives way
            // rather than locking logged-in people out.
            let oldest = sessions
                .iter()
                .filter(|(_, s)| s.approver.is_none())
                .min_by_key(|(_, s)| s.seen_ms)
                .map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                sessions.remove(&id);
            }
        }
        if sessions.len() >= MAX_SESSIONS {
            return Err(Refusal::new(
                ErrorCode::StateUnavailable,
                "too many approval sessions on this replica; try again later",
            ));
        }
        let (id, csrf) = (random_token(), random_token());
        sessions.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                created_ms: now,
                seen_ms: now,
                approver: None,
                ceremony: None,
            },
        );
        Ok((id, csrf))
    }

    /// Runs `f` on the live session `id` (marking it used); `None` when it
    /// is unknown or expired (an expired one is dropped).
    pub fn with<T>(&self, id: &str, f: impl FnOnce(&mut Session<C>) -> T) -> Option<T> {
        let now = self.clock.now_ms();
        let mut sessions = self.lock();
        let alive = sessions.get(id).is_some_and(|s| self.alive(s, now));
        if !alive {
            sessions.remove(id);
            return None;
        }
        let session = sessions.get_mut(id)?;
        session.seen_ms = now;
        Some(f(session))
    }

    /// Replaces session `id` by a new id logged in as `approver`, with a new
    /// CSRF token; returns `(id, csrf)`.
    pub fn log_in(&self, id: &str, approver: &str) -> Option<(String, String)> {
        let now = self.clock.now_ms();
        let mut sessions = self.lock();
        let mut session = sessions.remove(id).filter(|s| self.alive(s, now))?;
        let (new_id, csrf) = (random_token(), random_token());
        session.csrf = csrf.clone();
        session.approver = Some(approver.to_owned());
        session.created_ms = now;
        session.seen_ms = now;
        session.ceremony = None;
        sessions.insert(new_id.clone(), session);
        Some((new_id, csrf))
    }

    /// Ends session `id`.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The cookie's name.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            SECURE_COOKIE
        } else {
            DEV_COOKIE
        }
    }

    /// The `Set-Cookie` value carrying session `id`.
    pub fn cookie(&self, id: &str) -> HeaderValue {
        let max_age = self.ttl_ms / 1000;
        let value = if self.secure {
            format!(
                "{SECURE_COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"
            )
        } else {
            format!(
                "{DEV_COOKIE}={id}; Path=/approvals; HttpOnly; SameSite=Strict; Max-Age={max_age}"
            )
        };
        // base64url ids and fixed text: always a valid header value.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The `Set-Cookie` value that deletes the cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        if self.secure {
            HeaderValue::from_static(
                "__Host-agentauth_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
            )
        } else {
            HeaderValue::from_static(
                "agentauth_session=; Path=/approvals; HttpOnly; SameSite=Strict; Max-Age=0",
            )
        }
    }

    /// The session id in the request's cookies.
    pub fn id_from(&self, headers: &HeaderMap) -> Option<String> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::ManualClock;

    fn store(secure: bool, clock: ManualClock) -> SessionStore<()> {
        let config = ApprovalsConfig {
            session_ttl: Duration::from_secs(3600),
            session_idle: Duration::from_secs(600),
            secure_cookies: secure,
            token_namespace: "agentauth-system".into(),
        };
        SessionStore::new(Arc::new(clock), &config)
    }

    #[test]
    fn secure_cookies_are_host_prefixed_http_only_and_strict() {
        let s = store(true, ManualClock::at_ms(0));
        let cookie = s.cookie("abc");
        let cookie = cookie.to_str().unwrap();
        assert!(
            cookie.starts_with("__Host-agentauth_session=abc;"),
            "{cookie}"
        );
        for attribute in [
            "Path=/;",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=3600",
        ] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
    }

    #[test]
    fn loopback_cookies_are_not_secure_but_still_http_only_and_strict() {
        let s = store(false, ManualClock::at_ms(0));
        let cookie = s.cookie("abc");
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.starts_with("agentauth_session=abc;"), "{cookie}");
        assert!(cookie.contains("Path=/approvals"), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"), "{cookie}");
    }

    #[test]
    fn sessions_expire_by_age_and_by_idleness_and_log_in_renews_the_id() {
        let clock = ManualClock::at_ms(1_000_000);
        let s = store(true, clock.clone());
        let (id, _) = s.create().unwrap();
        clock.advance_ms(299_000);
        assert!(s.with(&id, |_| ()).is_some());
        clock.advance_ms(300_000);
        assert!(
            s.with(&id, |_| ()).is_none(),
            "an anonymous session idles out after one ceremony's time"
        );
        let (id, _) = s.create().unwrap();
        let (id, _) = s.log_in(&id, "dana").unwrap();
        clock.advance_ms(599_000);
        assert!(s.with(&id, |_| ()).is_some());
        clock.advance_ms(600_000);
        assert!(s.with(&id, |_| ()).is_none(), "idle too long");

        let (id, csrf) = s.create().unwrap();
        let (new_id, new_csrf) = s.log_in(&id, "dana").unwrap();
        assert_ne!(new_id, id);
        assert_ne!(new_csrf, csrf);
        assert!(s.with(&id, |_| ()).is_none(), "the old id is gone");
        for _ in 0..7 {
            clock.advance_ms(500_000);
            assert!(s.with(&new_id, |_| ()).is_some());
        }
        clock.advance_ms(500_000);
        assert!(s.with(&new_id, |_| ()).is_none(), "past its TTL");
    }

    #[test]
    fn a_full_store_evicts_the_oldest_anonymous_session_not_logged_in_ones() {
        let clock = ManualClock::at_ms(0);
        let s = store(true, clock.clone());
        let (first, _) = s.create().unwrap();
        let (person, _) = s.create().unwrap();
        let (person, _) = s.log_in(&person, "dana").unwrap();
        for _ in 2..MAX_SESSIONS {
            clock.advance_ms(1);
            s.create().unwrap();
        }
        assert!(s.create().is_ok(), "a full store still starts sessions");
        assert!(
            s.with(&first, |_| ()).is_none(),
            "the oldest anonymous one gave way"
        );
        assert!(s.with(&person, |_| ()).is_some());
    }

    #[test]
    fn ids_are_read_from_the_cookie_header() {
        let s = store(false, ManualClock::at_ms(0));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; agentauth_session=xyz; c=d"),
        );
        assert_eq!(s.id_from(&headers).as_deref(), Some("xyz"));
        assert_eq!(random_token().len(), 43);
    }
}
