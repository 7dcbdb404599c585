//! The S3 segment store against a real `moto_server` (started by the
//! harness, stopped with this process): round trips under a prefix,
//! paginated listing, a taken name refused by `If-None-Match: *`, checksums
//! stored and checked, and clear errors when S3 is not there.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use agentauth_archiver::store::{S3Config, S3Store, SegmentStore, StoreError};
use agentauth_signer::StaticCredentials;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use base64::Engine as _;
use sha2::Digest as _;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Settings for `endpoint`: dummy static credentials on the SDK config (not
/// in the process environment), one attempt, short timeouts.
fn moto_config(endpoint: &str, bucket: &str, prefix: &str) -> S3Config {
    S3Config {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.into()),
        credentials: Some(StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
        }),
        operation_timeout: Duration::from_secs(10),
        max_attempts: 1,
        ..S3Config::new(bucket, prefix)
    }
}

/// A new bucket on the shared moto server (tests keep apart by bucket) and
/// its settings.
async fn bucket(name: &str, prefix: &str) -> S3Config {
    let moto = agentauth_testenv::shared_moto().await.unwrap();
    let config = moto_config(moto.endpoint(), name, prefix);
    let client = config.client().await.unwrap();
    client.create_bucket().bucket(name).send().await.unwrap();
    config
}

fn sha256_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn objects_round_trip_under_the_prefix() -> TestResult {
    let config = bucket("archive-round-trip", "agentauth/audit").await;
    let store = S3Store::connect(&config).await?;
    assert_eq!(store.prefix(), "agentauth/audit/");
    assert_eq!(store.describe(), "s3://archive-round-trip/agentauth/audit/");

    store.put("segment-1", b"one").await?;
    store.put("segment-2", b"two").await?;
    assert_eq!(store.get("segment-1").await?, b"one");
    assert_eq!(store.get("segment-2").await?, b"two");

    // Keys outside the prefix, or in "folders" below it, are not segments.
    let client = config.client().await?;
    for key in [
        "other/segment-3",
        "agentauth/audit/sub/segment-4",
        "agentauth/audit/",
    ] {
        client
            .put_object()
            .bucket("archive-round-trip")
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await?;
    }
    let mut names = store.list().await?;
    names.sort();
    assert_eq!(names, ["segment-1", "segment-2"]);

    // Stored under the prefix, with the SHA-256 of the body.
    let head = client
        .head_object()
        .bucket("archive-round-trip")
        .key("agentauth/audit/segment-1")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await?;
    assert_eq!(head.checksum_sha256(), Some(sha256_base64(b"one").as_str()));

    // Names are plain, as in the directory store.
    for bad in ["../x", "", ".hidden", "a/b"] {
        assert!(store.put(bad, b"x").await.is_err(), "{bad}");
    }
    Ok(())
}

#[tokio::test]
async fn an_empty_prefix_is_the_bucket_root() -> TestResult {
    let config = bucket("archive-root", "").await;
    let store = S3Store::connect(&config).await?;
    assert_eq!(store.describe(), "s3://archive-root/");
    store.put("segment-1", b"one").await?;
    assert_eq!(store.list().await?, ["segment-1"]);
    Ok(())
}

#[tokio::test]
async fn listing_follows_every_page() -> TestResult {
    let config = S3Config {
        list_page_size: 7,
        ..bucket("archive-pages", "p/").await
    };
    let store = S3Store::connect(&config).await?;
    let mut expected: Vec<String> = (0..25).map(|i| format!("segment-{i:02}")).collect();
    for name in &expected {
        store.put(name, name.as_bytes()).await?;
    }
    // One page of 7 is not all of them, so the store had to follow the
    // continuation tokens.
    let first = config
        .client()
        .await?
        .list_objects_v2()
        .bucket("archive-pages")
        .prefix("p/")
        .max_keys(7)
        .send()
        .await?;
    assert_eq!(
        (first.contents().len(), first.is_truncated()),
        (7, Some(true))
    );
    let mut names = store.list().await?;
    names.sort();
    expected.sort();
    assert_eq!(names, expected);
    Ok(())
}

#[tokio::test]
async fn a_taken_name_is_refused_and_keeps_its_content() -> TestResult {
    let config = bucket("archive-taken", "a/").await;
    let store = S3Store::connect(&config).await?;
    store.put("segment-1", b"first").await?;
    let err = store.put("segment-1", b"second").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Exists(name) if name == "segment-1"),
        "{err:?}"
    );
    assert_eq!(store.get("segment-1").await?, b"first");
    // A second store on the same bucket (another archiver) is refused too.
    let other = S3Store::connect(&config).await?;
    assert!(matches!(
        other.put("segment-1", b"third").await,
        Err(StoreError::Exists(_))
    ));
    assert_eq!(store.get("segment-1").await?, b"first");
    Ok(())
}

#[tokio::test]
async fn a_missing_name_is_not_found() -> TestResult {
    let config = bucket("archive-missing", "a/").await;
    let store = S3Store::connect(&config).await?;
    let err = store.get("segment-9").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound(name) if name == "segment-9"),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_body_that_does_not_match_its_checksum_is_refused() -> TestResult {
    // moto stores a declared checksum without checking the body against it
    // (S3 would refuse the upload with BadDigest), which lets this test
    // plant a corrupted object and see `get` refuse it.
    let config = bucket("archive-corrupt", "a/").await;
    let store = S3Store::connect(&config).await?;
    config
        .client()
        .await?
        .put_object()
        .bucket("archive-corrupt")
        .key("a/segment-1")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_sha256(sha256_base64(b"original"))
        .body(ByteStream::from_static(b"tampered"))
        .send()
        .await?;
    let err = store.get("segment-1").await.unwrap_err();
    assert!(matches!(err, StoreError::Failed(_)), "{err:?}");
    assert!(
        err.to_string().contains("s3://archive-corrupt/a/segment-1"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_bucket_fails_on_connect() -> TestResult {
    let moto = agentauth_testenv::shared_moto().await?;
    let config = moto_config(moto.endpoint(), "archive-never-created", "a/");
    let err = S3Store::connect(&config).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Failed(_)), "{err:?}");
    assert!(
        message.contains("refused HeadBucket of s3://archive-never-created/a/: HTTP 404"),
        "{message}"
    );
    assert!(message.contains("that the bucket exists"), "{message}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_clear_error_within_the_timeout() -> TestResult {
    // A listener that never accepts: connections complete in the kernel's
    // backlog, and the request is never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let silent_port = silent.local_addr()?.port();
    // Nothing listens on a port just released.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    for port in [silent_port, closed_port] {
        let endpoint = format!("http://127.0.0.1:{port}");
        let config = S3Config {
            operation_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            ..moto_config(&endpoint, "archive", "agentauth/audit/")
        };
        let started = Instant::now();
        let err = S3Store::connect(&config).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        let message = err.to_string();
        assert!(matches!(err, StoreError::Failed(_)), "{err:?}");
        assert!(
            message.contains(&format!(
                "cannot reach {endpoint} for HeadBucket of s3://archive/agentauth/audit/"
            )),
            "{message}"
        );
        assert!(
            message.contains("s3:PutObject, s3:GetObject and s3:ListBucket"),
            "{message}"
        );
    }
    drop(silent);
    Ok(())
}
