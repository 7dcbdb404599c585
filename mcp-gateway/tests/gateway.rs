//! The gateway between a stand-in verifier and a stand-in MCP server (both
//! loopback axum servers recording what they receive), so each rule of
//! the handler is shown alone: who gets a 401, what a refusal looks like,
//! what the MCP server sees. The real verifier and an rmcp server are in
//! `cli/tests/mcp.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use agentauth_mcp_gateway::{Gateway, GatewayConfig};
use axum::Router;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};

const MAP: &str = include_str!("../../examples/mcp-payments/tool-map.yaml");

/// What the stand-ins received.
#[derive(Default)]
struct Seen {
    verify: Mutex<Vec<Value>>,
    upstream: Mutex<Vec<(String, HeaderMap, String)>>,
}

struct Stack {
    endpoint: String,
    origin: String,
    seen: Arc<Seen>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// The stand-in verifier decides by the token: `DPoP good` is allowed
/// unless the resource is `accounts/forbidden`; others name their refusal.
async fn verify(seen: Arc<Seen>, body: Value) -> Response {
    seen.verify.lock().unwrap().push(body.clone());
    let token = body["token"].as_str().unwrap_or_default();
    let refuse =
        |reason: &str| json!({"allow": false, "reason": reason, "message": format!("{reason}!")});
    let answer = match token {
        "DPoP good" if body["action"]["resource"] == "accounts/forbidden" => {
            refuse("capability_not_granted")
        }
        "DPoP good" => json!({"allow": true, "agent": "agents/a", "grant": "agents/g"}),
        "DPoP other" => json!({"allow": true, "agent": "agents/b", "grant": "agents/h"}),
        "DPoP limited" => {
            json!({"allow": false, "reason": "rate_limited", "message": "slow down", "retryAfterMs": 600})
        }
        "DPoP nonce" => json!({"allow": false, "reason": "use_dpop_nonce", "dpopNonce": "n-1"}),
        other => refuse(other.trim_start_matches("DPoP ")),
    };
    axum::Json(answer).into_response()
}

async fn upstream(
    seen: Arc<Seen>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: String,
) -> Response {
    seen.upstream
        .lock()
        .unwrap()
        .push((method.to_string(), headers, body.clone()));
    if method == axum::http::Method::GET {
        let events =
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
        return (
            [
                ("content-type", "text/event-stream"),
                ("mcp-session-id", "s-1"),
            ],
            events,
        )
            .into_response();
    }
    let message = serde_json::from_str::<Value>(&body).unwrap_or_default();
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    if message["method"] == "tools/list" {
        let tools = json!([{"name": "get_balance"}, {"name": "export_statements"}]);
        let answer = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools}});
        let event = format!("event: message\ndata: {answer}\n\n");
        return ([("content-type", "text/event-stream")], event).into_response();
    }
    let answer = json!({"jsonrpc": "2.0", "id": id, "result": {"ok": true}});
    (
        [("mcp-session-id", "s-1"), ("set-cookie", "secret=1")],
        axum::Json(answer),
    )
        .into_response()
}

async fn bind(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

async fn stack(verifier_up: bool) -> Stack {
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let verifier = if verifier_up {
        bind(Router::new().route(
            "/v1/verify",
            post(move |axum::Json(b): axum::Json<Value>| verify(s.clone(), b)),
        ))
        .await
    } else {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}")
    };
    let s = seen.clone();
    let mcp =
        bind(Router::new().route("/mcp", any(move |m, h, b| upstream(s.clone(), m, h, b)))).await;
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("tool-map.yaml");
    std::fs::write(&map, MAP).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let config = GatewayConfig {
        listen: listener.local_addr().unwrap(),
        public_url: format!("{origin}/mcp"),
        upstream: format!("{mcp}/mcp"),
        authorization_server: "https://operator.example.com/".into(),
        audience: Some("https://payments.example.com".into()),
        verifier_url: verifier,
        tool_map: map,
        max_body_bytes: 4096,
    };
    let gateway = Arc::new(Gateway::new(&config).unwrap());
    tokio::spawn(agentauth_mcp_gateway::serve(
        gateway,
        listener,
        std::future::pending(),
    ));
    Stack {
        endpoint: format!("{origin}/mcp"),
        origin,
        seen,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        _dir: dir,
    }
}

impl Stack {
    async fn post(&self, token: Option<&str>, body: &str) -> (u16, HeaderMap, Value) {
        self.post_in(None, token, body).await
    }

    /// A POST in `session` (its `Mcp-Session-Id`).
    async fn post_in(
        &self,
        session: Option<&str>,
        token: Option<&str>,
        body: &str,
    ) -> (u16, HeaderMap, Value) {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", "proof");
        }
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn upstream_calls(&self) -> usize {
        self.seen.upstream.lock().unwrap().len()
    }
}

fn call(tool: &str, arguments: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}).to_string()
}

/// Threat: an MCP client without credentials is told where to get them
/// (RFC 9728 metadata naming the operator), and nothing reaches the server.
#[tokio::test]
async fn unauthenticated_requests_get_the_challenge_and_the_metadata() {
    let s = stack(true).await;
    let (status, headers, _) = s
        .post(None, r#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#)
        .await;
    assert_eq!(status, 401);
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", s.origin);
    assert_eq!(
        headers["www-authenticate"].to_str().unwrap(),
        format!("DPoP algs=\"ES256\", resource_metadata=\"{metadata_url}\"")
    );
    for url in [
        metadata_url,
        format!("{}/.well-known/oauth-protected-resource", s.origin),
    ] {
        let m: Value = s.http.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(m["resource"], s.endpoint.as_str());
        assert_eq!(
            m["authorization_servers"],
            json!(["https://operator.example.com"])
        );
        assert_eq!(m["bearer_methods_supported"], json!(["header"]));
        assert_eq!(m["dpop_signing_alg_values_supported"], json!(["ES256"]));
        assert_eq!(m["dpop_bound_access_tokens_required"], true);
        assert_eq!(m["scopes_supported"], json!(["delete", "read", "transact"]));
    }
    let bearer = s
        .http
        .post(&s.endpoint)
        .header("authorization", "Bearer t")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    assert!(
        bearer.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(
        (s.upstream_calls(), s.seen.verify.lock().unwrap().len()),
        (0, 0)
    );
}

#[tokio::test]
async fn malformed_messages_get_clear_json_rpc_errors() {
    let s = stack(true).await;
    let cases = [
        ("{", -32700),
        (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, -32600),
        (r#"{"jsonrpc":"2.0","id":1}"#, -32600),
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":7}}"#,
            -32602,
        ),
    ];
    for (body, code) in cases {
        let (status, _, answer) = s.post(Some("good"), body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().len() > 10,
            "{answer}"
        );
    }
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
        "a".repeat(5000)
    );
    assert_eq!(s.post(Some("good"), &big).await.0, 413);
    assert_eq!(
        (s.upstream_calls(), s.seen.verify.lock().unwrap().len()),
        (0, 0)
    );
}

/// Threat: a tool the map does not know, or an argument that would widen
/// the checked resource (`*`, `/`), is refused and never reaches the server.
#[tokio::test]
async fn unknown_tools_and_escaping_arguments_never_reach_the_server() {
    let s = stack(true).await;
    let (status, _, answer) = s
        .post(Some("good"), &call("drop_everything", json!({})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["id"], 5);
    assert_eq!(
        answer["error"]["data"]["code"], "capability_not_granted",
        "{answer}"
    );
    for account in ["*", "a/b", ".."] {
        let (_, _, answer) = s
            .post(
                Some("good"),
                &call("get_balance", json!({"account": account})),
            )
            .await;
        assert_eq!(
            answer["error"]["data"]["code"], "request_invalid",
            "{answer}"
        );
    }
    let (_, _, answer) = s
        .post(
            Some("good"),
            &call(
                "send_payment",
                json!({"amount": "1.001", "currency": "EUR", "to": "x"}),
            ),
        )
        .await;
    assert_eq!(
        answer["error"]["data"]["code"], "amount_invalid",
        "{answer}"
    );
    assert_eq!(
        (s.upstream_calls(), s.seen.verify.lock().unwrap().len()),
        (0, 0)
    );
}

/// Threat: a call the verifier refuses never reaches the MCP server; policy
/// refusals are JSON-RPC errors with the stable code, credential failures
/// are 401 challenges.
#[tokio::test]
async fn refusals_are_json_rpc_errors_and_credential_failures_are_401() {
    let s = stack(true).await;
    let (status, _, answer) = s
        .post(
            Some("good"),
            &call("delete_account", json!({"account": "forbidden"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["error"]["code"], -32001);
    assert_eq!(answer["error"]["data"]["code"], "capability_not_granted");
    assert!(
        answer["error"]["data"]["next"]
            .as_str()
            .unwrap()
            .contains("delete accounts/forbidden"),
        "{answer}"
    );
    let (_, _, answer) = s
        .post(
            Some("limited"),
            &call("get_balance", json!({"account": "a"})),
        )
        .await;
    assert_eq!(answer["error"]["data"]["code"], "rate_limited");
    assert_eq!(answer["error"]["data"]["retryAfterMs"], 600);
    let (status, headers, _) = s
        .post(
            Some("token_expired"),
            &call("get_balance", json!({"account": "a"})),
        )
        .await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\", error_description=\"token_expired")
    );
    let (status, headers, _) = s
        .post(
            Some("dpop_replayed"),
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        )
        .await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_dpop_proof\"")
    );
    let (status, headers, _) = s
        .post(Some("nonce"), r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .await;
    assert_eq!(status, 401);
    assert_eq!(headers["dpop-nonce"], "n-1");
    let (status, _, answer) = s
        .post(
            Some("grant_revoked"),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await;
    assert_eq!(
        status, 403,
        "a refused notification has no id to answer: {answer}"
    );
    assert_eq!(answer["code"], "grant_revoked");
    assert_eq!(s.upstream_calls(), 0);
    let metrics = s
        .http
        .get(format!("{}/metrics", s.origin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"agentauth_mcp_gateway_requests_total{outcome="refused",reason="rate_limited"} 1"#
        ),
        "{metrics}"
    );
}

/// Threat: the agent's token and proof are not passed through to the MCP
/// server (the MCP spec forbids token passthrough).
#[tokio::test]
async fn allowed_messages_reach_the_server_without_the_agents_credentials() {
    let s = stack(true).await;
    let body = call(
        "send_payment",
        json!({"to": "acct-2", "amount": 12.5, "currency": "EUR"}),
    );
    let (status, headers, answer) = s.post(Some("good"), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["ok"], true);
    assert_eq!(headers["mcp-session-id"], "s-1");
    assert!(
        headers.get("set-cookie").is_none(),
        "response headers pass by allow-list"
    );
    let asked = s.seen.verify.lock().unwrap()[0].clone();
    assert_eq!(asked["method"], "POST");
    assert_eq!(asked["url"], s.endpoint.as_str());
    assert_eq!(asked["audience"], "https://payments.example.com");
    assert_eq!(
        asked["action"],
        json!({"type": "transact", "resource": "payments/EUR", "action": "pay", "amount": "12.50", "currency": "EUR"})
    );
    let (method, seen_headers, seen_body) = s.seen.upstream.lock().unwrap()[0].clone();
    assert_eq!((method.as_str(), seen_body), ("POST", body));
    assert!(seen_headers.get("authorization").is_none() && seen_headers.get("dpop").is_none());
    // The session the server handed out passes through on the next request.
    let ping = r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#;
    assert_eq!(s.post_in(Some("s-1"), Some("good"), ping).await.0, 200);
    let (_, seen_headers, _) = s.seen.upstream.lock().unwrap()[1].clone();
    assert_eq!(seen_headers["mcp-session-id"], "s-1");

    // tools/list keeps only the mapped tools, also from an SSE answer.
    let list = r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#;
    let response = s
        .http
        .post(&s.endpoint)
        .header("authorization", "DPoP good")
        .header("dpop", "p")
        .body(list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(
        text.contains("get_balance") && !text.contains("export_statements"),
        "{text}"
    );

    // The server's SSE stream (GET) passes through with the session action.
    let sse = s
        .http
        .get(&s.endpoint)
        .header("authorization", "DPoP good")
        .header("dpop", "p")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    assert!(sse.text().await.unwrap().contains("list_changed"));
    let asked = s.seen.verify.lock().unwrap()[3].clone();
    assert_eq!(
        (asked["method"].as_str(), &asked["action"]),
        (
            Some("GET"),
            &json!({"type": "read", "resource": "mcp/payments"})
        )
    );
}

/// Threat: the verifier cannot be reached; the gateway fails closed.
#[tokio::test]
async fn an_unreachable_verifier_fails_closed() {
    let s = stack(false).await;
    let (status, _, answer) = s
        .post(Some("good"), &call("get_balance", json!({"account": "a"})))
        .await;
    assert_eq!(status, 503);
    assert_eq!(answer["error"]["data"]["code"], "state_unavailable");
    assert_eq!(s.upstream_calls(), 0);
}

/// Threat: an agent that learnt another agent's MCP session id uses it to
/// read that session's stream or act in it (session hijacking); a session
/// id the gateway never handed out is refused too (404: start a new one).
#[tokio::test]
async fn a_session_belongs_to_the_agent_that_opened_it() {
    let s = stack(true).await;
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let (status, headers, _) = s.post(Some("good"), ping).await;
    assert_eq!(
        (status, headers["mcp-session-id"].to_str().unwrap()),
        (200, "s-1")
    );
    assert_eq!(s.post_in(Some("s-1"), Some("good"), ping).await.0, 200);
    let (status, _, answer) = s.post_in(Some("s-1"), Some("other"), ping).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(s.post_in(Some("s-9"), Some("good"), ping).await.0, 404);
    let hijack = s
        .http
        .get(&s.endpoint)
        .header("authorization", "DPoP other")
        .header("dpop", "p")
        .header("mcp-session-id", "s-1")
        .send()
        .await
        .unwrap();
    assert_eq!(hijack.status(), 404);
    assert_eq!(
        s.upstream_calls(),
        2,
        "the refused requests never reached the server"
    );
    // DELETE ends it: afterwards even its owner is told to start anew.
    let end = s
        .http
        .delete(&s.endpoint)
        .header("authorization", "DPoP good")
        .header("dpop", "p")
        .header("mcp-session-id", "s-1")
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), 200);
    assert_eq!(s.post_in(Some("s-1"), Some("good"), ping).await.0, 404);
}
