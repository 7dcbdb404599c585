//! `POST /v1/token`: an access token for an approved grant (DESIGN §4.3),
//! answered from the informer caches with no apiserver round trip.
//!
//! Request (`DPoP` header: a proof of the grant's agent's key, RFC 9449 §5),
//! as JSON or as an OAuth form:
//!
//! ```text
//!  {"grant": "<namespace>/<name>", "expires_in": 120}        expires_in optional
//!  grant=<namespace>%2F<name>&expires_in=120&grant_type=urn:agentauth:grant-type:capability-grant
//! ```
//!
//! JSON is strict (unknown members refused); the form ignores parameters
//! it does not know, as RFC 6749 §3.2 asks, but `grant_type`, when sent,
//! must be [`GRANT_TYPE`]. Answer (`Cache-Control: no-store`):
//!
//! ```text
//!  200 {"access_token": "<at+jwt>", "token_type": "DPoP", "expires_in": 300}
//! ```
//!
//! With server nonces on ([`super::dpop_nonce`]), a proof without a valid
//! nonce is refused `400 use_dpop_nonce` (RFC 9449 §8), and every answer,
//! success or refusal, carries the nonce to use in `DPoP-Nonce`.
//!
//! Order of checks, so that a caller who does not hold the agent's key
//! learns nothing about the grant: body, proof (then nonce, then replay), grant exists,
//! proof key = the agent's registered key, then phase, `spec.revoked`, the
//! recorded approval verified again (passkey signature; still bound to the
//! current envelope spec and agent key, else `grant_suspended`), the
//! shared state's revocation set (unreachable: `state_unavailable`, fail
//! closed), expiry, envelope. Each outcome is counted in
//! `agentauth_token_requests_total{outcome}`; an issued token is recorded as
//! a `token_issued` audit event.

use std::time::Instant;

use agentauth_core::audit::{Draft, kinds};
use agentauth_core::token::AccessTokenClaims;
use agentauth_core::{ErrorCode, dpop, jcs};
use agentauth_crds::CapabilityGrant;
use agentauth_signer::CurrentKey;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::body::{self, Format};
use super::dpop_auth::{authenticate, held_grant};
use super::dpop_nonce;
use super::issuer::{self, Limits, Subject};
use super::problem::ApiError;
use super::{ApiState, split_qualified};

/// The `grant_type` of a token request, when a client sends one.
pub const GRANT_TYPE: &str = "urn:agentauth:grant-type:capability-grant";

/// A token request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    /// `namespace/name` of the grant.
    grant: String,
    /// The lifetime wanted, in seconds (replaces the default; still capped).
    #[serde(default)]
    expires_in: Option<i64>,
    /// Optional; must be [`GRANT_TYPE`].
    #[serde(default)]
    grant_type: Option<String>,
}

/// A token response (RFC 6749 §5.1, RFC 9449 §5).
#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
}

/// Handles `POST /v1/token`.
pub async fn issue(State(state): State<ApiState>, request: Request) -> Response {
    let outcome = try_issue(&state, request).await;
    let label = match &outcome {
        Ok(_) => "issued",
        Err(e) => e.code.as_str(),
    };
    state
        .ctx
        .metrics
        .token_requests
        .with_label_values(&[label])
        .inc();
    let mut response = match outcome {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    if let Some(issuer) = &state.dpop_nonce {
        dpop_nonce::attach(issuer, state.ctx.clock.now_secs(), &mut response);
    }
    response
}

async fn try_issue(state: &ApiState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let request = read_request(&parts.headers, body).await?;
    let (namespace, name) = split_qualified(&request.grant)
        .ok_or_else(|| ApiError::invalid("grant must be \"<namespace>/<name>\""))?;

    let nonce = state.dpop_nonce.as_deref();
    let proof = authenticate(
        state,
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        nonce,
    )
    .await?;
    let caches = &state.ctx.caches;
    let grant = held_grant(state, namespace, name, &proof.jkt)?;
    let agent_name = &grant.spec.agent_ref.name;

    let now = state.ctx.clock.now_secs();
    let usable = issuer::usable(&grant, now)?;
    // Whoever wrote the status, the recorded approval must verify and still
    // cover the envelope and the agent's key (DESIGN §4.2, §13); memoized.
    caches
        .approval_verified(&grant, &state.ctx.relying_party)
        .map_err(|e| ApiError::from(e).with_status(StatusCode::FORBIDDEN))?;
    match state.ctx.state.is_revoked(&usable.uid).await {
        Ok(false) => {}
        Ok(true) => {
            return Err(ApiError::new(
                ErrorCode::GrantRevoked,
                "the grant was revoked",
            ));
        }
        Err(e) => {
            let detail = format!("cannot check whether the grant is revoked: {e}");
            return Err(ApiError::unavailable(detail));
        }
    }
    let (env, envelope_max_secs) = envelope(state, &grant)?;
    let key = state.keys.current_key();
    let limits = Limits {
        default_secs: state.default_token_ttl_secs,
        requested_secs: request.expires_in,
        envelope_max_secs,
        grant_expires_at: usable.expires_at,
        key_not_after: key.not_after,
    };
    let exp = issuer::expiry(now, &limits)?;
    let subject = Subject {
        issuer: &state.public_url,
        agent: format!("{namespace}/{agent_name}"),
        jkt: proof.jkt,
        jti: dpop::new_jti(),
        env,
    };
    let claims = issuer::claims(&grant, &usable, subject, now, exp);
    let token = sign(state, &key, &claims).await?;
    record(state, &claims, &key.kid, &request.grant).await;

    let body = TokenResponse {
        access_token: token,
        token_type: "DPoP",
        expires_in: exp - now,
    };
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Reads and checks the request body (JSON or form).
async fn read_request(headers: &HeaderMap, body: Body) -> Result<TokenRequest, ApiError> {
    let format = body::format(headers, &[Format::Json, Format::Form])?;
    let bytes = body::read(headers, body).await?;
    let request = match format {
        Format::Json => body::json::<TokenRequest>(&bytes)?,
        Format::Form => from_form(&bytes)?,
    };
    if request
        .grant_type
        .as_deref()
        .is_some_and(|t| t != GRANT_TYPE)
    {
        return Err(ApiError::invalid(format!(
            "grant_type must be {GRANT_TYPE}"
        )));
    }
    if request.expires_in.is_some_and(|s| s < 1) {
        return Err(ApiError::invalid(
            "expires_in must be a positive number of seconds",
        ));
    }
    Ok(request)
}

/// The `env` claim and `maxTokenTtl` (seconds) of the grant's envelope.
/// A grant naming an envelope that is not there gets no token: its limits
/// could not be applied.
fn envelope(
    state: &ApiState,
    grant: &CapabilityGrant,
) -> Result<(Option<String>, Option<i64>), ApiError> {
    let Some(reference) = &grant.spec.envelope_ref else {
        return Ok((None, None));
    };
    let namespace = grant.metadata.namespace.as_deref().unwrap_or_default();
    let envelope = state
        .ctx
        .caches
        .envelope(namespace, &reference.name)
        .ok_or_else(|| {
            let detail = format!(
                "the grant's envelope {namespace}/{} does not exist",
                reference.name
            );
            ApiError::new(ErrorCode::EnvelopeInvalid, detail)
        })?;
    let digest = jcs::digest_b64(&envelope.spec).map_err(|e| {
        let detail = format!("cannot digest the envelope: {}", e.message);
        ApiError::new(ErrorCode::EnvelopeInvalid, detail)
    })?;
    let ttl = envelope.spec.max_token_ttl;
    let ttl = ttl.map(|p| i64::try_from(p.as_millis() / 1000).unwrap_or(i64::MAX));
    Ok((Some(digest), ttl))
}

/// Signs with the key the expiry was capped for (not whatever is current
/// by now: a rotation in between would change `kid` and the cap).
async fn sign(
    state: &ApiState,
    key: &CurrentKey,
    claims: &AccessTokenClaims,
) -> Result<String, ApiError> {
    let started = Instant::now();
    let signed = agentauth_signer::sign_token(&*key.signer, claims).await;
    // In direct mode the root signer measures itself (`MeteredSigner`).
    if !state.keys.is_direct() {
        state
            .ctx
            .metrics
            .signed("issuing", started.elapsed().as_secs_f64(), signed.is_ok());
    }
    signed.map_err(|e| {
        tracing::error!(error = %e, "failed to sign an access token");
        ApiError::new(
            ErrorCode::SigningFailed,
            "the access token could not be signed",
        )
    })
}

/// Records the `token_issued` audit event.
async fn record(state: &ApiState, claims: &AccessTokenClaims, kid: &str, grant: &str) {
    let mut details = serde_json::Map::new();
    details.insert("jti".into(), claims.jti.clone().into());
    details.insert("kid".into(), kid.into());
    details.insert("aud".into(), claims.aud.clone().into());
    details.insert("exp".into(), claims.exp.into());
    details.insert("generation".into(), claims.grant.generation.into());
    let draft = Draft {
        kind: kinds::TOKEN_ISSUED.into(),
        agent: Some(claims.sub.clone()),
        grant: Some(grant.to_owned()),
        decision: Some("allow".into()),
        reason: None,
        details,
    };
    state.ctx.audit.record(draft).await;
}

/// A token request from an OAuth form.
fn from_form(bytes: &[u8]) -> Result<TokenRequest, ApiError> {
    let mut grant = None;
    let mut expires_in = None;
    let mut grant_type = None;
    for (name, value) in body::form(bytes)? {
        match name.as_str() {
            "grant" => grant = Some(value),
            "expires_in" => {
                let secs = value.parse::<i64>().map_err(|_| {
                    ApiError::invalid("expires_in must be a whole number of seconds")
                })?;
                expires_in = Some(secs);
            }
            "grant_type" => grant_type = Some(value),
            _ => {}
        }
    }
    Ok(TokenRequest {
        grant: grant.ok_or_else(|| ApiError::invalid("the form has no grant parameter"))?,
        expires_in,
        grant_type,
    })
}
