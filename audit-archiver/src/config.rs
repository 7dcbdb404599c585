//! `agentauth archiver` and `agentauth audit …` flags, with environment
//! fallbacks. The embedded default archives to a local directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentauth_core::gcra::Period;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_state::flags::RedisFlags;

use crate::store::{DirStore, S3Config, S3Store, SegmentStore, StoreError};

/// Where the archive is: a directory, or an S3 bucket.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreArgs {
    /// The archive directory (the default store).
    #[arg(
        long,
        env = "AGENTAUTH_ARCHIVE_DIR",
        default_value = "/var/lib/agentauth/archive"
    )]
    pub archive_dir: PathBuf,

    /// Archive to this S3 bucket instead of the directory.
    #[arg(long, env = "AGENTAUTH_ARCHIVE_S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// Key prefix in the bucket.
    #[arg(
        long,
        env = "AGENTAUTH_ARCHIVE_S3_PREFIX",
        default_value = "agentauth/audit/"
    )]
    pub s3_prefix: String,

    /// The bucket's region (else the SDK's resolution: AWS_REGION, profile, IMDS).
    #[arg(long, env = "AGENTAUTH_ARCHIVE_S3_REGION")]
    pub s3_region: Option<String>,

    /// An S3-compatible endpoint instead of AWS (MinIO, moto).
    #[arg(long, env = "AGENTAUTH_ARCHIVE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
}

impl StoreArgs {
    /// Opens the chosen store.
    pub async fn open(&self) -> Result<Arc<dyn SegmentStore>, StoreError> {
        Ok(match &self.s3_bucket {
            Some(bucket) => {
                let config = S3Config {
                    region: self.s3_region.clone(),
                    endpoint_url: self.s3_endpoint.clone(),
                    ..S3Config::new(bucket, &self.s3_prefix)
                };
                Arc::new(S3Store::connect(&config).await?)
            }
            None => Arc::new(DirStore::open(&self.archive_dir)?),
        })
    }
}

/// `agentauth archiver` flags.
#[derive(Clone, Debug, clap::Args)]
// The archiver has nothing to do without the audit stream: `--redis-url`,
// optional elsewhere, is required here.
#[command(mut_arg("redis_url", |arg| arg.required(true)))]
pub struct ArchiverArgs {
    /// The shared state's Redis (`--redis-url`, `--redis-cluster`,
    /// `--redis-password`).
    #[command(flatten)]
    pub redis: RedisFlags,

    /// Where segments are written.
    #[command(flatten)]
    pub store: StoreArgs,

    /// The key that signs checkpoints: the root key (same flags as the operator's).
    #[command(flatten)]
    pub root: agentauth_signer::SignerArgs,

    /// Address /metrics and /healthz listen on.
    #[arg(long, env = "AGENTAUTH_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,

    /// Seal a segment at this many records.
    #[arg(long, env = "AGENTAUTH_SEGMENT_MAX_RECORDS", default_value_t = 10_000)]
    pub segment_max_records: usize,

    /// Seal a segment this long after its first record.
    #[arg(long, env = "AGENTAUTH_SEGMENT_MAX_AGE", default_value = "10s")]
    pub segment_max_age: Period,

    /// Keep sealed entries in the Redis stream this long before trimming
    /// them (default: trim as soon as the segment holding them is durable).
    #[arg(long, env = "AGENTAUTH_TRIM_AFTER")]
    pub trim_after: Option<Period>,

    /// The consumer name in the stream's group; keep it stable across
    /// restarts (entries delivered and not acknowledged are read again by it).
    #[arg(long, env = "AGENTAUTH_ARCHIVER_CONSUMER", default_value = "archiver")]
    pub consumer: String,
}

impl ArchiverArgs {
    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.redis.redis_url.is_none() {
            return Err(
                "--redis-url is required: the archiver reads the audit stream there".into(),
            );
        }
        self.redis.validate()?;
        self.root.validate()?;
        if self.segment_max_records == 0 {
            return Err("--segment-max-records must be at least 1".into());
        }
        if self.segment_max_age.as_millis() == 0 {
            return Err("--segment-max-age must be positive".into());
        }
        Ok(())
    }

    /// The loop's settings.
    pub fn archiver_config(&self) -> crate::ArchiverConfig {
        crate::ArchiverConfig {
            consumer: self.consumer.clone(),
            max_records: self.segment_max_records,
            max_age: self.segment_max_age.duration(),
            trim_after: self.trim_after.map_or(Duration::ZERO, Period::duration),
            ..crate::ArchiverConfig::default()
        }
    }
}

/// The keys a checkpoint may be signed by, for `verify`: a pinned public
/// key file, or the root key's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct TrustArgs {
    /// A public JWK, or a JWKS (`{"keys": […]}`) of the root key and its
    /// predecessors, pinned out of band (`agentauth root-key jwk`).
    #[arg(long, env = "AGENTAUTH_CHECKPOINT_KEY_FILE")]
    pub public_key: Option<PathBuf>,

    /// Otherwise the root key itself, by the same flags as the operator
    /// (its public key only is read).
    #[command(flatten)]
    pub root: agentauth_signer::SignerArgs,
}

impl TrustArgs {
    /// The trusted public keys.
    pub async fn keys(&self) -> Result<Vec<EcPublicJwk>, String> {
        if let Some(path) = &self.public_key {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            return parse_keys(&text).map_err(|e| format!("{}: {e}", path.display()));
        }
        let signer = self
            .root
            .open()
            .await
            .map_err(|e| format!("{e}; or pin the checkpoint key with --public-key FILE"))?;
        Ok(vec![signer.public_jwk().clone()])
    }
}

/// A JWK or a JWKS, as text.
pub fn parse_keys(text: &str) -> Result<Vec<EcPublicJwk>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let values = match serde_json::from_str::<Set>(text) {
        Ok(set) => set.keys,
        Err(_) => vec![
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| format!("not a JWK or JWKS: {e}"))?,
        ],
    };
    // Only the JWK members: a JWKS entry may carry a certificate too. `d`
    // stays so that a private key is refused by name, not accepted.
    values
        .into_iter()
        .map(|mut v| {
            if let Some(object) = v.as_object_mut() {
                object.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "kty" | "crv" | "x" | "y" | "kid" | "alg" | "use" | "d"
                    )
                });
            }
            let jwk: EcPublicJwk =
                serde_json::from_value(v).map_err(|e| format!("not an EC public JWK: {e}"))?;
            jwk.to_public_key().map_err(|e| e.message)?;
            Ok(jwk)
        })
        .collect()
}
