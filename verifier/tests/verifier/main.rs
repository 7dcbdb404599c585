//! Integration tests of the verifier: real HTTP servers on loopback, real
//! tokens and proofs, a real Redis (`RedisServer`) or the in-process state.
//! One test binary, so the stack links once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod audit;
mod dpop_nonce;
mod dst;
mod ext_authz;
mod keys_and_audit;
mod malformed;
mod outage;
mod reason_codes;
mod replay_window;
mod shared_state;
mod support;
