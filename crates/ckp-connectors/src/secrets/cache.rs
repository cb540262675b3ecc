//! A small TTL cache of secret values (successes only: a failure or a missing secret is asked again next time).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries beyond this are pruned (expired ones first, then everything).
const MAX_ENTRIES: usize = 4096;

/// Values by key, each until its deadline.
pub(super) struct TtlCache<K> {
    entries: Mutex<HashMap<K, (String, Instant)>>,
}

impl<K> Default for TtlCache<K> {
    fn default() -> Self {
        TtlCache { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash> TtlCache<K> {
    /// The value, while fresh.
    pub(super) fn get(&self, key: &K) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        entries.get(key).filter(|(_, until)| Instant::now() < *until).map(|(v, _)| v.clone())
    }

    /// Keeps `value` for `ttl`.
    pub(super) fn put(&self, key: K, value: String, ttl: Duration) {
        let Ok(mut entries) = self.entries.lock() else { return };
        let now = Instant::now();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (value, now + ttl));
    }

    /// Forgets everything.
    pub(super) fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}
