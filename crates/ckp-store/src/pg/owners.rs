//! Fast failover (migration 0008): a process that claims jobs holds a session-level advisory lock on its owner
//! key for its whole life, on a connection of its own, and is listed in `ckp_owners`. PostgreSQL releases a
//! session's locks when the session ends, and a killed process's sessions end when the kernel closes its sockets,
//! so the leader sees a dead process in `pg_locks` within a second and returns exactly its running jobs to the
//! queue, without waiting for their leases: the lease stays as long as it is and still protects a process that is
//! alive but slow (it keeps its lock however slow its steps are).
//!
//! The guards against taking the jobs of a process that is alive: an owner counts as dead only when its lock is
//! missing on two checks in a row (a session that reconnects at once is not hit), the reclaim checks the lock again
//! in its own statement, and a process whose lock session dropped claims nothing until it holds the lock again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::NoTls;

use super::{PgStore, notify_jobs};
use crate::StoreError;

/// Takes the owner's lock ($1: the owner id); per schema, like every other lock of ckp.
const TAKE: &str = "SELECT pg_try_advisory_lock(hashtextextended(current_schema() || '/ckp-owner/' || $1, 0))";
/// Lists the owner; also the lock session's periodic liveness check (a no-op write when the row is there).
const LIST: &str = "INSERT INTO ckp_owners (owner) VALUES ($1) ON CONFLICT DO NOTHING";
/// Whether owner `o.owner`'s lock is held by some session: a bigint advisory lock shows its key's high half as
/// `classid` and its low half as `objid` (`objsubid` 1).
const HELD: &str = "EXISTS (SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND ((l.classid::bigint << 32) | l.objid::bigint)
          = hashtextextended(current_schema() || '/ckp-owner/' || o.owner, 0))";

/// How often the lock session checks its connection (and so how soon it notices a drop).
const PING: Duration = Duration::from_secs(1);
/// Longest wait for one liveness check before the session is taken as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether an owner id can name a process: worker ids are `{owner}-{n}`, so an owner has no `-`.
pub(crate) fn check_owner(owner: &str) -> Result<(), StoreError> {
    if owner.is_empty() || !owner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::Invalid(format!("`{owner}` is not an owner id (a-z, A-Z, 0-9, _)")));
    }
    Ok(())
}

/// This process's lock session: takes the owner's lock, lists the owner, checks the connection every [`PING`];
/// when the connection drops, `live` turns false (claims stop) until the lock is taken again on a new one.
pub(crate) async fn hold(
    config: tokio_postgres::Config,
    owner: String,
    live: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
    taken: Arc<tokio::sync::Notify>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut lost = false;
    loop {
        if let Ok((client, conn)) = config.connect(NoTls).await {
            let mut driver = tokio::spawn(conn);
            let held = async {
                let won: bool = client.query_one(TAKE, &[&owner]).await?.try_get(0)?;
                if won {
                    client.execute(LIST, &[&owner]).await?;
                }
                Ok::<_, tokio_postgres::Error>(won)
            };
            match held.await {
                Ok(true) => {
                    backoff = Duration::from_millis(100);
                    live.store(true, Ordering::Release);
                    taken.notify_waiters();
                    // Claims stopped while the lock was lost: the workers look at the queue again.
                    wake.notify_waiters();
                    if lost {
                        tracing::info!(owner = %owner, "liveness lock taken again: claiming jobs again");
                    }
                    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PING, PING);
                    loop {
                        tokio::select! {
                            _ = &mut driver => break,
                            _ = tick.tick() => {
                                let ping = tokio::time::timeout(PING_TIMEOUT, client.execute(LIST, &[&owner])).await;
                                if !matches!(ping, Ok(Ok(_))) {
                                    break;
                                }
                            }
                        }
                    }
                    live.store(false, Ordering::Release);
                    lost = true;
                    tracing::warn!(owner = %owner,
                        "liveness lock session lost: this process claims no job until it holds the lock again");
                }
                // The previous session of this process still holds the lock (PostgreSQL has not seen it end yet):
                // this process is not taken for dead meanwhile; try again shortly.
                Ok(false) => {}
                Err(e) => tracing::warn!(owner = %owner, error = %ckp_engine::error::ErrorChain(&e),
                    "cannot take this process's liveness lock"),
            }
            driver.abort();
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

impl PgStore {
    /// Returns the running jobs of dead owners to the queue: owners whose lock was missing at the previous call
    /// and still is are dropped from `ckp_owners` and their jobs requeued (the same guarded update as the lease
    /// reclaim: only jobs still running under one of their workers); owners missing now are remembered for the
    /// next call. The count of jobs requeued.
    pub(crate) async fn reclaim_dead_owners(&self) -> Result<usize, StoreError> {
        let suspects = std::mem::take(&mut *self.suspects.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut c = self.client().await?;
        let mut requeued = 0;
        if !suspects.is_empty() {
            let tx = c.transaction().await?;
            let n = tx
                .execute(
                    &format!(
                        "WITH gone AS (DELETE FROM ckp_owners o WHERE o.owner = ANY($1) AND NOT {HELD} RETURNING o.owner)
                         UPDATE run_jobs j SET state = 'queued', locked_by = NULL, locked_until = NULL,
                             updated_at = now()
                         FROM gone WHERE j.state = 'running' AND split_part(j.locked_by, '-', 1) = gone.owner"
                    ),
                    &[&suspects],
                )
                .await?;
            if n > 0 {
                notify_jobs(&tx).await?;
            }
            tx.commit().await?;
            if n > 0 {
                self.wake.notify_waiters();
            }
            requeued = usize::try_from(n).unwrap_or(usize::MAX);
        }
        let stmt = c.prepare_cached(&format!("SELECT o.owner FROM ckp_owners o WHERE NOT {HELD}")).await?;
        let missing: Vec<String> = c.query(&stmt, &[]).await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
        *self.suspects.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = missing;
        Ok(requeued)
    }

    /// Whether this process may claim: it holds its liveness lock, or it has no owner id (it takes none).
    pub(crate) fn may_claim(&self) -> bool {
        self.owned.as_ref().is_none_or(|live| live.load(Ordering::Acquire))
    }
}
