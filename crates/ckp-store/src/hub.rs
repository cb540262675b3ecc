//! Change notices after commits: one watch per run that someone follows (an SSE stream, a cancel waiting for
//! its run), one for any change (the approvals stream), and one for changes of procedures (the catalog's caches).
//! A watch holds a counter, so many commits that land before a follower wakes cost one wake-up, and a commit wakes
//! only the followers of its run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The notice board.
#[derive(Debug)]
pub(crate) struct Hub {
    runs: Mutex<HashMap<Arc<str>, watch::Sender<u64>>>,
    all: watch::Sender<u64>,
    procedures: watch::Sender<u64>,
}

/// Followed runs above this many trigger a sweep of the ones nobody follows any more.
const SWEEP_AT: usize = 1024;

impl Hub {
    pub(crate) fn new() -> Self {
        Hub { runs: Mutex::new(HashMap::new()), all: watch::channel(0).0, procedures: watch::channel(0).0 }
    }

    /// Announces a committed change of `run_id`.
    pub(crate) fn publish(&self, run_id: &str) {
        self.all.send_modify(|n| *n = n.wrapping_add(1));
        if let Ok(mut runs) = self.runs.lock()
            && let Some(tx) = runs.get(run_id)
        {
            if tx.receiver_count() == 0 {
                runs.remove(run_id);
            } else {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// Announces that anything may have changed (a missed-notice gap, such as a lost database connection):
    /// every follower re-reads.
    pub(crate) fn publish_everything(&self) {
        self.publish_procedures();
        self.all.send_modify(|n| *n = n.wrapping_add(1));
        if let Ok(runs) = self.runs.lock() {
            for tx in runs.values() {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// Follows one run.
    pub(crate) fn watch_run(&self, run_id: &str) -> watch::Receiver<u64> {
        let Ok(mut runs) = self.runs.lock() else { return watch::channel(0).1 };
        if runs.len() >= SWEEP_AT {
            runs.retain(|_, tx| tx.receiver_count() > 0);
        }
        runs.entry(Arc::from(run_id)).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Announces a committed change of procedures (any of them).
    pub(crate) fn publish_procedures(&self) {
        self.procedures.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Follows changes of procedures.
    pub(crate) fn watch_procedures(&self) -> watch::Receiver<u64> {
        self.procedures.subscribe()
    }

    /// Follows every change.
    pub(crate) fn watch_all(&self) -> watch::Receiver<u64> {
        self.all.subscribe()
    }
}
