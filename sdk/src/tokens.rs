//! The token cache: one slot per service provider, one issuance at a time.
//!
//! ```text
//!  get_token(p) ─▶ slot(p).lock().await ─▶ fresh? ─ yes ─▶ clone
//!                   (tokio Mutex: waiters        └─ no ──▶ POST /v1/token ─▶ store ─▶ clone
//!                    queue, then find it fresh)
//! ```
//!
//! Holding the async lock across the issuance is the single flight: ten
//! tasks asking at once make one request, and nine of them find its token.
//! A token is refreshed `min(refresh_before, lifetime / 10)` before it
//! expires, so a request signed just before the refresh still has time to
//! reach its provider.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::json;

use crate::client::{AgentAuthClient, read_json};
use crate::error::{Error, Result};
use crate::nonce::{self, NonceCell};

/// An access token and when to stop using it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The DPoP-bound access token (a JWT).
    pub access_token: String,
    /// The grant it was issued for, `namespace/name`.
    pub grant: String,
    /// When it expires.
    pub expires_at: SystemTime,
    /// When it will be replaced by a new one.
    pub refresh_at: SystemTime,
}

impl Token {
    /// Whether it should be used as is now.
    pub fn is_fresh(&self) -> bool {
        SystemTime::now() < self.refresh_at
    }
}

/// The cache of one service provider.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    grant: Mutex<Option<String>>,
    token: tokio::sync::Mutex<Option<Token>>,
    /// The provider's latest DPoP nonce (RFC 9449 §9).
    pub(crate) nonce: NonceCell,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: u64,
}

impl Slot {
    pub(crate) fn set_grant(&self, grant: String) {
        *self
            .grant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(grant);
    }

    fn grant(&self) -> Option<String> {
        self.grant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) async fn clear(&self) {
        *self.token.lock().await = None;
    }

    /// The cached token when fresh and for the current grant, else a new one.
    pub(crate) async fn token(&self, client: &AgentAuthClient, provider: &str) -> Result<Token> {
        let grant = self.grant().ok_or_else(|| Error::NoGrant {
            provider: provider.to_owned(),
        })?;
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && token.grant == grant
            && token.is_fresh()
        {
            return Ok(token.clone());
        }
        let token = issue(client, &grant).await?;
        *cached = Some(token.clone());
        Ok(token)
    }
}

/// `POST /v1/token` for `grant`.
async fn issue(client: &AgentAuthClient, grant: &str) -> Result<Token> {
    let inner = &client.inner;
    let mut body = json!({"grant": grant});
    if let Some(lifetime) = inner.token_lifetime {
        body["expires_in"] = json!(lifetime.as_secs().max(1));
    }
    let requested = SystemTime::now();
    let response = nonce::send_to_operator(client, reqwest::Method::POST, "/v1/token", |r| {
        r.json(&body)
    })
    .await?;
    let answer: TokenResponse = read_json(response).await?;
    if !answer.token_type.eq_ignore_ascii_case("DPoP") {
        return Err(Error::Protocol(format!(
            "expected a DPoP token, got token_type {:?}",
            answer.token_type
        )));
    }
    // Counted from the request, not the answer: the token was minted no
    // earlier than that.
    let lifetime = Duration::from_secs(answer.expires_in);
    let margin = inner.refresh_before.min(lifetime / 10);
    tracing::debug!(grant, expires_in = answer.expires_in, "token issued");
    Ok(Token {
        access_token: answer.access_token,
        grant: grant.to_owned(),
        expires_at: requested + lifetime,
        refresh_at: requested + lifetime - margin,
    })
}
