//! A Google Cloud KMS key version (`EC_SIGN_P256_SHA256`) as a [`Signer`]:
//! the private key never leaves Cloud KMS.
//!
//! ```text
//!  connect(config) ── getPublicKey (once) ── {pem, algorithm, pemCrc32c, name}
//!                       └ algorithm == EC_SIGN_P256_SHA256, name == the version asked for,
//!                         CRC32C(pem) == pemCrc32c ─▶ P-256 point, kid (pinned)
//!  sign_digest(d) ─── asymmetricSign {digest.sha256: d, digestCrc32c: CRC32C(d)}
//!                       └ verifiedDigestCrc32c, name == the version, CRC32C(signature)
//!                         == signatureCrc32c ─▶ DER ─▶ r || s ─▶ verified against the pinned key
//! ```
//!
//! The CRC32C checks are the ones Google documents for end-to-end integrity
//! of Cloud KMS requests; the last check (the signature verifies against the
//! key fetched at connect) catches everything else, such as a reply from
//! another key version, before a bad token reaches a verifier. Each
//! `asymmetricSign` is a network round trip billed per call, which is why
//! token issuance normally goes through the
//! [`KeyHierarchy`](crate::KeyHierarchy) and calls the KMS once per rotation.
//!
//! # The client
//!
//! The official client, `google-cloud-kms-v1` (googleapis/google-cloud-rust),
//! speaks REST/JSON over reqwest (rustls on aws-lc-rs, like the rest of the
//! workspace), accepts another endpoint (a plain-HTTP stand-in in tests) and
//! any credentials. It brings Application Default Credentials as Google
//! defines them (`GOOGLE_APPLICATION_CREDENTIALS` service-account or external
//! account files, gcloud user credentials, the GCE/GKE metadata server, i.e.
//! GKE workload identity), with token caching and refresh: the part a
//! hand-written REST client would get subtly wrong. Its cost is the
//! dependency tree (tonic, prost and OpenTelemetry come along), so it sits
//! behind the `gcp-kms` feature. Chosen over `google-cloud-kms` (yoshidan),
//! a community gRPC client.
//!
//! # Timeouts and retries
//!
//! The client has no separate connect timeout: `attempt_timeout` bounds each
//! HTTP attempt, connection included, and `call_timeout` bounds a whole call
//! (token fetch and retries included), after which it fails closed with
//! [`SignerError::Unavailable`]. Only errors the client knows to be transient
//! (`UNAVAILABLE`, before the request was sent) are retried, up to
//! `max_attempts`.

use std::fmt;
use std::time::Duration;

use agentauth_core::es256::VerifyingKey;
use agentauth_core::jwk::EcPublicJwk;
use async_trait::async_trait;
use google_cloud_auth::credentials::{
    self, CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt as _};
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionAlgorithm;
use google_cloud_kms_v1::model::{AsymmetricSignResponse, Digest, PublicKey};
use http::{Extensions, HeaderMap, HeaderValue};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::DecodePublicKey as _;

use crate::{Signer, SignerError, published_jwk};

/// Google's endpoint, named in messages when no other is configured.
const DEFAULT_ENDPOINT: &str = "https://cloudkms.googleapis.com";

/// An OAuth 2 access token used as is (for stand-ins and development;
/// production uses [`GcpCredentials::Default`]). `Debug` hides it.
#[derive(Clone)]
pub struct AccessToken(pub String);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(..)")
    }
}

/// Where the bearer tokens for Cloud KMS come from.
#[derive(Clone, Debug, Default)]
pub enum GcpCredentials {
    /// Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`,
    /// gcloud's user credentials, else the metadata server (GCE, GKE
    /// workload identity).
    #[default]
    Default,
    /// A fixed access token, sent as `Authorization: Bearer <token>`.
    AccessToken(AccessToken),
}

/// How to reach a Cloud KMS key version.
#[derive(Clone, Debug)]
pub struct GcpKmsConfig {
    /// The key version, `projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N`.
    /// A version, not a key: the JWKS pins one public key, and a rotation is
    /// a new version with a new kid.
    pub key_version: String,
    /// Another endpoint than `https://cloudkms.googleapis.com`, e.g. a
    /// regional or Private Service Connect endpoint, or a stand-in.
    pub endpoint: Option<String>,
    /// Where tokens come from.
    pub credentials: GcpCredentials,
    /// Limit on one HTTP attempt, connecting included.
    pub attempt_timeout: Duration,
    /// Limit on one call, token fetch and retries included.
    pub call_timeout: Duration,
    /// Attempts per call (1 = no retry).
    pub max_attempts: u32,
}

impl GcpKmsConfig {
    /// The key version `key_version` with Application Default Credentials,
    /// Google's endpoint, 5 s per attempt, 10 s per call, 3 attempts (Cloud
    /// KMS answers `asymmetricSign` in tens of milliseconds; HSM keys in
    /// about a hundred).
    pub fn new(key_version: impl Into<String>) -> Self {
        GcpKmsConfig {
            key_version: key_version.into(),
            endpoint: None,
            credentials: GcpCredentials::Default,
            attempt_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            max_attempts: 3,
        }
    }

    fn endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT)
    }
}

/// A fixed bearer token as the client's credentials.
struct StaticToken(HeaderMap);

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(..)")
    }
}

impl CredentialsProvider for StaticToken {
    async fn headers(
        &self,
        _extensions: Extensions,
    ) -> Result<CacheableResource<HeaderMap>, CredentialsError> {
        Ok(CacheableResource::New {
            entity_tag: EntityTag::new(),
            data: self.0.clone(),
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

/// A Cloud KMS key version that signs. `Debug` shows the names only.
pub struct GcpKmsSigner {
    client: KeyManagementService,
    key_version: String,
    endpoint: String,
    call_timeout: Duration,
    kid: String,
    jwk: EcPublicJwk,
    check: p256::ecdsa::VerifyingKey,
}

impl GcpKmsSigner {
    /// Connects to the key version in `config`, fetching its public key and
    /// checking it is an intact `EC_SIGN_P256_SHA256` key of that version.
    pub async fn connect(config: &GcpKmsConfig) -> Result<Self, SignerError> {
        let name = config.key_version.as_str();
        let endpoint = config.endpoint().to_owned();
        check_version_name(name).map_err(SignerError::Load)?;
        let client = client(config).await?;
        let call = client.get_public_key().set_name(name).send();
        let reply = with_timeout(call, config.call_timeout, "getPublicKey", &endpoint)
            .await?
            .map_err(|e| kms_error("getPublicKey", name, &endpoint, &e, SignerError::Load))?;
        let public = check_public_key(name, &reply)
            .map_err(|m| SignerError::Load(format!("Cloud KMS key version {name}: {m}")))?;
        let point = public.to_encoded_point(false);
        let key = VerifyingKey::from_sec1(point.as_bytes())?;
        let (kid, jwk) = published_jwk(&key);
        Ok(GcpKmsSigner {
            client,
            key_version: name.to_owned(),
            endpoint,
            call_timeout: config.call_timeout,
            kid,
            jwk,
            check: public.into(),
        })
    }

    /// The key version this signs with.
    pub fn key_version(&self) -> &str {
        &self.key_version
    }
}

/// The client for `config`; builds no connection and fetches no token yet.
async fn client(config: &GcpKmsConfig) -> Result<KeyManagementService, SignerError> {
    let mut builder = KeyManagementService::builder()
        .with_attempt_timeout(config.attempt_timeout)
        .with_retry_policy(Aip194Strict.with_attempt_limit(config.max_attempts.max(1)));
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
    }
    builder = match &config.credentials {
        GcpCredentials::Default => {
            builder.with_credentials(credentials::Builder::default().build().map_err(|e| {
                SignerError::Load(format!(
                    "no Google credentials: {e}; on GKE enable workload identity for the \
                     pod's service account, elsewhere set GOOGLE_APPLICATION_CREDENTIALS"
                ))
            })?)
        }
        GcpCredentials::AccessToken(token) => {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", token.0)).map_err(|_| {
                    SignerError::Load("the access token is not a valid HTTP header value".into())
                })?;
            value.set_sensitive(true);
            let mut headers = HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, value);
            builder.with_credentials(Credentials::from(StaticToken(headers)))
        }
    };
    builder.build().await.map_err(|e| {
        SignerError::Load(format!(
            "cannot set up the Cloud KMS client for {}: {e}",
            config.endpoint()
        ))
    })
}

/// Refuses anything but `projects/*/locations/*/keyRings/*/cryptoKeys/*/cryptoKeyVersions/*`
/// before any request, so that a key name (without version) gets advice
/// rather than a 404.
fn check_version_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('/').collect();
    let shape = [
        "projects",
        "",
        "locations",
        "",
        "keyRings",
        "",
        "cryptoKeys",
        "",
        "cryptoKeyVersions",
        "",
    ];
    let ok = parts.len() == shape.len()
        && parts.iter().zip(shape).all(|(part, want)| {
            if want.is_empty() {
                !part.is_empty()
            } else {
                *part == want
            }
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a Cloud KMS key version name: expected \
             projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N \
             (`gcloud kms keys versions list --key K --keyring R --location L` lists them)"
        ))
    }
}

/// The checks on a `getPublicKey` reply for the version `requested`.
fn check_public_key(requested: &str, reply: &PublicKey) -> Result<p256::PublicKey, String> {
    if reply.name != requested {
        return Err(format!(
            "getPublicKey answered for another key version, {:?}",
            reply.name
        ));
    }
    if reply.algorithm != CryptoKeyVersionAlgorithm::EcSignP256Sha256 {
        return Err(format!(
            "its algorithm is {}, not EC_SIGN_P256_SHA256: ES256 needs an asymmetric \
             signing key on P-256 with SHA-256 (`gcloud kms keys create … --purpose \
             asymmetric-signing --default-algorithm ec-sign-p256-sha256`)",
            reply.algorithm.name().unwrap_or("unknown")
        ));
    }
    let crc = reply
        .pem_crc32c
        .ok_or("getPublicKey returned no pemCrc32c to check the key against")?;
    if i64::from(crc32c::crc32c(reply.pem.as_bytes())) != crc {
        return Err(
            "the public key does not match its pemCrc32c: it was corrupted in transit".into(),
        );
    }
    // Checks the SubjectPublicKeyInfo's algorithm and curve (P-256) and the point.
    p256::PublicKey::from_public_key_pem(&reply.pem)
        .map_err(|e| format!("not a P-256 public key: {e}"))
}

/// The checks on an `asymmetricSign` reply from the version `requested`,
/// and the signature as `r || s` once it verifies against `key`.
fn check_signature(
    requested: &str,
    digest: &[u8; 32],
    reply: &AsymmetricSignResponse,
    key: &p256::ecdsa::VerifyingKey,
) -> Result<[u8; 64], String> {
    if !reply.verified_digest_crc32c {
        return Err(
            "Cloud KMS did not confirm the digest's CRC32C (verifiedDigestCrc32c \
                    is false): the request may have been altered on the way"
                .into(),
        );
    }
    if reply.name != requested {
        return Err(format!(
            "asymmetricSign answered for another key version, {:?}",
            reply.name
        ));
    }
    let crc = reply
        .signature_crc32c
        .ok_or("asymmetricSign returned no signatureCrc32c to check the signature against")?;
    if i64::from(crc32c::crc32c(&reply.signature)) != crc {
        return Err(
            "the signature does not match its signatureCrc32c: it was corrupted in transit".into(),
        );
    }
    let signature = p256::ecdsa::Signature::from_der(&reply.signature)
        .map_err(|e| format!("Cloud KMS returned a malformed signature: {e}"))?;
    // A signature that does not verify would only surface at every
    // verifier; catch it here.
    key.verify_prehash(digest, &signature).map_err(|_| {
        format!("the signature from {requested} does not verify against its public key")
    })?;
    Ok(signature.to_bytes().into())
}

/// Runs `call`, failing closed with [`SignerError::Unavailable`] after `limit`.
async fn with_timeout<T>(
    call: impl Future<Output = T>,
    limit: Duration,
    operation: &str,
    endpoint: &str,
) -> Result<T, SignerError> {
    tokio::time::timeout(limit, call).await.map_err(|_| {
        SignerError::Unavailable(format!(
            "no answer from {endpoint} to {operation} within {limit:?}"
        ))
    })
}

/// Unreachable KMS → `Unavailable`; a refusal → `other` with Google's
/// status and message, and what to do about it.
fn kms_error(
    operation: &str,
    name: &str,
    endpoint: &str,
    error: &GaxError,
    other: fn(String) -> SignerError,
) -> SignerError {
    if error.is_timeout() || error.is_connect() || error.is_io() || error.is_transport() {
        return SignerError::Unavailable(format!(
            "cannot reach {endpoint} for {operation}: {error}"
        ));
    }
    if error.is_authentication() {
        return other(format!(
            "cannot get a Google access token for {operation}: {error}; on GKE enable \
             workload identity for the pod's service account, elsewhere set \
             GOOGLE_APPLICATION_CREDENTIALS"
        ));
    }
    let Some(status) = error.status() else {
        return other(format!("{operation} at {endpoint} failed: {error}"));
    };
    let role = if operation == "asymmetricSign" {
        "roles/cloudkms.signerVerifier"
    } else {
        "roles/cloudkms.publicKeyViewer (or roles/cloudkms.signerVerifier)"
    };
    let advice = match status.code {
        Code::Unavailable | Code::DeadlineExceeded => {
            return SignerError::Unavailable(format!(
                "{endpoint} could not serve {operation}: {}",
                status.message
            ));
        }
        Code::Unauthenticated => "; the access token was refused: check the credentials".to_owned(),
        Code::PermissionDenied => format!(
            "; grant the signer's service account {role} on the key (or the key \
             version does not exist)"
        ),
        Code::NotFound => format!("; check that {name} exists"),
        Code::FailedPrecondition => {
            "; the key version must be ENABLED and an EC_SIGN_P256_SHA256 key".to_owned()
        }
        _ => String::new(),
    };
    // Google's messages end with a full stop; the advice follows a semicolon.
    other(format!(
        "{endpoint} refused {operation}: {}: {}{advice}",
        status.code.name(),
        status.message.trim_end_matches('.')
    ))
}

impl fmt::Debug for GcpKmsSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpKmsSigner")
            .field("key_version", &self.key_version)
            .field("endpoint", &self.endpoint)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Signer for GcpKmsSigner {
    fn key_id(&self) -> &str {
        &self.kid
    }

    fn public_jwk(&self) -> &EcPublicJwk {
        &self.jwk
    }

    async fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignerError> {
        let call = self
            .client
            .asymmetric_sign()
            .set_name(&self.key_version)
            .set_digest(Digest::new().set_sha256(digest.to_vec()))
            .set_digest_crc32c(i64::from(crc32c::crc32c(digest)))
            .send();
        let reply = with_timeout(call, self.call_timeout, "asymmetricSign", &self.endpoint)
            .await?
            .map_err(|e| {
                kms_error(
                    "asymmetricSign",
                    &self.key_version,
                    &self.endpoint,
                    &e,
                    SignerError::Sign,
                )
            })?;
        check_signature(&self.key_version, digest, &reply, &self.check).map_err(SignerError::Sign)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_key_version_names_are_accepted() {
        let good = "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1";
        assert!(check_version_name(good).is_ok());
        for bad in [
            "projects/p/locations/global/keyRings/r/cryptoKeys/k",
            "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/",
            "projects//locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            "/projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            "",
        ] {
            let err = check_version_name(bad).err();
            assert!(
                err.as_deref()
                    .is_some_and(|m| m.contains("cryptoKeyVersions/N")),
                "{bad}: {err:?}"
            );
        }
    }
}
