//! # agentauth-verifier
//!
//! The node-local verifier (DESIGN §4.4, issue 5): service providers ask it
//! whether an agent's request may proceed, over `POST /v1/verify` or as an
//! Envoy `ext_authz` HTTP service. Every answer is allow, or deny with a
//! stable reason code; only requests it cannot read get a 400.
//!
//! ```text
//!  POST /v1/verify (JSON) ─┐                       ┌─ KeySource: JWKS (url | file) through the pinned root
//!  /ext_authz/** (Envoy) ──┴▶ Verifier::verify ───┼─ TokenCache: SHA-256(token) → verified claims
//!                                │                 ├─ GrantCache: get_grant + subscribe() invalidations
//!                                │                 └─ SharedState::consume: ONE round trip
//!                                ├──▶ Metrics (/metrics)
//!                                └──▶ AuditSink ──bounded channel──▶ writer task ──▶ audit stream
//! ```
//!
//! The checks, in order, are in [`verify`]. The hot path allocates little,
//! logs nothing above debug, and awaits only the grant lookup on a cache
//! miss and the one `consume` call (DESIGN §11). When the shared state does
//! not answer within its timeout the verifier denies with
//! `state_unavailable` and recovers by itself.

#![forbid(unsafe_code)]

pub mod audit;
pub mod body;
pub mod config;
pub mod dpop_nonce;
pub mod ext_authz;
pub mod grant_cache;
mod http;
pub mod keys;
pub mod metrics;
pub mod problem;
pub mod route_map;
pub mod routes;
pub mod server;
pub mod token_cache;
pub mod verify;
pub mod wire;

pub use agentauth_state::{Clock, ManualClock, SystemClock};
pub use verify::{Decision, Input, Outcome, Verifier};
