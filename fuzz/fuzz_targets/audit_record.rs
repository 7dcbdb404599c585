//! Audit record decoding, hashing and chain checking on arbitrary bytes.
#![no_main]

use agentauth_core::audit::{AuditEvent, ChainVerifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let mut verifier = ChainVerifier::new();
    for line in data.lines() {
        if let Ok(event) = AuditEvent::from_json(line) {
            let _ = verifier.push(&event);
        }
    }
});
