//! An MCP server protected by AgentAuth, through the real stack: `agentauth
//! dev` (apiserver, Redis, operator, webhook, verifiers), `agentauth
//! mcp-gateway` (a process) in front of the rmcp example server
//! (examples/mcp-payments, in this process), and the agent as the SDK's
//! `McpClient`:
//!
//! ```text
//!  no credentials        ─▶ 401 WWW-Authenticate: DPoP … resource_metadata ─▶ RFC 9728 document
//!  grant (read mcp/payments, read accounts/*, transact payments/*), envelope mcp-payments-budget
//!  initialize, tools/list, get_balance, send_payment        ─▶ allowed, answered by the server
//!  tools/list                                               ─▶ only the mapped tools
//!  delete_account (not granted), an unmapped tool           ─▶ JSON-RPC error, data.code
//!                                                              capability_not_granted; server never called
//!  stolen token with another key, a replayed proof          ─▶ 401 invalid_dpop_proof
//!  a 3rd send_payment in the hour (the envelope's per-tool limit) ─▶ rate_limited;
//!                                                              get_balance still answered
//!  Redis audit stream: chains verify; every verifier decision above is in it
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use agentauth::{AgentAuthClient, AgentAuthConfig, AgentKey, Capability, GrantOptions, McpClient};
use agentauth_core::ErrorCode;
use agentauth_core::audit::{AuditEvent, ChainVerifier, kinds};
use agentauth_example_mcp_payments::Ledger;
use serde_json::{Value, json};

use support::{start, walk};

const AGENT: &str = "agents/payments-agent";
/// The MCP example's service provider id (`agentauth dev`'s verifiers serve it).
const AUDIENCE: &str = "https://payments.example.com";

/// Threat: an agent calls an MCP tool its grant does not cover, or more
/// often than its envelope allows, or a stolen token or replayed proof is
/// used against an MCP server; the gateway refuses with the stable code,
/// the MCP server never sees the call, and every decision is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tool_calls_inside_outside_and_over_the_grant_are_decided_and_audited() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let dev = start(&state);
    let endpoints: Value =
        serde_json::from_slice(&std::fs::read(state.join("run").join("endpoints.json")).unwrap())
            .unwrap();
    let operator = endpoints["operator"].as_str().unwrap().to_owned();
    let verifiers: Vec<(String, String)> =
        serde_json::from_value(endpoints["verifiers"].clone()).unwrap();
    let redis_url = endpoints["redis"].as_str().unwrap().to_owned();

    let ledger = Arc::new(Ledger::default());
    let upstream = serve_example(ledger.clone()).await;
    let mut gateway = Gateway::start(dir.path(), &upstream, &operator, &verifiers[0].1);
    let endpoint = gateway.endpoint.clone();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    check_challenge_and_metadata(&http, &gateway, &operator).await;

    // The agent asks for the MCP server's tools; a human approves.
    let (ok, out) = walk(&state, &["agent-key", AGENT]);
    assert!(ok, "{out}");
    let key_file = state.join("agents").join("agents.payments-agent.key");
    let config = AgentAuthConfig::new(&operator)
        .unwrap()
        .agent("agents", "payments-agent")
        .key_file(&key_file);
    let client = AgentAuthClient::new(config).unwrap();
    let capabilities = vec![
        Capability::read("mcp/payments"),
        Capability::read("accounts/*"),
        Capability::transact("payments/*", Some(("100.00", "EUR"))),
    ];
    let options = GrantOptions {
        envelope: Some("mcp-payments-budget".into()),
        ..GrantOptions::default()
    };
    let grant = client
        .request_grant_with(AUDIENCE, capabilities, options)
        .await
        .unwrap();
    let (ok, out) = walk(&state, &["approve", &grant.reference()]);
    assert!(ok, "{out}");
    client
        .wait_for_approval(&grant.reference(), Duration::from_secs(20))
        .await
        .unwrap();

    // Inside the grant.
    let mcp = McpClient::new(client.clone(), AUDIENCE, &endpoint).unwrap();
    let info = mcp.initialize("mcp-system-test").await.unwrap();
    assert_eq!(info["serverInfo"]["name"], "mcp-payments", "{info}");
    assert!(mcp.session_id().is_some(), "the session id passes through");
    let tools = mcp.list_tools().await.unwrap();
    let names: BTreeSet<String> = tools
        .iter()
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect();
    let mapped = ["delete_account", "get_balance", "send_payment"].map(String::from);
    assert_eq!(
        names,
        BTreeSet::from(mapped),
        "the list holds only the mapped tools (not export_statements)"
    );
    let balance = mcp
        .call_tool("get_balance", json!({"account": "acct-1"}))
        .await
        .unwrap();
    assert!(balance.to_string().contains("account acct-1"), "{balance}");
    let paid = mcp
        .call_tool(
            "send_payment",
            json!({"to": "acct-2", "amount": "12.50", "currency": "EUR"}),
        )
        .await
        .unwrap();
    assert!(
        paid.to_string().contains("12.50 EUR sent to acct-2"),
        "{paid}"
    );

    // Outside the grant: refused with the stable code; the server never sees it.
    let outside = mcp
        .call_tool("delete_account", json!({"account": "acct-1"}))
        .await
        .unwrap_err();
    assert_eq!(
        outside.code(),
        Some(ErrorCode::CapabilityNotGranted),
        "{outside}"
    );
    let unmapped = mcp
        .call_tool("export_statements", json!({"account": "acct-1"}))
        .await
        .unwrap_err();
    assert_eq!(
        unmapped.code(),
        Some(ErrorCode::CapabilityNotGranted),
        "{unmapped}"
    );
    assert_eq!(ledger.deletions.load(Ordering::SeqCst), 0);
    assert_eq!(ledger.exports.load(Ordering::SeqCst), 0);

    // Stolen token, replayed proof.
    check_stolen_token_and_replay(&http, &client, &key_file, &endpoint, &mcp).await;

    // The envelope allows 2 payments an hour (a rate limit that applies to
    // transact on payments/**): the 2nd is allowed, the 3rd refused, and
    // other tools are still answered.
    let pay = |amount: &str| json!({"to": "acct-2", "amount": amount, "currency": "EUR"});
    mcp.call_tool("send_payment", pay("1.00")).await.unwrap();
    let over = mcp
        .call_tool("send_payment", pay("2.00"))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Some(ErrorCode::RateLimited), "{over}");
    mcp.call_tool("get_balance", json!({"account": "acct-1"}))
        .await
        .unwrap();
    assert_eq!(
        ledger.payments.load(Ordering::SeqCst),
        2,
        "the 3rd payment never reached the server"
    );
    assert_eq!(ledger.balance.load(Ordering::SeqCst), 2);

    check_audit(&redis_url).await;
    gateway.stop();
    let status = dev.interrupt();
    assert!(status.success(), "exit status {status:?}");
}

/// Without credentials: the 401 names the metadata, and the metadata names
/// the operator.
async fn check_challenge_and_metadata(http: &reqwest::Client, gateway: &Gateway, operator: &str) {
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    let response = http
        .post(&gateway.endpoint)
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let metadata_url = format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        gateway.origin
    );
    assert_eq!(
        challenge,
        format!("DPoP algs=\"ES256\", resource_metadata=\"{metadata_url}\"")
    );
    let metadata: Value = http
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["resource"],
        gateway.endpoint.as_str(),
        "{metadata}"
    );
    assert_eq!(
        metadata["authorization_servers"],
        json!([operator.trim_end_matches('/')])
    );
    assert_eq!(metadata["dpop_bound_access_tokens_required"], true);
    assert_eq!(metadata["agentauth_service_provider"], AUDIENCE);
    let bearer = http
        .post(&gateway.endpoint)
        .header("authorization", "Bearer abc")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    let challenge = bearer.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

/// A token used with a proof from another key is refused; a proof used
/// twice is refused the second time.
async fn check_stolen_token_and_replay(
    http: &reqwest::Client,
    client: &AgentAuthClient,
    key_file: &Path,
    endpoint: &str,
    mcp: &McpClient,
) {
    let token = client.get_token(AUDIENCE).await.unwrap();
    let session = mcp.session_id().unwrap();
    let ping = json!({"jsonrpc": "2.0", "id": 99, "method": "ping"});
    let thief = AgentKey::generate().unwrap();
    let stolen =
        agentauth::auth::headers_for(&thief, &token.access_token, "POST", endpoint).unwrap();
    let response = post_raw(http, endpoint, &stolen, &session, &ping).await;
    assert_eq!(response.0, 401, "{}", response.1);
    assert!(response.1.contains("dpop_key_mismatch"), "{}", response.1);

    let key = AgentKey::load(key_file).unwrap();
    let headers =
        agentauth::auth::headers_for(&key, &token.access_token, "POST", endpoint).unwrap();
    let first = post_raw(http, endpoint, &headers, &session, &ping).await;
    assert_eq!(first.0, 200, "{}", first.1);
    let replay = post_raw(http, endpoint, &headers, &session, &ping).await;
    assert_eq!(replay.0, 401, "{}", replay.1);
    assert!(replay.1.contains("dpop_replayed"), "{}", replay.1);
}

async fn post_raw(
    http: &reqwest::Client,
    endpoint: &str,
    headers: &agentauth::AuthHeaders,
    session: &str,
    body: &Value,
) -> (u16, String) {
    let response = http
        .post(endpoint)
        .header("authorization", &headers.authorization)
        .header("dpop", &headers.dpop)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .header("accept", "application/json, text/event-stream")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Every producer's chain verifies, and every verifier decision the test
/// caused is there: the allowed calls, and the refusals by code.
async fn check_audit(redis_url: &str) {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
            .arg("agentauth:{audit}:stream")
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut chain = ChainVerifier::new();
        let mut decisions: Vec<Option<String>> = Vec::new();
        for (id, fields) in &entries {
            let event = AuditEvent::from_json(fields.values().next().unwrap())
                .unwrap_or_else(|e| panic!("{id}: {e:?}"));
            chain
                .push(&event)
                .unwrap_or_else(|b| panic!("audit chain broken at {id}: {b:?}"));
            if event.kind == kinds::VERIFICATION && event.agent.as_deref() == Some(AGENT) {
                decisions.push(event.reason.clone());
            }
        }
        let count =
            |reason: Option<&str>| decisions.iter().filter(|d| d.as_deref() == reason).count();
        // Allowed: initialize, initialized, tools/list, get_balance,
        // send_payment, the ping, send_payment, get_balance; refused:
        // delete_account, the replay, the 3rd payment, the stolen token. (The unmapped tool never reached
        // the verifier: the gateway refused it first.)
        let complete = count(None) >= 8
            && count(Some("capability_not_granted")) >= 1
            && count(Some("dpop_replayed")) >= 1
            && count(Some("rate_limited")) >= 1
            && count(Some("dpop_key_mismatch")) >= 1;
        if complete {
            assert_eq!(count(None), 8, "{decisions:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "missing audit records: {decisions:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The rmcp example server on a free loopback port; its endpoint URL.
async fn serve_example(ledger: Arc<Ledger>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = agentauth_example_mcp_payments::router(ledger);
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/mcp")
}

/// An `agentauth mcp-gateway` process.
struct Gateway {
    child: Child,
    origin: String,
    endpoint: String,
}

impl Gateway {
    fn start(dir: &Path, upstream: &str, operator: &str, verifier: &str) -> Gateway {
        let tool_map = dir.join("tool-map.yaml");
        std::fs::write(
            &tool_map,
            include_str!("../../examples/mcp-payments/tool-map.yaml"),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let origin = format!("http://127.0.0.1:{port}");
        let endpoint = format!("{origin}/mcp");
        let child = Command::new(env!("CARGO_BIN_EXE_agentauth"))
            .arg("mcp-gateway")
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--public-url={endpoint}"))
            .arg(format!("--upstream={upstream}"))
            .arg(format!("--authorization-server={operator}"))
            .arg(format!("--audience={AUDIENCE}"))
            .arg(format!("--verifier-url={verifier}"))
            .arg("--tool-map")
            .arg(&tool_map)
            .spawn()
            .unwrap();
        let mut gateway = Gateway {
            child,
            origin,
            endpoint,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let health = format!("{}/healthz", gateway.origin);
        while health_ok(&health).is_err() {
            assert!(Instant::now() < deadline, "the gateway did not start");
            if let Some(status) = gateway.child.try_wait().unwrap() {
                panic!("the gateway exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        gateway
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A tiny blocking health probe (std only: the test has no blocking HTTP client).
fn health_ok(url: &str) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(host)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    if answer.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(std::io::Error::other(answer))
    }
}
