//! An MCP client over the streamable HTTP transport for MCP servers behind
//! `agentauth mcp-gateway`: every HTTP request carries the grant's token
//! (`Authorization: DPoP …`) and a fresh DPoP proof for that method and URL.
//!
//! ```text
//!  McpClient::call_tool ─▶ POST <endpoint> {"jsonrpc":"2.0","id":n,"method":"tools/call",…}
//!                          + Authorization: DPoP <token> (refreshed before expiry) + DPoP proof
//!                          + Mcp-Session-Id (after initialize)
//!   answer (JSON or SSE) ─▶ result                       ─▶ Ok(result)
//!                        ─▶ error with data.code         ─▶ Error::Server { code: the AgentAuth code }
//!                        ─▶ other JSON-RPC error         ─▶ Error::Server { code: "jsonrpc:<n>" }
//!   401 use_dpop_nonce   ─▶ the nonce is kept, the request made again once
//!   401 token_expired    ─▶ the token is dropped, the request made again once
//! ```
//!
//! One message per request (MCP 2025-06-18 has no batches).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use agentauth_core::ErrorCode;
use serde_json::{Value, json};

use crate::client::AgentAuthClient;
use crate::error::{Code, Error, Result};

/// The MCP protocol version this client asks for.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// A client of one MCP server endpoint.
#[derive(Debug)]
pub struct McpClient {
    agent: AgentAuthClient,
    provider: String,
    endpoint: String,
    http: reqwest::Client,
    session: Mutex<Option<String>>,
    next_id: AtomicU64,
}

impl McpClient {
    /// A client of the MCP endpoint `endpoint` (e.g.
    /// `https://mcp.example.com/mcp`), authenticated with `agent`'s grant
    /// for service provider `provider`.
    pub fn new(agent: AgentAuthClient, provider: &str, endpoint: &str) -> Result<McpClient> {
        let endpoint = crate::config::check_url(endpoint)
            .map_err(|e| Error::Config(format!("MCP endpoint: {}", e.message())))?;
        let http = reqwest::Client::builder()
            .timeout(agent.inner.request_timeout)
            .build()?;
        Ok(McpClient {
            agent,
            provider: provider.to_owned(),
            endpoint,
            http,
            session: Mutex::new(None),
            next_id: AtomicU64::new(1),
        })
    }

    /// The session id the server gave at `initialize`.
    pub fn session_id(&self) -> Option<String> {
        self.session.lock().ok().and_then(|s| s.clone())
    }

    /// `initialize`, then `notifications/initialized`; returns the server's
    /// `initialize` result.
    pub async fn initialize(&self, client_name: &str) -> Result<Value> {
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": client_name, "version": env!("CARGO_PKG_VERSION")},
        });
        let result = self.request("initialize", params).await?;
        self.notify("notifications/initialized", json!({})).await?;
        Ok(result)
    }

    /// `tools/list`: the tools' descriptions.
    pub async fn list_tools(&self) -> Result<Vec<Value>> {
        let result = self.request("tools/list", json!({})).await?;
        match result.get("tools") {
            Some(Value::Array(tools)) => Ok(tools.clone()),
            _ => Err(Error::Protocol(
                "tools/list answered without a tools array".into(),
            )),
        }
    }

    /// `tools/call` of `name` with `arguments`: the call's result (its
    /// `content`, and `isError` when the tool itself failed).
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<Value> {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
            .await
    }

    /// Sends request `method` with `params`; returns its result.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (status, content_type, body) = self.post(&message).await?;
        let answer = find_answer(&content_type, &body, id)?;
        into_result(status, answer)
    }

    /// Sends notification `method` with `params`.
    pub async fn notify(&self, method: &str, params: Value) -> Result<()> {
        let message = json!({"jsonrpc": "2.0", "method": method, "params": params});
        let (status, content_type, body) = self.post(&message).await?;
        if status >= 300 {
            let answer = find_answer(&content_type, &body, 0).unwrap_or(Value::Null);
            return into_result(status, answer).map(|_| ());
        }
        Ok(())
    }

    /// Ends the session (`DELETE`), when there is one.
    pub async fn close(&self) -> Result<()> {
        let Some(session) = self.session_id() else {
            return Ok(());
        };
        let response = self
            .send(reqwest::Method::DELETE, None, Some(&session))
            .await?;
        crate::error::check_response(response).await.map(|_| ())
    }

    /// POSTs `message`; returns status, content type and body.
    async fn post(&self, message: &Value) -> Result<(u16, String, Vec<u8>)> {
        let body = serde_json::to_vec(message)
            .map_err(|e| Error::Protocol(format!("cannot encode the message: {e}")))?;
        let session = self.session_id();
        let response = self
            .send(reqwest::Method::POST, Some(body), session.as_deref())
            .await?;
        if let Some(id) = response.headers().get("mcp-session-id")
            && let (Ok(id), Ok(mut slot)) = (id.to_str(), self.session.lock())
        {
            *slot = Some(id.to_owned());
        }
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await?;
        if status == 401 || (status >= 400 && !content_type.contains("json")) {
            return Err(Error::from_body(status, &bytes));
        }
        Ok((status, content_type, bytes.to_vec()))
    }

    /// One authenticated HTTP request; a `use_dpop_nonce` or
    /// `token_expired` 401 is answered by one retry with a new proof.
    async fn send(
        &self,
        method: reqwest::Method,
        body: Option<Vec<u8>>,
        session: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut retried = false;
        loop {
            let mut builder = self
                .http
                .request(method.clone(), &self.endpoint)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", PROTOCOL_VERSION);
            if let Some(session) = session {
                builder = builder.header("mcp-session-id", session);
            }
            if let Some(body) = &body {
                builder = builder
                    .header("content-type", "application/json")
                    .body(body.clone());
            }
            let mut request = builder.build()?;
            self.agent
                .authenticate_request(&self.provider, &mut request)
                .await?;
            let response = self.http.execute(request).await?;
            let had_nonce = self
                .agent
                .update_dpop_nonce(&self.provider, response.headers());
            if response.status() != reqwest::StatusCode::UNAUTHORIZED || retried {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if challenge.contains("use_dpop_nonce") && had_nonce {
                retried = true;
            } else if challenge.contains("token_expired") {
                self.agent.invalidate_token(&self.provider).await;
                retried = true;
            } else {
                return Ok(response);
            }
        }
    }
}

/// The JSON-RPC answer with `id` in a JSON or SSE body (`id` 0: any).
fn find_answer(content_type: &str, body: &[u8], id: u64) -> Result<Value> {
    let unreadable = |e: serde_json::Error| Error::Protocol(format!("unreadable MCP answer: {e}"));
    if !content_type.starts_with("text/event-stream") {
        return serde_json::from_slice(body).map_err(unreadable);
    }
    let text = String::from_utf8_lossy(body);
    for event in text.split("\n\n") {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .collect();
        if data.is_empty() {
            continue;
        }
        let Ok(value) = serde_json::from_str::<Value>(&data.join("\n")) else {
            continue;
        };
        let matches = id == 0 || value.get("id").and_then(Value::as_u64) == Some(id);
        if matches && (value.get("result").is_some() || value.get("error").is_some()) {
            return Ok(value);
        }
    }
    Err(Error::Protocol(format!(
        "the MCP server's event stream ended without the answer to request {id}"
    )))
}

/// The result of `answer`, or its error as [`Error::Server`].
fn into_result(status: u16, answer: Value) -> Result<Value> {
    if let Some(result) = answer.get("result") {
        return Ok(result.clone());
    }
    let Some(error) = answer.get("error") else {
        return Err(Error::Protocol(format!(
            "HTTP {status}: the answer has neither result nor error"
        )));
    };
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let code = match error.pointer("/data/code").and_then(Value::as_str) {
        Some(code) => Code::parse(code),
        None => Code::Unknown(format!(
            "jsonrpc:{}",
            error.get("code").and_then(Value::as_i64).unwrap_or(0)
        )),
    };
    Err(Error::Server {
        status,
        code,
        message,
    })
}

/// Whether `error` is an AgentAuth refusal of an MCP call (rather than the
/// MCP server's own error).
pub fn is_refusal(error: &Error) -> bool {
    matches!(error, Error::Server { code: Code::Known(c), .. } if *c != ErrorCode::StateUnavailable)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_answers_from_json_and_event_streams() {
        let sse = b"id: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
                    data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"ok\":true}}\n\n";
        let answer = find_answer("text/event-stream", sse, 3).unwrap();
        assert_eq!(into_result(200, answer).unwrap()["ok"], true);
        assert!(find_answer("text/event-stream", sse, 4).is_err());
        let refused = br#"{"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"refused","data":{"code":"rate_limited"}}}"#;
        let error =
            into_result(200, find_answer("application/json", refused, 2).unwrap()).unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::RateLimited));
        assert!(is_refusal(&error));
        let other = br#"{"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"bad"}}"#;
        let error =
            into_result(200, find_answer("application/json", other, 2).unwrap()).unwrap_err();
        assert_eq!(error.code_str(), "jsonrpc:-32602");
        assert!(!is_refusal(&error));
    }
}
