//! # agentauth-archiver
//!
//! Seals the audit stream into signed segments and checks them offline
//! (DESIGN §8).
//!
//! ```text
//!  producers ─XADD─▶ agentauth:{audit}:stream ─XREADGROUP─▶ Archiver ──▶ Batch (chains checked as read)
//!      └─HSET heartbeats (with every append)          │                      │ full, or old enough
//!                                                     │                      ▼
//!                      XACK + XTRIM ◀── after put ──── Seal: Merkle root, checkpoint signed by the root key
//!                                                                            │
//!                                                    SegmentStore (directory / S3) ◀─ put (durable, never replaces)
//!
//!  agentauth audit verify ── segments in order: signature, prev link, Merkle root, chains, heartbeats
//!  agentauth audit prove  ── one record's Merkle audit path + its checkpoint; verify --proof checks it alone
//!  agentauth audit show   ── records filtered by agent, grant, kind, decision, time
//! ```
//!
//! The stream is acknowledged and trimmed only after the segment holding its
//! entries is durable, so a crash at any point loses nothing: unacknowledged
//! entries are delivered again, and those already sealed (at or below the
//! last checkpoint's chain heads) are acknowledged without being sealed twice.

#![forbid(unsafe_code)]

pub mod archive;
pub mod archiver;
mod batch;
pub mod config;
pub mod metrics;
pub mod proof;
pub mod seal;
pub mod segment;
pub mod server;
pub mod show;
pub mod store;
pub mod verify;

pub use archiver::{Archiver, ArchiverConfig};
pub use metrics::Metrics;
pub use store::{DirStore, SegmentStore, StoreError};
pub use verify::{Problem, ProblemKind, Summary};
