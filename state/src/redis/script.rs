//! The Redis side of [`consume`](crate::consume): the arguments of
//! `lua/consume.lua` (its header documents KEYS, ARGV and the reply) and the
//! decoding of its reply.
//!
//! `redis::Script` sends `EVALSHA`; on `NOSCRIPT` (a restarted or flushed
//! Redis) it loads the script and runs it again, so a verifier never needs
//! to know whether Redis has it.
//!
//! The daily sum's key names a UTC day, and keys must be named before the
//! script runs (Redis Cluster routes by them), but the day must be Redis's,
//! not this process's. So the key is named for this clock's day and the
//! script declines, writing nothing, when its own clock disagrees; the call
//! is then made once more for the day the script reported. That costs a
//! second round trip only for requests within the clock skew of midnight.

use ::redis::{Script, Value};

use crate::consume::{Allowance, ConsumeOutcome, ConsumeRequest, RateLimitStatus};
use crate::keys;
use crate::{RedisState, StateError};

/// The consume script.
pub(super) fn consume_script() -> Script {
    Script::new(include_str!("../lua/consume.lua"))
}

/// One reply of the script, decoded.
enum Reply {
    Done(ConsumeOutcome),
    /// The script's clock is on another UTC day (step 0).
    WrongDay(u64),
}

/// Runs the script, retrying once for the script's day.
pub(super) async fn consume(
    state: &RedisState,
    request: &ConsumeRequest<'_>,
) -> Result<ConsumeOutcome, StateError> {
    let pinned_now = state.config.script_clock.as_ref().map(|c| c.now_us());
    let mut day = keys::epoch_day(state.clock.now_us());
    for _ in 0..2 {
        match run(state, request, pinned_now, day).await? {
            Reply::Done(outcome) => return Ok(request.envelope_positions(outcome)),
            Reply::WrongDay(theirs) => day = theirs,
        }
    }
    Err(StateError::Unavailable(
        "Redis's clock changed day twice during one request".to_owned(),
    ))
}

async fn run(
    state: &RedisState,
    request: &ConsumeRequest<'_>,
    pinned_now: Option<u64>,
    day: u64,
) -> Result<Reply, StateError> {
    let uid = request.uid;
    let mut call = state.consume_script.prepare_invoke();
    call.key(keys::grant_jti(uid, request.jti))
        .key(keys::revoked(uid))
        .key(keys::since(uid));
    for (index, _) in request.rate_limits {
        call.key(keys::rate_limit(uid, *index));
    }
    call.arg(pinned_now.map_or_else(String::new, |now| now.to_string()))
        .arg(request.jti_ttl_ms.max(1))
        .arg(request.rate_limits.len())
        .arg(request.iat);
    for (_, params) in request.rate_limits {
        call.arg(params.emission_interval()).arg(params.tolerance());
    }
    if let Some(tx) = &request.transaction {
        let optional = |limit: Option<u64>| limit.map_or_else(String::new, |l| l.to_string());
        call.key(keys::day(uid, day, tx.limits.currency.code()))
            .arg(day)
            .arg(tx.amount_minor)
            .arg(tx.currency.code())
            .arg(tx.limits.currency.code())
            .arg(optional(tx.limits.max_per_transaction))
            .arg(optional(tx.limits.max_per_day))
            .arg(keys::DAY_TTL_MS);
    }
    let mut conn = state.conn.clone();
    let reply: Value = call
        .invoke_async(&mut conn)
        .await
        .map_err(super::redis_error)?;
    decode(&reply)
}

fn decode(reply: &Value) -> Result<Reply, StateError> {
    let corrupt =
        || StateError::Corrupt(format!("unexpected reply of the consume script: {reply:?}"));
    let Value::Array(items) = reply else {
        return Err(corrupt());
    };
    let int = |i: usize| match items.get(i) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    let text = |i: usize| match items.get(i) {
        Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok(),
        Some(Value::SimpleString(s)) => Some(s.as_str()),
        _ => None,
    };
    let unsigned = |i: usize| int(i).and_then(|n| u64::try_from(n).ok());
    let minor = |i: usize| text(i).and_then(|s| s.parse::<u64>().ok());
    let outcome = match int(0).ok_or_else(corrupt)? {
        0 => {
            let rate_limit = match int(1).ok_or_else(corrupt)? {
                -1 => None,
                limit => Some(RateLimitStatus {
                    limit: usize::try_from(limit).map_err(|_| corrupt())?,
                    remaining: unsigned(2)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(corrupt)?,
                    reset_ms: unsigned(3).ok_or_else(corrupt)?,
                }),
            };
            let spent_today_minor = match text(4).ok_or_else(corrupt)? {
                "" => None,
                _ => Some(minor(4).ok_or_else(corrupt)?),
            };
            ConsumeOutcome::Allowed(Allowance {
                rate_limit,
                spent_today_minor,
            })
        }
        1 => ConsumeOutcome::Replayed,
        8 => ConsumeOutcome::PredatesRecovery,
        2 => ConsumeOutcome::Revoked,
        3 => ConsumeOutcome::RateLimited {
            limit: unsigned(1)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(corrupt)?,
            retry_after_ms: unsigned(2).ok_or_else(corrupt)?.div_ceil(1000),
        },
        4 => ConsumeOutcome::CurrencyMismatch,
        5 => ConsumeOutcome::AmountOverLimit,
        6 => ConsumeOutcome::DailyAmountOverLimit {
            spent_today_minor: minor(1).ok_or_else(corrupt)?,
        },
        7 => return Ok(Reply::WrongDay(unsigned(1).ok_or_else(corrupt)?)),
        9 => {
            return Err(StateError::Corrupt(
                text(1).unwrap_or("malformed counter").to_owned(),
            ));
        }
        _ => return Err(corrupt()),
    };
    Ok(Reply::Done(outcome))
}
