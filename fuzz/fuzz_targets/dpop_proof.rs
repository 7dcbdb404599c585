//! DPoP proof decoding and verification on arbitrary bytes.
#![no_main]

use agentauth_core::dpop::{self, Request, Window};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let request = Request {
        method: "POST",
        url: "https://server.example.com/token",
        access_token: Some("token"),
        nonce: None,
    };
    let _ = dpop::verify(data, &request, Window::default(), 1_562_262_616);
});
