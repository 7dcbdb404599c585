//! Server-provided DPoP nonces (RFC 9449 §8 at the operator's token
//! endpoint, §9 at service providers): the SDK keeps the latest nonce each
//! server handed out and puts it in every later proof for that server.
//!
//! ```text
//!  operator:  proof(nonce = latest) ─▶ 400 use_dpop_nonce + DPoP-Nonce: n ─▶ remember n
//!             ─▶ a NEW proof (new jti, nonce = n) ─▶ sent once more ─▶ answer
//!             every answer's DPoP-Nonce is remembered for the next proof
//!  provider:  the agent passes the provider's answer headers to
//!             AgentAuthClient::update_dpop_nonce; the next authenticate_request
//!             carries the nonce (the agent retries a use_dpop_nonce refusal)
//! ```
//!
//! Servers with nonces off send no `DPoP-Nonce`: nothing is remembered and
//! proofs carry no nonce. Only one retry: a server that refuses the nonce it
//! just handed out is not asked forever.

use std::sync::Mutex;

use http::HeaderMap;

use crate::ErrorCode;
use crate::client::AgentAuthClient;
use crate::error::{Error, Result};

/// The header a server hands its nonce out in.
pub const DPOP_NONCE: &str = "DPoP-Nonce";

/// Longer nonces are ignored: a proof must stay within the servers' limits
/// (core's 2 KiB per proof).
const MAX_NONCE_LEN: usize = 512;

/// The latest nonce of one server.
#[derive(Debug, Default)]
pub(crate) struct NonceCell(Mutex<Option<String>>);

impl NonceCell {
    /// The nonce to put in the next proof.
    pub(crate) fn get(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Remembers `nonce`.
    pub(crate) fn set(&self, nonce: String) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(nonce);
    }

    /// Remembers the nonce of `headers`; whether they had a usable one.
    pub(crate) fn update(&self, headers: &HeaderMap) -> bool {
        match nonce_of(headers) {
            Some(nonce) => {
                self.set(nonce);
                true
            }
            None => false,
        }
    }
}

/// The `DPoP-Nonce` of an answer, when it is one a proof can carry
/// (RFC 9449 §8.1: one or more of `%x21 / %x23-5B / %x5D-7E`).
pub fn nonce_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(DPOP_NONCE)?.to_str().ok()?;
    let valid = (1..=MAX_NONCE_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
    valid.then(|| value.to_owned())
}

/// Sends a request to the operator's `path` with a fresh proof carrying the
/// latest nonce; when refused `use_dpop_nonce` with a new nonce, sends it
/// once more with a new proof. `build` adds the body and headers (called
/// once per attempt). Other refusals come back as responses, for the caller
/// to read.
pub(crate) async fn send_to_operator(
    client: &AgentAuthClient,
    method: reqwest::Method,
    path: &str,
    build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Result<reqwest::Response> {
    let mut retried = false;
    loop {
        let request = build(client.operator_request(method.clone(), path)?);
        let response = request.send().await?;
        let got_nonce = client.inner.operator_nonce.update(response.headers());
        let status = response.status().as_u16();
        if retried || !got_nonce || !matches!(status, 400 | 401) {
            return Ok(response);
        }
        let body = response.bytes().await?;
        let error = Error::from_body(status, &body);
        if error.code() != Some(ErrorCode::UseDpopNonce) {
            return Err(error);
        }
        tracing::debug!(
            path,
            "the operator asks for a DPoP nonce; retrying once with it"
        );
        retried = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(DPOP_NONCE, value.parse().unwrap());
        headers
    }

    #[test]
    fn nonces_are_taken_only_when_a_proof_can_carry_them() {
        assert_eq!(nonce_of(&headers("AAAB-x_y")), Some("AAAB-x_y".into()));
        assert_eq!(nonce_of(&HeaderMap::new()), None);
        for bad in ["a b", "a\"b", "a\\b", &"n".repeat(MAX_NONCE_LEN + 1)] {
            assert_eq!(nonce_of(&headers(bad)), None, "{bad}");
        }
        let cell = NonceCell::default();
        assert!(!cell.update(&HeaderMap::new()));
        assert_eq!(cell.get(), None);
        assert!(cell.update(&headers("n1")));
        assert!(cell.update(&headers("n2")));
        assert_eq!(cell.get(), Some("n2".into()), "the latest nonce wins");
    }
}
