//! # agentauth-soft-passkey
//!
//! **FOR TESTS AND LOCAL DEVELOPMENT ONLY.** A software passkey — a P-256
//! private key in process memory or in a file — driving the AgentAuth
//! approval API as a browser with a real authenticator would. Anyone who
//! reads its key file can approve grants as its Approver. Never enroll one
//! for a production Approver.
//!
//! It produces genuine WebAuthn messages: registration responses with
//! attestation `none` (a CBOR attestation object whose authenticator data
//! carries the attested credential data and a COSE EC2 P-256 key) and ES256
//! assertions (core's `SoftAuthenticator`), with user presence and
//! verification flags and a counter that increases on every use. It keeps
//! the session cookie and CSRF token as a browser and the approval UI would.
//!
//! ```no_run
//! # async fn demo() -> Result<(), agentauth_soft_passkey::SoftPasskeyError> {
//! use agentauth_soft_passkey::SoftApprover;
//! let mut dana = SoftApprover::new("http://127.0.0.1:8080", "http://localhost:8080")?;
//! dana.enroll("dana", "<token from `agentauth approver enroll-token dana`>").await?;
//! dana.login("dana").await?;
//! let pending = dana.pending().await?;
//! dana.approve("team-a", "calendar-read").await?;
//! # let _ = pending;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod cbor;
mod file;

use std::path::Path;

use agentauth_core::b64;
use agentauth_core::es256::SigningKey;
use agentauth_core::webauthn::{SoftAuthenticator, USER_PRESENT, USER_VERIFIED};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The attested-credential-data flag of authenticator data.
const ATTESTED_CREDENTIAL_DATA: u8 = 0x40;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum SoftPasskeyError {
    /// The approval API refused, with its stable code.
    #[error("the approval API refused ({status} {code}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The stable code (`csrf_invalid`, `approver_owns_agent`, …).
        code: String,
        /// The problem's detail.
        message: String,
    },
    /// The HTTP exchange failed.
    #[error("the approval API could not be reached: {0}")]
    Http(#[from] reqwest::Error),
    /// The API answered something this client does not understand.
    #[error("unexpected answer from the approval API: {0}")]
    Protocol(String),
    /// The key file could not be read or written.
    #[error("the passkey file: {0}")]
    File(String),
    /// A key operation failed.
    #[error("the passkey key: {0}")]
    Key(#[from] agentauth_core::Error),
}

impl SoftPasskeyError {
    /// The server's stable code, when the server refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            SoftPasskeyError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A software passkey and the browser session around it. Tests and local
/// development only (see the crate docs).
#[derive(Debug)]
pub struct SoftApprover {
    base_url: String,
    origin: String,
    authenticator: SoftAuthenticator,
    key: SigningKey,
    credential_id: Vec<u8>,
    http: reqwest::Client,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl SoftApprover {
    /// A new passkey (fresh P-256 key) for the approval API at `base_url`
    /// (the operator URL), sending `origin` as the WebAuthn origin.
    pub fn new(base_url: &str, origin: &str) -> Result<Self, SoftPasskeyError> {
        let mut id = [0u8; 16];
        id.copy_from_slice(&Sha256::digest(SigningKey::generate().to_scalar())[..16]);
        Self::with_key(base_url, origin, SigningKey::generate(), id.to_vec(), 1)
    }

    fn with_key(
        base_url: &str,
        origin: &str,
        key: SigningKey,
        credential_id: Vec<u8>,
        counter: u32,
    ) -> Result<Self, SoftPasskeyError> {
        let mut authenticator =
            SoftAuthenticator::from_key(SigningKey::from_scalar(&key.to_scalar())?);
        authenticator.counter = counter;
        Ok(SoftApprover {
            base_url: base_url.trim_end_matches('/').to_owned(),
            origin: origin.to_owned(),
            authenticator,
            key,
            credential_id,
            http: reqwest::Client::new(),
            cookie: None,
            csrf: None,
        })
    }

    /// Saves the key, credential id and counter to `path` (mode 0600), so a
    /// CLI can reuse one passkey.
    pub fn save(&self, path: &Path) -> Result<(), SoftPasskeyError> {
        file::save(
            path,
            &self.key.to_scalar(),
            &self.credential_id,
            self.authenticator.counter,
        )
    }

    /// Loads a passkey saved with [`SoftApprover::save`].
    pub fn load(path: &Path, base_url: &str, origin: &str) -> Result<Self, SoftPasskeyError> {
        let (scalar, credential_id, counter) = file::load(path)?;
        Self::with_key(
            base_url,
            origin,
            SigningKey::from_scalar(&scalar)?,
            credential_id,
            counter,
        )
    }

    /// The credential id, base64url (as in `Approver.status.passkeys`).
    pub fn credential_id(&self) -> String {
        b64::encode(&self.credential_id)
    }

    /// The counter the next assertion will carry.
    pub fn counter(&self) -> u32 {
        self.authenticator.counter
    }

    /// The `Cookie` header value of the session, if there is one.
    pub fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// The session's CSRF token, if there is one.
    pub fn csrf_token(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    /// The URL of an approval API path, e.g. `/grants`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/approvals/api{path}", self.base_url)
    }

    /// Enrolls this passkey for `approver` with a one-time enrollment token.
    pub async fn enroll(
        &mut self,
        approver: &str,
        enrollment_token: &str,
    ) -> Result<(), SoftPasskeyError> {
        self.start_session().await?;
        let options = self
            .post(
                "/enroll/begin",
                &json!({"approver": approver, "token": enrollment_token}),
            )
            .await?;
        let credential = self.registration(&options)?;
        self.post("/enroll/finish", &credential).await?;
        Ok(())
    }

    /// Logs in as `approver` with this passkey.
    pub async fn login(&mut self, approver: &str) -> Result<(), SoftPasskeyError> {
        self.start_session().await?;
        let options = self
            .post("/login/begin", &json!({"approver": approver}))
            .await?;
        let assertion = self.assertion(&options)?;
        let answer = self.post("/login/finish", &assertion).await?;
        let csrf = answer["csrfToken"]
            .as_str()
            .ok_or_else(|| SoftPasskeyError::Protocol("login/finish gave no csrfToken".into()))?;
        self.csrf = Some(csrf.to_owned());
        Ok(())
    }

    /// The pending grants within the approver's scope (`GET /grants`).
    pub async fn pending(&self) -> Result<Value, SoftPasskeyError> {
        self.get("/grants").await
    }

    /// One grant as the UI shows it (`GET /grants/{namespace}/{name}`).
    pub async fn detail(&self, namespace: &str, grant: &str) -> Result<Value, SoftPasskeyError> {
        self.get(&format!("/grants/{namespace}/{grant}")).await
    }

    /// The grants this approver decided, newest first (`GET /history`).
    pub async fn history(&self) -> Result<Value, SoftPasskeyError> {
        self.get("/history").await
    }

    /// Revokes an approved grant (`POST /grants/{namespace}/{name}/revoke`;
    /// no passkey signs a revocation).
    pub async fn revoke(
        &mut self,
        namespace: &str,
        grant: &str,
    ) -> Result<Value, SoftPasskeyError> {
        self.post(
            &format!("/grants/{namespace}/{grant}/revoke"),
            &Value::Object(serde_json::Map::new()),
        )
        .await
    }

    /// Approves a grant: begin, sign the challenge, finish.
    pub async fn approve(&mut self, namespace: &str, grant: &str) -> Result<(), SoftPasskeyError> {
        self.decide(namespace, grant, "approve").await
    }

    /// Denies a grant: begin, sign the challenge, finish.
    pub async fn deny(&mut self, namespace: &str, grant: &str) -> Result<(), SoftPasskeyError> {
        self.decide(namespace, grant, "deny").await
    }

    async fn decide(
        &mut self,
        namespace: &str,
        grant: &str,
        action: &str,
    ) -> Result<(), SoftPasskeyError> {
        let options = self.begin(namespace, grant, action).await?;
        self.finish(namespace, grant, action, &options).await?;
        Ok(())
    }

    /// Begins a decision ceremony (`action` is `approve` or `deny`): the
    /// request options, with the values the challenge binds under `grant`.
    pub async fn begin(
        &mut self,
        namespace: &str,
        grant: &str,
        action: &str,
    ) -> Result<Value, SoftPasskeyError> {
        let path = format!("/grants/{namespace}/{grant}/{action}/begin");
        self.post(&path, &json!({})).await
    }

    /// Signs `options` from [`Self::begin`] and finishes the ceremony.
    pub async fn finish(
        &mut self,
        namespace: &str,
        grant: &str,
        action: &str,
        options: &Value,
    ) -> Result<Value, SoftPasskeyError> {
        let assertion = self.assertion(options)?;
        let path = format!("/grants/{namespace}/{grant}/{action}/finish");
        self.post(&path, &assertion).await
    }

    /// Starts (or keeps) the browser session: its cookie and CSRF token.
    pub async fn start_session(&mut self) -> Result<(), SoftPasskeyError> {
        if self.csrf.is_some() && self.cookie.is_some() {
            return Ok(());
        }
        let response = self
            .http
            .get(self.url("/session"))
            .headers(self.headers())
            .send()
            .await?;
        let (answer, cookie) = self.answer(response).await?;
        if cookie.is_some() {
            self.cookie = cookie;
        }
        let csrf = answer["csrfToken"]
            .as_str()
            .ok_or_else(|| SoftPasskeyError::Protocol("GET /session gave no csrfToken".into()))?;
        self.csrf = Some(csrf.to_owned());
        Ok(())
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        put("origin", &self.origin);
        put("sec-fetch-site", "same-origin");
        if let Some(cookie) = &self.cookie {
            put("cookie", cookie);
        }
        if let Some(csrf) = &self.csrf {
            put("x-csrf-token", csrf);
        }
        headers
    }

    /// `GET` an approval API path with the session.
    pub async fn get(&self, path: &str) -> Result<Value, SoftPasskeyError> {
        let response = self
            .http
            .get(self.url(path))
            .headers(self.headers())
            .send()
            .await?;
        self.answer(response).await.map(|(v, _)| v)
    }

    /// `POST` JSON to an approval API path with the session and CSRF token,
    /// keeping any new session cookie.
    pub async fn post(&mut self, path: &str, body: &Value) -> Result<Value, SoftPasskeyError> {
        let response = self
            .http
            .post(self.url(path))
            .headers(self.headers())
            .json(body)
            .send()
            .await?;
        let (value, cookie) = self.answer(response).await?;
        if cookie.is_some() {
            self.cookie = cookie;
        }
        Ok(value)
    }

    async fn answer(
        &self,
        response: reqwest::Response,
    ) -> Result<(Value, Option<String>), SoftPasskeyError> {
        let status = response.status().as_u16();
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            return Err(SoftPasskeyError::Refused {
                status,
                code: body["code"].as_str().unwrap_or("unknown").to_owned(),
                message: body["detail"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok((body, cookie))
    }

    /// A `PublicKeyCredential` (assertion) answering request `options`
    /// (`{"publicKey": {challenge, rpId, …}}`): advances the counter.
    pub fn assertion(&mut self, options: &Value) -> Result<Value, SoftPasskeyError> {
        let public_key = &options["publicKey"];
        let challenge = text(public_key, "challenge")?;
        let challenge = b64::decode(challenge, agentauth_core::ErrorCode::RequestInvalid)?;
        let rp_id = text(public_key, "rpId")?;
        let (data, client, signature) = self.authenticator.assert(&challenge, rp_id, &self.origin);
        let id = self.credential_id();
        Ok(json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "authenticatorData": b64::encode(data),
                "clientDataJSON": b64::encode(client),
                "signature": b64::encode(signature),
                "userHandle": null,
            },
            "extensions": {},
        }))
    }

    /// A registration response (attestation `none`) answering creation
    /// `options` (`{"publicKey": {challenge, rp, …}}`).
    pub fn registration(&self, options: &Value) -> Result<Value, SoftPasskeyError> {
        let public_key = &options["publicKey"];
        let challenge = text(public_key, "challenge")?;
        let rp_id = text(&public_key["rp"], "id")?;
        let client = json!({
            "type": "webauthn.create", "challenge": challenge,
            "origin": self.origin, "crossOrigin": false,
        })
        .to_string();
        let key = self.key.verifying_key()?;
        let cose = cbor::Value::Map(vec![
            (cbor::Value::Int(1), cbor::Value::Int(2)),
            (cbor::Value::Int(3), cbor::Value::Int(-7)),
            (cbor::Value::Int(-1), cbor::Value::Int(1)),
            (cbor::Value::Int(-2), cbor::Value::Bytes(key.x().to_vec())),
            (cbor::Value::Int(-3), cbor::Value::Bytes(key.y().to_vec())),
        ]);
        let mut data = Vec::new();
        data.extend_from_slice(&Sha256::digest(rp_id.as_bytes()));
        data.push(USER_PRESENT | USER_VERIFIED | ATTESTED_CREDENTIAL_DATA);
        data.extend_from_slice(&0u32.to_be_bytes());
        data.extend_from_slice(&[0u8; 16]);
        let id_len = u16::try_from(self.credential_id.len())
            .map_err(|_| SoftPasskeyError::Protocol("credential id too long".into()))?;
        data.extend_from_slice(&id_len.to_be_bytes());
        data.extend_from_slice(&self.credential_id);
        data.extend_from_slice(&cose.encode());
        let attestation = cbor::Value::Map(vec![
            (
                cbor::Value::Text("fmt".into()),
                cbor::Value::Text("none".into()),
            ),
            (
                cbor::Value::Text("attStmt".into()),
                cbor::Value::Map(vec![]),
            ),
            (
                cbor::Value::Text("authData".into()),
                cbor::Value::Bytes(data),
            ),
        ]);
        let id = self.credential_id();
        Ok(json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "attestationObject": b64::encode(attestation.encode()),
                "clientDataJSON": b64::encode(client),
            },
            "extensions": {},
        }))
    }
}

fn text<'a>(value: &'a Value, field: &str) -> Result<&'a str, SoftPasskeyError> {
    value[field]
        .as_str()
        .ok_or_else(|| SoftPasskeyError::Protocol(format!("the options lack {field}")))
}
