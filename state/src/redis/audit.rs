//! The Redis side of [`audit`](crate::audit): one `EVALSHA` of
//! `audit_append.lua` (its header documents KEYS, ARGV and the reply) per
//! piece of at most [`MAX_BATCH`] events.
//!
//! The script checks the whole piece against the producer's stored end and
//! writes it (XADD per event, the `seq → hash` window, the last event) in
//! one atomic step, so a retry after a client-side timeout finds its events
//! already there and skips them instead of writing them twice. All four
//! keys, and the once-only marks of events that carry one
//! ([`keys::audit_once`], set by the same script), carry the hash tag
//! `{audit}` (one slot in a Redis Cluster). The
//! archiver's side (consumer group, heartbeats, trimming) is in
//! [`audit_group`](super::audit_group).

use ::redis::{Script, Value};
use agentauth_core::audit::{AuditEvent, GENESIS};

use crate::audit::{
    AppendError, AuditAppend, Conflict, ConflictKind, MARK_TTL_MS, MAX_BATCH, SEEN_WINDOW,
    producer_of,
};
use crate::{RedisState, StateError, keys};

/// How long a producer's `seq → hash` window outlives its last write: a
/// retry comes within seconds; a producer gone for a day needs none.
const SEEN_TTL_MS: u64 = 86_400_000;

/// The append script.
pub(super) fn append_script() -> Script {
    Script::new(include_str!("audit_append.lua"))
}

/// Appends `events` (one producer, chain order), each with its once-only
/// mark if `marks` gives one, under the write timeout per piece.
pub(super) async fn append(
    state: &RedisState,
    events: &[AuditEvent],
    marks: &[Option<String>],
) -> Result<AuditAppend, AppendError> {
    let Some(producer) = producer_of(events)? else {
        return Ok(AuditAppend::default());
    };
    let mut done = AuditAppend::default();
    for (p, piece) in events.chunks(MAX_BATCH).enumerate() {
        let mut call = state.audit_script.prepare_invoke();
        call.key(keys::AUDIT_STREAM)
            .key(keys::audit_last(producer))
            .key(keys::audit_seen(producer))
            .key(keys::AUDIT_HEARTBEATS)
            .arg(SEEN_WINDOW)
            .arg(GENESIS)
            .arg(keys::AUDIT_FIELD)
            .arg(SEEN_TTL_MS)
            .arg(piece.len());
        let mut mark_keys = 0;
        for (i, event) in piece.iter().enumerate() {
            // The index of the event's mark key in KEYS, 0 for none.
            let mark = match marks.get(p * MAX_BATCH + i).and_then(Option::as_ref) {
                Some(mark) => {
                    call.key(keys::audit_once(mark));
                    mark_keys += 1;
                    4 + mark_keys
                }
                None => 0,
            };
            call.arg(event.seq)
                .arg(&event.prev)
                .arg(&event.hash)
                .arg(super::to_json(event)?)
                .arg(mark);
        }
        call.arg(producer).arg(MARK_TTL_MS);
        let mut conn = state.conn.clone();
        let reply: Value = state
            .write("append_audit", call.invoke_async(&mut conn))
            .await?;
        done = done + decode(producer, &reply)?;
    }
    Ok(done)
}

fn decode(producer: &str, reply: &Value) -> Result<AuditAppend, AppendError> {
    let corrupt = || {
        AppendError::State(StateError::Corrupt(format!(
            "unexpected reply of the audit append script: {reply:?}"
        )))
    };
    let Value::Array(items) = reply else {
        return Err(corrupt());
    };
    let int = |i: usize| match items.get(i) {
        Some(Value::Int(n)) => usize::try_from(*n).ok(),
        _ => None,
    };
    let text = |i: usize| match items.get(i) {
        Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok(),
        Some(Value::SimpleString(s)) => Some(s.as_str()),
        _ => None,
    };
    match int(0).ok_or_else(corrupt)? {
        0 => Ok(AuditAppend {
            written: int(1).ok_or_else(corrupt)?,
            skipped: int(2).ok_or_else(corrupt)?,
        }),
        1 => {
            let kind = match text(1).ok_or_else(corrupt)? {
                "gap" => ConflictKind::Gap,
                "fork" => ConflictKind::Fork,
                "beyond_window" => ConflictKind::BeyondWindow,
                _ => return Err(corrupt()),
            };
            Err(AppendError::Conflict(Conflict {
                producer: producer.to_owned(),
                seq: text(2).and_then(|s| s.parse().ok()).ok_or_else(corrupt)?,
                kind,
                message: text(3).ok_or_else(corrupt)?.to_owned(),
            }))
        }
        2 => Err(AppendError::Marked {
            seq: text(1).and_then(|s| s.parse().ok()).ok_or_else(corrupt)?,
            mark: text(2)
                .map(|key| key.strip_prefix(&keys::audit_once("")).unwrap_or(key))
                .ok_or_else(corrupt)?
                .to_owned(),
        }),
        9 => Err(AppendError::State(StateError::Corrupt(
            text(1).unwrap_or("unreadable last audit event").to_owned(),
        ))),
        _ => Err(corrupt()),
    }
}

/// Whether each once-only mark is set (one `EXISTS` per mark, pipelined:
/// every mark key is on the `{audit}` slot, but `EXISTS` of many keys
/// answers only a count).
pub(super) async fn marks(state: &RedisState, marks: &[String]) -> Result<Vec<bool>, StateError> {
    if marks.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = ::redis::pipe();
    for mark in marks {
        pipe.cmd("EXISTS").arg(keys::audit_once(mark));
    }
    let mut conn = state.conn.clone();
    let found: Vec<i64> = state
        .write("audit marks", pipe.query_async(&mut conn))
        .await?;
    Ok(found.into_iter().map(|n| n > 0).collect())
}

impl RedisState {
    /// Up to `count` entries of the audit stream after the entry id `after`
    /// (`None`: from the start), with their ids, in stream order: for a
    /// reader that checks the chains (`agentauth audit verify`, tests).
    pub async fn audit_stream(
        &self,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<(String, AuditEvent)>, StateError> {
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let mut conn = self.conn.clone();
        let cmd = ::redis::cmd("XRANGE")
            .arg(keys::AUDIT_STREAM)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count.max(1))
            .clone();
        let entries: Vec<(String, Vec<(String, String)>)> = self
            .write("XRANGE audit stream", cmd.query_async(&mut conn))
            .await?;
        entries
            .into_iter()
            .map(|(id, fields)| {
                let json = fields
                    .into_iter()
                    .find(|(field, _)| field == keys::AUDIT_FIELD)
                    .map(|(_, json)| json)
                    .ok_or_else(|| StateError::Corrupt(format!("audit entry {id} has no event")))?;
                let event = AuditEvent::from_json(&json)
                    .map_err(|e| StateError::Corrupt(format!("audit entry {id}: {}", e.message)))?;
                Ok((id, event))
            })
            .collect()
    }
}
