//! An asymmetric AWS KMS key (`ECC_NIST_P256`, `SIGN_VERIFY`) as a
//! [`Signer`]: the private key never leaves the KMS.
//!
//! ```text
//!  connect(config, key_id) ── GetPublicKey (once) ── SubjectPublicKeyInfo DER ─▶ P-256 point, kid
//!  sign_digest(digest) ────── Sign {ECDSA_SHA_256, MessageType DIGEST} ─▶ DER ─▶ r || s
//!                                                  └ checked against the public key before use
//! ```
//!
//! Each `Sign` is a network round trip and counts against the account's KMS
//! request quota, which is why token issuance normally goes through the
//! [`KeyHierarchy`](crate::KeyHierarchy) and calls the KMS once per rotation.
//! The endpoint URL is configurable for emulators (moto, LocalStack);
//! credentials come from the SDK's default chain (environment, web
//! identity / IRSA, ECS, IMDS) unless static ones are given.

use std::fmt;
use std::time::Duration;

use agentauth_core::es256::VerifyingKey;
use agentauth_core::jwk::EcPublicJwk;
use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::DecodePublicKey as _;

use crate::aws_sdk::{AwsSettings, sdk_config};
use crate::{Signer, SignerError, published_jwk};

/// Static AWS credentials (for emulators and development; production uses
/// the default chain). `Debug` hides the secret.
#[derive(Clone)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// How to reach AWS KMS.
#[derive(Clone, Debug)]
pub struct AwsKmsConfig {
    /// The region; `None` resolves it the SDK's way (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// Another endpoint than AWS's, e.g. `http://127.0.0.1:5000` for moto.
    pub endpoint_url: Option<String>,
    /// Static credentials instead of the default chain.
    pub credentials: Option<StaticCredentials>,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on one call, retries included.
    pub operation_timeout: Duration,
    /// Attempts per call (1 = no retry).
    pub max_attempts: u32,
}

impl Default for AwsKmsConfig {
    /// The SDK's resolution for region and credentials; a 3 s connect
    /// timeout, 10 s per call, 3 attempts (KMS answers `Sign` in tens of ms).
    fn default() -> Self {
        AwsKmsConfig {
            region: None,
            endpoint_url: None,
            credentials: None,
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(10),
            max_attempts: 3,
        }
    }
}

impl AwsKmsConfig {
    /// Where the KMS is, for messages.
    fn endpoint(&self) -> String {
        match (&self.endpoint_url, &self.region) {
            (Some(url), _) => url.clone(),
            (None, Some(region)) => format!("kms.{region}.amazonaws.com"),
            (None, None) => "AWS KMS".into(),
        }
    }

    /// A KMS client with these settings.
    pub async fn client(&self) -> Result<Client, SignerError> {
        let sdk = sdk_config(AwsSettings {
            region: self.region.as_deref(),
            endpoint_url: self.endpoint_url.as_deref(),
            credentials: self.credentials.as_ref(),
            connect_timeout: self.connect_timeout,
            operation_timeout: self.operation_timeout,
            max_attempts: self.max_attempts,
        })
        .await
        .ok_or_else(|| {
            SignerError::Load("no AWS region: configure one, or set AWS_REGION".into())
        })?;
        Ok(Client::new(&sdk))
    }
}

/// A KMS key that signs. `Debug` shows the key ids only.
pub struct AwsKmsSigner {
    client: Client,
    kms_key_id: String,
    endpoint: String,
    kid: String,
    jwk: EcPublicJwk,
    check: p256::ecdsa::VerifyingKey,
}

impl AwsKmsSigner {
    /// Connects to the key `kms_key_id` (key id, ARN or `alias/...`),
    /// fetching its public key and checking it is a P-256 signing key.
    pub async fn connect(config: &AwsKmsConfig, kms_key_id: &str) -> Result<Self, SignerError> {
        let endpoint = config.endpoint();
        let client = config.client().await?;
        let output = client
            .get_public_key()
            .key_id(kms_key_id)
            .send()
            .await
            .map_err(|e| kms_error("GetPublicKey", &endpoint, e, SignerError::Load))?;
        let load = |m: String| SignerError::Load(format!("KMS key {kms_key_id}: {m}"));
        if output.key_usage() != Some(&KeyUsageType::SignVerify) {
            return Err(load("its key usage is not SIGN_VERIFY".into()));
        }
        if !output
            .signing_algorithms()
            .contains(&SigningAlgorithmSpec::EcdsaSha256)
        {
            return Err(load("it cannot sign with ECDSA_SHA_256".into()));
        }
        let der = output
            .public_key()
            .ok_or_else(|| load("GetPublicKey returned no public key".into()))?;
        // Checks the SubjectPublicKeyInfo's algorithm and curve (P-256) and the point.
        let public = p256::PublicKey::from_public_key_der(der.as_ref())
            .map_err(|e| load(format!("not an ECC_NIST_P256 public key: {e}")))?;
        let point = public.to_encoded_point(false);
        let key = VerifyingKey::from_sec1(point.as_bytes())?;
        let (kid, jwk) = published_jwk(&key);
        Ok(AwsKmsSigner {
            client,
            kms_key_id: kms_key_id.to_owned(),
            endpoint,
            kid,
            jwk,
            check: public.into(),
        })
    }

    /// The KMS key this signs with, as given to [`AwsKmsSigner::connect`].
    pub fn kms_key_id(&self) -> &str {
        &self.kms_key_id
    }
}

/// Creates an `ECC_NIST_P256` `SIGN_VERIFY` key and returns its KMS key id
/// (for tests and development; production keys are made by infrastructure
/// code with a key policy).
pub async fn create_key(config: &AwsKmsConfig, description: &str) -> Result<String, SignerError> {
    let endpoint = config.endpoint();
    let output = config
        .client()
        .await?
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description(description)
        .send()
        .await
        .map_err(|e| kms_error("CreateKey", &endpoint, e, SignerError::Load))?;
    output
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .ok_or_else(|| SignerError::Load("CreateKey returned no key metadata".into()))
}

/// Unreachable KMS → `Unavailable`; anything else → `other` with the KMS's
/// error code and message.
fn kms_error<E>(
    operation: &str,
    endpoint: &str,
    error: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
    other: fn(String) -> SignerError,
) -> SignerError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            SignerError::Unavailable(format!(
                "cannot reach {endpoint} for {operation}: {}",
                DisplayErrorContext(&error)
            ))
        }
        SdkError::ServiceError(service) => {
            let e = service.err();
            other(format!(
                "{endpoint} refused {operation}: {}: {}",
                e.code().unwrap_or("unknown error"),
                e.message().unwrap_or("no message")
            ))
        }
        _ => other(format!(
            "{operation} at {endpoint} failed: {}",
            DisplayErrorContext(&error)
        )),
    }
}

impl fmt::Debug for AwsKmsSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsSigner")
            .field("kms_key_id", &self.kms_key_id)
            .field("endpoint", &self.endpoint)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Signer for AwsKmsSigner {
    fn key_id(&self) -> &str {
        &self.kid
    }

    fn public_jwk(&self) -> &EcPublicJwk {
        &self.jwk
    }

    async fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignerError> {
        let output = self
            .client
            .sign()
            .key_id(&self.kms_key_id)
            .message(Blob::new(digest.as_slice()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| kms_error("Sign", &self.endpoint, e, SignerError::Sign))?;
        let der = output
            .signature()
            .ok_or_else(|| SignerError::Sign("KMS returned no signature".into()))?;
        let signature = p256::ecdsa::Signature::from_der(der.as_ref())
            .map_err(|e| SignerError::Sign(format!("KMS returned a malformed signature: {e}")))?;
        // A signature that does not verify would only surface at every
        // verifier; catch it here (a wrong key id, an emulator hashing twice).
        self.check.verify_prehash(digest, &signature).map_err(|_| {
            SignerError::Sign(format!(
                "the signature from KMS key {} does not verify against its public key",
                self.kms_key_id
            ))
        })?;
        Ok(signature.to_bytes().into())
    }
}
