//! WebAuthn ceremonies between their begin and finish requests: what a
//! session remembers from `…/begin` to check `…/finish` against.
//!
//! ```text
//!  …/begin  ──▶ begin: the session holds this ceremony (one per session: a new
//!               begin replaces any other in progress) and when it began
//!  …/finish ──▶ finish_*: take the session's ceremony (a finish ends it, matched or not)
//!               ─▶ begun within CEREMONY_TIMEOUT? ─▶ the expected kind (and, to decide,
//!                  the same grant and decision)?
//!               ─▶ no: 400 passkey_ceremony_failed (enroll, login) or
//!                      approval_challenge_mismatch (decide); begin again
//! ```
//!
//! Taking before checking means a challenge is answered at most once: an
//! assertion for another grant, a late one or a replayed one costs the
//! ceremony, so nobody can try several answers against one challenge.

use agentauth_core::ErrorCode;
use agentauth_core::approval::Decision;
use agentauth_crds::approval::Binding;
use webauthn_rs::prelude::{PasskeyAuthentication, PasskeyRegistration};

use super::reply::Refusal;
use super::session::{CEREMONY_TIMEOUT, SessionStore};
use super::tokens;

/// The sessions of the approval API, each holding at most one ceremony.
pub type Sessions = SessionStore<InProgress>;

/// A ceremony a session is in the middle of.
#[derive(Debug)]
pub enum Ceremony {
    /// Registering a passkey with an enrollment token.
    Enroll(Enrollment),
    /// Logging in with a registered passkey.
    Login(Login),
    /// Signing an approve or deny challenge over one grant.
    Decide(DecisionChallenge),
}

/// What an enrollment's finish is checked against.
pub struct Enrollment {
    /// The enrollment token checked at begin (checked again, then used up).
    pub token: tokens::Checked,
    /// webauthn-rs's registration state.
    pub state: PasskeyRegistration,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("approver", &self.token.approver)
            .finish_non_exhaustive()
    }
}

/// What a login's finish is checked against.
pub struct Login {
    /// The Approver logging in.
    pub approver: String,
    /// webauthn-rs's authentication state.
    pub state: PasskeyAuthentication,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("approver", &self.approver)
            .finish_non_exhaustive()
    }
}

/// The values a decision's challenge was computed over at begin; finish
/// re-reads the grant and refuses when any of them moved.
#[derive(Clone, Debug)]
pub struct DecisionChallenge {
    /// The grant's namespace.
    pub namespace: String,
    /// The grant's name.
    pub name: String,
    /// The grant's uid.
    pub uid: String,
    /// The grant's generation.
    pub generation: i64,
    /// The digest of the grant's spec.
    pub spec_digest: String,
    /// The envelope digest and agent key thumbprint the approval binds.
    pub binding: Binding,
    /// Approve or deny.
    pub decision: Decision,
    /// The random value that makes each challenge unique.
    pub nonce: String,
}

/// A ceremony and when it began, as a session holds it.
#[derive(Debug)]
pub struct InProgress {
    ceremony: Ceremony,
    started_ms: i64,
}

/// Whether a ceremony begun at `started_ms` may still be finished at `now_ms`.
fn live(started_ms: i64, now_ms: i64) -> bool {
    let timeout = i64::try_from(CEREMONY_TIMEOUT.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(started_ms) <= timeout
}

/// Begins `ceremony` at `now_ms` in session `session_id`, replacing any
/// ceremony in progress there.
pub fn begin(
    sessions: &Sessions,
    session_id: &str,
    ceremony: Ceremony,
    now_ms: i64,
) -> Result<(), Refusal> {
    let in_progress = InProgress {
        ceremony,
        started_ms: now_ms,
    };
    sessions
        .with(session_id, |s| s.ceremony = Some(in_progress))
        .ok_or_else(|| Refusal::new(ErrorCode::SessionInvalid, "the session ended"))
}

/// Takes the ceremony of session `session_id`, and returns what `expected`
/// keeps of it when it is still live; otherwise `refusal`.
fn finish<T>(
    sessions: &Sessions,
    session_id: &str,
    now_ms: i64,
    expected: impl FnOnce(Ceremony) -> Option<T>,
    refusal: impl FnOnce() -> Refusal,
) -> Result<T, Refusal> {
    sessions
        .with(session_id, |s| s.ceremony.take())
        .flatten()
        .filter(|c| live(c.started_ms, now_ms))
        .and_then(|c| expected(c.ceremony))
        .ok_or_else(refusal)
}

/// Finishes the session's enrollment.
pub fn finish_enroll(
    sessions: &Sessions,
    session_id: &str,
    now_ms: i64,
) -> Result<Enrollment, Refusal> {
    let expected = |c| match c {
        Ceremony::Enroll(enrollment) => Some(enrollment),
        _ => None,
    };
    finish(sessions, session_id, now_ms, expected, || {
        Refusal::new(
            ErrorCode::PasskeyCeremonyFailed,
            "no enrollment is in progress in this session (or it timed out); begin again",
        )
    })
}

/// Finishes the session's login.
pub fn finish_login(sessions: &Sessions, session_id: &str, now_ms: i64) -> Result<Login, Refusal> {
    let expected = |c| match c {
        Ceremony::Login(login) => Some(login),
        _ => None,
    };
    finish(sessions, session_id, now_ms, expected, || {
        Refusal::new(
            ErrorCode::PasskeyCeremonyFailed,
            "no login is in progress in this session (or it timed out); begin again",
        )
    })
}

/// Finishes the session's `decision` on grant `namespace/name`; a ceremony
/// begun for another grant or the other decision is refused (and ended).
pub fn finish_decide(
    sessions: &Sessions,
    session_id: &str,
    now_ms: i64,
    (namespace, name): (&str, &str),
    decision: Decision,
) -> Result<DecisionChallenge, Refusal> {
    let expected = |c| match c {
        Ceremony::Decide(d)
            if d.namespace == namespace && d.name == name && d.decision == decision =>
        {
            Some(d)
        }
        _ => None,
    };
    finish(sessions, session_id, now_ms, expected, || {
        Refusal::new(
            ErrorCode::ApprovalChallengeMismatch,
            format!(
                "no {} ceremony for grant {namespace}/{name} is in progress in this \
                 session (or it timed out); begin again",
                decision.as_str()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::approvals::config::ApprovalsConfig;
    use crate::clock::ManualClock;

    fn sessions(clock: ManualClock) -> Sessions {
        let config = ApprovalsConfig {
            session_ttl: Duration::from_secs(3600),
            session_idle: Duration::from_secs(600),
            secure_cookies: true,
            token_namespace: "agentauth-system".into(),
        };
        SessionStore::new(Arc::new(clock), &config)
    }

    fn approve(name: &str) -> Ceremony {
        Ceremony::Decide(DecisionChallenge {
            namespace: "ns".into(),
            name: name.into(),
            uid: "u".into(),
            generation: 1,
            spec_digest: "s".into(),
            binding: Binding {
                envelope_digest: String::new(),
                agent_key_thumbprint: "t".into(),
            },
            decision: Decision::Approved,
            nonce: "n".into(),
        })
    }

    fn finish_approve(s: &Sessions, id: &str, now: i64, name: &str) -> Result<String, ErrorCode> {
        finish_decide(s, id, now, ("ns", name), Decision::Approved)
            .map(|d| d.name)
            .map_err(|r| r.0.code)
    }

    /// Threat: an assertion tried against several challenges. A finish that
    /// does not match ends the ceremony, so the right answer cannot follow.
    #[test]
    fn a_challenge_is_answered_at_most_once() {
        let s = sessions(ManualClock::at_ms(0));
        let (id, _) = s.create().unwrap();
        begin(&s, &id, approve("a"), 0).unwrap();
        let mismatch = Err(ErrorCode::ApprovalChallengeMismatch);
        assert_eq!(finish_approve(&s, &id, 0, "b"), mismatch);
        assert_eq!(
            finish_approve(&s, &id, 0, "a"),
            mismatch,
            "ended by the miss"
        );
        assert_eq!(
            finish_login(&s, &id, 0)
                .map(|l| l.approver)
                .map_err(|r| r.0.code),
            Err(ErrorCode::PasskeyCeremonyFailed)
        );

        begin(&s, &id, approve("a"), 0).unwrap();
        assert_eq!(finish_approve(&s, &id, 0, "a"), Ok("a".into()));
        assert_eq!(finish_approve(&s, &id, 0, "a"), mismatch, "used up");
    }

    #[test]
    fn one_ceremony_per_session_within_its_timeout() {
        let s = sessions(ManualClock::at_ms(0));
        let (id, _) = s.create().unwrap();
        begin(&s, &id, approve("a"), 0).unwrap();
        begin(&s, &id, approve("b"), 0).unwrap();
        let mismatch = Err(ErrorCode::ApprovalChallengeMismatch);
        assert_eq!(finish_approve(&s, &id, 0, "a"), mismatch, "replaced by b");

        // The session's own clock stays put: only the ceremony's age moves.
        let timeout = i64::try_from(CEREMONY_TIMEOUT.as_millis()).unwrap();
        begin(&s, &id, approve("a"), 0).unwrap();
        assert_eq!(finish_approve(&s, &id, timeout, "a"), Ok("a".into()));
        begin(&s, &id, approve("a"), timeout).unwrap();
        assert_eq!(
            finish_approve(&s, &id, 2 * timeout + 1, "a"),
            mismatch,
            "timed out"
        );
        assert!(
            begin(&s, "no-such-session", approve("a"), 0).is_err(),
            "a session that ended holds nothing"
        );
    }
}
