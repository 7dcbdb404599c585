//! Passkey enrollment: a person with a one-time enrollment token registers
//! a passkey for their Approver (WebAuthn registration through webauthn-rs,
//! user verification required, attestation `none`).
//!
//! ```text
//!  POST enroll/begin  {approver, token} ──▶ tokens::check ──▶ registration options
//!                                            (ceremony kept in the session)
//!  POST enroll/finish <credential>      ──▶ token not expired since begin
//!                                       ──▶ webauthn-rs verifies ──▶ ES256 only (cose)
//!                                       ──▶ tokens::consume (single use)
//!                                       ──▶ Approver.status.passkeys += {credentialId, publicKey, signCount, createdAt}
//! ```
//!
//! The passkey is added through [`super::approvers::update_passkeys`], so
//! concurrent writers never lose each other's passkeys.

use std::sync::Arc;

use agentauth_core::audit::{Draft, kinds};
use agentauth_core::{ErrorCode, b64};
use agentauth_crds::Passkey;
use agentauth_crds::approver::MAX_PASSKEYS;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;
use serde_json::{Map, json};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{RegisterPublicKeyCredential, Uuid};

use super::ceremony::{self, Ceremony, Enrollment};
use super::guard::AnySession;
use super::reply::{Body, Refusal, no_store};
use super::setup::Approvals;
use super::{approvers, cose, tokens};

/// `POST enroll/begin` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginEnrollment {
    /// The Approver's name.
    pub approver: String,
    /// The one-time enrollment token.
    pub token: String,
}

/// The stable WebAuthn user handle of an Approver (16 bytes of a digest of
/// its name: the same person keeps one handle across passkeys).
fn user_handle(approver: &str) -> Uuid {
    let digest = Sha256::digest(format!("agentauth approver {approver}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// `POST enroll/begin`: checks the token and returns registration options.
pub async fn begin(
    State(approvals): State<Arc<Approvals>>,
    session: AnySession,
    Body(body): Body<BeginEnrollment>,
) -> Result<Response, Refusal> {
    let ctx = &approvals.ctx;
    let now = ctx.clock.now_ms();
    let token = tokens::check(
        ctx.client.clone(),
        &approvals.config.token_namespace,
        &body.approver,
        &body.token,
        now,
    )
    .await?;
    let found = approvers::get(ctx.client.clone(), &body.approver).await?;
    let existing = approvers::passkeys(&found);
    if existing.len() >= MAX_PASSKEYS {
        return Err(Refusal::new(
            ErrorCode::RequestInvalid,
            format!(
                "approver {} already has {MAX_PASSKEYS} passkeys",
                body.approver
            ),
        ));
    }
    let exclude = existing
        .iter()
        .filter_map(|p| b64::decode(&p.credential_id, ErrorCode::RequestInvalid).ok())
        .map(Into::into)
        .collect();
    let (options, state) = approvals
        .webauthn
        .start_passkey_registration(
            user_handle(&body.approver),
            &found.spec.email,
            &found.spec.display_name,
            Some(exclude),
        )
        .map_err(|e| Refusal::new(ErrorCode::PasskeyCeremonyFailed, e.to_string()))?;
    let enrollment = Enrollment { token, state };
    ceremony::begin(
        &approvals.sessions,
        &session.id,
        Ceremony::Enroll(enrollment),
        now,
    )?;
    Ok(no_store(Json(options)))
}

/// `POST enroll/finish`: verifies the registration, uses the token up and
/// registers the passkey.
pub async fn finish(
    State(approvals): State<Arc<Approvals>>,
    session: AnySession,
    Body(credential): Body<RegisterPublicKeyCredential>,
) -> Result<Response, Refusal> {
    let ctx = &approvals.ctx;
    let now = ctx.clock.now_ms();
    let enrollment = ceremony::finish_enroll(&approvals.sessions, &session.id, now)?;
    enrollment.token.still_valid(now)?;
    let new = verified_passkey(&approvals, &credential, &enrollment, now)?;
    let name = enrollment.token.approver.clone();
    tokens::consume(
        ctx.client.clone(),
        &approvals.config.token_namespace,
        &enrollment.token,
    )
    .await?;
    approvers::update_passkeys(ctx.client.clone(), &name, |list| {
        if list.iter().any(|p| p.credential_id == new.credential_id) {
            return Err(Refusal::new(
                ErrorCode::RequestInvalid,
                "this passkey is already registered",
            ));
        }
        list.push(new.clone());
        Ok(true)
    })
    .await?;
    audit(&approvals, &name, &new.credential_id).await;
    tracing::info!(approver = %name, credential_id = new.credential_id, "passkey enrolled");
    Ok(no_store(Json(
        json!({"approver": name, "credentialId": new.credential_id}),
    )))
}

/// The passkey `credential` registers, once webauthn-rs has verified it
/// against the enrollment's state and [`cose`] has accepted its key.
fn verified_passkey(
    approvals: &Approvals,
    credential: &RegisterPublicKeyCredential,
    enrollment: &Enrollment,
    now_ms: i64,
) -> Result<Passkey, Refusal> {
    let passkey = approvals
        .webauthn
        .finish_passkey_registration(credential, &enrollment.state)
        .map_err(|e| {
            Refusal::new(
                ErrorCode::PasskeyCeremonyFailed,
                format!("the passkey registration does not verify: {e}"),
            )
        })?;
    let (credential_id, public_key) = cose::jwk_of(&passkey)?;
    let sign_count = webauthn_rs::prelude::Credential::from(passkey).counter;
    Ok(Passkey {
        credential_id,
        public_key,
        sign_count,
        created_at: Time(jiff::Timestamp::from_millisecond(now_ms).unwrap_or_default()),
    })
}

async fn audit(approvals: &Approvals, approver: &str, credential_id: &str) {
    let mut details = Map::new();
    details.insert("approver".into(), json!(approver));
    details.insert("credentialId".into(), json!(credential_id));
    approvals
        .ctx
        .audit
        .record(Draft {
            kind: kinds::PASSKEY_ENROLLED.into(),
            agent: None,
            grant: None,
            decision: None,
            reason: None,
            details,
        })
        .await;
}
