//! [`AgentAuthClient`]: the agent's one handle on AgentAuth.
//!
//! ```text
//!  request_grant(provider, caps) ─▶ POST /v1/grants (DPoP proof of the agent key) ─▶ Grant (Pending)
//!  wait_for_approval(grant, t)   ─▶ GET /v1/grants/{ns}/{name}/events (SSE), reconnecting, ≤ t
//!  get_token(provider)           ─▶ cached per provider ─ stale? ─▶ POST /v1/token (single flight)
//!  authenticate_request(p, req)  ─▶ Authorization: DPoP <token> + DPoP: proof(method, url, ath, nonce?)
//! ```
//!
//! Servers that require DPoP nonces (RFC 9449 §8, §9) are followed: see
//! [`crate::nonce`].
//!
//! The client is cheap to clone (an `Arc` inside) and safe to share between
//! tasks. It remembers, per service provider, the grant it last asked for
//! (or was told about with [`AgentAuthClient::use_grant`]) and its token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentauth_core::dpop;
use serde_json::{Map, Value, json};

use crate::auth::{self, AuthHeaders, Authenticate};
use crate::capability::Capability;
use crate::config::AgentAuthConfig;
use crate::error::{Error, Result};
use crate::grant::{Grant, GrantOptions};
use crate::keys::AgentKey;
use crate::nonce::{self, NonceCell};
use crate::tokens::{Slot, Token};

/// The agent's client of the operator.
#[derive(Clone, Debug)]
pub struct AgentAuthClient {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) operator: String,
    pub(crate) namespace: String,
    pub(crate) agent: String,
    pub(crate) key: AgentKey,
    pub(crate) http: reqwest::Client,
    pub(crate) request_timeout: Duration,
    pub(crate) token_lifetime: Option<Duration>,
    pub(crate) refresh_before: Duration,
    /// The operator's latest DPoP nonce (RFC 9449 §8), when it sends one.
    pub(crate) operator_nonce: NonceCell,
    providers: Mutex<HashMap<String, Arc<Slot>>>,
}

impl AgentAuthClient {
    /// A client for `config`; loads the key (refusing an unsafe key file).
    pub fn new(config: AgentAuthConfig) -> Result<AgentAuthClient> {
        let (namespace, agent) = config.agent_ref().ok_or_else(|| {
            Error::Config(format!(
                "no agent identity: call agent(namespace, name) or set {}",
                crate::config::AGENT_ENV
            ))
        })?;
        let (namespace, agent) = (namespace.to_owned(), agent.to_owned());
        let key = config.load_key()?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("agentauth-sdk-rust/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(AgentAuthClient {
            inner: Arc::new(Inner {
                operator: config.operator_url.clone(),
                namespace,
                agent,
                key,
                http,
                request_timeout: config.request_timeout,
                token_lifetime: config.token_lifetime,
                refresh_before: config.refresh_before,
                operator_nonce: NonceCell::default(),
                providers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The agent's key.
    pub fn key(&self) -> &AgentKey {
        &self.inner.key
    }

    /// The agent, `namespace/name`.
    pub fn agent(&self) -> String {
        format!("{}/{}", self.inner.namespace, self.inner.agent)
    }

    /// Asks for a grant at `provider` with default [`GrantOptions`].
    pub async fn request_grant(
        &self,
        provider: &str,
        capabilities: Vec<Capability>,
    ) -> Result<Grant> {
        self.request_grant_with(provider, capabilities, GrantOptions::default())
            .await
    }

    /// Asks for a grant at `provider`; it starts `Pending` until a human
    /// decides. Later tokens for `provider` come from this grant.
    pub async fn request_grant_with(
        &self,
        provider: &str,
        capabilities: Vec<Capability>,
        options: GrantOptions,
    ) -> Result<Grant> {
        let capabilities = capabilities
            .iter()
            .map(Capability::to_core)
            .collect::<Result<Vec<_>>>()?;
        let inner = &self.inner;
        let mut body = Map::new();
        body.insert("agent".into(), json!(inner.agent));
        body.insert("namespace".into(), json!(inner.namespace));
        body.insert("serviceProvider".into(), json!(provider));
        body.insert("capabilities".into(), json!(capabilities));
        if let Some(envelope) = &options.envelope {
            body.insert("envelopeRef".into(), json!({"name": envelope}));
        }
        match (&options.expires_at, &options.duration) {
            (Some(at), _) => body.insert("expiresAt".into(), json!(at)),
            (None, Some(duration)) => body.insert("duration".into(), json!(duration)),
            (None, None) => body.insert("duration".into(), json!("1h")),
        };
        let reason = options
            .reason
            .clone()
            .unwrap_or_else(|| format!("agent {} asks to call {provider}", self.agent()));
        body.insert("reason".into(), json!(reason));
        let key = options
            .idempotency_key
            .clone()
            .unwrap_or_else(dpop::new_jti);
        let body = Value::Object(body);
        let response = nonce::send_to_operator(self, reqwest::Method::POST, "/v1/grants", |r| {
            r.header("Idempotency-Key", &key).json(&body)
        })
        .await?;
        let grant: Grant = read_json(response).await?;
        self.slot(provider).set_grant(grant.reference());
        tracing::debug!(grant = %grant.reference(), provider, "grant requested");
        Ok(grant)
    }

    /// Uses the existing grant `namespace/name` for `provider` (an agent
    /// restarted after its grant was approved).
    pub fn use_grant(&self, provider: &str, grant: &str) {
        self.slot(provider).set_grant(grant.to_owned());
    }

    /// The grant's current state.
    pub async fn get_grant(&self, grant: &str) -> Result<Grant> {
        let path = format!("/v1/grants/{}", grant_path(grant)?);
        let response = nonce::send_to_operator(self, reqwest::Method::GET, &path, |r| r).await?;
        read_json(response).await
    }

    /// Waits until a human decides on `grant` (`namespace/name`), at most
    /// `timeout`. Approved: the grant. Denied, revoked, expired or deleted:
    /// [`Error::Denied`]. Still pending: [`Error::Timeout`].
    pub async fn wait_for_approval(&self, grant: &str, timeout: Duration) -> Result<Grant> {
        let path = format!("/v1/grants/{}/events", grant_path(grant)?);
        let wait = crate::events::wait(self, grant, &path);
        match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                what: format!("a decision on grant {grant}"),
                after: timeout,
            }),
        }
    }

    /// A token for `provider`: the cached one while it has more than its
    /// refresh margin left, else a new one. Concurrent callers share one
    /// issuance.
    pub async fn get_token(&self, provider: &str) -> Result<Token> {
        let slot = self.slot(provider);
        slot.token(self, provider).await
    }

    /// Forgets the cached token for `provider` (say a provider refused it
    /// with `token_expired` after a clock jump); the next call gets a new one.
    pub async fn invalidate_token(&self, provider: &str) {
        self.slot(provider).clear().await;
    }

    /// The headers for a request `method` on `url` at `provider`. A `url`
    /// that is a path (`/api/events`) is taken relative to `provider` when
    /// the provider's id is its `https://` (or loopback `http://`) URL.
    pub async fn authenticate_headers(
        &self,
        provider: &str,
        method: &str,
        url: &str,
    ) -> Result<AuthHeaders> {
        let url = resolve_url(provider, url)?;
        let token = self.get_token(provider).await?;
        let nonce = self.slot(provider).nonce.get();
        auth::headers_with_nonce(
            &self.inner.key,
            &token.access_token,
            method,
            &url,
            nonce.as_deref(),
        )
    }

    /// Remembers the DPoP nonce that `provider` handed out in the headers of
    /// an answer (`DPoP-Nonce`, RFC 9449 §9); later proofs for `provider`
    /// carry it. Returns whether the headers had one. Pass every answer of a
    /// provider that uses nonces; on a `use_dpop_nonce` refusal, authenticate
    /// the request again and resend it.
    pub fn update_dpop_nonce(&self, provider: &str, headers: &http::HeaderMap) -> bool {
        self.slot(provider).nonce.update(headers)
    }

    /// Sets the DPoP nonce for `provider`'s next proofs (e.g. from a
    /// provider that hands it out some other way).
    pub fn set_dpop_nonce(&self, provider: &str, nonce: impl Into<String>) {
        self.slot(provider).nonce.set(nonce.into());
    }

    /// Sets `Authorization: DPoP <token>` and a fresh `DPoP` proof for the
    /// request's method and URL.
    pub async fn authenticate_request<R: Authenticate + ?Sized>(
        &self,
        provider: &str,
        request: &mut R,
    ) -> Result<()> {
        let url = request.absolute_url()?;
        let headers = self
            .authenticate_headers(provider, request.method_str(), &url)
            .await?;
        request.set_auth(&headers)
    }

    /// A request to the operator's `path` with a fresh proof (carrying the
    /// operator's latest nonce, when it sent one).
    pub(crate) fn operator_request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder> {
        let url = format!("{}{path}", self.inner.operator);
        let nonce = self.inner.operator_nonce.get();
        let proof = auth::proof(
            &self.inner.key,
            method.as_str(),
            &url,
            None,
            nonce.as_deref(),
        )?;
        Ok(self
            .inner
            .http
            .request(method, url)
            .timeout(self.inner.request_timeout)
            .header(auth::DPOP, proof))
    }

    fn slot(&self, provider: &str) -> Arc<Slot> {
        let mut providers = self
            .inner
            .providers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        providers.entry(provider.to_owned()).or_default().clone()
    }
}

/// `url` when absolute; else `url` as a path under the provider's URL.
fn resolve_url(provider: &str, url: &str) -> Result<String> {
    if url.contains("://") {
        return Ok(url.to_owned());
    }
    let relative = || {
        Error::Config(format!(
            "{url:?} is not an absolute URL, and service provider {provider:?} is not a URL to \
             resolve it against"
        ))
    };
    if !url.starts_with('/') {
        return Err(relative());
    }
    let base = crate::config::check_url(provider).map_err(|_| relative())?;
    Ok(format!("{base}{url}"))
}

/// `namespace/name`, checked to be exactly two path-safe segments.
fn grant_path(grant: &str) -> Result<&str> {
    let ok = grant.split_once('/').is_some_and(|(ns, name)| {
        let safe = |s: &str| {
            let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
            edge(s.bytes().next())
                && edge(s.bytes().last())
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
        };
        safe(ns) && safe(name)
    });
    if ok {
        Ok(grant)
    } else {
        Err(Error::Config(format!(
            "a grant is named namespace/name, not {grant:?}"
        )))
    }
}

/// The JSON of a success, or the error of a failure.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T> {
    let response = crate::error::check_response(response).await?;
    let body = response.bytes().await?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::Protocol(format!("cannot read the operator's answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_names_are_checked_before_they_enter_a_path() {
        assert!(grant_path("team-a/bot-1f2e").is_ok());
        for bad in ["team-a", "a/b/c", "../x", "a/../b", "A/b", "a/b?x", "/b"] {
            assert!(grant_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_resolve_against_url_providers_only() {
        let ok = resolve_url("https://cal.example/", "/api/events").unwrap();
        assert_eq!(ok, "https://cal.example/api/events");
        let absolute = resolve_url("cal", "https://cal.example/x").unwrap();
        assert_eq!(absolute, "https://cal.example/x");
        for (provider, url) in [
            ("cal.example", "/api"),
            ("http://cal.example", "/api"),
            ("https://cal.example", "api"),
        ] {
            assert!(resolve_url(provider, url).is_err(), "{provider} {url}");
        }
    }

    #[test]
    fn a_client_needs_an_agent_and_a_key() {
        let config = AgentAuthConfig::new("https://op.example").unwrap();
        let config = AgentAuthConfig {
            namespace: None,
            agent: None,
            ..config
        };
        assert!(matches!(
            AgentAuthClient::new(config.clone()),
            Err(Error::Config(_))
        ));
        let key = AgentKey::generate().unwrap();
        let client = AgentAuthClient::new(config.agent("ns", "bot").key(key)).unwrap();
        assert_eq!(client.agent(), "ns/bot");
    }
}
