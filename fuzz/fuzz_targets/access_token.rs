//! Access-token decoding and signature verification on arbitrary bytes.
#![no_main]

use agentauth_core::token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let keys = std::collections::HashMap::new();
    let _ = token::verify_signature(data, &keys);
});
