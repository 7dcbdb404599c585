//! The audit archiver's side of the stream (DESIGN §8): a consumer group
//! (at-least-once: an entry stays pending until the archiver acknowledges
//! it, after its segment is durably written), the producers' heartbeats,
//! and trimming what is sealed.
//!
//! ```text
//!  XGROUP CREATE stream agentauth-archiver 0 MKSTREAM    once; BUSYGROUP is fine
//!  XREADGROUP … STREAMS stream 0     entries delivered before a restart, not acknowledged
//!  XREADGROUP … STREAMS stream >     new entries
//!  XACK  stream agentauth-archiver <ids>      after the segment is written
//!  XTRIM stream MINID <id>                    only below acknowledged, sealed entries
//!  HGETALL agentauth:{audit}:heartbeats       producer -> newest written event
//!  agentauth:{audit}:archiver-lease           SET PX by its holder: one archiver at a time
//! ```
//!
//! No call blocks on the server (`BLOCK`): the connection is multiplexed and
//! a blocking read would hold up every other call; the archiver polls.

use std::collections::HashMap;

use agentauth_core::audit::AuditEvent;

use crate::{RedisState, StateError, keys};

/// One stream entry as the archiver reads it.
#[derive(Clone, Debug)]
pub struct StreamEntry {
    /// The entry id, `<ms>-<n>`.
    pub id: String,
    /// The event, or why the entry holds none (written by someone other
    /// than a producer: the archiver counts it and moves on).
    pub event: Result<AuditEvent, String>,
}

/// Which entries a group read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Entries this consumer was given before and has not acknowledged,
    /// with ids after the given one (`"0"`: from the first). After a
    /// restart: read, maybe sealed, not acknowledged.
    PendingAfter(String),
    /// Entries never delivered to the group.
    New,
}

impl RedisState {
    /// Creates the archiver's consumer group at the start of the stream
    /// (and the stream), unless it exists.
    pub async fn audit_group_create(&self) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        let cmd = ::redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(keys::AUDIT_STREAM)
            .arg(keys::AUDIT_ARCHIVER_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .clone();
        match self
            .write("XGROUP CREATE", cmd.query_async::<()>(&mut conn))
            .await
        {
            Err(StateError::Unavailable(message)) if message.contains("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Up to `count` entries for `consumer` of the archiver's group.
    pub async fn audit_group_read(
        &self,
        consumer: &str,
        delivery: &Delivery,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StateError> {
        let mut conn = self.conn.clone();
        let from = match delivery {
            Delivery::PendingAfter(id) => id.as_str(),
            Delivery::New => ">",
        };
        let cmd = ::redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(keys::AUDIT_ARCHIVER_GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("STREAMS")
            .arg(keys::AUDIT_STREAM)
            .arg(from)
            .clone();
        // A pending entry deleted from the stream comes back with no fields.
        type Fields = Option<Vec<(String, String)>>;
        type Reply = Option<Vec<(String, Vec<(String, Fields)>)>>;
        let reply: Reply = self
            .write("XREADGROUP audit stream", cmd.query_async(&mut conn))
            .await?;
        let entries = reply
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
            .map(|(id, fields)| {
                let event = fields
                    .ok_or_else(|| {
                        "the entry was deleted from the stream after delivery".to_owned()
                    })
                    .and_then(|fields| {
                        fields
                            .into_iter()
                            .find(|(field, _)| field == keys::AUDIT_FIELD)
                            .ok_or_else(|| "the entry has no event field".to_owned())
                    })
                    .and_then(|(_, json)| AuditEvent::from_json(&json).map_err(|e| e.message));
                StreamEntry { id, event }
            })
            .collect();
        Ok(entries)
    }

    /// Acknowledges entries of the archiver's group (sealed, or never
    /// sealable).
    pub async fn audit_group_ack(&self, ids: &[String]) -> Result<(), StateError> {
        for piece in ids.chunks(1000) {
            let mut conn = self.conn.clone();
            let cmd = ::redis::cmd("XACK")
                .arg(keys::AUDIT_STREAM)
                .arg(keys::AUDIT_ARCHIVER_GROUP)
                .arg(piece)
                .clone();
            self.write("XACK audit stream", cmd.query_async::<u64>(&mut conn))
                .await?;
        }
        Ok(())
    }

    /// Removes stream entries with ids up to and including `through`;
    /// returns how many. Only for entries sealed and acknowledged.
    pub async fn audit_trim_through(&self, through: &str) -> Result<u64, StateError> {
        let Some(min_id) = next_entry_id(through) else {
            return Err(StateError::Corrupt(format!(
                "{through:?} is not a stream entry id"
            )));
        };
        let mut conn = self.conn.clone();
        let cmd = ::redis::cmd("XTRIM")
            .arg(keys::AUDIT_STREAM)
            .arg("MINID")
            .arg(min_id)
            .clone();
        self.write("XTRIM audit stream", cmd.query_async(&mut conn))
            .await
    }

    /// Entries of the stream not yet delivered to the archiver's group, and
    /// those delivered but not acknowledged: the archiver's backlog.
    pub async fn audit_group_backlog(&self) -> Result<(u64, u64), StateError> {
        let mut conn = self.conn.clone();
        let cmd = ::redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(keys::AUDIT_STREAM)
            .clone();
        let groups: Vec<HashMap<String, ::redis::Value>> = self
            .write("XINFO GROUPS audit stream", cmd.query_async(&mut conn))
            .await?;
        let group = groups.into_iter().find(|g| {
            matches!(g.get("name"), Some(::redis::Value::BulkString(name))
                if name.as_slice() == keys::AUDIT_ARCHIVER_GROUP.as_bytes())
        });
        let int = |value: Option<&::redis::Value>| match value {
            Some(::redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        Ok(group.map_or((0, 0), |g| (int(g.get("lag")), int(g.get("pending")))))
    }

    /// Takes or renews the archiver lease for `holder` for `ttl_ms`;
    /// `false` while another holder has it. One archiver seals at a time:
    /// two would number their segments alike.
    pub async fn audit_archiver_lease(
        &self,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<bool, StateError> {
        let mut conn = self.conn.clone();
        let script = ::redis::Script::new(LEASE_SCRIPT);
        let mut call = script.prepare_invoke();
        call.key(keys::AUDIT_ARCHIVER_LEASE)
            .arg(holder)
            .arg(ttl_ms.max(1));
        let held: i64 = self
            .write("archiver lease", call.invoke_async(&mut conn))
            .await?;
        Ok(held == 1)
    }

    /// Every producer's heartbeat: its newest written event.
    pub async fn audit_heartbeats(&self) -> Result<HashMap<String, AuditEvent>, StateError> {
        let mut conn = self.conn.clone();
        let cmd = ::redis::cmd("HGETALL").arg(keys::AUDIT_HEARTBEATS).clone();
        let raw: HashMap<String, String> = self
            .write("HGETALL audit heartbeats", cmd.query_async(&mut conn))
            .await?;
        raw.into_iter()
            .map(|(producer, json)| {
                AuditEvent::from_json(&json)
                    .map(|event| (producer.clone(), event))
                    .map_err(|e| {
                        StateError::Corrupt(format!(
                            "the audit heartbeat of {producer} is not an event: {}",
                            e.message
                        ))
                    })
            })
            .collect()
    }
}

/// Take the lease if free, renew it if ours: 1 when held by ARGV[1].
const LEASE_SCRIPT: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// A stream entry id `<ms>-<n>` as its two numbers, which order entries.
pub fn parse_entry_id(id: &str) -> Option<(u64, u64)> {
    let (ms, n) = id.split_once('-')?;
    Some((ms.parse().ok()?, n.parse().ok()?))
}

/// The smallest entry id after `id` (`<ms>-<n>` → `<ms>-<n+1>`).
fn next_entry_id(id: &str) -> Option<String> {
    let (ms, n) = parse_entry_id(id)?;
    Some(match n.checked_add(1) {
        Some(n) => format!("{ms}-{n}"),
        None => format!("{}-0", ms.checked_add(1)?),
    })
}

#[cfg(test)]
mod tests {
    use super::next_entry_id;

    #[test]
    fn the_next_entry_id_follows_the_given_one() {
        assert_eq!(next_entry_id("5-0").as_deref(), Some("5-1"));
        assert_eq!(
            next_entry_id(&format!("5-{}", u64::MAX)).as_deref(),
            Some("6-0")
        );
        assert_eq!(next_entry_id("x-1"), None);
        assert_eq!(next_entry_id("51"), None);
    }
}
