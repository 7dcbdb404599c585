//! # agentauth-core
//!
//! The AgentAuth protocol, pure: no I/O, no async runtime, no clock of its
//! own (every time-dependent function takes `now`). Every service — operator,
//! verifier, webhook, SDK — speaks through these types, so they exist once.
//!
//! ```text
//!  keys (jwk, es256) ──▶ jws ──▶ token (RFC 9068)      capability ─▶ permits / is_subset
//!                          └───▶ dpop  (RFC 9449)      money ───────▶ envelope amounts
//!  jcs (RFC 8785) ──▶ digests ──▶ approval challenge   gcra, window ─▶ envelope rate/time
//!                          └───▶ audit chain           webauthn ────▶ approval assertion
//! ```
//!
//! Every parse or verify function returns [`Error`] with a stable
//! [`ErrorCode`]; inputs over their size limits are refused before parsing.

pub mod approval;
pub mod audit;
pub mod b64;
pub mod capability;
pub mod checkpoint;
pub mod dpop;
pub mod envelope;
pub mod error;
pub mod es256;
pub mod gcra;
pub mod grant;
pub mod htu;
pub mod jcs;
pub mod jwk;
pub mod jws;
pub mod keycert;
pub mod merkle;
pub mod money;
pub mod problem;
pub mod token;
pub mod verify_call;
pub mod webauthn;
pub mod window;

pub use error::{Error, ErrorCode, Result};
