//! A tiny service provider (a calendar API) that checks every request with
//! the node-local verifier before doing anything.
//!
//! ```text
//!  GET    /calendars/{cal}/events        read   calendars/{cal}/events
//!  POST   /calendars/{cal}/events        write  calendars/{cal}/events
//!  DELETE /calendars/{cal}/events/{id}   delete calendars/{cal}/events/{id}
//!  ─▶ VerifierClient::verify(headers, method, public URL + path, action)
//!  ─▶ 200 {"ok": true, …} | 403 problem+json with the verifier's reason code
//!     | 401 use_dpop_nonce + DPoP-Nonce (verifier nonces on; any answer may carry DPoP-Nonce)
//!     | 503 state_unavailable when the verifier cannot be asked (fail closed)
//! ```
//!
//! ```sh
//! # against ./dev.sh (verifier-a on 8081, which serves https://calendar.example.com)
//! cargo run -p agentauth --example provider -- \
//!   --listen 127.0.0.1:8090 --verifier-url http://127.0.0.1:8081 \
//!   --public-url http://127.0.0.1:8090 --audience https://calendar.example.com
//! ```

#![allow(dead_code)]

use std::net::SocketAddr;

use agentauth::ErrorCode;
use agentauth::provider::{Action, Decision, VerifierClient};
use agentauth_core::problem::{PROBLEM_JSON, Problem};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::Parser;

/// The provider's flags.
#[derive(Debug, Parser)]
#[command(
    about = "An example service provider that asks the AgentAuth verifier about every request"
)]
struct Args {
    /// Where to listen.
    #[arg(long, env = "PROVIDER_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The node-local verifier.
    #[arg(
        long,
        env = "AGENTAUTH_VERIFIER_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    verifier_url: String,
    /// The URL agents call this provider at (what their proofs name).
    #[arg(
        long,
        env = "PROVIDER_PUBLIC_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    public_url: String,
    /// This provider's id (the grants' serviceProvider, the tokens'
    /// audience), for a verifier serving several; default: the verifier's first.
    #[arg(long, env = "PROVIDER_AUDIENCE")]
    audience: Option<String>,
}

/// What every request handler shares.
#[derive(Clone)]
pub struct Provider {
    verifier: VerifierClient,
    public_url: String,
}

/// The provider's router: every route goes through [`handle`].
pub fn app(
    verifier_url: &str,
    public_url: &str,
    audience: Option<&str>,
) -> agentauth::Result<Router> {
    let mut verifier = VerifierClient::new(verifier_url)?;
    if let Some(audience) = audience {
        verifier = verifier.with_audience(audience);
    }
    let state = Provider {
        verifier,
        public_url: public_url.trim_end_matches('/').to_owned(),
    };
    Ok(Router::new().fallback(handle).with_state(state))
}

/// The action a request asks for: the method's capability type on the path.
fn action_of(method: &str, path: &str) -> Option<Action> {
    let resource = path.trim_matches('/');
    let segments: Vec<&str> = resource.split('/').collect();
    let kind = match (method, segments.as_slice()) {
        ("GET", ["calendars", _, "events", ..]) => "read",
        ("POST", ["calendars", _, "events"]) => "write",
        ("DELETE", ["calendars", _, "events", _]) => "delete",
        _ => return None,
    };
    Some(Action::new(kind, resource))
}

async fn handle(State(provider): State<Provider>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let Some(action) = action_of(&method, &path) else {
        return problem(ErrorCode::RequestInvalid, 404, "no such route");
    };
    let url = match request.uri().query() {
        Some(query) => format!("{}{path}?{query}", provider.public_url),
        None => format!("{}{path}", provider.public_url),
    };
    let decision = provider
        .verifier
        .verify(request.headers(), &method, &url, &action)
        .await;
    match decision {
        Ok(d) if d.allow => {
            println!(
                "allow {method} {path} for {}",
                d.agent.as_deref().unwrap_or("?")
            );
            let body = serde_json::json!({
                "ok": true, "action": action.kind, "resource": action.resource,
                "agent": d.agent, "grant": d.grant,
            });
            with_nonce((StatusCode::OK, axum::Json(body)).into_response(), &d)
        }
        Ok(d) => {
            let reason = d.reason.clone().unwrap_or_default();
            println!("deny  {method} {path}: {reason}");
            let code = d.code().unwrap_or(ErrorCode::CapabilityNotGranted);
            let status = match code {
                ErrorCode::RateLimited => 429,
                // RFC 9449 §9: a nonce challenge is a 401.
                ErrorCode::UseDpopNonce => 401,
                _ => 403,
            };
            let mut response = problem(code, status, d.message.as_deref().unwrap_or(&reason));
            if code == ErrorCode::UseDpopNonce {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("DPoP error=\"use_dpop_nonce\""),
                );
            }
            with_nonce(response, &d)
        }
        Err(e) => {
            println!("deny  {method} {path}: the verifier could not be asked: {e}");
            problem(
                ErrorCode::StateUnavailable,
                503,
                "the verifier is unavailable",
            )
        }
    }
}

/// Hands the agent the verifier's DPoP nonce, when it gave one.
fn with_nonce(mut response: Response, decision: &Decision) -> Response {
    if let Some(value) = decision
        .dpop_nonce
        .as_deref()
        .and_then(|n| HeaderValue::from_str(n).ok())
    {
        response.headers_mut().insert("dpop-nonce", value);
    }
    response
}

fn problem(code: ErrorCode, status: u16, detail: &str) -> Response {
    let body = Problem::new(code, status, detail).to_json();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], body).into_response()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let app = app(
        &args.verifier_url,
        &args.public_url,
        args.audience.as_deref(),
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "provider listening on {} (public URL {}), verifier {}",
        args.listen, args.public_url, args.verifier_url
    );
    axum::serve(listener, app).await?;
    Ok(())
}
