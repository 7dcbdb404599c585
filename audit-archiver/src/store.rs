//! Where sealed segments are kept: a [`SegmentStore`] is a flat namespace
//! of immutable objects. A local directory ([`DirStore`], the embedded
//! default) or S3.
//!
//! `put` returns only once the object is durable (file and directory
//! fsynced; S3 PUT acknowledged), because the archiver acknowledges and
//! trims the stream after it returns. It never replaces an object: a second
//! archiver, or a retry of a write whose answer was lost, finds the name
//! taken.

mod dir;
mod s3;

use async_trait::async_trait;

pub use dir::DirStore;
pub use s3::{S3Config, S3Store};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object exists already (`put` never replaces one).
    #[error("{0} exists already in the archive")]
    Exists(String),
    /// The object does not exist.
    #[error("{0} is not in the archive")]
    NotFound(String),
    /// The store failed or could not be reached.
    #[error("{0}")]
    Failed(String),
}

/// A flat namespace of immutable objects.
#[async_trait]
pub trait SegmentStore: Send + Sync + 'static {
    /// Where the store is, for messages (`/var/lib/agentauth/archive`,
    /// `s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// Every object name, in any order.
    async fn list(&self) -> Result<Vec<String>, StoreError>;

    /// An object's bytes.
    async fn get(&self, name: &str) -> Result<Vec<u8>, StoreError>;

    /// Writes a new object durably; [`StoreError::Exists`] if the name is taken.
    async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
}
