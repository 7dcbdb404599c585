//! The gateway as a service provider of the node-local verifier: one
//! `POST /v1/verify` per MCP request (DESIGN §4 flow 4, §5), nothing
//! verified here. One call, because the request's DPoP proof is single-use.

use std::time::Duration;

use serde_json::json;

use crate::mapping::Action;

/// The verifier's answer (the wire type every provider-side client shares).
pub use agentauth_core::verify_call::Decision;

/// Why no decision came back.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The verifier did not answer (connection, timeout, unreadable body).
    #[error("the verifier did not answer: {0}")]
    Unreachable(String),
    /// The verifier found the request malformed (a 4xx problem).
    #[error("the verifier refused the request ({code}): {detail}")]
    Malformed {
        /// The problem's code.
        code: String,
        /// The problem's detail.
        detail: String,
    },
}

/// A client of `POST /v1/verify`.
#[derive(Clone, Debug)]
pub struct VerifierClient {
    url: String,
    audience: String,
    http: reqwest::Client,
}

impl VerifierClient {
    /// A client of the verifier at `base_url`, asking for `audience`.
    pub fn new(base_url: &str, audience: &str) -> Result<VerifierClient, reqwest::Error> {
        // The verifier is node-local: a decision takes well under a
        // millisecond, so 5 s means it is gone; fail closed then.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()?;
        Ok(VerifierClient {
            url: format!("{}/v1/verify", base_url.trim_end_matches('/')),
            audience: audience.to_owned(),
            http,
        })
    }

    /// Asks whether the request with `authorization` and `dpop` headers,
    /// `method` and `url` may perform `action`.
    pub async fn verify(
        &self,
        authorization: &str,
        dpop: &str,
        method: &str,
        url: &str,
        action: &Action,
    ) -> Result<Decision, VerifyError> {
        let body = json!({
            "token": authorization,
            "dpop": dpop,
            "method": method,
            "url": url,
            "action": action,
            "audience": self.audience,
        });
        let unreachable = |e: reqwest::Error| VerifyError::Unreachable(e.to_string());
        let response = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| VerifyError::Unreachable(format!("unreadable decision: {e}")));
        }
        let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let text = |k: &str| {
            problem
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        if status.is_client_error() {
            Err(VerifyError::Malformed {
                code: text("code"),
                detail: text("detail"),
            })
        } else {
            Err(VerifyError::Unreachable(format!(
                "HTTP {status}: {}",
                text("detail")
            )))
        }
    }
}
