//! # agentauth-mcp-gateway
//!
//! Puts AgentAuth in front of an MCP server (streamable HTTP transport) with
//! no auth code in the server: `agentauth mcp-gateway`.
//!
//! ```text
//!  agent (SDK McpClient) ──POST/GET/DELETE + Authorization: DPoP + DPoP──▶ gateway
//!     ▲  401 + WWW-Authenticate: DPoP resource_metadata="…"                 │ one message:
//!     │  GET /.well-known/oauth-protected-resource (RFC 9728) ──▶ operator   │ tools/call ─▶ tool map ─▶ action
//!     │                                                                     │ other      ─▶ session action
//!     │                                       node-local verifier ◀─/v1/verify─┤ (audited, envelopes apply)
//!     └── JSON-RPC error {data.code} ◀── refused ──────────────────────────┤
//!                                              allowed ─▶ MCP server (no credentials) ─▶ answer / SSE back
//! ```
//!
//! The gateway is a service provider of the verifier (DESIGN §4 flow 4): it
//! verifies nothing itself. Modules: [`config`] (flags), [`toolmap`] and
//! [`template`] (the declared map), [`jsonrpc`] (one message per POST),
//! [`mapping`] (message → action), [`verify`] (the verifier call),
//! [`challenge`] (401s and metadata), [`handler`] (one request),
//! [`metrics`] (`/metrics`), [`sessions`] (a session belongs to its agent), [`tool_filter`] (`tools/list` as the map allows),
//! [`proxy`] (to the MCP server), [`server`] (startup). Depends on `core`
//! and `service` only (DESIGN §2).

#![forbid(unsafe_code)]

#[cfg(feature = "server")]
pub mod challenge;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod handler;
pub mod jsonrpc;
pub mod mapping;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod proxy;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod sessions;
pub mod template;
#[cfg(feature = "server")]
pub mod tool_filter;
pub mod toolmap;
#[cfg(feature = "server")]
pub mod verify;

#[cfg(feature = "server")]
pub use config::GatewayConfig;
#[cfg(feature = "server")]
pub use server::{Gateway, GatewayError, run, serve};
