//! Gives memory back to the system when a busy server goes quiet (issue 6: RSS after 100,000 runs).
//!
//! mimalloc (the binary's allocator) frees pages lazily: a page freed during a burst is returned to the system
//! only after a delay, and only when some thread allocates again. A server that goes quiet after a burst would
//! keep tens of MiB it no longer uses. Purging at once (`MIMALLOC_PURGE_DELAY=0`) costs ~15 % throughput under
//! load (see BENCHMARKS.md), so instead the runtime's threads collect when the process has gone quiet:
//!
//! * every runtime thread counts its wake-ups ([`on_unpark`]);
//! * a ticker ([`watch`]) sees a second with almost no wake-ups after busier ones, and starts a new trim epoch;
//! * each runtime thread, when it next parks ([`on_park`]) in a new epoch, collects its own heap and purges the
//!   freed pages of the whole process (`mi_collect(true)`); the ticker wakes them to make sure.
//!
//! Under load the ticker never fires a trim (every second is busy), so the hot path pays one relaxed atomic
//! increment per wake-up.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Wake-ups of runtime threads since start.
static WAKEUPS: AtomicU64 = AtomicU64::new(0);
/// The current trim epoch; a thread that has not collected in it does when it parks.
static EPOCH: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COLLECTED: Cell<u64> = const { Cell::new(0) };
}

/// How often the ticker looks.
const TICK: Duration = Duration::from_secs(1);
/// Wake-ups in a tick at or below which the process is quiet (the ticker's own and its nudges).
const QUIET: u64 = 16;

/// For `tokio::runtime::Builder::on_thread_unpark`.
pub fn on_unpark() {
    WAKEUPS.fetch_add(1, Ordering::Relaxed);
}

/// For `tokio::runtime::Builder::on_thread_park`: collects once per trim epoch.
pub fn on_park() {
    let epoch = EPOCH.load(Ordering::Relaxed);
    if COLLECTED.get() != epoch {
        COLLECTED.set(epoch);
        collect();
    }
}

/// Starts a trim epoch each time the process turns quiet after being busy; runs until the runtime stops.
pub async fn watch(threads: usize) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = WAKEUPS.load(Ordering::Relaxed);
    let mut busy = false;
    loop {
        tick.tick().await;
        let now = WAKEUPS.load(Ordering::Relaxed);
        let woke = now.saturating_sub(last);
        last = now;
        if woke > QUIET {
            busy = true;
        } else if busy {
            busy = false;
            EPOCH.fetch_add(1, Ordering::Relaxed);
            // This thread collects now; the others when they park after running one of these.
            on_park();
            for _ in 0..threads {
                tokio::spawn(tokio::task::yield_now());
            }
            last = WAKEUPS.load(Ordering::Relaxed);
        }
    }
}

/// Collects this thread's heap and purges the pages freed anywhere in the process.
fn collect() {
    // SAFETY: `mi_collect` takes no pointer and may be called from any thread at any time; it only returns free
    // memory of mimalloc's own heaps to the system.
    #[expect(unsafe_code, reason = "the allocator's collect call has no safe wrapper")]
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_collects_once_per_epoch() {
        let before = COLLECTED.get();
        EPOCH.fetch_add(1, Ordering::Relaxed);
        on_park();
        let after = COLLECTED.get();
        assert_ne!(before, after, "a new epoch is collected");
        on_park();
        assert_eq!(COLLECTED.get(), after, "the same epoch is not collected twice");
    }
}
