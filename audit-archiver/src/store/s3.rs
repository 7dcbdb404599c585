//! An S3 bucket (or a prefix of one) as a [`SegmentStore`].
//!
//! ```text
//!  connect ── HeadBucket (fails early: endpoint, credentials, bucket, s3:ListBucket)
//!  list ───── ListObjectsV2 prefix=<prefix> delimiter=/ , page by page ─▶ names without the prefix
//!  get ────── GetObject x-amz-checksum-mode: ENABLED ─▶ body checked against the stored SHA-256
//!  put ────── PutObject If-None-Match: * , x-amz-checksum-sha256 ─▶ 412 PreconditionFailed = Exists
//! ```
//!
//! `put` never replaces an object: it is an S3 conditional write
//! (`If-None-Match: *`, honoured by S3 since August 2024 and by moto 5),
//! so of two writers of one name exactly one succeeds, atomically, without
//! relying on the archiver's single-leader lease. A store that ignored the
//! header would replace silently; the tests check that moto refuses. A retry of a write
//! whose answer was lost finds the name taken, which the archiver resolves
//! by comparing the stored bytes with its own. The body carries its SHA-256
//! (`x-amz-checksum-sha256`, computed by the SDK from the bytes in memory),
//! so S3 refuses an upload corrupted on the way (`BadDigest`) and stores the
//! checksum; `get` asks for it back and the SDK checks the body against it.
//!
//! Credentials come from the SDK's default chain (environment, web identity
//! / IRSA, ECS, IMDS) unless static ones are given; the role needs
//! `s3:PutObject`, `s3:GetObject` and `s3:ListBucket`, and no delete.

use std::time::Duration;

use agentauth_signer::StaticCredentials;
use agentauth_signer::aws_sdk::{AwsSettings, sdk_config};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};

use super::{SegmentStore, StoreError};

/// What to check when S3 refuses or cannot be reached; ends every
/// [`StoreError::Failed`] message of this store.
const CHECK: &str = "check the endpoint and network, the credentials, that the bucket exists, \
                     and that they allow s3:PutObject, s3:GetObject and s3:ListBucket on it";

/// How to reach the bucket that holds the segments.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// The bucket, e.g. `acme-audit`.
    pub bucket: String,
    /// The key prefix of the segments, e.g. `agentauth/audit/`; a missing
    /// final `/` is added, leading ones removed; empty for the bucket's root.
    pub prefix: String,
    /// The region; `None` resolves it the SDK's way (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// Another endpoint than AWS's, e.g. `http://127.0.0.1:5000` for moto, or MinIO.
    pub endpoint_url: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`) instead of virtual-hosted
    /// ones (`bucket.endpoint/key`); `None`: path-style exactly when
    /// `endpoint_url` is set, as emulators and MinIO expect.
    pub force_path_style: Option<bool>,
    /// Static credentials instead of the default chain.
    pub credentials: Option<StaticCredentials>,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on one call, retries included.
    pub operation_timeout: Duration,
    /// Attempts per call (1 = no retry).
    pub max_attempts: u32,
    /// Keys per ListObjectsV2 page (1 to 1000, S3's maximum).
    pub list_page_size: i32,
}

impl S3Config {
    /// `bucket` and `prefix` with the SDK's resolution for region and
    /// credentials; a 3 s connect timeout, 60 s per call (a full segment is
    /// a few MiB), 3 attempts, 1000 keys per listed page.
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: prefix.into(),
            region: None,
            endpoint_url: None,
            force_path_style: None,
            credentials: None,
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(60),
            max_attempts: 3,
            list_page_size: 1000,
        }
    }

    /// Where S3 is, for messages.
    fn endpoint(&self) -> String {
        match (&self.endpoint_url, &self.region) {
            (Some(url), _) => url.clone(),
            (None, Some(region)) => format!("s3.{region}.amazonaws.com"),
            (None, None) => "AWS S3".into(),
        }
    }

    /// An S3 client with these settings (timeouts, retries, endpoint,
    /// addressing style, credentials).
    pub async fn client(&self) -> Result<Client, StoreError> {
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
            StoreError::Failed(format!(
                "no AWS region for the archive bucket {}: configure one, or set AWS_REGION",
                self.bucket
            ))
        })?;
        let path_style = self.force_path_style.unwrap_or(self.endpoint_url.is_some());
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .build();
        Ok(Client::from_conf(config))
    }
}

/// `agentauth/audit` → `agentauth/audit/`; `/` or empty → empty.
fn normalise_prefix(prefix: &str) -> String {
    let prefix = prefix.trim_start_matches('/');
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

/// The same plain names as the directory store accepts, so an archive can
/// move between the two.
fn valid_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
        return Err(StoreError::Failed(format!(
            "{name:?} is not a plain object name"
        )));
    }
    Ok(())
}

/// Segments in an S3 bucket under a prefix. `Debug` shows no credentials.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    endpoint: String,
    page_size: i32,
}

impl S3Store {
    /// A client for `config`, checked with a HeadBucket so that a wrong
    /// endpoint, credential or bucket fails here rather than at the first
    /// seal.
    pub async fn connect(config: &S3Config) -> Result<Self, StoreError> {
        if config.bucket.is_empty() {
            return Err(StoreError::Failed("no S3 bucket for the archive".into()));
        }
        let store = S3Store {
            client: config.client().await?,
            bucket: config.bucket.clone(),
            prefix: normalise_prefix(&config.prefix),
            endpoint: config.endpoint(),
            page_size: config.list_page_size.clamp(1, 1000),
        };
        store
            .client
            .head_bucket()
            .bucket(&store.bucket)
            .send()
            .await
            .map_err(|e| store.error("HeadBucket", "", e))?;
        Ok(store)
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The normalised key prefix (empty or ending with `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Unreachable or timed out, refused with S3's code and message, or
    /// failed otherwise: each names the bucket, the endpoint and what to check.
    fn error<E>(&self, operation: &str, name: &str, error: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let target = format!("s3://{}/{}{name}", self.bucket, self.prefix);
        let endpoint = &self.endpoint;
        StoreError::Failed(match &error {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
                "cannot reach {endpoint} for {operation} of {target}: {}; {CHECK}",
                DisplayErrorContext(&error)
            ),
            SdkError::ServiceError(service) => {
                let e = service.err();
                format!(
                    "{endpoint} refused {operation} of {target}: HTTP {} {}: {}; {CHECK}",
                    service.raw().status().as_u16(),
                    e.code().unwrap_or("unknown error"),
                    e.message().unwrap_or("no message"),
                )
            }
            _ => format!(
                "{operation} of {target} at {endpoint} failed: {}; {CHECK}",
                DisplayErrorContext(&error)
            ),
        })
    }
}

#[async_trait]
impl SegmentStore for S3Store {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        // The delimiter keeps the namespace flat: keys in "folders" below
        // the prefix come back as common prefixes, which are not segments.
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .delimiter("/")
            .into_paginator()
            .page_size(self.page_size)
            .send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListObjectsV2", "", e))?;
            for object in page.contents() {
                let name = object
                    .key()
                    .and_then(|key| key.strip_prefix(self.prefix.as_str()))
                    .unwrap_or_default();
                // The prefix's own "folder" object, if someone made one.
                if !name.is_empty() {
                    names.push(name.to_owned());
                }
            }
        }
        Ok(names)
    }

    async fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        valid_name(name)?;
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(output) => output,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => {
                return Err(StoreError::NotFound(name.to_owned()));
            }
            Err(e) => return Err(self.error("GetObject", name, e)),
        };
        // A body that does not match its stored checksum fails here.
        let body = output.body.collect().await.map_err(|e| {
            StoreError::Failed(format!(
                "failed to read s3://{}/{} from {}: {}",
                self.bucket,
                self.key(name),
                self.endpoint,
                DisplayErrorContext(&e)
            ))
        })?;
        Ok(body.into_bytes().to_vec())
    }

    async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        valid_name(name)?;
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .if_none_match("*")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The name is taken (If-None-Match: * failed).
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 412 => {
                Err(StoreError::Exists(name.to_owned()))
            }
            // 409 ConditionalRequestConflict: another conditional write of
            // this name is in flight; which one wins is not known yet, so
            // this is a failure to retry, after which the name is taken or free.
            Err(e) => Err(self.error("PutObject", name, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_end_with_one_slash_or_are_empty() {
        for (given, normalised) in [
            ("agentauth/audit/", "agentauth/audit/"),
            ("agentauth/audit", "agentauth/audit/"),
            ("/agentauth/audit", "agentauth/audit/"),
            ("", ""),
            ("/", ""),
        ] {
            assert_eq!(normalise_prefix(given), normalised, "{given:?}");
        }
    }
}
