//! [`QueueStore`] on PostgreSQL: the same operations as the SQLite queue. A claim is one statement that picks the
//! best ready row with `FOR UPDATE SKIP LOCKED` (concurrent workers of any process skip each other's rows instead
//! of waiting) and leases it; enqueues NOTIFY `ckp_jobs` inside their transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;
use deadpool_postgres::{GenericClient, Transaction};

use super::{JOBS_CHANNEL, PgStore, StoredReader, notify_jobs};
use crate::StoreError;
use crate::store::{ClaimedJob, Claims, DEPTH_BY_STATE, Job, NEXT_JOBS, QueueStats, QueueStore, count_of, queued_job};

/// Makes run $1 runnable from $3 with priority $2 and wakes idle workers (channel $4; migration 0003).
const ENQUEUE: &str = "SELECT ckp_enqueue($1, $2, $3, $4)";

/// Makes a run runnable inside an open transaction (see [`QueueStore::enqueue`]).
pub(crate) async fn enqueue_in(
    tx: &Transaction<'_>,
    run_id: &str,
    priority: i64,
    available_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let stmt = tx.prepare_cached(ENQUEUE).await?;
    tx.execute(&stmt, &[&run_id, &priority, &available_at, &JOBS_CHANNEL]).await?;
    Ok(())
}

impl QueueStore for PgStore {
    fn enqueue<'a>(
        &'a self,
        run_id: &'a str,
        priority: i64,
        available_at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            enqueue_in(&tx, run_id, priority, available_at.unwrap_or_else(Utc::now)).await?;
            tx.commit().await?;
            self.notify_work();
            Ok(())
        })
    }

    fn claim_batch(
        &self,
        workers: Vec<String>,
        lease_ms: i64,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Claims, StoreError>> {
        Box::pin(async move {
            // Without its liveness lock this process could be taken for dead while it works: it claims nothing
            // (its lock session wakes the workers when it holds the lock again).
            if !self.may_claim() {
                return Ok(Claims::default());
            }
            let until = now + chrono::Duration::milliseconds(lease_ms);
            let c = self.client().await?;
            let stmt = c.prepare_cached("SELECT * FROM ckp_claim($1, $2, $3)").await?;
            let rows = c.query(&stmt, &[&now, &workers, &until]).await?;
            let mut claims = Claims::default();
            // A run with an unreadable row is left for the worker's own load, which reports the error (None here).
            let mut runs: HashMap<String, Option<StoredReader>> = HashMap::new();
            for r in &rows {
                if let Some(job_id) = r.try_get::<_, Option<i64>>(0)? {
                    let run_id: String = r.try_get(1)?;
                    let worker = usize::try_from(r.try_get::<_, i64>(3)? - 1).unwrap_or(usize::MAX);
                    let job = Job { job_id, run_id, attempts: r.try_get(2)?, locked_until: until };
                    claims.jobs.push(ClaimedJob { job, worker, stored: None });
                } else if let Some(run_id) = r.try_get::<_, Option<String>>(1)? {
                    let entry = runs.entry(run_id).or_insert_with(|| Some(StoredReader::default()));
                    if let Some(reader) = entry
                        && reader.add(r.try_get(5)?, r.try_get(6)?).is_err()
                    {
                        *entry = None;
                    }
                } else {
                    claims.next_available = r.try_get(4)?;
                }
            }
            for claimed in &mut claims.jobs {
                claimed.stored = runs.remove(&claimed.job.run_id).flatten().and_then(StoredReader::finish);
            }
            Ok(claims)
        })
    }

    fn heartbeat<'a>(&'a self, job_id: i64, worker: &'a str, lease_ms: i64) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let until = Utc::now() + chrono::Duration::milliseconds(lease_ms);
            self.exec(
                "UPDATE run_jobs SET locked_until = $3, updated_at = now()
                 WHERE job_id = $1 AND locked_by = $2 AND state = 'running'",
                &[&job_id, &worker, &until],
            )
            .await
            .map(|n| n == 1)
        })
    }

    fn finish<'a>(&'a self, job_id: i64, worker: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let n = self
                .exec(
                    "UPDATE run_jobs SET state = CASE WHEN rerun THEN 'queued' ELSE 'done' END, rerun = false,
                         locked_by = NULL, locked_until = NULL, updated_at = now()
                     WHERE job_id = $1 AND locked_by = $2 AND state = 'running'",
                    &[&job_id, &worker],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn reschedule<'a>(
        &'a self,
        job_id: i64,
        worker: &'a str,
        available_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let stmt = tx
                .prepare_cached(
                    "UPDATE run_jobs SET state = 'queued', rerun = false,
                         available_at = CASE WHEN rerun THEN least(available_at, $3) ELSE $3 END,
                         locked_by = NULL, locked_until = NULL, updated_at = now()
                     WHERE job_id = $1 AND locked_by = $2 AND state = 'running'",
                )
                .await?;
            let n = tx.execute(&stmt, &[&job_id, &worker, &available_at]).await?;
            notify_jobs(&tx).await?;
            tx.commit().await?;
            self.notify_work();
            Ok(n == 1)
        })
    }

    fn reclaim_expired(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let n = tx
                .execute(
                    "UPDATE run_jobs SET state = 'queued', locked_by = NULL, locked_until = NULL, updated_at = now()
                     WHERE state = 'running' AND locked_until < $1",
                    &[&now],
                )
                .await?;
            if n > 0 {
                notify_jobs(&tx).await?;
            }
            tx.commit().await?;
            if n > 0 {
                self.wake.notify_waiters();
            }
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn reclaim_orphaned(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(self.reclaim_dead_owners())
    }

    fn next_available(&self) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c.prepare_cached("SELECT min(available_at) FROM run_jobs WHERE state = 'queued'").await?;
            Ok(c.query_one(&stmt, &[]).await?.try_get(0)?)
        })
    }

    /// Waits until a job is enqueued or rescheduled (by any process), or `timeout` passes.
    fn wait_for_work(&self, timeout: std::time::Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
        })
    }

    fn queue_stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let depth_by_status =
                c.query(DEPTH_BY_STATE, &[]).await?.iter().map(count_of).collect::<Result<_, StoreError>>()?;
            let next_jobs = c.query(NEXT_JOBS, &[]).await?.iter().map(queued_job).collect::<Result<_, StoreError>>()?;
            Ok(QueueStats { depth_by_status, next_jobs })
        })
    }

    /// Whether this process holds the leader lock.
    fn is_leader(&self) -> bool {
        self.leader.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl PgStore {
    /// Runs one statement outside a transaction; the rows it changed.
    pub(crate) async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(sql).await?;
        Ok(c.execute(&stmt, params).await?)
    }
}
