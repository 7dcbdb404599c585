//! The Python SDK through its wheel: this test starts the stack, builds the
//! wheel with maturin, installs it into a fresh virtual environment and runs
//! pytest (`sdk/python/tests/`) there against the stack.
//!
//! ```text
//!  maturin build ─▶ wheel ─▶ python3 -m venv <tmp> ─▶ pip install wheel pytest pytest-asyncio
//!  pytest ──env──▶ operator, provider, namespace, agent key file, hook URL
//!         ──POST /approve (namespace/name)──▶ hook ─▶ software passkey approval
//!         ──GET /issued──▶ hook ─▶ the operator's issuance count
//! ```
//!
//! maturin comes from `AGENTAUTH_MATURIN`, else `PATH`, else the venv that
//! `./test.sh` fills (`~/.cache/agentauth/venv`). Nothing is skipped: without
//! maturin the test fails and says how to get it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use support::Stack;

/// How to get maturin (test.sh pins 1.16.0).
const MATURIN_HINT: &str =
    "run ./test.sh once, or `pip install maturin==1.16.0`, or set AGENTAUTH_MATURIN";

fn maturin() -> PathBuf {
    if let Some(path) = std::env::var_os("AGENTAUTH_MATURIN") {
        return path.into();
    }
    let on_path = Command::new("maturin").arg("--version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return "maturin".into();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cached = home.join(".cache/agentauth/venv/bin/maturin");
    assert!(cached.exists(), "maturin not found: {MATURIN_HINT}");
    cached
}

fn run(command: &mut Command, what: &str) {
    let started = Instant::now();
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds the wheel into `out` and returns its path.
fn build_wheel(out: &Path) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/Cargo.toml");
    run(
        Command::new(maturin())
            .args(["build", "--locked", "--quiet", "-m"])
            .arg(&manifest)
            .arg("-o")
            .arg(out),
        "maturin build",
    );
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("maturin built no wheel")
}

/// The approval hook pytest calls.
fn hook(stack: Arc<Stack>) -> Router {
    Router::new()
        .route(
            "/approve",
            post(
                |State(stack): State<Arc<Stack>>, grant: String| async move {
                    stack.approve(grant.trim()).await;
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/issued",
            get(|State(stack): State<Arc<Stack>>| async move { stack.issued().to_string() }),
        )
        .with_state(stack)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_from_its_wheel_passes_pytest_against_the_stack() {
    let stack = Stack::start("sdk-python").await;
    let key_file = stack.agent("py-bot").await;
    let stack = Arc::new(stack);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, hook(stack.clone())).into_future());

    let work = tempfile::tempdir().unwrap();
    let mcp = mcp_gateway(&stack, work.path()).await;
    let (operator, provider, ns) = (
        stack.operator.clone(),
        stack.provider.clone(),
        stack.ns.clone(),
    );
    let result = tokio::time::timeout(
        Duration::from_secs(900),
        tokio::task::spawn_blocking(move || {
            let wheel = build_wheel(&work.path().join("wheels"));
            let venv = work.path().join("venv");
            run(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "python3 -m venv",
            );
            run(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check"])
                    .arg(&wheel)
                    .args(["pytest==9.2.0", "pytest-asyncio==1.5.0"]),
                "pip install (wheel, pytest)",
            );
            let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tests");
            run(
                Command::new(venv.join("bin/python"))
                    .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
                    .arg(&tests)
                    .env("AGENTAUTH_TEST_OPERATOR", operator)
                    .env("AGENTAUTH_TEST_PROVIDER", provider)
                    .env("AGENTAUTH_TEST_NAMESPACE", ns)
                    .env("AGENTAUTH_TEST_AGENT", "py-bot")
                    .env("AGENTAUTH_TEST_KEY_FILE", key_file)
                    .env("AGENTAUTH_TEST_HOOK", hook_url)
                    .env("AGENTAUTH_TEST_MCP", mcp)
                    // Keep the source tree clean: no __pycache__ next to the tests.
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .env_remove("AGENTAUTH_AGENT")
                    .env_remove("AGENTAUTH_KEY_FILE"),
                "pytest",
            );
        }),
    )
    .await;
    result
        .expect("the Python test took longer than 15 min")
        .unwrap();
}

/// The rmcp example server behind an in-process `agentauth mcp-gateway`
/// that asks the stack's verifier for the example provider's audience;
/// returns the gateway's MCP endpoint.
async fn mcp_gateway(stack: &Stack, dir: &Path) -> String {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_url = format!("http://{}/mcp", upstream.local_addr().unwrap());
    let router = agentauth_example_mcp_payments::router(Arc::default());
    tokio::spawn(axum::serve(upstream, router).into_future());
    let tool_map = dir.join("tool-map.yaml");
    std::fs::write(
        &tool_map,
        include_str!("../../examples/mcp-payments/tool-map.yaml"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/mcp", listener.local_addr().unwrap());
    let config = agentauth_mcp_gateway::GatewayConfig {
        listen: listener.local_addr().unwrap(),
        public_url: endpoint.clone(),
        upstream: upstream_url,
        authorization_server: stack.operator.clone(),
        audience: Some(stack.provider.clone()),
        verifier_url: stack.verifier.clone(),
        tool_map,
        max_body_bytes: 1024 * 1024,
    };
    let gateway = Arc::new(agentauth_mcp_gateway::Gateway::new(&config).unwrap());
    tokio::spawn(agentauth_mcp_gateway::serve(
        gateway,
        listener,
        std::future::pending(),
    ));
    endpoint
}
