//! base64url without padding (RFC 7515 §2), the only encoding on our wire.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, ErrorCode, Result};

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; padding, `+`, `/` and whitespace are
/// refused so that one value has exactly one encoding.
pub fn decode(s: &str, code: ErrorCode) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| Error::new(code, format!("invalid base64url: {e}")))
}
