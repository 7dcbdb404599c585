//! The example service provider `agentauth dev` runs so the walk-through's
//! `call` has something to call: every request is checked with verifier-a
//! (`POST /v1/verify`) before it is answered.
//!
//! ```text
//!  GET    /any/path  ─▶ action read   on any/path ─┐
//!  POST|PUT|PATCH    ─▶ action write               ├▶ verifier-a ─▶ 200 {"allow": true, agent, grant, …}
//!  DELETE            ─▶ action delete              ┘               or 403 {"allow": false, "reason": …}
//! ```
//!
//! The URL checked is the provider's public URL plus the path and query:
//! what the agent's DPoP proof names. A verifier that cannot be asked means
//! 503 (fail closed).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// `agentauth dev provider` flags (started by `agentauth dev`, hidden).
#[derive(Clone, Debug, clap::Args)]
pub struct ProviderArgs {
    /// Where to listen.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The verifier's base URL.
    #[arg(long)]
    pub verifier_url: String,
    /// The URL agents call this provider at.
    #[arg(long)]
    pub public_url: String,
    /// This provider's audience (the grants' serviceProvider).
    #[arg(long)]
    pub audience: String,
}

#[derive(Clone)]
struct Provider {
    verify_url: String,
    public_url: String,
    audience: String,
    http: reqwest::Client,
}

/// The action a request asks for.
pub fn action_of(method: &str, path: &str) -> Option<Value> {
    let kind = match method {
        "GET" | "HEAD" => "read",
        "POST" | "PUT" | "PATCH" => "write",
        "DELETE" => "delete",
        _ => return None,
    };
    Some(json!({"type": kind, "resource": path.trim_matches('/')}))
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(args: ProviderArgs) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let provider = Provider {
        verify_url: format!("{}/v1/verify", args.verifier_url.trim_end_matches('/')),
        public_url: args.public_url.trim_end_matches('/').to_owned(),
        audience: args.audience.clone(),
        http,
    };
    let app = Router::new()
        .route("/readyz", get(|| async { "ok" }))
        .fallback(handle)
        .with_state(provider);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!(
        "example provider {} on {}, asking {}",
        args.audience, args.public_url, args.verifier_url
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::runtime::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn handle(State(provider): State<Provider>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let Some(action) = action_of(&method, &path) else {
        return (StatusCode::METHOD_NOT_ALLOWED, "unsupported method").into_response();
    };
    let url = match request.uri().query() {
        Some(query) => format!("{}{path}?{query}", provider.public_url),
        None => format!("{}{path}", provider.public_url),
    };
    let headers = request.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (token, dpop) = (header("authorization"), header("dpop"));
    // The request (whose body is not Sync) must not live across an await.
    drop(request);
    let body = json!({
        "token": token,
        "dpop": dpop,
        "method": method,
        "url": url,
        "action": action,
        "audience": provider.audience,
    });
    let answer = async {
        let response = provider
            .http
            .post(&provider.verify_url)
            .json(&body)
            .send()
            .await?;
        response.json::<Value>().await
    };
    match answer.await {
        Ok(decision) if decision["allow"] == true => {
            println!("allow {method} {path} for {}", decision["agent"]);
            (StatusCode::OK, axum::Json(decision)).into_response()
        }
        Ok(decision) => {
            println!("deny  {method} {path}: {}", decision["reason"]);
            (StatusCode::FORBIDDEN, axum::Json(decision)).into_response()
        }
        Err(e) => {
            println!("deny  {method} {path}: the verifier could not be asked: {e}");
            let body = json!({"allow": false, "reason": "state_unavailable",
                              "message": "the verifier could not be asked"});
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_capability_types_on_the_path() {
        assert_eq!(
            action_of("GET", "/catalog/paper"),
            Some(json!({"type": "read", "resource": "catalog/paper"}))
        );
        assert_eq!(
            action_of("POST", "/orders").map(|a| a["type"].clone()),
            Some(json!("write"))
        );
        assert_eq!(
            action_of("DELETE", "/orders/1").map(|a| a["type"].clone()),
            Some(json!("delete"))
        );
        assert_eq!(action_of("OPTIONS", "/"), None);
    }
}
