//! The Redis key layout. Every key of one grant carries the hash tag
//! `{<uid>}`, so that Redis Cluster keeps them on one slot and the consume
//! script may touch them all in one call (DESIGN §7).
//!
//! ```text
//!  agentauth:{<uid>}:state                        GrantState JSON (operator)      until expiry + 1 day
//!  agentauth:{<uid>}:revoked                      revocation time, ms             until expiry + 1 min, else 1 day
//!  agentauth:{<uid>}:since                        proofs before this are refused, ms   as the state (re-publications only)
//!  agentauth:{<uid>}:jti:<jti>                    a used DPoP proof               the proof age window
//!  agentauth:{<uid>}:rl:<i>                       TAT of rate limit i, unix µs    until the full burst is back
//!  agentauth:{<uid>}:day:<yyyy-mm-dd>:<currency>  UTC day's sum, minor units      48 h
//!  agentauth:jti:{<scope>}:<jti>                  a used proof in another scope   the caller's ttl
//!  agentauth:{audit}:stream                       the audit stream (XADD; the archiver acknowledges)
//!  agentauth:{audit}:last:<producer>              a producer's newest event, JSON
//!  agentauth:{audit}:seen:<producer>              hash seq -> event hash, its newest 1024   1 day after its last write
//!  agentauth:{audit}:heartbeats                   hash producer -> its newest event, JSON (the archiver reads it)
//!  agentauth:{audit}:archiver-lease               the archiver holding the lease               its TTL, renewed
//!  agentauth:{audit}:once:<mark>                  a once-only event is written: "<producer>#<seq>"   7 days
//!  agentauth:invalidations                        pub/sub channel of Invalidation JSON
//!  agentauth:epoch                                the operator's sentinel: when it was set, ms   none
//! ```
//!
//! **Data loss.** Used proofs live only here, so a Redis that restarts empty
//! would accept a proof used before, within its acceptance window. The
//! `since` key closes that: the operator's re-publication of a grant whose
//! state is gone records the time from which this Redis remembers the
//! grant's proofs, and consume refuses older proofs (`dpop_stale`). A first
//! publication writes none (nothing was accepted before it): the operator
//! marks a grant published before by
//! [`GrantState::approved_at_ms`](crate::GrantState::approved_at_ms). The
//! operator's leader notices the loss by [`EPOCH`] vanishing and re-publishes
//! every grant; on a cluster the sentinel lives on one shard, so a loss of
//! another shard alone is noticed by the grant's own absence at its next
//! reconcile (the `since` key protects it either way).
//!
//! Rate limits are keyed by their position in the envelope: an edited limit
//! keeps the TAT of the one it replaces, which errs towards refusal (a new
//! key would hand out a fresh burst). Uids are Kubernetes UUIDs, so they hold
//! no `{` or `}` and a tag never ends early; a `jti` comes after the tag, so
//! whatever it holds cannot move a key to another grant's slot. The audit
//! keys share the tag `{audit}` so that one script writes the stream entries,
//! the producer's last event and its window of written hashes.
//!
//! The in-process state uses the same names for its maps, so both
//! implementations count the same things under the same identities.

/// The operator's sentinel: set when absent, so its absence means the
/// state is new or lost its data (see
/// [`SharedState::mark_epoch`](crate::SharedState::mark_epoch)).
pub const EPOCH: &str = "agentauth:epoch";

/// The pub/sub channel of [`Invalidation`](crate::Invalidation)s, as JSON.
pub const INVALIDATIONS: &str = "agentauth:invalidations";

/// The audit stream: one entry per event, field `event` = the event's JSON.
pub const AUDIT_STREAM: &str = "agentauth:{audit}:stream";

/// The field of an [`AUDIT_STREAM`] entry that holds the event.
pub const AUDIT_FIELD: &str = "event";

/// How long a day's sum is kept: the day itself and a day of margin, so a
/// request just before midnight and the clock skew around it find it.
pub const DAY_TTL_MS: u64 = 48 * 3_600_000;

/// How long a revocation is kept when the grant's expiry is unknown.
pub const REVOCATION_DEFAULT_TTL_MS: u64 = 86_400_000;

/// How long a revocation outlives the grant's expiry: the clock skew that
/// verifiers accept on `exp`.
pub const REVOCATION_SKEW_MS: u64 = 60_000;

/// How long a grant's state outlives its expiry, so a verifier reads
/// `Expired` rather than nothing, and a missed finalizer leaves no litter.
pub const GRANT_STATE_GRACE_MS: u64 = 86_400_000;

const DAY_US: u64 = 86_400_000_000;

/// How long to keep the revocation of a grant expiring at `expires_at`
/// (seconds since the epoch): until then plus [`REVOCATION_SKEW_MS`] (no
/// token outlives its grant), or [`REVOCATION_DEFAULT_TTL_MS`] when unknown.
pub fn revocation_ttl_ms(expires_at: Option<i64>, now_ms: i64) -> u64 {
    match expires_at {
        Some(at) => {
            let left = at.saturating_mul(1000).saturating_sub(now_ms);
            u64::try_from(left)
                .unwrap_or(0)
                .saturating_add(REVOCATION_SKEW_MS)
        }
        None => REVOCATION_DEFAULT_TTL_MS,
    }
}

/// How long to keep the state of a grant expiring at `expires_at`; `None`
/// (until removed) when it does not expire.
pub fn grant_state_ttl_ms(expires_at: Option<i64>, now_ms: i64) -> Option<u64> {
    expires_at.map(|at| {
        let left = at.saturating_mul(1000).saturating_sub(now_ms);
        u64::try_from(left)
            .unwrap_or(0)
            .saturating_add(GRANT_STATE_GRACE_MS)
    })
}

/// `agentauth:{<uid>}:state`
pub fn grant_state(uid: &str) -> String {
    format!("agentauth:{{{uid}}}:state")
}

/// `agentauth:{<uid>}:since`: the state's time, ms, from which it remembers
/// the grant's used proofs (written by a re-publication after a data loss).
pub fn since(uid: &str) -> String {
    format!("agentauth:{{{uid}}}:since")
}

/// Whether a proof issued at `iat` (seconds) may have been used before
/// `since_ms`: its whole second precedes it.
pub const fn predates(iat: i64, since_ms: i64) -> bool {
    iat.saturating_mul(1000).saturating_add(1000) <= since_ms
}

/// Whether writing `state` onto an absent one is a re-publication (see
/// [`since`]): it was published usable before.
pub const fn is_republication(state: &crate::GrantState) -> bool {
    state.approved_at_ms.is_some()
}

/// `agentauth:{<uid>}:revoked`
pub fn revoked(uid: &str) -> String {
    format!("agentauth:{{{uid}}}:revoked")
}

/// `agentauth:{<uid>}:jti:<jti>`: a proof used against this grant.
pub fn grant_jti(uid: &str, jti: &str) -> String {
    format!("agentauth:{{{uid}}}:jti:{jti}")
}

/// `agentauth:{<uid>}:rl:<index>`
pub fn rate_limit(uid: &str, index: usize) -> String {
    format!("agentauth:{{{uid}}}:rl:{index}")
}

/// `agentauth:{<uid>}:day:<yyyy-mm-dd>:<currency>` for the UTC day `day`
/// (days since the unix epoch).
pub fn day(uid: &str, day: u64, currency: &str) -> String {
    format!("agentauth:{{{uid}}}:day:{}:{currency}", date(day))
}

/// `agentauth:jti:{<scope>}:<jti>`: a proof used in `scope` (e.g. the
/// operator's token endpoint), tagged by scope.
pub fn scoped_jti(scope: &str, jti: &str) -> String {
    format!("agentauth:jti:{{{scope}}}:{jti}")
}

/// `agentauth:{audit}:last:<producer>`
pub fn audit_last(producer: &str) -> String {
    format!("agentauth:{{audit}}:last:{producer}")
}

/// Every producer's heartbeat: field = producer, value = its newest
/// written event (JSON), set in the same atomic step as the stream entries,
/// so it never runs ahead of the stream. The archiver reads it before it
/// reads the stream: a producer whose records in the stream end before its
/// heartbeat had its tail cut.
pub const AUDIT_HEARTBEATS: &str = "agentauth:{audit}:heartbeats";

/// The archiver lease: the holder's id, with a TTL it renews.
pub const AUDIT_ARCHIVER_LEASE: &str = "agentauth:{audit}:archiver-lease";

/// The consumer group of the audit archiver on [`AUDIT_STREAM`].
pub const AUDIT_ARCHIVER_GROUP: &str = "agentauth-archiver";

/// `agentauth:{audit}:once:<mark>`: set when the once-only audit event
/// named `mark` (e.g. `transition:<uid>:grant.approved`) was appended; see
/// [`crate::SharedState::append_audit_marked`].
pub fn audit_once(mark: &str) -> String {
    format!("agentauth:{{audit}}:once:{mark}")
}

/// `agentauth:{audit}:seen:<producer>`: hash of `seq` → event hash of the
/// producer's newest events, so a retried append is recognised.
pub fn audit_seen(producer: &str) -> String {
    format!("agentauth:{{audit}}:seen:{producer}")
}

/// The UTC day (days since the unix epoch) of `now_us`.
pub const fn epoch_day(now_us: u64) -> u64 {
    now_us / DAY_US
}

/// `yyyy-mm-dd` of a day since the unix epoch: Howard Hinnant's
/// `civil_from_days`, for days ≥ 0 (the epoch is the earliest clock value).
pub fn date(day: u64) -> String {
    let z = day + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_epoch_days() {
        let cases = [
            (0, "1970-01-01"),
            (59, "1970-03-01"),
            (11_016, "2000-02-29"),
            (11_017, "2000-03-01"),
            (19_782, "2024-02-29"),
            (20_453, "2025-12-31"),
            (20_454, "2026-01-01"),
            (2_932_896, "9999-12-31"),
        ];
        for (day, want) in cases {
            assert_eq!(date(day), want, "day {day}");
        }
        assert_eq!(epoch_day(20_455 * DAY_US + DAY_US - 1), 20_455);
    }

    #[test]
    fn every_grant_key_carries_the_grant_tag() {
        let uid = "6a1f0c52-3d7e-4b8a-9f10-2c4d5e6f7a8b";
        let tag = format!("{{{uid}}}");
        for key in [
            grant_state(uid),
            revoked(uid),
            since(uid),
            grant_jti(uid, "}{odd"),
            rate_limit(uid, 3),
            day(uid, 20_454, "EUR"),
        ] {
            assert!(key.starts_with(&format!("agentauth:{tag}:")), "{key}");
        }
        assert_eq!(
            day(uid, 20_454, "EUR"),
            format!("agentauth:{tag}:day:2026-01-01:EUR")
        );
        assert!(AUDIT_STREAM.contains("{audit}") && audit_last("p").contains("{audit}"));
        assert!(audit_seen("p").starts_with("agentauth:{audit}:"));
    }
}
