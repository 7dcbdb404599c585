//! A sealed segment on disk or in S3: gzip-compressed JSON Lines.
//!
//! ```text
//!  segment-000000000042.jsonl.gz
//!    {JCS of record 0}
//!    {JCS of record 1}
//!    …
//!    {"checkpoint":"<compact JWS of the Checkpoint>"}
//! ```
//!
//! Each record line is the RFC 8785 canonical form of the event, so the
//! Merkle leaves are the lines' bytes exactly; a line that is not canonical
//! is refused, as an altered one would be. The checkpoint is the last line
//! of the same object, so a segment and its signature are written (and
//! lost) together.

use std::io::{Read as _, Write as _};

use agentauth_core::audit::AuditEvent;
use agentauth_core::merkle::{self, Hash};
use agentauth_core::{Error, ErrorCode, jcs};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

/// Largest accepted decompressed segment, so a crafted file cannot exhaust
/// memory (a full segment of 10,000 records is about 5 MiB).
pub const MAX_SEGMENT_BYTES: u64 = 512 * 1024 * 1024;

const PREFIX: &str = "segment-";
const SUFFIX: &str = ".jsonl.gz";

/// The object name of segment `number`; zero-padded, so names sort in order.
pub fn name(number: u64) -> String {
    format!("{PREFIX}{number:012}{SUFFIX}")
}

/// The segment number a name stands for; `None` for other objects.
pub fn number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The canonical line of a record: its Merkle leaf is these bytes.
pub fn record_line(event: &AuditEvent) -> Result<String, Error> {
    let value = serde_json::to_value(event)
        .map_err(|e| Error::new(ErrorCode::AuditRecordInvalid, e.to_string()))?;
    jcs::canonicalize(&value)
}

/// The Merkle leaves of record lines.
pub fn leaves<S: AsRef<str>>(lines: &[S]) -> Vec<Hash> {
    lines
        .iter()
        .map(|line| merkle::leaf_hash(line.as_ref().as_bytes()))
        .collect()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine {
    checkpoint: String,
}

/// Encodes record lines and the signed checkpoint.
pub fn encode<S: AsRef<str>>(lines: &[S], signed_checkpoint: &str) -> std::io::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    for line in lines {
        gz.write_all(line.as_ref().as_bytes())?;
        gz.write_all(b"\n")?;
    }
    let last = serde_json::to_string(&CheckpointLine {
        checkpoint: signed_checkpoint.to_owned(),
    })?;
    gz.write_all(last.as_bytes())?;
    gz.write_all(b"\n")?;
    gz.finish()
}

/// A decoded segment: its record lines and its signed checkpoint.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// Record lines, in order, without the newline.
    pub lines: Vec<String>,
    /// The compact JWS of the checkpoint.
    pub checkpoint: String,
}

/// Why a segment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not gzip, truncated, too large, or not UTF-8.
    #[error("the segment is not readable gzip JSON Lines: {0}")]
    Unreadable(String),
    /// The last line is not a checkpoint.
    #[error("the segment has no checkpoint line at its end")]
    NoCheckpoint,
}

/// Decodes a segment.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut text = String::new();
    GzDecoder::new(bytes)
        .take(MAX_SEGMENT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| DecodeError::Unreadable(e.to_string()))?;
    if text.len() as u64 > MAX_SEGMENT_BYTES {
        return Err(DecodeError::Unreadable(format!(
            "larger than {MAX_SEGMENT_BYTES} bytes decompressed"
        )));
    }
    let Some(body) = text.strip_suffix('\n') else {
        return Err(DecodeError::Unreadable(
            "it does not end with a newline: the object was cut short".into(),
        ));
    };
    let mut lines: Vec<String> = body.split('\n').map(str::to_owned).collect();
    let last = lines.pop().unwrap_or_default();
    let checkpoint = serde_json::from_str::<CheckpointLine>(&last)
        .map_err(|_| DecodeError::NoCheckpoint)?
        .checkpoint;
    Ok(Decoded { lines, checkpoint })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_sort_in_order_and_round_trip() {
        assert_eq!(name(42), "segment-000000000042.jsonl.gz");
        assert_eq!(number(&name(42)), Some(42));
        assert!(name(9) < name(10));
        for other in [
            "segment-.jsonl.gz",
            "segment-1x.jsonl.gz",
            "x",
            "segment-1.json",
        ] {
            assert_eq!(number(other), None, "{other}");
        }
    }

    #[test]
    fn segments_round_trip_and_damage_is_named() {
        let bytes = encode(&["{\"a\":1}", "{\"b\":2}"], "h.p.s").unwrap();
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.lines, ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(decoded.checkpoint, "h.p.s");
        let empty = decode(&encode::<&str>(&[], "h.p.s").unwrap()).unwrap();
        assert!(empty.lines.is_empty());
        assert!(matches!(
            decode(&bytes[..bytes.len() / 2]),
            Err(DecodeError::Unreadable(_))
        ));
        assert!(matches!(
            decode(b"not gzip"),
            Err(DecodeError::Unreadable(_))
        ));
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(b"{\"a\":1}\n").unwrap();
        assert!(matches!(
            decode(&gz.finish().unwrap()),
            Err(DecodeError::NoCheckpoint)
        ));
    }
}
