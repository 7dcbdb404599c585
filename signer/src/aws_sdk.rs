//! The AWS SDK configuration every AgentAuth AWS client shares (the KMS
//! signer, the archiver's S3 store): timeouts, retries, region, endpoint and
//! credentials, from one place so that they cannot drift apart.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::config::Credentials;

use crate::StaticCredentials;

/// How to reach one AWS service.
#[derive(Clone, Copy, Debug)]
pub struct AwsSettings<'a> {
    /// The region, else the SDK's resolution (AWS_REGION, profile, IMDS).
    pub region: Option<&'a str>,
    /// Another endpoint than AWS's own (moto, MinIO, LocalStack).
    pub endpoint_url: Option<&'a str>,
    /// Static credentials instead of the SDK's default chain.
    pub credentials: Option<&'a StaticCredentials>,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on one call, retries included.
    pub operation_timeout: Duration,
    /// Attempts per call (1 = no retry).
    pub max_attempts: u32,
}

/// The SDK configuration for `settings`; `None` when no region resolves
/// (each client says which setting is missing in its own words).
pub async fn sdk_config(settings: AwsSettings<'_>) -> Option<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.connect_timeout)
                .operation_timeout(settings.operation_timeout)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts.max(1)));
    if let Some(region) = settings.region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(url) = settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(c) = settings.credentials {
        loader = loader.credentials_provider(Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            None,
            None,
            "agentauth-static",
        ));
    }
    let sdk = loader.load().await;
    sdk.region().is_some().then_some(sdk)
}
