//! Chaos experiments for AgentAuth (DESIGN §10, "load, chaos"): the whole
//! system as real processes on this machine, a steady load of verifications,
//! one injected fault, and numbers.
//!
//! ```text
//!  etcd + kube-apiserver (own per experiment; can be stopped and started)
//!    ▲ watch/patch          ▲ Lease
//!  operator-a ◀─┐   operator-b (standby)        agents (SDK keys, approved grants)
//!               └─ front (TCP failover, the "Service": public URL, JWKS, agent + approval API)
//!  Redis ◀──(LatencyProxy, optional)── verifier-a, verifier-b ◀── load: POST /v1/verify,
//!                                                                   a fresh DPoP proof each
//! ```
//!
//! [`System::start`] brings it all up; [`Load`] sends the verifications and
//! records every answer with its time; [`report`] cuts the record into the
//! phases of an experiment (marks such as "redis killed"), counts allows and
//! denies by reason per phase and verifier, measures detection and recovery
//! times, and writes `<experiment>.md` when `AGENTAUTH_CHAOS_RESULTS` names a
//! folder. The experiments themselves are the tests under `tests/`, one
//! binary each so that they never run at the same time.

#![forbid(unsafe_code)]

pub mod agent;
pub mod audit;
pub mod binary;
pub mod error;
pub mod front;
pub mod load;
pub mod report;
pub mod service;
mod setup;
pub mod system;

pub use error::Error;
pub use load::{Load, Outcome, Sample};
pub use report::Report;
pub use system::{Options, System};
