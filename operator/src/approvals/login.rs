//! Starting a session, logging in with a registered passkey (WebAuthn
//! authentication through webauthn-rs, user verification required), and
//! logging out.
//!
//! ```text
//!  GET  session      ──▶ the live session's CSRF token, or a new anonymous session (+ cookie)
//!  POST login/begin  {approver} ──▶ request options over the Approver's passkeys
//!  POST login/finish <assertion> ──▶ webauthn-rs verifies (signature, origin, rpId, UV, counter)
//!                                ──▶ the passkey's signCount advances in the Approver status
//!                                ──▶ the session gets a new id and CSRF token, logged in
//! ```

use std::sync::Arc;

use agentauth_core::audit::{Draft, kinds};
use agentauth_core::{ErrorCode, b64};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, json};
use webauthn_rs::prelude::PublicKeyCredential;

use super::ceremony::{self, Ceremony, Login};
use super::guard::{AnySession, check_site};
use super::reply::{Body, Refusal, no_store};
use super::setup::Approvals;
use super::{approvers, cose};

/// `POST login/begin` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginLogin {
    /// The Approver's name.
    pub approver: String,
}

/// `GET /session`: the CSRF token of the live session, or of a new
/// anonymous one (with its cookie).
pub async fn show(
    State(approvals): State<Arc<Approvals>>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    check_site(&approvals, &headers)?;
    let sessions = &approvals.sessions;
    let existing = sessions
        .id_from(&headers)
        .and_then(|id| sessions.with(&id, |s| (s.csrf.clone(), s.approver.clone())));
    if let Some((csrf, approver)) = existing {
        return Ok(no_store(Json(
            json!({"csrfToken": csrf, "approver": approver}),
        )));
    }
    let (id, csrf) = sessions.create()?;
    let mut response = no_store(Json(json!({"csrfToken": csrf, "approver": null})));
    response
        .headers_mut()
        .insert(header::SET_COOKIE, sessions.cookie(&id));
    Ok(response)
}

/// `POST login/begin`: authentication options over the Approver's passkeys.
pub async fn begin(
    State(approvals): State<Arc<Approvals>>,
    session: AnySession,
    Body(body): Body<BeginLogin>,
) -> Result<Response, Refusal> {
    let ctx = &approvals.ctx;
    let found = approvers::get(ctx.client.clone(), &body.approver).await?;
    let stored = approvers::passkeys(&found);
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
    let login = Login {
        approver: body.approver,
        state,
    };
    ceremony::begin(
        &approvals.sessions,
        &session.id,
        Ceremony::Login(login),
        ctx.clock.now_ms(),
    )?;
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
    let login = ceremony::finish_login(&approvals.sessions, &session.id, now)?;
    let result = approvals
        .webauthn
        .finish_passkey_authentication(&credential, &login.state)
        .map_err(|e| {
            Refusal::new(
                ErrorCode::PasskeyCeremonyFailed,
                format!("the passkey assertion does not verify: {e}"),
            )
        })?;
    let credential_id = b64::encode(result.cred_id());
    approvers::advance_counter(
        ctx.client.clone(),
        &login.approver,
        &credential_id,
        result.counter(),
    )
    .await?;
    let (id, csrf) = approvals
        .sessions
        .log_in(&session.id, &login.approver)
        .ok_or_else(|| Refusal::new(ErrorCode::SessionInvalid, "the session ended"))?;
    let mut details = Map::new();
    details.insert("approver".into(), json!(login.approver));
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
    let mut response = no_store(Json(json!({"approver": login.approver, "csrfToken": csrf})));
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
