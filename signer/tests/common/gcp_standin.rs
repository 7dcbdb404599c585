//! [`GcpKmsStandin`]: a **stand-in** for Google Cloud KMS, not an emulator of
//! it. No Cloud KMS emulator is published in the package registries this
//! project can reach, so this serves the documented REST/JSON contract of the
//! two calls the signer makes, for `EC_SIGN_P256_SHA256` key versions it
//! holds in memory, on a plain-HTTP loopback port:
//!
//! ```text
//!  GET  /v1/{name}/publicKey       ─▶ {pem, algorithm, pemCrc32c, name, protectionLevel}
//!  POST /v1/{name}:asymmetricSign  ◀─ {digest: {sha256}, digestCrc32c}
//!                                  ─▶ {signature, signatureCrc32c, verifiedDigestCrc32c, name, …}
//!  errors                          ─▶ {"error": {code, message, status}}   (google.rpc.Status)
//! ```
//!
//! The keys are real P-256 keys, the signatures real ECDSA (DER, as Cloud KMS
//! returns them), the CRC32C values real, int64 fields strings as in proto3
//! JSON, bytes standard base64. The bearer token is checked. Knobs make the
//! next reply lie in one way each (a wrong CRC32C, a signature that does not
//! verify, another key version's name, `verifiedDigestCrc32c: false`), add
//! key versions (rotation) or a key of another algorithm, refuse signing, or
//! hang forever.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::hazmat::PrehashSigner as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The project, location and key ring every key of the stand-in lives in.
pub const KEY_RING: &str = "projects/agentauth-test/locations/global/keyRings/agentauth";
/// The bearer token the stand-in accepts until [`GcpKmsStandin::set_token`].
pub const TOKEN: &str = "ya29.standin-access-token";

/// The algorithms of the stand-in's key versions.
#[derive(Clone, Copy, Debug)]
enum Algorithm {
    P256,
    P384,
}

impl Algorithm {
    /// The `CryptoKeyVersionAlgorithm` value, by name or (when the client
    /// asks for `$alt=json;enum-encoding=int`, as Google's Rust client does)
    /// by number.
    fn json(self, int_enums: bool) -> Value {
        match (self, int_enums) {
            (Algorithm::P256, false) => json!("EC_SIGN_P256_SHA256"),
            (Algorithm::P256, true) => json!(12),
            (Algorithm::P384, false) => json!("EC_SIGN_P384_SHA384"),
            (Algorithm::P384, true) => json!(13),
        }
    }
}

/// `ProtectionLevel::HSM`, by name or number.
fn hsm(int_enums: bool) -> Value {
    if int_enums { json!(2) } else { json!("HSM") }
}

/// How the next reply lies (each is used once, by the next request).
#[derive(Clone, Debug)]
pub enum Fault {
    /// `pemCrc32c` is not the CRC32C of `pem`.
    PemCrc32c,
    /// `signatureCrc32c` is not the CRC32C of `signature`.
    SignatureCrc32c,
    /// `verifiedDigestCrc32c: false`: as if the request's `digestCrc32c`
    /// had been dropped on the way.
    DigestNotVerified,
    /// A well-formed signature, with its right CRC32C, over another digest.
    WrongSignature,
    /// The reply names this key version instead of the one asked for.
    OtherName(String),
}

struct Version {
    algorithm: Algorithm,
    pem: String,
    /// `None` for keys of other algorithms, which the stand-in does not sign with.
    key: Option<p256::ecdsa::SigningKey>,
}

struct State {
    token: String,
    versions: BTreeMap<String, Version>,
    next_fault: Option<Fault>,
    may_sign: bool,
    hang: bool,
    requests: Vec<String>,
}

/// A Cloud KMS stand-in on `127.0.0.1:<free port>`; stops when dropped.
pub struct GcpKmsStandin {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl GcpKmsStandin {
    /// Listens on a free loopback port, with no keys yet, accepting [`TOKEN`].
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            token: TOKEN.into(),
            versions: BTreeMap::new(),
            next_fault: None,
            may_sign: true,
            hang: false,
            requests: Vec::new(),
        }));
        let shared = state.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { handle(&state, &method, &uri, &headers, &body).await }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(GcpKmsStandin { addr, state, task })
    }

    /// The endpoint to configure: `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the key `key` with a first `EC_SIGN_P256_SHA256` version and
    /// returns that version's resource name.
    pub fn create_key(&self, key: &str) -> String {
        self.rotate(key)
    }

    /// Adds a new `EC_SIGN_P256_SHA256` version to `key` (creating the key
    /// if needed) and returns its resource name; older versions stay enabled.
    pub fn rotate(&self, key: &str) -> String {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let signing = p256::ecdsa::SigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap();
        let pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        self.add_version(key, Algorithm::P256, pem, Some(signing))
    }

    /// Creates the key `key` with a P-384 version (`EC_SIGN_P384_SHA384`, a
    /// real public key) that the stand-in never signs with, and returns its name.
    pub fn create_p384_key(&self, key: &str) -> String {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let alg = &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING;
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
        let der: aws_lc_rs::encoding::PublicKeyX509Der<'static> =
            aws_lc_rs::encoding::AsDer::as_der(aws_lc_rs::signature::KeyPair::public_key(&pair))
                .unwrap();
        let pem = pem_block("PUBLIC KEY", der.as_ref());
        self.add_version(key, Algorithm::P384, pem, None)
    }

    fn add_version(
        &self,
        key: &str,
        algorithm: Algorithm,
        pem: String,
        signing: Option<p256::ecdsa::SigningKey>,
    ) -> String {
        let mut state = self.state();
        let prefix = format!("{KEY_RING}/cryptoKeys/{key}/cryptoKeyVersions/");
        let number = state
            .versions
            .keys()
            .filter(|name| name.starts_with(&prefix))
            .count()
            + 1;
        let name = format!("{prefix}{number}");
        state.versions.insert(
            name.clone(),
            Version {
                algorithm,
                pem,
                key: signing,
            },
        );
        name
    }

    /// Makes the next reply lie as `fault` says.
    pub fn fail_next(&self, fault: Fault) {
        self.state().next_fault = Some(fault);
    }

    /// Accepts only `token` from now on.
    pub fn set_token(&self, token: &str) {
        self.state().token = token.into();
    }

    /// Whether the caller holds `cloudkms.cryptoKeyVersions.useToSign`
    /// (granted by `roles/cloudkms.signerVerifier`); true at start.
    pub fn allow_signing(&self, allowed: bool) {
        self.state().may_sign = allowed;
    }

    /// Accepts connections and requests but never answers any.
    pub fn hang(&self) {
        self.state().hang = true;
    }

    /// `"METHOD path"` of every request received, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }
}

impl Drop for GcpKmsStandin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// A `google.rpc.Status` error body, as Google APIs send them over REST.
fn error(code: StatusCode, status: &str, message: impl Into<String>) -> Response {
    let body =
        json!({"error": {"code": code.as_u16(), "message": message.into(), "status": status}});
    (code, axum::Json(body)).into_response()
}

/// proto3 JSON writes int64 as a string, but accepts a number too.
fn int64(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

async fn handle(
    state: &Mutex<State>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let hang = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.requests.push(format!("{method} {}", uri.path()));
        s.hang
    };
    if hang {
        std::future::pending::<()>().await;
    }
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let expected = format!("Bearer {}", s.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential. \
             See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        );
    }
    let path = uri.path();
    // Google's Rust client asks for `$alt=json;enum-encoding=int` (URL-encoded).
    let int_enums = uri
        .query()
        .is_some_and(|q| q.contains("enum-encoding%3Dint") || q.contains("enum-encoding=int"));
    let Some(rest) = path.strip_prefix("/v1/") else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no route {path}"),
        );
    };
    let fault = s.next_fault.take();
    if *method == Method::GET {
        let Some(name) = rest.strip_suffix("/publicKey") else {
            return error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no route {path}"),
            );
        };
        let Some(version) = s.versions.get(name) else {
            return error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("CryptoKeyVersion {name} not found."),
            );
        };
        let mut crc = crc32c::crc32c(version.pem.as_bytes());
        let mut reply_name = name.to_owned();
        match fault {
            Some(Fault::PemCrc32c) => crc ^= 1,
            Some(Fault::OtherName(other)) => reply_name = other,
            _ => {}
        }
        return axum::Json(json!({
            "pem": version.pem,
            "algorithm": version.algorithm.json(int_enums),
            "pemCrc32c": crc.to_string(),
            "name": reply_name,
            "protectionLevel": hsm(int_enums),
        }))
        .into_response();
    }
    let Some(name) = rest.strip_suffix(":asymmetricSign") else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no route {path}"),
        );
    };
    if *method != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "INVALID_ARGUMENT",
            "use POST",
        );
    }
    if !s.may_sign {
        return error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "Permission 'cloudkms.cryptoKeyVersions.useToSign' denied on resource \
                 '{name}' (or it may not exist)."
            ),
        );
    }
    let Some(version) = s.versions.get(name) else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("CryptoKeyVersion {name} not found."),
        );
    };
    let Some(key) = &version.key else {
        return error(
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            format!(
                "Algorithm {} requires a digest of type sha384 but the request has sha256.",
                version.algorithm.json(false)
            ),
        );
    };
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                format!("Invalid JSON payload received. {e}"),
            );
        }
    };
    let digest = request
        .pointer("/digest/sha256")
        .and_then(Value::as_str)
        .and_then(|b| STANDARD.decode(b).ok());
    let Some(digest) = digest.filter(|d| d.len() == 32) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "The request must contain digest.sha256, 32 bytes.",
        );
    };
    let digest_crc = int64(request.get("digestCrc32c"));
    let mut verified = digest_crc.is_some();
    if let Some(crc) = digest_crc
        && crc != i64::from(crc32c::crc32c(&digest))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "The checksum in field digest_crc32c did not match the data in field digest.",
        );
    }
    let signed_digest = match fault {
        Some(Fault::WrongSignature) => {
            let mut other = digest.clone();
            other[0] ^= 1;
            other
        }
        _ => digest,
    };
    let signature: p256::ecdsa::Signature = match key.sign_prehash(&signed_digest) {
        Ok(sig) => sig,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()),
    };
    let der = signature.to_der();
    let mut signature_crc = crc32c::crc32c(der.as_bytes());
    let mut reply_name = name.to_owned();
    match fault {
        Some(Fault::SignatureCrc32c) => signature_crc ^= 1,
        Some(Fault::DigestNotVerified) => verified = false,
        Some(Fault::OtherName(other)) => reply_name = other,
        _ => {}
    }
    drop(s);
    axum::Json(json!({
        "signature": STANDARD.encode(der.as_bytes()),
        "signatureCrc32c": signature_crc.to_string(),
        "verifiedDigestCrc32c": verified,
        "verifiedDataCrc32c": false,
        "name": reply_name,
        "protectionLevel": hsm(int_enums),
    }))
    .into_response()
}
