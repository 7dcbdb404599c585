//! Per-object exponential backoff for failed reconciles: 250 ms, doubling,
//! at most 5 minutes, forgotten on the object's next success.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The first retry delay.
const FIRST: Duration = Duration::from_millis(250);
/// The longest retry delay.
const MAX: Duration = Duration::from_secs(300);

/// Consecutive failures per object.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of `key` and returns how long to wait before retrying.
    pub(super) fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let n = failures.entry(key.to_owned()).or_insert(0);
        let delay = FIRST.saturating_mul(1u32 << (*n).min(16)).min(MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets the failures of `key`.
    pub(super) fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets_on_success() {
        let b = Backoff::default();
        let delays: Vec<_> = (0..3).map(|_| b.failed("g")).collect();
        assert_eq!(delays, [FIRST, FIRST * 2, FIRST * 4]);
        assert_eq!(b.failed("other"), FIRST);
        for _ in 0..40 {
            b.failed("g");
        }
        assert_eq!(b.failed("g"), MAX);
        b.succeeded("g");
        assert_eq!(b.failed("g"), FIRST);
    }
}
