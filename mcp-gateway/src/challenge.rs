//! What an agent without valid credentials is told: RFC 9728 protected
//! resource metadata, and the `WWW-Authenticate` challenge the MCP
//! authorization spec (2025-06-18) requires on a 401.
//!
//! ```text
//!  no Authorization           ─▶ 401  WWW-Authenticate: DPoP algs="ES256", resource_metadata="<url>"
//!  token_* from the verifier  ─▶ 401  … error="invalid_token", error_description="<code>: …"
//!  dpop_* from the verifier   ─▶ 401  … error="invalid_dpop_proof", …
//!  use_dpop_nonce             ─▶ 401  … error="use_dpop_nonce" + DPoP-Nonce (RFC 9449 §9)
//!  GET /.well-known/oauth-protected-resource[/<path>] ─▶ the metadata document
//! ```
//!
//! Only the DPoP scheme is offered (RFC 9449 §7.1): AgentAuth tokens are
//! always sender-constrained, and a Bearer challenge would invite a client
//! to send a token this resource refuses.

use agentauth_core::ErrorCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Where the metadata lives (RFC 9728 §3).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The public facts the challenges and the metadata are made of.
#[derive(Clone, Debug)]
pub struct Resource {
    /// The resource identifier: the MCP endpoint's public URL.
    pub resource: String,
    /// The URL of this resource's metadata document.
    pub metadata_url: String,
    /// The operator's issuer URL.
    pub authorization_server: String,
    /// The grants' `serviceProvider` (the tokens' audience).
    pub audience: String,
    /// The scopes worth naming: the tool map's capability types.
    pub scopes: Vec<String>,
}

/// Which OAuth error a 401 carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// No credentials: no `error` (RFC 6750 §3.1).
    Missing,
    /// The token is not usable.
    InvalidToken,
    /// The DPoP proof is not acceptable.
    InvalidProof,
    /// Retry with the server's nonce.
    UseNonce,
}

impl Challenge {
    /// The challenge for a verifier refusal, `None` when the refusal is
    /// about what the grant allows rather than the credentials.
    pub fn for_code(code: &str) -> Option<Challenge> {
        if code == ErrorCode::UseDpopNonce.as_str() {
            Some(Challenge::UseNonce)
        } else if code.starts_with("dpop_") {
            Some(Challenge::InvalidProof)
        } else if code.starts_with("token_") || code == ErrorCode::GrantUnknown.as_str() {
            Some(Challenge::InvalidToken)
        } else {
            None
        }
    }
}

impl Resource {
    /// The `WWW-Authenticate` value.
    pub fn www_authenticate(&self, challenge: Challenge, description: &str) -> String {
        let mut value = format!(
            "DPoP algs=\"ES256\", resource_metadata=\"{}\"",
            quoted(&self.metadata_url)
        );
        let error = match challenge {
            Challenge::Missing => return value,
            Challenge::InvalidToken => "invalid_token",
            Challenge::InvalidProof => "invalid_dpop_proof",
            Challenge::UseNonce => "use_dpop_nonce",
        };
        value.push_str(&format!(
            ", error=\"{error}\", error_description=\"{}\"",
            quoted(description)
        ));
        value
    }

    /// A 401 with the challenge, a problem+json body naming `code`, and
    /// the DPoP nonce when the verifier gave one.
    pub fn unauthorized(
        &self,
        challenge: Challenge,
        code: ErrorCode,
        detail: &str,
        nonce: Option<&str>,
    ) -> Response {
        let problem = agentauth_core::problem::Problem::new(code, 401, detail);
        let mut response = (StatusCode::UNAUTHORIZED, problem.to_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Ok(value) = HeaderValue::from_str(
            &self.www_authenticate(challenge, &format!("{}: {detail}", code.as_str())),
        ) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if let Some(nonce) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
            headers.insert("dpop-nonce", nonce);
        }
        response
    }

    /// The RFC 9728 document.
    pub fn metadata(&self) -> Value {
        json!({
            "resource": self.resource,
            "authorization_servers": [self.authorization_server],
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": ["ES256"],
            "dpop_bound_access_tokens_required": true,
            "scopes_supported": self.scopes,
            "resource_name": "MCP server protected by AgentAuth",
            "resource_documentation": "https://github.com/agentauth/agentauth/blob/main/docs/mcp.md",
            // Not an RFC 9728 member: the grants' serviceProvider, which an
            // AgentAuth agent names when it asks for a grant and a token.
            "agentauth_service_provider": self.audience,
        })
    }

    /// The metadata as a response.
    pub fn metadata_response(&self) -> Response {
        let mut response = axum::Json(self.metadata()).into_response();
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
        response
    }
}

/// A value fit for a quoted-string: quotes and backslashes dropped,
/// control characters removed, at most 200 characters.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn resource() -> Resource {
        Resource {
            resource: "https://mcp.example.com/mcp".into(),
            metadata_url: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp".into(),
            authorization_server: "https://agentauth.example.com".into(),
            audience: "https://payments.example.com".into(),
            scopes: vec!["read".into()],
        }
    }

    #[test]
    fn challenges_name_the_metadata_and_the_error() {
        let r = resource();
        assert_eq!(
            r.www_authenticate(Challenge::Missing, ""),
            "DPoP algs=\"ES256\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
        );
        let v = r.www_authenticate(Challenge::InvalidToken, "token_expired: \"old\"\n");
        assert!(
            v.ends_with("error=\"invalid_token\", error_description=\"token_expired: old\""),
            "{v}"
        );
        assert_eq!(
            Challenge::for_code("dpop_replayed"),
            Some(Challenge::InvalidProof)
        );
        assert_eq!(
            Challenge::for_code("token_signature_invalid"),
            Some(Challenge::InvalidToken)
        );
        assert_eq!(
            Challenge::for_code("use_dpop_nonce"),
            Some(Challenge::UseNonce)
        );
        assert_eq!(Challenge::for_code("rate_limited"), None);
    }

    #[test]
    fn metadata_has_the_rfc_9728_members() {
        let m = resource().metadata();
        assert_eq!(m["resource"], "https://mcp.example.com/mcp");
        assert_eq!(
            m["authorization_servers"][0],
            "https://agentauth.example.com"
        );
        assert_eq!(m["dpop_bound_access_tokens_required"], true);
        assert_eq!(m["dpop_signing_alg_values_supported"][0], "ES256");
    }
}
