//! [`RedisState`]: the shared state of many processes, in Redis.
//!
//! ```text
//!  RedisState ── ConnectionManager (one multiplexed connection, reconnects) ──▶ Redis
//!      │            consume:   EVALSHA consume.lua (NOSCRIPT → SCRIPT LOAD, once)
//!      │            writes:    MULTI … PUBLISH agentauth:invalidations … EXEC
//!      │            audit:     EVALSHA audit_append.lua (idempotent by seq, see `audit`)
//!      └── subscriber task ── its own pub/sub connection, PING every heartbeat ──▶ broadcast
//! ```
//!
//! The key layout is in [`keys`]. Every call runs under a timeout — the hot
//! path ([`RedisConfig::hot_timeout`], 50 ms) or writes
//! ([`RedisConfig::write_timeout`], 1 s) — and answers
//! [`StateError::Unavailable`] past it, so a verifier fails closed promptly
//! instead of queueing behind a dead server. The connection is rebuilt in
//! the background when it breaks; callers never rebuild the client.

mod audit;
mod audit_group;
mod config;
mod script;
mod subscriber;

pub use audit_group::{Delivery, StreamEntry, parse_entry_id};
pub use config::RedisConfig;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ErrorKind, IntoConnectionInfo, RedisError, RedisResult, Value};
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
use subscriber::Subscriber;

/// The Redis shared state. One per process, shared behind an `Arc`; it
/// multiplexes every call over one connection.
pub struct RedisState {
    client: Client,
    conn: ConnectionManager,
    config: RedisConfig,
    /// The script clock, else the system clock: days and TTLs.
    clock: Arc<dyn Clock>,
    consume_script: ::redis::Script,
    audit_script: ::redis::Script,
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
    /// A state for `config.url`. Connects lazily, in the background: this
    /// fails only for a malformed URL, and a process may start while Redis
    /// is down (its calls answer `Unavailable` until Redis is back). Must be
    /// called inside a tokio runtime.
    pub fn new(config: RedisConfig) -> Result<Self, StateError> {
        let invalid = |e: RedisError| StateError::Unavailable(format!("invalid Redis URL: {e}"));
        let mut info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(invalid)?;
        if let Some(password) = &config.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = Client::open(info).map_err(invalid)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.write_timeout))
            // Reconnect fast (loopback or one hop away); the timeouts above
            // keep callers from waiting on the attempts.
            .set_min_delay(Duration::from_millis(25))
            .set_max_delay(Duration::from_millis(500))
            .set_number_of_retries(8);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(redis_error)?;
        let clock = config
            .script_clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock));
        let (invalidations, _) = broadcast::channel(INVALIDATION_CAPACITY);
        Ok(Self {
            client,
            conn,
            config,
            clock,
            consume_script: script::consume_script(),
            audit_script: audit::append_script(),
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
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(keys::grant_state(&state.uid))
            .arg(to_json(state)?);
        if let Some(ttl) = keys::grant_state_ttl_ms(state.expires_at, self.clock.now_ms()) {
            pipe.arg("PX").arg(ttl.max(1));
        }
        pipe.cmd("PUBLISH")
            .arg(keys::INVALIDATIONS)
            .arg(to_json(&invalidation)?);
        let mut conn = self.conn.clone();
        self.write("put_grant", pipe.query_async::<()>(&mut conn))
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
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(keys::revoked(uid))
            .arg(at_ms)
            .arg("PX")
            .arg(ttl.max(1))
            .cmd("PUBLISH")
            .arg(keys::INVALIDATIONS)
            .arg(to_json(&Invalidation::grant(uid, true, at_ms))?);
        let mut conn = self.conn.clone();
        self.write("revoke_grant", pipe.query_async::<()>(&mut conn))
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
        let mut doomed = vec![keys::grant_state(uid)];
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
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("DEL")
            .arg(&doomed)
            .cmd("PUBLISH")
            .arg(keys::INVALIDATIONS)
            .arg(to_json(&invalidation)?);
        let mut conn = self.conn.clone();
        self.write("remove_grant", pipe.query_async::<()>(&mut conn))
            .await
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
                    self.client.clone(),
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
        audit::append(self, events).await
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
