//! The grant-state cache: what the operator wrote about each grant, read from
//! the shared state once and then served from memory until an invalidation
//! says it changed (DESIGN §7, issue 5: within 1 s).
//!
//! ```text
//!  request ─▶ get(uid) ── hit (fresh, not dropped) ──────────────▶ Arc<CachedGrant>
//!                └─ miss ─▶ SharedState::get_grant ─▶ compile envelope ─▶ insert (if nothing
//!                                                                         was invalidated meanwhile)
//!  subscribe() ─▶ Invalidation{uid, revoked} ─▶ drop uid (a revoked one becomes a tombstone)
//!              └▶ flush_all, lag, closed ─────▶ drop everything
//! ```
//!
//! **Races.** A read that started before an invalidation could insert the
//! old state after it. Every invalidation moves an epoch; a read inserts
//! only if the epoch did not move while it was in flight (it still answers
//! its own request with what it read, which was current when it started).
//!
//! **Only while subscribed.** Until the subscription is live nothing is
//! cached (every request reads the state), since an invalidation could be
//! missed. Entries also expire after `ttl` as a safety net.
//!
//! The envelope is compiled once per cached grant: time windows with their
//! zones resolved, rate limits as GCRA parameters, amounts in minor units.
//! An envelope that does not compile is kept as its error and denies every
//! request (fail closed) with that error's code.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use agentauth_core::capability::CapabilityType;
use agentauth_core::envelope::MinorLimits;
use agentauth_core::gcra::{AppliesTo, GcraParams};
use agentauth_core::window::CompiledWindows;
use agentauth_core::{Error, ErrorCode};
use agentauth_state::{GrantState, Invalidation, SharedState, StateError};
use tokio::sync::broadcast::error::RecvError;

use crate::Clock;
use crate::metrics::{CacheKind, Metrics};

/// Grants held before the whole cache is dropped (a grant costs ~1–2 KiB).
const MAX_GRANTS: usize = 100_000;

/// A grant's state with its envelope compiled.
#[derive(Debug)]
pub struct CachedGrant {
    /// What the operator wrote.
    pub state: GrantState,
    /// The envelope's time windows (empty: always open).
    pub windows: Result<CompiledWindows, Error>,
    /// The envelope's rate limits, compiled once per grant.
    pub rate_limits: Result<RateLimits, Error>,
    /// The envelope's amount limits.
    pub transactions: Result<Option<MinorLimits>, Error>,
}

impl CachedGrant {
    /// Compiles `state`'s envelope.
    pub fn compile(state: GrantState) -> Self {
        let envelope = state.envelope.as_ref();
        let windows = envelope.map_or_else(
            || Ok(CompiledWindows::default()),
            |e| CompiledWindows::compile(&e.time_windows),
        );
        let rate_limits = envelope.map_or_else(
            || Ok(RateLimits::default()),
            |e| {
                let limits = e
                    .rate_limits
                    .iter()
                    .map(|l| Ok((l.params()?, l.applies_to.clone())))
                    .collect::<Result<Vec<_>, Error>>()?;
                Ok(RateLimits::new(limits))
            },
        );
        let transactions = envelope
            .and_then(|e| e.transactions.as_ref())
            .map(|t| t.to_minor())
            .transpose();
        CachedGrant {
            state,
            windows,
            rate_limits,
            transactions,
        }
    }
}

/// An envelope's rate limits, each with its envelope position (its identity
/// in the shared state, see `agentauth_state::keys`).
#[derive(Debug, Default)]
pub struct RateLimits {
    /// Every limit, in envelope order, with its position.
    all: Vec<(usize, GcraParams)>,
    /// Each limit's `appliesTo`, by position (`None`: every request).
    applies_to: Vec<Option<AppliesTo>>,
    /// Whether some limit counts only some actions.
    selective: bool,
}

impl RateLimits {
    fn new(limits: Vec<(GcraParams, Option<AppliesTo>)>) -> Self {
        let selective = limits.iter().any(|(_, a)| a.is_some());
        let (params, applies_to): (Vec<_>, Vec<_>) = limits.into_iter().unzip();
        RateLimits {
            all: params.into_iter().enumerate().collect(),
            applies_to,
            selective,
        }
    }

    /// The limits that count an action of `kind` on `resource`: borrowed
    /// when no limit is selective (the usual envelope), so the hot path
    /// allocates only for envelopes with `appliesTo`.
    pub fn counting(&self, kind: CapabilityType, resource: &str) -> Cow<'_, [(usize, GcraParams)]> {
        if !self.selective {
            return Cow::Borrowed(&self.all);
        }
        let applies = |index: usize| {
            self.applies_to
                .get(index)
                .and_then(Option::as_ref)
                .is_none_or(|a| a.matches(kind, resource))
        };
        Cow::Owned(
            self.all
                .iter()
                .copied()
                .filter(|(i, _)| applies(*i))
                .collect(),
        )
    }
}

/// What the cache knows about a grant.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// The grant's state.
    Grant(Arc<CachedGrant>),
    /// An invalidation said it was revoked (at this time, ms).
    Revoked(i64),
    /// The shared state has no such grant.
    Unknown,
}

#[derive(Debug)]
enum Entry {
    Grant(Arc<CachedGrant>, i64),
    Revoked(i64, i64),
}

/// The cache. Cheap to share behind an `Arc`.
pub struct GrantCache {
    map: RwLock<HashMap<String, Entry>>,
    epoch: AtomicU64,
    live: AtomicBool,
    watermark_ms: AtomicI64,
    ttl_ms: i64,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl std::fmt::Debug for GrantCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantCache")
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

impl GrantCache {
    /// An empty cache whose entries live at most `ttl`.
    pub fn new(ttl: Duration, clock: Arc<dyn Clock>, metrics: Metrics) -> Self {
        GrantCache {
            map: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            live: AtomicBool::new(false),
            watermark_ms: AtomicI64::new(0),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            clock,
            metrics,
        }
    }

    /// The time of the newest invalidation applied, ms since the epoch.
    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms.load(Ordering::Acquire)
    }

    /// Whether invalidations are being received (so caching is on).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// The grant `uid`: from the cache, else from `state` (within the
    /// state's own hot-path deadline).
    pub async fn get(&self, uid: &str, state: &dyn SharedState) -> Result<Lookup, StateError> {
        let now = self.clock.now_ms();
        let cached = {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            match map.get(uid) {
                Some(Entry::Grant(g, at)) if now.saturating_sub(*at) < self.ttl_ms => {
                    Some(Lookup::Grant(Arc::clone(g)))
                }
                Some(Entry::Revoked(at, seen)) if now.saturating_sub(*seen) < self.ttl_ms => {
                    Some(Lookup::Revoked(*at))
                }
                _ => None,
            }
        };
        if let Some(found) = cached {
            self.metrics.cache(CacheKind::Grant, true);
            return Ok(found);
        }
        self.metrics.cache(CacheKind::Grant, false);
        let epoch = self.epoch.load(Ordering::Acquire);
        // The state bounds the read itself (its hot-path deadline).
        let read = state.get_grant(uid).await?;
        let Some(grant) = read else {
            return Ok(Lookup::Unknown);
        };
        let grant = Arc::new(CachedGrant::compile(grant));
        if self.is_live() {
            let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
            if self.epoch.load(Ordering::Acquire) == epoch {
                if map.len() >= MAX_GRANTS {
                    map.clear();
                }
                map.insert(uid.to_owned(), Entry::Grant(Arc::clone(&grant), now));
            }
        }
        Ok(Lookup::Grant(grant))
    }

    /// Applies one invalidation.
    pub fn apply(&self, invalidation: &Invalidation) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if invalidation.flush_all {
            map.clear();
            self.metrics.grant_cache_flushes.inc();
        } else if invalidation.revoked {
            let seen = self.clock.now_ms();
            let lag_ms = seen.saturating_sub(invalidation.at_ms).max(0);
            self.metrics.revocation_lag.observe(lag_ms as f64 / 1000.0);
            map.insert(
                invalidation.uid.clone(),
                Entry::Revoked(invalidation.at_ms, seen),
            );
        } else {
            map.remove(&invalidation.uid);
        }
        drop(map);
        let newest = self
            .watermark_ms
            .fetch_max(invalidation.at_ms, Ordering::AcqRel);
        self.metrics
            .revocation_watermark_ms
            .set(newest.max(invalidation.at_ms));
    }

    /// Drops everything (a missed invalidation is possible).
    pub fn flush(&self) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.clear();
        self.metrics.grant_cache_flushes.inc();
    }

    /// Subscribes to invalidations (retrying until it can) and applies them
    /// until the task is dropped.
    pub async fn listen(self: Arc<Self>, state: Arc<dyn SharedState>) {
        let mut failures = 0_u32;
        loop {
            let mut receiver = match state.subscribe().await {
                Ok(receiver) => receiver,
                Err(error) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(%error, "cannot subscribe to grant invalidations; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            failures = 0;
            // Whatever was read before the subscription was live may be stale.
            self.flush();
            self.live.store(true, Ordering::Release);
            tracing::info!("subscribed to grant invalidations");
            loop {
                match receiver.recv().await {
                    Ok(invalidation) => self.apply(&invalidation),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "fell behind on invalidations; dropping the grant cache"
                        );
                        self.flush();
                    }
                    Err(RecvError::Closed) => break,
                }
            }
            self.live.store(false, Ordering::Release);
            self.flush();
        }
    }
}

/// The stable code for a failed state call.
pub fn unavailable(error: &StateError) -> Error {
    Error::new(ErrorCode::StateUnavailable, error.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ManualClock;

    /// `agentauth_verifier_revocation_lag_seconds` measures from the
    /// operator's revocation time to this verifier applying it (the alert on
    /// revocation lag > 1 s reads it); other invalidations are not revocations.
    #[test]
    fn a_revocation_records_its_propagation_lag() {
        let metrics = Metrics::new().unwrap();
        let clock = Arc::new(ManualClock::new(10_000_000_000));
        let cache = GrantCache::new(Duration::from_secs(60), clock, metrics.clone());
        let at = |at_ms: i64, revoked: bool| Invalidation {
            uid: "g-1".into(),
            revoked,
            at_ms,
            flush_all: false,
        };
        cache.apply(&at(10_000_000 - 1_250, true));
        cache.apply(&at(10_000_000 - 5_000, false));
        assert_eq!(metrics.revocation_lag.get_sample_count(), 1);
        assert!((metrics.revocation_lag.get_sample_sum() - 1.25).abs() < 1e-9);
        // A revocation time ahead of this node's clock (skew) counts as 0, not negative.
        cache.apply(&at(10_000_000 + 500, true));
        assert_eq!(metrics.revocation_lag.get_sample_count(), 2);
        assert!((metrics.revocation_lag.get_sample_sum() - 1.25).abs() < 1e-9);
    }
}
