//! Approver login with a registered passkey (WebAuthn authentication through
//! webauthn-rs, user verification required), and logout.
//!
//! ```text
//!  POST login/begin  {approver} ──▶ request options over the Approver's passkeys
//!  POST login/finish <assertion> ──▶ webauthn-rs verifies (signature, origin, rpId, UV, counter)
//!                                ──▶ the passkey's signCount advances in the Approver status
//!                                ──▶ the session gets a new id and CSRF token, logged in
//! ```

use std::sync::Arc;

use agentauth_core::ErrorCode;
use agentauth_core::audit::{Draft, kinds};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, json};
use webauthn_rs::prelude::{PasskeyAuthentication, PublicKeyCredential};

use super::guard::AnySession;
use super::reply::{Body, Refusal, no_store};
use super::session::ceremony_live;
use super::{Approvals, approvers, cose};
use agentauth_core::b64;

/// A login between begin and finish.
pub struct PendingLogin {
    approver: String,
    state: PasskeyAuthentication,
    started_ms: i64,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("approver", &self.approver)
            .field("started_ms", &self.started_ms)
            .finish_non_exhaustive()
    }
}

/// `POST login/begin` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginLogin {
    /// The Approver's name.
    pub approver: String,
}

/// `POST login/begin`: authentication options over the Approver's passkeys.
pub async fn begin(
    State(approvals): State<Arc<Approvals>>,
    session: AnySession,
    Body(body): Body<BeginLogin>,
) -> Result<Response, Refusal> {
    let ctx = &approvals.ctx;
    let found = approvers::get(ctx.client.clone(), &body.approver).await?;
    let stored = found
        .status
        .as_ref()
        .map(|s| s.passkeys.clone())
        .unwrap_or_default();
    if stored.is_empty() {
        return Err(Refusal::new(
            ErrorCode::PasskeyCeremonyFailed,
            format!(
                "approver {} has no passkey yet; enroll one with an enrollment token",
                body.approver
            ),
        ));
    }
    let passkeys = stored
        .iter()
        .map(cose::passkey_from)
        .collect::<Result<Vec<_>, _>>()?;
    let (options, state) = approvals
        .webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| Refusal::new(ErrorCode::PasskeyCeremonyFailed, e.to_string()))?;
    let pending = PendingLogin {
        approver: body.approver,
        state,
        started_ms: ctx.clock.now_ms(),
    };
    approvals
        .sessions
        .with(&session.id, |s| s.login = Some(pending))
        .ok_or_else(|| Refusal::new(ErrorCode::SessionInvalid, "the session ended"))?;
    Ok(no_store(Json(options)))
}

/// `POST login/finish`: verifies the assertion and logs the session in
/// under a new id.
pub async fn finish(
    State(approvals): State<Arc<Approvals>>,
    session: AnySession,
    Body(credential): Body<PublicKeyCredential>,
) -> Result<Response, Refusal> {
    let ctx = &approvals.ctx;
    let now = ctx.clock.now_ms();
    let pending = approvals
        .sessions
        .with(&session.id, |s| s.login.take())
        .flatten()
        .filter(|p| ceremony_live(p.started_ms, now))
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::PasskeyCeremonyFailed,
                "no login is in progress in this session (or it timed out); begin again",
            )
        })?;
    let result = approvals
        .webauthn
        .finish_passkey_authentication(&credential, &pending.state)
        .map_err(|e| {
            Refusal::new(
                ErrorCode::PasskeyCeremonyFailed,
                format!("the passkey assertion does not verify: {e}"),
            )
        })?;
    let credential_id = b64::encode(result.cred_id());
    approvers::advance_counter(
        ctx.client.clone(),
        &pending.approver,
        &credential_id,
        result.counter(),
    )
    .await?;
    let (id, csrf) = approvals
        .sessions
        .log_in(&session.id, &pending.approver)
        .ok_or_else(|| Refusal::new(ErrorCode::SessionInvalid, "the session ended"))?;
    let mut details = Map::new();
    details.insert("approver".into(), json!(pending.approver));
    details.insert("credentialId".into(), json!(credential_id));
    ctx.audit
        .record(Draft {
            kind: kinds::APPROVER_LOGIN.into(),
            agent: None,
            grant: None,
            decision: None,
            reason: None,
            details,
        })
        .await;
    let mut response = no_store(Json(
        json!({"approver": pending.approver, "csrfToken": csrf}),
    ));
    response
        .headers_mut()
        .insert(header::SET_COOKIE, approvals.sessions.cookie(&id));
    Ok(response)
}

/// `POST logout`: ends the session and deletes its cookie.
pub async fn logout(
    State(approvals): State<Arc<Approvals>>,
    session: AnySession,
) -> Result<Response, Refusal> {
    approvals.sessions.remove(&session.id);
    let mut response = no_store(Json(json!({"loggedOut": true})));
    response
        .headers_mut()
        .insert(header::SET_COOKIE, approvals.sessions.clear_cookie());
    Ok(response)
}
