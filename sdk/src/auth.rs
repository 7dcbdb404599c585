//! Signing a request for a service provider: `Authorization: DPoP <token>`
//! and a fresh `DPoP` proof (RFC 9449 §7) bound to that token, that method
//! and that URL.
//!
//! ```text
//!  token ──┐
//!  method ─┼─▶ dpop::create(key, {htm, htu = URL without query/fragment, ath = SHA-256(token)}, now, new jti)
//!  url ────┘
//! ```
//!
//! A proof is made per request and never reused: verifiers refuse a `jti`
//! they have seen (`dpop_replayed`). [`Authenticate`] is implemented for
//! `http::Request<B>` (whose URI must be absolute) and `reqwest::Request`.

use agentauth_core::dpop;
use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderValue};

use crate::error::{Error, Result};
use crate::keys::AgentKey;

/// The name of the proof header.
pub const DPOP: &str = "DPoP";

/// The two headers of an authenticated request.
#[derive(Clone, Debug)]
pub struct AuthHeaders {
    /// `DPoP <access token>`.
    pub authorization: String,
    /// The proof.
    pub dpop: String,
}

/// Makes the headers for `method` on `url` with `token`.
pub fn headers_for(key: &AgentKey, token: &str, method: &str, url: &str) -> Result<AuthHeaders> {
    headers_with_nonce(key, token, method, url, None)
}

/// [`headers_for`] with the server's DPoP nonce in the proof (RFC 9449 §9),
/// when it has handed one out.
pub fn headers_with_nonce(
    key: &AgentKey,
    token: &str,
    method: &str,
    url: &str,
    nonce: Option<&str>,
) -> Result<AuthHeaders> {
    let proof = proof(key, method, url, Some(token), nonce)?;
    Ok(AuthHeaders {
        authorization: format!("DPoP {token}"),
        dpop: proof,
    })
}

/// A proof of `key` for `method` on `url`, bound to `token` when given,
/// carrying the server's `nonce` when given.
pub(crate) fn proof(
    key: &AgentKey,
    method: &str,
    url: &str,
    token: Option<&str>,
    nonce: Option<&str>,
) -> Result<String> {
    let request = dpop::Request {
        method,
        url,
        access_token: token,
        nonce,
    };
    dpop::create(key.signing_key(), &request, now_secs(), &dpop::new_jti())
        .map_err(|e| Error::Key(format!("cannot sign a DPoP proof: {}", e.message)))
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A request the SDK can authenticate.
pub trait Authenticate {
    /// The HTTP method.
    fn method_str(&self) -> &str;
    /// The absolute URL.
    fn absolute_url(&self) -> Result<String>;
    /// Where the headers go.
    fn headers_mut(&mut self) -> &mut HeaderMap;

    /// Sets `Authorization` and `DPoP`, replacing any earlier values.
    fn set_auth(&mut self, headers: &AuthHeaders) -> Result<()> {
        let invalid = |_| Error::Protocol("the token or proof is not a valid header value".into());
        let authorization = HeaderValue::from_str(&headers.authorization).map_err(invalid)?;
        let proof = HeaderValue::from_str(&headers.dpop).map_err(invalid)?;
        let map = self.headers_mut();
        map.insert(AUTHORIZATION, authorization);
        map.insert(DPOP, proof);
        Ok(())
    }
}

impl<B> Authenticate for http::Request<B> {
    fn method_str(&self) -> &str {
        self.method().as_str()
    }

    fn absolute_url(&self) -> Result<String> {
        let uri = self.uri();
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Err(Error::Config(format!(
                "the request URI {uri} is not absolute; the DPoP proof must name scheme and host"
            )));
        }
        Ok(uri.to_string())
    }

    fn headers_mut(&mut self) -> &mut HeaderMap {
        http::Request::headers_mut(self)
    }
}

impl Authenticate for reqwest::Request {
    fn method_str(&self) -> &str {
        self.method().as_str()
    }

    fn absolute_url(&self) -> Result<String> {
        Ok(self.url().as_str().to_owned())
    }

    fn headers_mut(&mut self) -> &mut HeaderMap {
        reqwest::Request::headers_mut(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentauth_core::b64;
    use agentauth_core::token::token_hash;

    fn verify(proof: &str, method: &str, url: &str, token: &str) -> dpop::VerifiedProof {
        let request = dpop::Request {
            method,
            url,
            access_token: Some(token),
            nonce: None,
        };
        dpop::verify(proof, &request, dpop::Window::default(), now_secs()).unwrap()
    }

    #[test]
    fn http_requests_get_a_bound_proof_without_the_query() {
        let key = AgentKey::generate().unwrap();
        let mut request = http::Request::post("https://cal.example/api/events?x=1#f")
            .body(())
            .unwrap();
        let url = request.absolute_url().unwrap();
        let headers = headers_for(&key, "tok", request.method_str(), &url).unwrap();
        request.set_auth(&headers).unwrap();
        assert_eq!(request.headers()["authorization"], "DPoP tok");
        let proof = request.headers()["dpop"].to_str().unwrap();
        let verified = verify(proof, "POST", "https://cal.example/api/events", "tok");
        assert_eq!(verified.jkt, key.thumbprint());
        let claims: serde_json::Value = serde_json::from_slice(
            &b64::decode(
                proof.split('.').nth(1).unwrap(),
                agentauth_core::ErrorCode::DpopInvalid,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["htu"], "https://cal.example/api/events");
        assert_eq!(claims["ath"], b64::encode(token_hash("tok")));
    }

    #[test]
    fn relative_http_requests_are_refused_and_proofs_are_fresh() {
        let request = http::Request::get("/api/events").body(()).unwrap();
        assert!(matches!(request.absolute_url(), Err(Error::Config(_))));
        let key = AgentKey::generate().unwrap();
        let a = headers_for(&key, "t", "GET", "https://x.example/").unwrap();
        let b = headers_for(&key, "t", "GET", "https://x.example/").unwrap();
        assert_ne!(a.dpop, b.dpop, "a fresh jti per request");
    }

    #[test]
    fn reqwest_requests_are_signed_too() {
        let key = AgentKey::generate().unwrap();
        let mut request = reqwest::Request::new(
            reqwest::Method::DELETE,
            "https://cal.example/api/events/1".parse().unwrap(),
        );
        let url = request.absolute_url().unwrap();
        let headers = headers_for(&key, "tok", request.method_str(), &url).unwrap();
        request.set_auth(&headers).unwrap();
        let proof = request.headers()["dpop"].to_str().unwrap();
        verify(proof, "DELETE", "https://cal.example/api/events/1", "tok");
    }
}
