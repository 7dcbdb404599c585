//! # agentauth-service
//!
//! The plumbing every AgentAuth service process shares, so that it is
//! written once: the HTTP/1.1 accept loop of the verifier and the webhook
//! ([`http::serve`]), the process identity that names a Lease holder or an
//! audit chain ([`identity::default_identity`]), and the WebAuthn
//! relying-party flags of the operator and the webhook ([`rp::RelyingParty`]),
//! and how metrics are registered and rendered ([`metrics::Register`]).
//! No domain logic lives here.

#![forbid(unsafe_code)]

pub mod http;
pub mod identity;
pub mod metrics;
pub mod rp;
