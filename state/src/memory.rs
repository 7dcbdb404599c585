//! [`InProcessState`]: the shared state of one process — the embedded
//! default for a single node and for `agentauth dev`.
//!
//! ```text
//!  put / revoke / remove ──▶ Mutex<Inner> ──▶ broadcast ──▶ subscribers
//!  claim_jti / consume ────▶ Mutex<Inner>     (one lock: atomic like the Redis script)
//!  append_audit ───────────▶ Mutex<Inner>.audit ──audit_events / trim_audit──▶ embedded archiver
//! ```
//!
//! Every map uses the names of [`keys`] and expires its entries by the
//! injected [`Clock`], so both implementations count the same things.
//! `consume` runs [`gcra::step`] and [`check_transaction_minor`] themselves
//! under the lock; nothing in the critical sections awaits.
//!
//! **Memory.** Replay entries, TATs, daily sums and revocations expire and
//! are swept (see `expiring.rs`), so they stay proportional to the traffic of
//! one proof-age window, one refill period and two days. The audit log is
//! never dropped silently: it keeps every event (about 0.5–1 KiB each) until
//! the embedded archiver has written it and calls
//! [`InProcessState::trim_audit`]; a node without an archiver grows by that
//! much per event.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use agentauth_core::ErrorCode;
use agentauth_core::audit::AuditEvent;
use agentauth_core::envelope::check_transaction_minor;
use agentauth_core::gcra;
use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::audit::{
    AppendError, AuditAppend, MARK_TTL_MS, SEEN_WINDOW, check_batch, check_marks, producer_of,
};
use crate::consume::{Allowance, ConsumeOutcome, ConsumeRequest, RateLimitStatus, tighter};
use crate::expiring::Expiring;
use crate::keys;
use crate::{
    Clock, GrantPhase, GrantState, INVALIDATION_CAPACITY, Invalidation, SharedState, StateError,
    SystemClock,
};

/// The in-process shared state. Cheap to share behind an `Arc`.
pub struct InProcessState {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    invalidations: broadcast::Sender<Invalidation>,
}

#[derive(Default)]
struct Inner {
    grants: Expiring<GrantState>,
    revoked: Expiring<i64>,
    /// `since` of re-published grants, ms (see [`keys::since`]).
    since: Expiring<i64>,
    /// Whether [`keys::EPOCH`] was set.
    epoch: bool,
    jtis: Expiring<()>,
    tats: Expiring<u64>,
    days: Expiring<u64>,
    audit: VecDeque<AuditEvent>,
    /// The position of `audit[0]` in the log since start.
    audit_base: u64,
    last_audit: HashMap<String, AuditEvent>,
    /// Per producer, the hashes of its newest [`SEEN_WINDOW`] events, oldest
    /// first, with the seq of the first (they are contiguous).
    audit_seen: HashMap<String, (u64, VecDeque<String>)>,
    /// Once-only marks ([`keys::audit_once`]) → `<producer>#<seq>`.
    audit_once: Expiring<String>,
}

impl std::fmt::Debug for InProcessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessState").finish_non_exhaustive()
    }
}

impl Default for InProcessState {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessState {
    /// An empty state on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty state on `clock` (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let (invalidations, _) = broadcast::channel(INVALIDATION_CAPACITY);
        Self {
            inner: Mutex::new(Inner::default()),
            clock,
            invalidations,
        }
    }

    /// Up to `max` audit events from position `from` on, with their
    /// positions (the first event ever appended is at 0). Positions already
    /// trimmed are skipped.
    pub fn audit_events(&self, from: u64, max: usize) -> Vec<(u64, AuditEvent)> {
        let inner = self.lock();
        let skip = usize::try_from(from.saturating_sub(inner.audit_base)).unwrap_or(usize::MAX);
        let first = inner.audit_base.max(from);
        (first..)
            .zip(inner.audit.iter().skip(skip).take(max).cloned())
            .collect()
    }

    /// The position the next appended event will get.
    pub fn audit_end(&self) -> u64 {
        let inner = self.lock();
        inner.audit_base + inner.audit.len() as u64
    }

    /// Forgets the events before position `before`: the archiver has written
    /// them durably (the in-process `XACK` + `XDEL`).
    pub fn trim_audit(&self, before: u64) {
        let mut inner = self.lock();
        while inner.audit_base < before && inner.audit.pop_front().is_some() {
            inner.audit_base += 1;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under the lock cannot leave a half-written entry: every
        // critical section decides first and writes last.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, invalidation: Invalidation) {
        // Err only means nobody is subscribed right now.
        let _ = self.invalidations.send(invalidation);
    }

    fn consume_locked(&self, inner: &mut Inner, request: &ConsumeRequest<'_>) -> ConsumeOutcome {
        let now = self.clock.now_us();
        if let Some(refused) = inner.check_token(request, now) {
            return refused;
        }
        let steps = match inner.step_rate_limits(request, now) {
            Ok(steps) => steps,
            Err(refused) => return refused,
        };
        let spent_today = match inner.check_daily_spend(request, now) {
            Ok(spent_today) => spent_today,
            Err(refused) => return refused,
        };
        // Every check admitted the request: count it.
        inner.count(steps, spent_today, now)
    }
}

/// The rate-limit windows of one admitted request: the TATs to store and
/// the tightest limit left.
struct RateSteps {
    new_tats: Vec<(String, gcra::Decision)>,
    tightest: Option<RateLimitStatus>,
}

impl Inner {
    /// Refuses a token issued before its grant's recovery, replayed, or of a
    /// revoked grant; claims its jti otherwise.
    fn check_token(&mut self, request: &ConsumeRequest<'_>, now: u64) -> Option<ConsumeOutcome> {
        let uid = request.uid;
        if self
            .since
            .get(&keys::since(uid), now)
            .is_some_and(|since| keys::predates(request.iat, *since))
        {
            return Some(ConsumeOutcome::PredatesRecovery);
        }

        let jti = keys::grant_jti(uid, request.jti);
        if self.jtis.get(&jti, now).is_some() {
            return Some(ConsumeOutcome::Replayed);
        }
        let jti_expiry = now.saturating_add(request.jti_ttl_ms.max(1).saturating_mul(1000));
        self.jtis.insert(jti, (), jti_expiry, now);

        if self.revoked.get(&keys::revoked(uid), now).is_some() {
            return Some(ConsumeOutcome::Revoked);
        }
        None
    }

    /// Steps every rate limit without storing anything; when several refuse,
    /// the one with the longest wait is reported.
    fn step_rate_limits(
        &self,
        request: &ConsumeRequest<'_>,
        now: u64,
    ) -> Result<RateSteps, ConsumeOutcome> {
        let mut new_tats = Vec::with_capacity(request.rate_limits.len());
        let mut tightest: Option<RateLimitStatus> = None;
        let mut refused: Option<(usize, u64)> = None;
        for &(index, params) in request.rate_limits {
            let key = keys::rate_limit(request.uid, index);
            let decision = gcra::step(self.tats.get(&key, now).copied(), now, params);
            if !decision.allowed {
                if refused.is_none_or(|(_, wait)| decision.retry_after > wait) {
                    refused = Some((index, decision.retry_after));
                }
                continue;
            }
            let status = RateLimitStatus {
                limit: index,
                remaining: decision.remaining,
                reset_ms: decision.reset_after_ms(),
            };
            tightest = Some(tighter(tightest, status));
            new_tats.push((key, decision));
        }
        if let Some((limit, retry_after)) = refused {
            return Err(ConsumeOutcome::RateLimited {
                limit,
                retry_after_ms: retry_after.div_ceil(1000),
            });
        }
        Ok(RateSteps { new_tats, tightest })
    }

    /// Checks a transaction against its limits and today's spend; returns the
    /// day's key and new total to store, or `None` without a transaction.
    fn check_daily_spend(
        &self,
        request: &ConsumeRequest<'_>,
        now: u64,
    ) -> Result<Option<(String, u64)>, ConsumeOutcome> {
        let Some(tx) = &request.transaction else {
            return Ok(None);
        };
        let key = keys::day(request.uid, keys::epoch_day(now), tx.limits.currency.code());
        let spent = self.days.get(&key, now).copied().unwrap_or(0);
        match check_transaction_minor(&tx.limits, tx.amount_minor, &tx.currency, spent) {
            Ok(total) => Ok(Some((key, total))),
            Err(e) => Err(match e.code {
                ErrorCode::CurrencyMismatch => ConsumeOutcome::CurrencyMismatch,
                ErrorCode::AmountOverLimit => ConsumeOutcome::AmountOverLimit,
                // The only other refusal is the daily one.
                _ => ConsumeOutcome::DailyAmountOverLimit {
                    spent_today_minor: spent,
                },
            }),
        }
    }

    /// Stores the new TATs and the day's total of an admitted request.
    fn count(
        &mut self,
        steps: RateSteps,
        spent_today: Option<(String, u64)>,
        now: u64,
    ) -> ConsumeOutcome {
        for (key, decision) in steps.new_tats {
            let expiry = now.saturating_add(decision.reset_after);
            self.tats.insert(key, decision.new_tat, expiry, now);
        }
        let spent_today_minor = spent_today.map(|(key, total)| {
            let expiry = now.saturating_add(keys::DAY_TTL_MS * 1000);
            self.days.insert(key, total, expiry, now);
            total
        });
        ConsumeOutcome::Allowed(Allowance {
            rate_limit: steps.tightest,
            spent_today_minor,
        })
    }
}

/// `now + ttl_ms` in µs, or forever.
fn expiry_us(now_us: u64, ttl_ms: Option<u64>) -> u64 {
    ttl_ms.map_or(u64::MAX, |ttl| {
        now_us.saturating_add(ttl.saturating_mul(1000))
    })
}

#[async_trait]
impl SharedState for InProcessState {
    async fn put_grant(&self, state: &GrantState) -> Result<(), StateError> {
        let now = self.clock.now_us();
        let now_ms = self.clock.now_ms();
        let ttl = keys::grant_state_ttl_ms(state.expires_at, now_ms);
        {
            let mut inner = self.lock();
            let key = keys::grant_state(&state.uid);
            if inner.grants.get(&key, now).is_none() && keys::is_republication(state) {
                inner
                    .since
                    .insert(keys::since(&state.uid), now_ms, expiry_us(now, ttl), now);
            }
            inner
                .grants
                .insert(key, state.clone(), expiry_us(now, ttl), now);
        }
        let revoked = state.phase == GrantPhase::Revoked;
        self.publish(Invalidation::grant(
            &state.uid,
            revoked,
            state.updated_at_ms,
        ));
        Ok(())
    }

    async fn get_grant(&self, uid: &str) -> Result<Option<GrantState>, StateError> {
        let now = self.clock.now_us();
        Ok(self
            .lock()
            .grants
            .get(&keys::grant_state(uid), now)
            .cloned())
    }

    async fn revoke_grant(&self, uid: &str, at_ms: i64) -> Result<(), StateError> {
        let now = self.clock.now_us();
        {
            let mut inner = self.lock();
            let expires_at = inner
                .grants
                .get(&keys::grant_state(uid), now)
                .and_then(|g| g.expires_at);
            let ttl = keys::revocation_ttl_ms(expires_at, self.clock.now_ms());
            inner
                .revoked
                .insert(keys::revoked(uid), at_ms, expiry_us(now, Some(ttl)), now);
        }
        self.publish(Invalidation::grant(uid, true, at_ms));
        Ok(())
    }

    async fn is_revoked(&self, uid: &str) -> Result<bool, StateError> {
        let now = self.clock.now_us();
        Ok(self.lock().revoked.get(&keys::revoked(uid), now).is_some())
    }

    async fn remove_grant(&self, uid: &str) -> Result<(), StateError> {
        {
            let mut inner = self.lock();
            inner.grants.remove(&keys::grant_state(uid));
            inner.since.remove(&keys::since(uid));
            // The counters go; used proofs and the revocation stay until they expire.
            let prefix = format!("agentauth:{{{uid}}}:");
            inner.tats.remove_prefix(&prefix);
            inner.days.remove_prefix(&prefix);
        }
        self.publish(Invalidation::grant(uid, false, self.clock.now_ms()));
        Ok(())
    }

    async fn mark_epoch(&self) -> Result<bool, StateError> {
        Ok(!std::mem::replace(&mut self.lock().epoch, true))
    }

    async fn subscribe(&self) -> Result<broadcast::Receiver<Invalidation>, StateError> {
        Ok(self.invalidations.subscribe())
    }

    async fn claim_jti(&self, scope: &str, jti: &str, ttl_ms: u64) -> Result<bool, StateError> {
        let now = self.clock.now_us();
        let key = keys::scoped_jti(scope, jti);
        let mut inner = self.lock();
        if inner.jtis.get(&key, now).is_some() {
            return Ok(false);
        }
        inner
            .jtis
            .insert(key, (), expiry_us(now, Some(ttl_ms.max(1))), now);
        Ok(true)
    }

    async fn append_audit_batch(&self, events: &[AuditEvent]) -> Result<AuditAppend, AppendError> {
        self.append_audit_marked(events, &[]).await
    }

    async fn audit_marks(&self, marks: &[String]) -> Result<Vec<bool>, StateError> {
        let now = self.clock.now_us();
        let inner = self.lock();
        Ok(marks
            .iter()
            .map(|mark| inner.audit_once.get(&keys::audit_once(mark), now).is_some())
            .collect())
    }

    async fn append_audit_marked(
        &self,
        events: &[AuditEvent],
        marks: &[Option<String>],
    ) -> Result<AuditAppend, AppendError> {
        let Some(producer) = producer_of(events)? else {
            return Ok(AuditAppend::default());
        };
        let now = self.clock.now_us();
        let mut inner = self.lock();
        let skipped = {
            let head = inner
                .last_audit
                .get(producer)
                .map(|e| (e.seq, e.hash.as_str()));
            let seen = inner.audit_seen.get(producer);
            let stored_hash = |seq: u64| {
                let (base, hashes) = seen?;
                hashes
                    .get(usize::try_from(seq.checked_sub(*base)?).ok()?)
                    .cloned()
            };
            check_batch(head, stored_hash, events)?
        };
        check_marks(events, marks, skipped, |mark| {
            inner.audit_once.get(&keys::audit_once(mark), now).is_some()
        })?;
        let new = &events[skipped..];
        for (i, event) in new.iter().enumerate() {
            if let Some(Some(mark)) = marks.get(skipped + i) {
                let at = format!("{producer}#{}", event.seq);
                let expiry = expiry_us(now, Some(MARK_TTL_MS));
                inner
                    .audit_once
                    .insert(keys::audit_once(mark), at, expiry, now);
            }
            inner.audit.push_back(event.clone());
            let (base, hashes) = inner
                .audit_seen
                .entry(producer.to_owned())
                .or_insert_with(|| (event.seq, VecDeque::new()));
            hashes.push_back(event.hash.clone());
            while hashes.len() as u64 > SEEN_WINDOW {
                hashes.pop_front();
                *base += 1;
            }
        }
        if let Some(last) = new.last() {
            inner.last_audit.insert(producer.to_owned(), last.clone());
        }
        Ok(AuditAppend {
            written: new.len(),
            skipped,
        })
    }

    async fn last_audit_event(&self, producer: &str) -> Result<Option<AuditEvent>, StateError> {
        Ok(self.lock().last_audit.get(producer).cloned())
    }

    async fn consume(&self, request: &ConsumeRequest<'_>) -> Result<ConsumeOutcome, StateError> {
        let mut inner = self.lock();
        Ok(self.consume_locked(&mut inner, request))
    }
}

#[cfg(test)]
mod tests {
    use agentauth_core::audit::{Chain, Draft};
    use futures::executor::block_on;

    use super::*;

    #[test]
    fn audit_log_keeps_positions_across_trims() {
        let state = InProcessState::new();
        let mut chain = Chain::new("verifier/node-a");
        for i in 0..5 {
            let event = chain
                .append(Draft::default(), 1_700_000_000_000 + i)
                .unwrap();
            block_on(state.append_audit(&event)).unwrap();
        }
        assert_eq!(state.audit_end(), 5);
        let seqs = |from, max| -> Vec<(u64, u64)> {
            state
                .audit_events(from, max)
                .into_iter()
                .map(|(position, event)| (position, event.seq))
                .collect()
        };
        assert_eq!(seqs(1, 2), [(1, 1), (2, 2)]);
        state.trim_audit(3);
        assert_eq!(seqs(0, 10), [(3, 3), (4, 4)]);
        assert_eq!(seqs(4, 10), [(4, 4)]);
        assert_eq!(seqs(9, 10), []);
        state.trim_audit(100);
        assert_eq!((state.audit_end(), seqs(0, 10)), (5, vec![]));
        let last = block_on(state.last_audit_event("verifier/node-a")).unwrap();
        assert_eq!(last.map(|e| e.seq), Some(4));
    }
}
