//! Discovery documents: `/.well-known/jwks.json` (the keys that sign
//! tokens, each with the root's certificate, DESIGN §6) and
//! `/.well-known/oauth-authorization-server` (RFC 8414 metadata).
//!
//! Both may be cached for a minute. An issuing key signs from the moment it
//! is created, so a verifier that meets an unknown `kid` refetches the JWKS
//! rather than wait; a retired key stays published until every token it
//! signed has expired, so a cached copy never lacks a key still in use.

use agentauth_core::capability::CapabilityType;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ApiState;
use super::token::GRANT_TYPE;

/// How long clients may cache the discovery documents.
const CACHE_CONTROL: &str = "public, max-age=60";

/// Handles `GET /.well-known/jwks.json`.
pub async fn jwks(State(state): State<ApiState>) -> Response {
    let now = state.ctx.clock.now_secs();
    cached(axum::Json(state.keys.jwks(now)).into_response())
}

/// RFC 8414 authorization server metadata, with the grants endpoint as an
/// extension member.
#[derive(Debug, Serialize)]
struct Metadata {
    issuer: String,
    token_endpoint: String,
    jwks_uri: String,
    /// No authorization endpoint, hence no response types (RFC 8414 §2
    /// requires the member).
    response_types_supported: [&'static str; 0],
    grant_types_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 1],
    dpop_signing_alg_values_supported: [&'static str; 1],
    authorization_details_types_supported: Vec<&'static str>,
    /// Where agents ask for grants (`POST`), AgentAuth's extension.
    agentauth_grants_endpoint: String,
}

/// Handles `GET /.well-known/oauth-authorization-server`.
pub async fn metadata(State(state): State<ApiState>) -> Response {
    let base = &state.public_url;
    let metadata = Metadata {
        issuer: base.clone(),
        token_endpoint: format!("{base}/v1/token"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        response_types_supported: [],
        grant_types_supported: [GRANT_TYPE],
        // The DPoP proof is the client's authentication.
        token_endpoint_auth_methods_supported: ["none"],
        dpop_signing_alg_values_supported: ["ES256"],
        authorization_details_types_supported: CapabilityType::ALL
            .iter()
            .map(|t| t.detail_type())
            .collect(),
        agentauth_grants_endpoint: format!("{base}/v1/grants"),
    };
    cached(axum::Json(metadata).into_response())
}

fn cached(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    response
}
