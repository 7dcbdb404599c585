//! [`RedisState`]: the shared state of many processes, in Redis: one server
//! or a Redis Cluster ([`RedisConfig::cluster`]).
//!
//! ```text
//!  RedisState ── Connection: ConnectionManager (one server) | ClusterConnection (by slot) ──▶ Redis
//!      │            consume:   EVALSHA consume.lua (NOSCRIPT → SCRIPT LOAD, once)
//!      │            writes:    EVALSHA of a script that writes, then PUBLISH agentauth:invalidations
//!      │            audit:     EVALSHA audit_append.lua (idempotent by seq, see `audit`)
//!      └── subscriber task ── its own pub/sub connection to one node, PING every heartbeat ──▶ broadcast
//!                             (the next node when that one dies; a cluster forwards every PUBLISH to all nodes)
//! ```
//!
//! The key layout is in [`keys`]: each call's keys share one hash tag, so a
//! cluster serves each call from one slot (see `connection`). Every call
//! runs under a timeout — the hot path ([`RedisConfig::hot_timeout`],
//! 50 ms) or writes ([`RedisConfig::write_timeout`], 1 s) — and answers
//! [`StateError::Unavailable`] past it, so a verifier fails closed promptly
//! instead of queueing behind a dead server or a cluster failing over. The
//! connections are rebuilt in the background when they break (a cluster's
//! slot map is refreshed after a failover); callers never rebuild the client.

mod audit;
mod audit_group;
mod config;
mod connection;
mod script;
mod subscriber;

pub use audit_group::{Delivery, StreamEntry, parse_entry_id};
pub use config::{RedisConfig, check_url};

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::redis::{Client, ErrorKind, RedisError, RedisResult, Value};
use agentauth_core::audit::AuditEvent;
use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::audit::{AppendError, AuditAppend};
use crate::consume::{ConsumeOutcome, ConsumeRequest};
use crate::keys;
use crate::{
    Clock, EnvelopeState, GrantPhase, GrantState, INVALIDATION_CAPACITY, Invalidation, SharedState,
    StateError, SystemClock,
};
use connection::Connection;
use subscriber::Subscriber;

/// The Redis shared state. One per process, shared behind an `Arc`; it
/// multiplexes every call over one connection (one per node of a cluster).
pub struct RedisState {
    /// One client per node named by the configuration, for the subscription.
    nodes: Vec<Client>,
    conn: Connection,
    config: RedisConfig,
    /// The script clock, else the system clock: days and TTLs.
    clock: Arc<dyn Clock>,
    consume_script: ::redis::Script,
    audit_script: ::redis::Script,
    /// `SET` one key, then `PUBLISH`: see [`SET_AND_PUBLISH`].
    set_script: ::redis::Script,
    /// A grant's state (and its `since` when re-published), then `PUBLISH`:
    /// see [`PUT_GRANT`].
    put_script: ::redis::Script,
    /// `DEL` keys of one grant, then `PUBLISH`: see [`DEL_AND_PUBLISH`].
    del_script: ::redis::Script,
    invalidations: broadcast::Sender<Invalidation>,
    subscriber: Mutex<Option<Subscriber>>,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// A state for `config.url` (a server, or a cluster's seeds). Connects
    /// lazily, in the background: this fails only for a malformed URL, and a process may start while Redis
    /// is down (its calls answer `Unavailable` until Redis is back). Must be
    /// called inside a tokio runtime.
    pub fn new(config: RedisConfig) -> Result<Self, StateError> {
        let (conn, nodes) = connection::open(&config)?;
        let clock = config
            .script_clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock));
        let (invalidations, _) = broadcast::channel(INVALIDATION_CAPACITY);
        Ok(Self {
            nodes,
            conn,
            config,
            clock,
            consume_script: script::consume_script(),
            audit_script: audit::append_script(),
            set_script: ::redis::Script::new(SET_AND_PUBLISH),
            put_script: ::redis::Script::new(PUT_GRANT),
            del_script: ::redis::Script::new(DEL_AND_PUBLISH),
            invalidations,
            subscriber: Mutex::new(None),
        })
    }

    /// [`RedisState::new`], then a `PING`: fails when Redis does not answer
    /// within the write timeout.
    pub async fn connect(config: RedisConfig) -> Result<Self, StateError> {
        let state = Self::new(config)?;
        state.ping().await?;
        Ok(state)
    }

    /// Whether Redis answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        let cmd = ::redis::cmd("PING");
        self.write("PING", cmd.query_async::<Value>(&mut conn))
            .await
            .map(drop)
    }

    /// Runs `call` under the hot-path timeout.
    async fn hot<T>(
        &self,
        what: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StateError> {
        timed(self.config.hot_timeout, what, call).await
    }

    /// Runs `call` under the write timeout.
    async fn write<T>(
        &self,
        what: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StateError> {
        timed(self.config.write_timeout, what, call).await
    }

    /// The stored state of `uid`, read under the write timeout, for writers
    /// that need its expiry or envelope; `None` when absent or unreadable
    /// (a writer must not fail on a state it is about to replace or drop).
    async fn stored_grant(&self, uid: &str) -> Result<Option<GrantState>, StateError> {
        let mut conn = self.conn.clone();
        let key = keys::grant_state(uid);
        let json: Option<String> = self
            .write(
                "GET grant state",
                ::redis::cmd("GET").arg(&key).query_async(&mut conn),
            )
            .await?;
        Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
    }
}

/// Sets KEYS[1] to ARGV[1], for ARGV[2] ms unless empty, then publishes
/// ARGV[4] on the channel ARGV[3]. One atomic command: subscribers never
/// hear of a write that did not happen, and on a cluster it is routed (and
/// redirected) by its key like any command, where a `MULTI … EXEC` would be
/// aborted by a redirect.
const SET_AND_PUBLISH: &str = r"
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

/// Writes a grant's state KEYS[1] = ARGV[1] (for ARGV[2] ms unless empty)
/// and publishes ARGV[4] on the channel ARGV[3], like [`SET_AND_PUBLISH`];
/// first, when KEYS[1] is absent and the grant was published before (ARGV[5]
/// not empty), sets its `since` KEYS[2] to now (ARGV[6] ms, or Redis `TIME`
/// when empty) with the state's TTL: a re-publication after a data loss (see
/// `keys::since`; `keys::is_republication` in process).
const PUT_GRANT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
if ARGV[5] ~= '' and redis.call('EXISTS', KEYS[1]) == 0 then
  local now
  if ARGV[6] ~= '' then
    now = tonumber(ARGV[6])
  else
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  local since = string.format('%.0f', now)
  if ARGV[2] == '' then
    redis.call('SET', KEYS[2], since)
  else
    redis.call('SET', KEYS[2], since, 'PX', ARGV[2])
  end
end
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

/// Deletes KEYS (one grant's: one slot), then publishes ARGV[2] on the
/// channel ARGV[1]; atomic, like [`SET_AND_PUBLISH`].
const DEL_AND_PUBLISH: &str = r"
redis.call('DEL', unpack(KEYS))
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
";

/// Waits for `call` at most `limit`.
async fn timed<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, StateError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(redis_error),
        Err(_) => Err(StateError::Unavailable(format!(
            "Redis did not answer {what} within {limit:?}"
        ))),
    }
}

/// Decoding failures are `Corrupt`; everything else (I/O, refused or dropped
/// connections, LOADING, READONLY, OOM…) is `Unavailable`.
fn redis_error(e: RedisError) -> StateError {
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => StateError::Corrupt(e.to_string()),
        _ => StateError::Unavailable(e.to_string()),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StateError> {
    serde_json::to_string(value)
        .map_err(|e| StateError::Corrupt(format!("failed to encode for Redis: {e}")))
}

#[async_trait]
impl SharedState for RedisState {
    async fn put_grant(&self, state: &GrantState) -> Result<(), StateError> {
        let revoked = state.phase == GrantPhase::Revoked;
        let invalidation = Invalidation::grant(&state.uid, revoked, state.updated_at_ms);
        let ttl = keys::grant_state_ttl_ms(state.expires_at, self.clock.now_ms())
            .map_or_else(String::new, |ttl| ttl.max(1).to_string());
        let json = to_json(state)?;
        let invalidation = to_json(&invalidation)?;
        let mut conn = self.conn.clone();
        if !keys::is_republication(state) {
            // A first publication never writes `since`: one key, so that a
            // cluster slot being migrated serves it like any single key.
            let mut call = self.set_script.prepare_invoke();
            call.key(keys::grant_state(&state.uid))
                .arg(json)
                .arg(ttl)
                .arg(keys::INVALIDATIONS)
                .arg(invalidation);
            return self
                .write("put_grant", call.invoke_async::<()>(&mut conn))
                .await;
        }
        // Two keys of one slot: mid-migration (some keys moved) a cluster
        // answers TRYAGAIN, which fails closed like consume; the operator retries.
        let pinned_now = self.config.script_clock.as_ref().map(|c| c.now_ms());
        let optional = |n: Option<i64>| n.map_or_else(String::new, |n| n.to_string());
        let mut call = self.put_script.prepare_invoke();
        call.key(keys::grant_state(&state.uid))
            .key(keys::since(&state.uid))
            .arg(json)
            .arg(ttl)
            .arg(keys::INVALIDATIONS)
            .arg(invalidation)
            .arg(optional(state.approved_at_ms))
            .arg(optional(pinned_now));
        self.write("put_grant", call.invoke_async::<()>(&mut conn))
            .await
    }

    async fn get_grant(&self, uid: &str) -> Result<Option<GrantState>, StateError> {
        let mut conn = self.conn.clone();
        let key = keys::grant_state(uid);
        let json: Option<String> = self
            .hot(
                "get_grant",
                ::redis::cmd("GET").arg(&key).query_async(&mut conn),
            )
            .await?;
        json.map(|json| {
            serde_json::from_str(&json)
                .map_err(|e| StateError::Corrupt(format!("{key} is not a grant state: {e}")))
        })
        .transpose()
    }

    async fn revoke_grant(&self, uid: &str, at_ms: i64) -> Result<(), StateError> {
        let expires_at = self.stored_grant(uid).await?.and_then(|g| g.expires_at);
        let ttl = keys::revocation_ttl_ms(expires_at, self.clock.now_ms());
        let mut call = self.set_script.prepare_invoke();
        call.key(keys::revoked(uid))
            .arg(at_ms)
            .arg(ttl.max(1))
            .arg(keys::INVALIDATIONS)
            .arg(to_json(&Invalidation::grant(uid, true, at_ms))?);
        let mut conn = self.conn.clone();
        self.write("revoke_grant", call.invoke_async::<()>(&mut conn))
            .await
    }

    async fn is_revoked(&self, uid: &str) -> Result<bool, StateError> {
        let mut conn = self.conn.clone();
        let cmd = ::redis::cmd("EXISTS").arg(keys::revoked(uid)).clone();
        self.hot("is_revoked", cmd.query_async::<bool>(&mut conn))
            .await
    }

    async fn remove_grant(&self, uid: &str) -> Result<(), StateError> {
        // The counters this grant's envelope names; any others (an envelope
        // that had more limits, older days) expire by themselves, and a uid
        // is never reused. Used proofs and the revocation stay until they expire.
        let envelope: Option<EnvelopeState> =
            self.stored_grant(uid).await?.and_then(|g| g.envelope);
        let mut doomed = vec![keys::grant_state(uid), keys::since(uid)];
        if let Some(envelope) = envelope {
            doomed.extend((0..envelope.rate_limits.len()).map(|i| keys::rate_limit(uid, i)));
            if let Some(tx) = envelope.transactions {
                let today = keys::epoch_day(self.clock.now_us());
                for day in [today.saturating_sub(1), today, today + 1] {
                    doomed.push(keys::day(uid, day, tx.currency.code()));
                }
            }
        }
        let invalidation = Invalidation::grant(uid, false, self.clock.now_ms());
        let mut call = self.del_script.prepare_invoke();
        for key in &doomed {
            call.key(key);
        }
        call.arg(keys::INVALIDATIONS).arg(to_json(&invalidation)?);
        let mut conn = self.conn.clone();
        self.write("remove_grant", call.invoke_async::<()>(&mut conn))
            .await
    }

    async fn mark_epoch(&self) -> Result<bool, StateError> {
        let mut conn = self.conn.clone();
        let cmd = ::redis::cmd("SET")
            .arg(keys::EPOCH)
            .arg(self.clock.now_ms())
            .arg("NX")
            .clone();
        let reply = self
            .write("mark_epoch", cmd.query_async::<Value>(&mut conn))
            .await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn subscribe(&self) -> Result<broadcast::Receiver<Invalidation>, StateError> {
        // Subscribe to the channel before waiting, so nothing published after
        // the subscription is live can be missed.
        let receiver = self.invalidations.subscribe();
        let mut connected = self
            .subscriber
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| {
                Subscriber::spawn(
                    self.nodes.clone(),
                    self.invalidations.clone(),
                    self.clock.clone(),
                    self.config.heartbeat,
                    self.config.write_timeout,
                )
            })
            .connected();
        let limit = self.config.write_timeout;
        match tokio::time::timeout(limit, connected.wait_for(|up| *up)).await {
            Ok(Ok(_)) => Ok(receiver),
            _ => Err(StateError::Unavailable(format!(
                "not subscribed to {} within {limit:?}",
                keys::INVALIDATIONS
            ))),
        }
    }

    async fn claim_jti(&self, scope: &str, jti: &str, ttl_ms: u64) -> Result<bool, StateError> {
        let mut conn = self.conn.clone();
        let cmd = ::redis::cmd("SET")
            .arg(keys::scoped_jti(scope, jti))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1))
            .clone();
        let reply = self
            .hot("claim_jti", cmd.query_async::<Value>(&mut conn))
            .await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn append_audit_batch(&self, events: &[AuditEvent]) -> Result<AuditAppend, AppendError> {
        audit::append(self, events, &[]).await
    }

    async fn append_audit_marked(
        &self,
        events: &[AuditEvent],
        marks: &[Option<String>],
    ) -> Result<AuditAppend, AppendError> {
        audit::append(self, events, marks).await
    }

    async fn audit_marks(&self, marks: &[String]) -> Result<Vec<bool>, StateError> {
        audit::marks(self, marks).await
    }

    async fn last_audit_event(&self, producer: &str) -> Result<Option<AuditEvent>, StateError> {
        let mut conn = self.conn.clone();
        let key = keys::audit_last(producer);
        let json: Option<String> = self
            .write(
                "last_audit_event",
                ::redis::cmd("GET").arg(&key).query_async(&mut conn),
            )
            .await?;
        json.map(|json| {
            AuditEvent::from_json(&json)
                .map_err(|e| StateError::Corrupt(format!("{key}: {}", e.message)))
        })
        .transpose()
    }

    async fn consume(&self, request: &ConsumeRequest<'_>) -> Result<ConsumeOutcome, StateError> {
        let limit = self.config.hot_timeout;
        match tokio::time::timeout(limit, script::consume(self, request)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StateError::Unavailable(format!(
                "Redis did not answer consume within {limit:?}"
            ))),
        }
    }
}
