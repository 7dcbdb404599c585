//! The verifier's one-round-trip check (DESIGN §7, issue 5): everything about
//! one request that must hold across every verifier at once, decided and
//! counted atomically.
//!
//! ```text
//!  ConsumeRequest ─▶ 0. proof older than the grant's `since` ───────▶ PredatesRecovery
//!                    1. jti set-if-absent with expiry ── taken ──▶ Replayed
//!                    2. grant in the revocation set ─────────────▶ Revoked
//!                    3. every GCRA rate limit ── any refuses ────▶ RateLimited (longest wait)
//!                    4. currency, per-transaction, daily sum ────▶ CurrencyMismatch | AmountOverLimit
//!                                                                   | DailyAmountOverLimit
//!                    5. all passed: store every new TAT and the new daily sum ─▶ Allowed
//! ```
//!
//! **What a refusal costs.** Nothing is counted unless every check admits
//! the request: a refused request spends no rate and no budget. The one
//! exception is the `jti`: it is claimed first and stays claimed whatever
//! follows, because a DPoP proof is single-use (RFC 9449 §11.1) — a proof
//! refused for its rate may not be presented again once the limit has
//! refilled; the client makes a new proof.
//!
//! **Rules.** Step 3 is [`gcra::step`] for each limit and step 4 is
//! [`check_transaction_minor`] (same checks, same order), the Redis script
//! mirroring both line by line. When several limits refuse, the outcome
//! names the one with the longest wait, after which all of them admit.
//!
//! **Units and clock.** Instants are unix µs from one clock: Redis `TIME`
//! for [`RedisState`](crate::RedisState) (all verifiers share it), the
//! injected [`Clock`](crate::Clock) for [`InProcessState`](crate::InProcessState).
//! Amounts are integer minor units. The day of the daily sum is the UTC day
//! of that clock.
//!
//! [`gcra::step`]: agentauth_core::gcra::step
//! [`check_transaction_minor`]: agentauth_core::envelope::check_transaction_minor

use agentauth_core::ErrorCode;
use agentauth_core::envelope::MinorLimits;
use agentauth_core::gcra::GcraParams;
use agentauth_core::money::Currency;

/// One request to check and count.
#[derive(Clone, Copy, Debug)]
pub struct ConsumeRequest<'a> {
    /// The grant's uid: all counters below belong to it.
    pub uid: &'a str,
    /// The DPoP proof's `jti`.
    pub jti: &'a str,
    /// How long the `jti` is remembered, in ms: the accepted proof age plus
    /// clock skew (at least 1).
    pub jti_ttl_ms: u64,
    /// The proof's `iat`, seconds since the epoch: a proof made before the
    /// grant's [`since`](crate::keys::since) is refused, nothing counted.
    pub iat: i64,
    /// The rate limits that count this request, each with its position in
    /// the envelope (a limit's position is its identity, see
    /// [`keys`](crate::keys)): every limit, or only those whose `appliesTo`
    /// matches the request's action.
    pub rate_limits: &'a [(usize, GcraParams)],
    /// The transaction, when the action carries an amount and the envelope
    /// has transaction limits.
    pub transaction: Option<Transaction>,
}

impl ConsumeRequest<'_> {
    /// `outcome` with its limit named by envelope position rather than by
    /// position in [`rate_limits`](Self::rate_limits) (what a store that
    /// only sees the list, like the Redis script, reports).
    pub fn envelope_positions(&self, outcome: ConsumeOutcome) -> ConsumeOutcome {
        let position = |i: usize| self.rate_limits.get(i).map_or(i, |(index, _)| *index);
        match outcome {
            ConsumeOutcome::RateLimited {
                limit,
                retry_after_ms,
            } => ConsumeOutcome::RateLimited {
                limit: position(limit),
                retry_after_ms,
            },
            ConsumeOutcome::Allowed(mut allowance) => {
                if let Some(status) = allowance.rate_limit.as_mut() {
                    status.limit = position(status.limit);
                }
                ConsumeOutcome::Allowed(allowance)
            }
            other => other,
        }
    }
}

/// The money side of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// The amount, in minor units of `currency`.
    pub amount_minor: u64,
    /// The currency of the amount.
    pub currency: Currency,
    /// The envelope's limits.
    pub limits: MinorLimits,
}

/// The decision of [`SharedState::consume`](crate::SharedState::consume).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumeOutcome {
    /// Every check admitted the request, and it was counted.
    Allowed(Allowance),
    /// The `jti` was already used (`dpop_replayed`).
    Replayed,
    /// The proof was made before the state recovered from a data loss
    /// (before the grant's [`since`](crate::keys::since)): it may have been
    /// used before, and its use was lost (`dpop_stale`; the client makes a
    /// new proof). Nothing was counted.
    PredatesRecovery,
    /// The grant is in the revocation set (`grant_revoked`).
    Revoked,
    /// A rate limit refused (`rate_limited`).
    RateLimited {
        /// The position of the limit in the envelope.
        limit: usize,
        /// How long until a request would be admitted, in ms, rounded up.
        retry_after_ms: u64,
    },
    /// The amount is in another currency than the limits (`currency_mismatch`).
    CurrencyMismatch,
    /// The amount is above the per-transaction limit (`amount_over_limit`).
    AmountOverLimit,
    /// The amount would take today's sum above the daily limit
    /// (`daily_amount_over_limit`).
    DailyAmountOverLimit {
        /// What was already spent today, in minor units.
        spent_today_minor: u64,
    },
}

/// What an admitted request leaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allowance {
    /// The tightest rate limit after this request; `None` without limits.
    pub rate_limit: Option<RateLimitStatus>,
    /// Today's sum including this request; `None` without a transaction.
    pub spent_today_minor: Option<u64>,
}

/// The state of one rate limit after an admitted request (the `rateLimit`
/// of the verifier's answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitStatus {
    /// The position of the limit in the envelope.
    pub limit: usize,
    /// How many more requests it would admit right now.
    pub remaining: u32,
    /// How long until its full burst is back, in ms, rounded up.
    pub reset_ms: u64,
}

impl ConsumeOutcome {
    /// The stable code of a refusal; `None` when allowed.
    pub const fn refusal(&self) -> Option<ErrorCode> {
        match self {
            ConsumeOutcome::Allowed(_) => None,
            ConsumeOutcome::Replayed => Some(ErrorCode::DpopReplayed),
            ConsumeOutcome::PredatesRecovery => Some(ErrorCode::DpopStale),
            ConsumeOutcome::Revoked => Some(ErrorCode::GrantRevoked),
            ConsumeOutcome::RateLimited { .. } => Some(ErrorCode::RateLimited),
            ConsumeOutcome::CurrencyMismatch => Some(ErrorCode::CurrencyMismatch),
            ConsumeOutcome::AmountOverLimit => Some(ErrorCode::AmountOverLimit),
            ConsumeOutcome::DailyAmountOverLimit { .. } => Some(ErrorCode::DailyAmountOverLimit),
        }
    }

    /// Whether the request was admitted (and counted).
    pub const fn is_allowed(&self) -> bool {
        matches!(self, ConsumeOutcome::Allowed(_))
    }
}

/// Keeps the tightest of the admitting limits: fewest remaining, then the
/// longest until reset. Shared by both implementations so they report the same.
pub(crate) fn tighter(
    current: Option<RateLimitStatus>,
    candidate: RateLimitStatus,
) -> RateLimitStatus {
    match current {
        Some(c)
            if c.remaining < candidate.remaining
                || (c.remaining == candidate.remaining && c.reset_ms >= candidate.reset_ms) =>
        {
            c
        }
        _ => candidate,
    }
}
