//! # agentauth-load
//!
//! Load tests of the real system: the processes `agentauth dev` starts
//! (local apiserver, Redis, operator, webhook, two verifiers, archiver),
//! driven with [goose](https://book.goose.rs) users that play many agents
//! and an approver with a software passkey.
//!
//! ```text
//!  dev.rs        start `agentauth dev` (free ports, own state folder), read endpoints.json, stop it
//!  fixtures.rs   Agents (kube API), envelopes, grants asked by the SDK and approved by a passkey
//!  issue.rs      POST /v1/token with a fresh DPoP proof (no SDK cache: every call issues)
//!  wire.rs       POST /v1/verify bodies with a fresh DPoP proof; decisions read back
//!  pace.rs       per-user schedule: the offered rate is users / interval, not "as fast as possible"
//!  recorder.rs   µs latencies (HdrHistogram) and outcomes (allow, deny by reason, errors)
//!  attack.rs     one goose attack: users, run time, a transaction
//!  scenarios/    warm, cold, issuance, approval, mixed
//!  thresholds.rs the targets as pass/fail checks, each named when it fails
//!  soak.rs       RSS of every service, audit drops, archive verification over a long run
//!  report.rs     the Markdown written to bench/results/load.md
//!  profile.rs    smoke (seconds, in `cargo test`), full, soak
//! ```
//!
//! Everything runs on this machine; traffic goes to loopback only, and
//! every loop is bounded by its run time.

#![forbid(unsafe_code)]

pub mod attack;
pub mod dev;
pub mod error;
pub mod fixtures;
pub mod issue;
pub mod pace;
pub mod profile;
pub mod recorder;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod soak;
pub mod thresholds;
pub mod wire;

pub use error::LoadError;
