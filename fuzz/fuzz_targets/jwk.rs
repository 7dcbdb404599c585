//! JWK parsing and thumbprinting on arbitrary bytes.
#![no_main]

use agentauth_core::jwk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let _ = jwk::parse_public_jwk(data);
});
