//! # agentauth-state
//!
//! The fast, shared, expiring state of DESIGN §7, behind one trait with two
//! implementations: Redis (production, many nodes) and in-process (the
//! embedded default for one node and for `agentauth dev`). Both pass the same
//! contract tests.
//!
//! ```text
//!  operator ──put_grant / revoke_grant / remove_grant──▶ SharedState ──invalidations──▶ verifiers
//!  operator, verifier ──claim_jti / consume──────────▶ SharedState   (replay, GCRA, daily sums)
//!  operator, verifier ──append_audit─────────────────▶ SharedState ──stream──▶ audit archiver
//! ```
//!
//! Kubernetes stays the source of truth for authority; this state is derived
//! from it (and rebuilt by the operator) except the counters, which exist
//! only here. When the state cannot answer, callers fail closed.
//!
//! | module | what |
//! |---|---|
//! | [`audit`] | idempotent audit appends and the producers' one write loop |
//! | [`consume`] | the verifier's one-round-trip check: replay, revocation, rate limits, amounts |
//! | [`memory`] | [`InProcessState`]: one process, one lock |
//! | [`redis`] | [`RedisState`]: many processes, one Lua script per request |
//! | [`keys`] | the Redis key layout, hash-tagged per grant |
//! | [`clock`] | the injectable clock of the counters |
//! | [`flags`] | the Redis flags every service flattens into its own |

pub mod audit;
pub mod clock;
pub mod consume;
mod expiring;
pub mod flags;
pub mod keys;
pub mod memory;
pub mod redis;

pub use self::redis::{RedisConfig, RedisState};
pub use audit::{AppendError, AuditAppend, ChainWriter};
pub use clock::{Clock, ManualClock, SystemClock};
pub use consume::{Allowance, ConsumeOutcome, ConsumeRequest, RateLimitStatus, Transaction};
pub use memory::InProcessState;

use agentauth_core::audit::AuditEvent;
use agentauth_core::envelope::TransactionLimits;
use agentauth_core::gcra::RateLimit;
use agentauth_core::window::TimeWindow;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// How many invalidations a slow subscriber may fall behind before it is
/// told it lagged (and must drop its cache), in both implementations.
pub(crate) const INVALIDATION_CAPACITY: usize = 1024;

/// Why the shared state could not answer. Callers map every variant to the
/// stable code `state_unavailable` and deny.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The backend could not be reached or timed out.
    #[error("shared state unavailable: {0}")]
    Unavailable(String),
    /// The backend answered something that could not be decoded.
    #[error("shared state returned malformed data: {0}")]
    Corrupt(String),
}

/// A grant's lifecycle phase, as the CRD status has it plus `Suspended`;
/// defined once, in core (Redis values are the variant names).
pub use agentauth_core::grant::GrantPhase;

/// The behavioral envelope a grant obeys, as written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeState {
    /// Rate limits; each gets its own GCRA counter.
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
    /// Permitted time windows; empty means always.
    #[serde(default)]
    pub time_windows: Vec<TimeWindow>,
    /// Per-transaction and daily amount limits.
    #[serde(default)]
    pub transactions: Option<TransactionLimits>,
    /// Digest of the envelope spec (the token's `env` claim).
    pub digest: String,
}

/// Everything a verifier needs to know about one grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantState {
    /// The grant's `metadata.uid`.
    pub uid: String,
    /// `namespace/name` of the grant.
    pub grant: String,
    /// `namespace/name` of the agent.
    pub agent: String,
    /// The spec generation that was approved.
    pub generation: i64,
    /// Lifecycle phase.
    pub phase: GrantPhase,
    /// Expiry, seconds since the epoch.
    pub expires_at: Option<i64>,
    /// The audience (service provider).
    pub service_provider: String,
    /// RFC 7638 thumbprint of the agent's key.
    pub agent_jkt: String,
    /// The envelope, when the grant names one.
    pub envelope: Option<EnvelopeState>,
    /// When the operator wrote this, milliseconds since the epoch.
    pub updated_at_ms: i64,
    /// When the grant's approval was signed, milliseconds since the epoch,
    /// once its status records it Approved; `None` before. The operator
    /// publishes a grant before it writes its status, so `Some` means an
    /// earlier reconcile already published it usable: a write of it onto a
    /// state that lacks it is a re-publication after a data loss (see
    /// [`keys::since`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at_ms: Option<i64>,
}

/// A change every verifier must apply to its local grant cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invalidation {
    /// The grant's uid (empty when `flush_all`).
    pub uid: String,
    /// Whether the grant is now revoked (deny at once, without a lookup).
    pub revoked: bool,
    /// When the change was made, milliseconds since the epoch (the
    /// revocation watermark verifiers report).
    pub at_ms: i64,
    /// Drop the whole cache, not one grant: the state's own subscription
    /// lost its connection (sent when it drops and again when it is back),
    /// or an invalidation could not be decoded, so some may have been
    /// missed. Never published by a writer; absent on the wire means false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flush_all: bool,
}

impl Invalidation {
    /// A change to one grant.
    pub fn grant(uid: impl Into<String>, revoked: bool, at_ms: i64) -> Self {
        Self {
            uid: uid.into(),
            revoked,
            at_ms,
            flush_all: false,
        }
    }

    /// The signal to drop every cached grant (see [`Invalidation::flush_all`]).
    pub fn flush_all(at_ms: i64) -> Self {
        Self {
            uid: String::new(),
            revoked: false,
            at_ms,
            flush_all: true,
        }
    }
}

/// The shared state (DESIGN §7).
#[async_trait]
pub trait SharedState: Send + Sync + 'static {
    /// Writes (or replaces) a grant's state and tells every subscriber.
    ///
    /// When the state holds nothing for the grant and it was published
    /// before ([`GrantState::approved_at_ms`] is set), this is a
    /// re-publication after a data loss: it also records the state's clock, now, as the
    /// grant's [`keys::since`], and [`SharedState::consume`] refuses every
    /// proof made before it (its used `jti`s may be among those lost).
    async fn put_grant(&self, state: &GrantState) -> Result<(), StateError>;

    /// Reads a grant's state.
    async fn get_grant(&self, uid: &str) -> Result<Option<GrantState>, StateError>;

    /// Marks a grant revoked (kept in the revocation set until `expires_at`,
    /// or a day when unknown) and publishes the invalidation.
    async fn revoke_grant(&self, uid: &str, at_ms: i64) -> Result<(), StateError>;

    /// Whether a grant is in the revocation set.
    async fn is_revoked(&self, uid: &str) -> Result<bool, StateError>;

    /// Sets the sentinel [`keys::EPOCH`] when it is absent; `true` when it
    /// was (the state is new or lost its data: every grant must be
    /// re-published). Implementations that cannot lose their data without
    /// their process (wrappers in tests) may keep this default, `false`.
    async fn mark_epoch(&self) -> Result<bool, StateError> {
        Ok(false)
    }

    /// Removes a grant's state and counters (the operator's finalizer).
    async fn remove_grant(&self, uid: &str) -> Result<(), StateError>;

    /// Subscribes to invalidations. A subscriber that falls behind or loses
    /// its connection must drop its whole cache (it may have missed one).
    async fn subscribe(&self)
    -> Result<tokio::sync::broadcast::Receiver<Invalidation>, StateError>;

    /// Records a DPoP `jti` in `scope` (e.g. the operator's token endpoint)
    /// for `ttl_ms`; `false` when it was already there (a replay).
    async fn claim_jti(&self, scope: &str, jti: &str, ttl_ms: u64) -> Result<bool, StateError>;

    /// Appends one audit event; see [`SharedState::append_audit_batch`].
    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditAppend, AppendError> {
        self.append_audit_batch(std::slice::from_ref(event)).await
    }

    /// Appends events of one producer, in chain order, idempotently: each
    /// goes in only at its producer's stored end (`seq` = last + 1, `prev` =
    /// last hash); one already stored with the same hash is skipped (a
    /// retry after a lost answer); anything else is a [`audit::Conflict`]
    /// and nothing is written. All or none of a batch are written (Redis:
    /// one Lua script). The rules are [`audit::check_batch`].
    async fn append_audit_batch(&self, events: &[AuditEvent]) -> Result<AuditAppend, AppendError>;

    /// [`SharedState::append_audit_batch`] with once-only events: an event
    /// whose `marks[i]` is `Some(mark)` goes in only while `mark` is unset,
    /// and sets it ([`keys::audit_once`], for [`audit::MARK_TTL_MS`]) in
    /// the same atomic step. A new event whose mark is already set refuses
    /// the whole batch ([`AppendError::Marked`], nothing written): dropping
    /// it alone would break the links of the events after it, so a writer
    /// checks the marks ([`SharedState::audit_marks`]) before it links, and
    /// this only guards against a concurrent duplicate. An event already
    /// written (a retry) is skipped as usual, whatever its mark. Events
    /// past the end of `marks` have none.
    ///
    /// The default refuses any mark: an implementation that cannot set a
    /// mark atomically with its event must not pretend to.
    async fn append_audit_marked(
        &self,
        events: &[AuditEvent],
        marks: &[Option<String>],
    ) -> Result<AuditAppend, AppendError> {
        if marks.iter().any(Option::is_some) {
            return Err(AppendError::State(StateError::Unavailable(
                "this state cannot write once-only audit events".into(),
            )));
        }
        self.append_audit_batch(events).await
    }

    /// Whether each of `marks` is set: its once-only audit event is written
    /// (see [`SharedState::append_audit_marked`]). The default refuses, as
    /// `append_audit_marked` does.
    async fn audit_marks(&self, marks: &[String]) -> Result<Vec<bool>, StateError> {
        if marks.is_empty() {
            return Ok(Vec::new());
        }
        Err(StateError::Unavailable(
            "this state cannot read once-only audit marks".into(),
        ))
    }

    /// The newest audit event of `producer`, so that a restarted producer
    /// resumes its chain instead of forking it.
    async fn last_audit_event(&self, producer: &str) -> Result<Option<AuditEvent>, StateError>;

    /// The verifier's one round trip (DESIGN §7): claims the proof's `jti`,
    /// then checks revocation, every rate limit and the amount limits, and
    /// counts the request only when all of them admit it. The order, what a
    /// refusal costs and the units are in the [`consume`] module docs.
    async fn consume(&self, request: &ConsumeRequest<'_>) -> Result<ConsumeOutcome, StateError>;
}
