//! The failure rate limiter: failed sign-ins and wrong keys counted per source address and per identity over a
//! one-minute window. Past the allowance, further attempts from that source or for that identity are refused with
//! 429 and `Retry-After` until the window moves on, whether or not they would succeed (a guessing attack gets no
//! signal). Bounded memory: entries older than the window are dropped when the table grows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
const PRUNE_AT: usize = 10_000;

/// Failures per key (`ip:<addr>`, `id:<identity>`).
#[derive(Debug)]
pub struct FailureLimiter {
    allowed: u32,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl FailureLimiter {
    /// Allows `allowed` failures per minute per key (0: no limit).
    pub fn new(allowed: u32) -> Self {
        FailureLimiter { allowed, failures: Mutex::new(HashMap::new()) }
    }

    /// Seconds to wait when any of `keys` is over its allowance, else None.
    pub fn blocked(&self, keys: &[String]) -> Option<u64> {
        if self.allowed == 0 {
            return None;
        }
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.iter()
            .filter_map(|k| failures.get(k))
            .filter_map(|times| {
                let recent: Vec<&Instant> = times.iter().filter(|t| now.duration_since(**t) < WINDOW).collect();
                let over = recent.len() >= self.allowed as usize;
                over.then(|| recent.first().map_or(1, |t| (WINDOW - now.duration_since(**t)).as_secs().max(1)))
            })
            .max()
    }

    /// Counts a failure for each of `keys`.
    pub fn fail(&self, keys: &[String]) {
        if self.allowed == 0 {
            return;
        }
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= PRUNE_AT {
            failures.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < WINDOW));
        }
        for key in keys {
            let times = failures.entry(key.clone()).or_default();
            times.retain(|t| now.duration_since(*t) < WINDOW);
            times.push(now);
        }
    }

    /// Forgets an identity's failures (after it signed in).
    pub fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_then_a_wait() {
        let limiter = FailureLimiter::new(3);
        let keys = ["ip:1.2.3.4".to_owned(), "id:ann".to_owned()];
        for _ in 0..3 {
            assert_eq!(limiter.blocked(&keys), None);
            limiter.fail(&keys);
        }
        let wait = limiter.blocked(&keys).unwrap_or_default();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(limiter.blocked(&["id:ann".to_owned()]).is_some(), "the identity alone is blocked too");
        limiter.clear("id:ann");
        assert!(limiter.blocked(&["id:ann".to_owned()]).is_none());
        assert!(limiter.blocked(&["ip:5.6.7.8".to_owned()]).is_none());
        assert_eq!(FailureLimiter::new(0).blocked(&keys), None);
    }
}
