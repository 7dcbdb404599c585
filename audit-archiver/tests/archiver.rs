//! The audit archiver against a real Redis and a real directory store:
//! sealing and trimming, every way of tampering named by `verify`, and
//! crashes at each step losing and doubling nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "archiver/crashes.rs"]
mod crashes;
#[path = "archiver/sealing.rs"]
mod sealing;
#[path = "archiver/support.rs"]
mod support;
#[path = "archiver/tamper.rs"]
mod tamper;
