//! The controllers against a real apiserver (the testenv control plane)
//! and the in-process shared state: every grant phase transition, forged
//! approvals, status-writing habits, restarts and leader failover.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod builders;
mod failover;
mod forgeries;
mod habits;
mod leader_crash;
mod phases;
mod readiness;
mod redis_loss;
mod support;
