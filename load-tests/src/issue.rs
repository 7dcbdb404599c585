//! `POST /v1/token` as an agent does it, minus the SDK's token cache: every
//! call makes a fresh DPoP proof (RFC 9449 §5, no `ath`) and gets a new
//! token, so issuance itself is what is measured.

use agentauth::AgentKey;
use agentauth_core::dpop;
use serde_json::json;

/// The token endpoint of `operator`.
pub fn token_url(operator: &str) -> String {
    format!("{operator}/v1/token")
}

/// The `DPoP` header and JSON body of a token request for `grant`.
pub fn token_request(key: &AgentKey, url: &str, grant: &str) -> Result<(String, String), String> {
    let request = dpop::Request {
        method: "POST",
        url,
        access_token: None,
        nonce: None,
    };
    let proof = dpop::create(key.signing_key(), &request, now_secs(), &dpop::new_jti())
        .map_err(|e| e.message.to_string())?;
    Ok((proof, json!({ "grant": grant }).to_string()))
}

/// The access token of a `200` answer's body.
pub fn access_token(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value["access_token"].as_str().map(str::to_owned)
}

/// Issues one token outside any measurement (fixtures: warm and cold tokens).
pub async fn issue(
    http: &reqwest::Client,
    operator: &str,
    key: &AgentKey,
    grant: &str,
) -> Result<String, String> {
    let url = token_url(operator);
    let (proof, body) = token_request(key, &url, grant)?;
    let response = http
        .post(&url)
        .header("dpop", proof)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    match access_token(&bytes) {
        Some(token) if status.is_success() => Ok(token),
        _ => Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        )),
    }
}

/// Seconds since the epoch (a proof's `iat`).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
