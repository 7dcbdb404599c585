//! # agentauth — the agent SDK
//!
//! Makes the secure path the easy one for an AI agent calling a service
//! provider through AgentAuth: its key is generated and kept in a 0600
//! file, every request carries a fresh DPoP proof, tokens are cached and
//! refreshed before they expire, and every refusal is a typed [`Error`]
//! with the server's stable code.
//!
//! ```no_run
//! # async fn demo() -> agentauth::Result<()> {
//! use agentauth::{AgentAuthClient, AgentAuthConfig, Capability};
//! let config = AgentAuthConfig::new("https://registry.example.com")?
//!     .agent("team-a", "calendar-bot")
//!     .key_file("/var/run/agentauth/agent.jwk");
//! let client = AgentAuthClient::new(config)?;
//! let grant = client
//!     .request_grant("calendar.example.com",
//!         vec![Capability::Read { resource: "calendar".to_string(), filter: None }])
//!     .await?;
//! client.wait_for_approval(&grant.reference(), std::time::Duration::from_secs(600)).await?;
//! let mut request = reqwest::Request::new(reqwest::Method::GET,
//!     "https://calendar.example.com/api/events".parse().expect("a URL"));
//! client.authenticate_request("calendar.example.com", &mut request).await?;
//! # Ok(()) }
//! ```
//!
//! ```text
//!  config ─▶ client ─┬─▶ operator: POST /v1/grants, GET …/events (SSE), POST /v1/token
//!                    └─▶ your request + Authorization: DPoP <token> + DPoP: <proof>
//!  provider side: provider::VerifierClient ─▶ verifier POST /v1/verify ─▶ Decision
//! ```
//!
//! The SDK depends on `agentauth-core` only (DESIGN §2): DPoP proofs, JWKs
//! and error codes are core's.

#![forbid(unsafe_code)]

pub mod auth;
pub mod capability;
pub mod client;
pub mod config;
pub mod error;
mod events;
pub mod grant;
pub mod keys;
pub mod manifest;
pub mod mcp;
pub mod nonce;
pub mod provider;
pub mod tokens;

pub use agentauth_core::ErrorCode;
pub use auth::{AuthHeaders, Authenticate};
pub use capability::Capability;
pub use client::AgentAuthClient;
pub use config::AgentAuthConfig;
pub use error::{Code, Error, Result, check_response};
pub use grant::{Grant, GrantOptions};
pub use keys::AgentKey;
pub use manifest::{AgentIdentity, agent_manifest};
pub use mcp::McpClient;
pub use tokens::Token;
