//! Pruning of trigger fires. On the leader only, every [`EVERY`] it deletes, registration by registration and in
//! batches of [`BATCH`] rows (each one short transaction), the fires beyond the newest `trigger_fires_keep` of a
//! registration or older than `trigger_fires_retention_days` — but only those that dedupe nothing any more
//! ([`ckp_store::TriggerStore::prune_trigger_fires`]): a body hash within its window, a file version still on disk
//! or the tick at a schedule's cursor is kept whatever its age.

use std::time::Duration;

use ckp_engine::error::ErrorChain;
use ckp_store::{PruneFires, StoreError};
use tokio::sync::watch;

use crate::app::AppState;

/// How often the leader prunes.
pub const EVERY: Duration = Duration::from_secs(60);

/// The most rows deleted by one transaction.
pub const BATCH: i64 = 500;

/// How many fires are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest this many fires of each registration.
    pub keep: i64,
    /// Fires recorded longer ago than this many days go even among the newest.
    pub days: u64,
}

/// Prunes until `shutdown`.
pub async fn run_prune(state: AppState, retention: Retention, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => return,
        }
        if !state.store.is_leader() {
            continue;
        }
        match prune(&state, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                keep = retention.keep,
                retention_days = retention.days,
                "old trigger fires deleted"
            ),
            Err(e) => tracing::warn!(error = %ErrorChain(&e), "cannot delete old trigger fires; the next pass retries"),
        }
    }
}

/// One pass over every registration; how many fires were deleted.
pub async fn prune(state: &AppState, retention: Retention) -> Result<u64, StoreError> {
    let older = chrono::Utc::now() - chrono::Duration::days(i64::try_from(retention.days).unwrap_or(36_500));
    let mut total = 0;
    for reg in state.store.list_triggers().await? {
        loop {
            let batch = PruneFires { keep: retention.keep, older_than: older.to_rfc3339(), limit: BATCH };
            let n = state.store.prune_trigger_fires(&reg.procedure_id, &reg.version, batch).await?;
            total += n;
            if n < u64::try_from(BATCH).unwrap_or(0) {
                break;
            }
            // Other writers get the store between batches.
            tokio::task::yield_now().await;
        }
    }
    Ok(total)
}
