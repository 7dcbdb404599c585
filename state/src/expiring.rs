//! A map whose entries expire, for the in-process state: Redis's `PX` in a
//! `HashMap`. Expired entries read as absent at once and are swept when the
//! map has doubled since the last sweep, so memory stays proportional to the
//! live entries (amortized O(1) per insert) without a background task.

use std::collections::HashMap;

/// The smallest size at which a sweep runs.
const MIN_SWEEP_LEN: usize = 1024;

/// String keys to values with an expiry instant (µs, same clock as `now`).
#[derive(Debug)]
pub(crate) struct Expiring<V> {
    map: HashMap<String, (V, u64)>,
    sweep_at: usize,
}

impl<V> Default for Expiring<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            sweep_at: MIN_SWEEP_LEN,
        }
    }
}

impl<V> Expiring<V> {
    /// The value of `key` if it has not expired at `now`.
    pub(crate) fn get(&self, key: &str, now: u64) -> Option<&V> {
        self.map
            .get(key)
            .filter(|(_, expires_at)| now < *expires_at)
            .map(|(value, _)| value)
    }

    /// Sets `key` until `expires_at` (replacing any value), sweeping expired
    /// entries when the map has grown enough.
    pub(crate) fn insert(&mut self, key: String, value: V, expires_at: u64, now: u64) {
        self.map.insert(key, (value, expires_at));
        if self.map.len() >= self.sweep_at {
            self.map.retain(|_, (_, expires_at)| now < *expires_at);
            self.sweep_at = MIN_SWEEP_LEN.max(self.map.len().saturating_mul(2));
        }
    }

    /// Removes `key`.
    pub(crate) fn remove(&mut self, key: &str) {
        self.map.remove(key);
    }

    /// Removes every key starting with `prefix` (O(n): for the rare removal of a grant).
    pub(crate) fn remove_prefix(&mut self, prefix: &str) {
        self.map.retain(|key, _| !key.starts_with(prefix));
    }

    /// How many entries are stored, expired or not (for tests).
    #[cfg(test)]
    pub(crate) fn stored(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_are_swept() {
        let mut map = Expiring::default();
        map.insert("a".into(), 1, 10, 0);
        assert_eq!(map.get("a", 9), Some(&1));
        assert_eq!(map.get("a", 10), None);
        for i in 0..10_000 {
            // Each entry lives 1 µs; the clock moves 1 µs per insert.
            map.insert(format!("k{i}"), i, i + 1, i);
        }
        assert!(map.stored() < 2 * MIN_SWEEP_LEN, "{}", map.stored());
        map.remove_prefix("k");
        map.remove("a");
        assert_eq!(map.stored(), 0);
    }
}
