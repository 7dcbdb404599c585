//! # agentauth-operator
//!
//! The operator turns human-approved CapabilityGrants into short-lived,
//! sender-constrained access tokens, and keeps every verifier's view of
//! grants current. It is the only issuer.
//!
//! ```text
//!             ┌───────────── every replica ──────────────┐   ┌── leader only ──┐
//!  apiserver ─┤ watches ─▶ caches ─▶ agent API (/v1/...)  │   │ controllers     │─▶ status, Events
//!             └──────────────────────────┬───────────────┘   └────────┬────────┘
//!                                        ▼                            ▼
//!                          signer (KMS root ─▶ issuing key)   shared state (grant state,
//!                                                              revocations, audit stream)
//! ```
//!
//! Leadership is a `coordination.k8s.io` Lease ([`leader`]).

pub mod api;
pub mod approvals;
pub mod audit;
pub mod cache;
pub mod cache_gauges;
pub mod clock;
pub mod config;
pub mod context;
pub mod controllers;
pub mod http;
pub mod leader;
pub mod metered_signer;
pub mod metrics;
pub mod preflight;
pub mod server;
