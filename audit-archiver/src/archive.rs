//! Reading an archive: its segments in order, and its head.

use crate::seal::Head;
use crate::segment::{self, Decoded};
use crate::store::{SegmentStore, StoreError};

/// The segment numbers in the store, ascending; other objects are ignored.
pub async fn segment_numbers(store: &dyn SegmentStore) -> Result<Vec<u64>, StoreError> {
    let mut numbers: Vec<u64> = store
        .list()
        .await?
        .iter()
        .filter_map(|name| segment::number(name))
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// Reads and decodes segment `number`.
pub async fn read_segment(store: &dyn SegmentStore, number: u64) -> Result<Decoded, StoreError> {
    let name = segment::name(number);
    let bytes = store.get(&name).await?;
    segment::decode(&bytes).map_err(|e| StoreError::Failed(format!("{name}: {e}")))
}

/// The head of the archive: after its highest-numbered segment, or the
/// genesis when it holds none.
pub async fn head(store: &dyn SegmentStore) -> Result<Head, StoreError> {
    let Some(&last) = segment_numbers(store).await?.last() else {
        return Ok(Head::genesis());
    };
    let decoded = read_segment(store, last).await?;
    Head::after(&decoded.checkpoint).map_err(|e| {
        StoreError::Failed(format!(
            "{}: its checkpoint is unreadable ({}); run `agentauth audit verify` on the archive",
            segment::name(last),
            e.message
        ))
    })
}
