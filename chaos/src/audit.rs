//! The audit stream after an experiment: every producer's chain checked
//! from its genesis (no gap, no duplicate, no fork), and the events counted.

use std::collections::BTreeMap;

use agentauth_core::audit::{AuditEvent, ChainVerifier};

use crate::Error;

/// The Redis stream the operators and verifiers append to.
pub const STREAM: &str = "agentauth:{audit}:stream";

/// Reads the whole stream and checks every chain; returns the events, or
/// the first break (entry id and what is wrong).
pub async fn read_verified(redis_url: &str) -> Result<Vec<AuditEvent>, Error> {
    let client = redis::Client::open(redis_url).map_err(|e| Error::Other(format!("redis: {e}")))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| Error::Other(format!("redis: {e}")))?;
    let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
        .arg(STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .map_err(|e| Error::Other(format!("XRANGE: {e}")))?;
    let mut verifier = ChainVerifier::new();
    let mut events = Vec::with_capacity(entries.len());
    for (id, fields) in &entries {
        let json = fields
            .values()
            .next()
            .ok_or_else(|| Error::Other(format!("audit entry {id} is empty")))?;
        let event = AuditEvent::from_json(json)
            .map_err(|e| Error::Other(format!("audit entry {id}: {e:?}")))?;
        verifier
            .push(&event)
            .map_err(|b| Error::Other(format!("audit chain broken at {id}: {b:?}")))?;
        events.push(event);
    }
    Ok(events)
}

/// How many events of `kind` name each grant (`namespace/name`).
pub fn per_grant(events: &[AuditEvent], kind: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in events.iter().filter(|e| e.kind == kind) {
        if let Some(grant) = &event.grant {
            *counts.entry(grant.clone()).or_default() += 1;
        }
    }
    counts
}
