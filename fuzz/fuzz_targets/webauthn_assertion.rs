//! WebAuthn assertion parsing and verification on arbitrary bytes.
#![no_main]

use agentauth_core::es256::VerifyingKey;
use agentauth_core::webauthn::{self, Assertion, Credential, Expected};
use libfuzzer_sys::fuzz_target;

/// The RFC 9449 example key: any valid point will do.
const POINT_X: [u8; 32] = [
    0x97, 0xcb, 0x45, 0xae, 0x1c, 0x7e, 0xdf, 0x8b, 0x55, 0xde, 0x14, 0x48, 0x09, 0x10, 0xd8, 0xf7,
    0x30, 0xa4, 0x0e, 0x5a, 0x41, 0x84, 0x5e, 0x36, 0x51, 0x05, 0x1f, 0x59, 0x50, 0x16, 0x04, 0x5b,
];
const POINT_Y: [u8; 32] = [
    0xf5, 0x51, 0x38, 0x8d, 0xff, 0xce, 0x93, 0xfa, 0x3a, 0xe3, 0x36, 0xd3, 0x4e, 0x57, 0x2e, 0x34,
    0x96, 0xa3, 0x1e, 0x6b, 0x7a, 0xbf, 0xd4, 0xc3, 0x56, 0xb5, 0x34, 0x09, 0xdb, 0xc6, 0x44, 0x30,
];

fuzz_target!(|data: &[u8]| {
    let Ok(key) = VerifyingKey::from_coordinates(&POINT_X, &POINT_Y) else { return };
    let cut1 = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let cut2 = data.get(1).map_or(0, |b| usize::from(*b)).min(data.len() - cut1) + cut1;
    let origins = vec!["https://approvals.example".to_string()];
    let _ = webauthn::verify(
        &Assertion {
            authenticator_data: &data[..cut1],
            client_data_json: &data[cut1..cut2],
            signature: &data[cut2..],
        },
        &Expected {
            challenge: &[0; 32],
            rp_id: "approvals.example",
            origins: &origins,
            require_user_verification: true,
        },
        &Credential { key: &key, sign_count: 0 },
    );
});
