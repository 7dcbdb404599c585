//! The clock of the counters: unix time in microseconds, injectable so that
//! tests step time exactly (STYLE: "time comes from an injectable clock").
//!
//! [`InProcessState`](crate::InProcessState) reads it for every expiry, rate
//! limit and day boundary. [`RedisState`](crate::RedisState) uses Redis
//! `TIME` inside its script, so that every verifier shares one clock; a clock
//! given in its configuration replaces `TIME` for the script only (key expiry
//! stays Redis's own), which is how the script is tested against
//! [`gcra::step`](agentauth_core::gcra::step).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Microseconds since the unix epoch.
    fn now_us(&self) -> u64;

    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> i64 {
        i64::try_from(self.now_us() / 1000).unwrap_or(i64::MAX)
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        // A clock before 1970 reads as the epoch; u64 µs lasts until 586 912.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_us: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `now_us`.
    pub fn new(now_us: u64) -> Self {
        Self {
            now_us: AtomicU64::new(now_us),
        }
    }

    /// Moves the clock to `now_us` (backwards too).
    pub fn set(&self, now_us: u64) {
        self.now_us.store(now_us, Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        // fetch_update cannot fail when the closure always returns Some.
        let _ = self
            .now_us
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.now_us.load(Ordering::SeqCst)
    }
}
