//! `mcp-payments [ADDR]`: serves the example MCP server at
//! `http://ADDR/mcp` (default `127.0.0.1:8000`; loopback, since only the
//! gateway should reach it).

use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("mcp-payments: cannot listen on {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("mcp-payments: serving http://{addr}/mcp");
    let router = agentauth_example_mcp_payments::router(Arc::default());
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mcp-payments: {error}");
            ExitCode::FAILURE
        }
    }
}
