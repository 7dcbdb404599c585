//! For service providers: ask the node-local verifier whether an agent's
//! request may proceed (`POST /v1/verify`, DESIGN §5), in one call.
//!
//! ```text
//!  incoming request ─▶ Authorization + DPoP headers, method, absolute URL, Action
//!                   ─▶ VerifierClient::verify ─▶ Decision { allow, reason, message, agent, grant }
//! ```
//!
//! A denial is a [`Decision`] with a stable reason code, not an error; an
//! error means the verifier could not be asked (then refuse the request:
//! fail closed).

use http::HeaderMap;

use crate::error::{Error, Result};

/// What the provider asks about, and the verifier's answer: the wire types
/// every provider-side client shares (see [`agentauth_core::verify_call`]).
pub use agentauth_core::verify_call::{Action, Decision};

/// A client of the verifier's `POST /v1/verify`.
#[derive(Clone, Debug)]
pub struct VerifierClient {
    url: String,
    audience: Option<String>,
    http: reqwest::Client,
}

impl VerifierClient {
    /// A client of the verifier at `base_url` (node-local, usually
    /// `http://127.0.0.1:8081` or a Unix-local Service address).
    pub fn new(base_url: &str) -> Result<VerifierClient> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?;
        Ok(VerifierClient {
            url: format!("{}/v1/verify", base_url.trim_end_matches('/')),
            audience: None,
            http,
        })
    }

    /// Names this provider's audience, for a verifier that serves several
    /// (without it the verifier uses its first).
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Asks whether the request with `headers` (its `Authorization` and
    /// `DPoP`), `method` and absolute `url` may perform `action`.
    pub async fn verify(
        &self,
        headers: &HeaderMap,
        method: &str,
        url: &str,
        action: &Action,
    ) -> Result<Decision> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let mut body = serde_json::json!({
            "token": header("authorization"),
            "dpop": header("dpop"),
            "method": method,
            "url": url,
            "action": action,
        });
        if let Some(audience) = &self.audience {
            body["audience"] = serde_json::json!(audience);
        }
        let response = self.http.post(&self.url).json(&body).send().await?;
        let response = crate::error::check_response(response).await?;
        let bytes = response.bytes().await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Protocol(format!("cannot read the verifier's answer: {e}")))
    }
}
