//! [`QueueStore`] on SQLite (DESIGN §4): enqueue, claim with a lease, heartbeat, finish, reschedule (durable
//! timers), reclaim of expired leases, and pushed wake-ups for workers in this process. Claims go through the
//! writer connection in short `BEGIN IMMEDIATE` transactions, so two workers can never hold the same job.

use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;
use rusqlite::params;

use super::SqliteStore;
use crate::StoreError;
use crate::codec::ts;
use crate::store::{ClaimedJob, Claims, DEPTH_BY_STATE, Job, NEXT_JOBS, QueueStats, QueueStore, count_of, queued_job};

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)).unwrap_or_default()
}

/// When the next queued job becomes available, if any.
fn next_available_in(c: &rusqlite::Connection) -> Result<Option<DateTime<Utc>>, rusqlite::Error> {
    let at: Option<String> = c
        .prepare_cached("SELECT MIN(available_at) FROM run_jobs WHERE state = 'queued'")?
        .query_row([], |r| r.get(0))?;
    Ok(at.as_deref().map(parse_ts))
}

/// Makes a run runnable inside an open transaction (see [`QueueStore::enqueue`]).
pub(crate) fn enqueue_in(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    priority: i64,
    available_at: &str,
    now: &str,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "INSERT INTO run_jobs (run_id, state, priority, available_at, updated_at) VALUES (?1, 'queued', ?2, ?3, ?4)
         ON CONFLICT (run_id) DO UPDATE SET
             state = CASE WHEN run_jobs.state = 'running' THEN 'running' ELSE 'queued' END,
             rerun = CASE WHEN run_jobs.state = 'running' THEN 1 ELSE 0 END,
             priority = excluded.priority, available_at = excluded.available_at, updated_at = excluded.updated_at",
    )?
    .execute(params![run_id, priority, available_at, now])?;
    Ok(())
}

impl QueueStore for SqliteStore {
    fn enqueue<'a>(
        &'a self,
        run_id: &'a str,
        priority: i64,
        available_at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let run_id = run_id.to_owned();
        let at = ts(available_at.unwrap_or_else(Utc::now));
        let now = ts(Utc::now());
        Box::pin(async move {
            self.write(move |tx| enqueue_in(tx, &run_id, priority, &at, &now)).await?;
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
        let until = now + chrono::Duration::milliseconds(lease_ms);
        Box::pin(self.write(move |tx| {
            let limit = i64::try_from(workers.len()).unwrap_or(i64::MAX);
            let found: Vec<(i64, String, i64)> = tx
                .prepare_cached(
                    "SELECT job_id, run_id, attempts FROM run_jobs WHERE state = 'queued' AND available_at <= ?1
                     ORDER BY priority DESC, available_at, job_id LIMIT ?2",
                )?
                .query_map(params![ts(now), limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let mut lease = tx.prepare_cached(
                "UPDATE run_jobs SET state = 'running', attempts = attempts + 1, locked_by = ?2, locked_until = ?3,
                     updated_at = ?4
                 WHERE job_id = ?1",
            )?;
            let mut claims = Claims::default();
            for (worker, ((job_id, run_id, attempts), name)) in found.into_iter().zip(&workers).enumerate() {
                lease.execute(params![job_id, name, ts(until), ts(now)])?;
                let job = Job { job_id, run_id, attempts: attempts + 1, locked_until: until };
                claims.jobs.push(ClaimedJob { job, worker, stored: None });
            }
            if claims.jobs.len() < workers.len() {
                claims.next_available = next_available_in(tx)?;
            }
            Ok(claims)
        }))
    }

    fn heartbeat<'a>(&'a self, job_id: i64, worker: &'a str, lease_ms: i64) -> BoxFuture<'a, Result<bool, StoreError>> {
        let worker = worker.to_owned();
        let now = Utc::now();
        let until = ts(now + chrono::Duration::milliseconds(lease_ms));
        Box::pin(self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE run_jobs SET locked_until = ?3, updated_at = ?4 WHERE job_id = ?1 AND locked_by = ?2 AND state = 'running'",
                )?
                .execute(params![job_id, worker, until, ts(now)])?;
            Ok(n == 1)
        }))
    }

    fn finish<'a>(&'a self, job_id: i64, worker: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let worker = worker.to_owned();
        let now = ts(Utc::now());
        Box::pin(self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE run_jobs SET state = CASE WHEN rerun = 1 THEN 'queued' ELSE 'done' END, rerun = 0,
                         locked_by = NULL, locked_until = NULL, updated_at = ?3
                     WHERE job_id = ?1 AND locked_by = ?2 AND state = 'running'",
                )?
                .execute(params![job_id, worker, now])?;
            Ok(n == 1)
        }))
    }

    fn reschedule<'a>(
        &'a self,
        job_id: i64,
        worker: &'a str,
        available_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let worker = worker.to_owned();
        let now = ts(Utc::now());
        let at = ts(available_at);
        Box::pin(async move {
            let done = self
                .write(move |tx| {
                    let n = tx
                        .prepare_cached(
                            "UPDATE run_jobs SET state = 'queued', rerun = 0,
                                 available_at = CASE WHEN rerun = 1 THEN min(available_at, ?3) ELSE ?3 END,
                                 locked_by = NULL, locked_until = NULL, updated_at = ?4
                             WHERE job_id = ?1 AND locked_by = ?2 AND state = 'running'",
                        )?
                        .execute(params![job_id, worker, at, now])?;
                    Ok(n == 1)
                })
                .await?;
            self.wake.notify_one();
            Ok(done)
        })
    }

    fn reclaim_expired(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let n = self
                .write(move |tx| {
                    tx.prepare_cached(
                        "UPDATE run_jobs SET state = 'queued', locked_by = NULL, locked_until = NULL, updated_at = ?1
                         WHERE state = 'running' AND locked_until < ?1",
                    )?
                    .execute(params![ts(now)])
                })
                .await?;
            if n > 0 {
                self.wake.notify_waiters();
            }
            Ok(n)
        })
    }

    /// One process per database file (its lock): no other process's jobs to take back while it runs.
    fn reclaim_orphaned(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(std::future::ready(Ok(0)))
    }

    fn next_available(&self) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>> {
        Box::pin(self.read_store(next_available_in))
    }

    /// Waits until a job is enqueued or rescheduled in this process (pushed wake-up), or `timeout` passes.
    fn wait_for_work(&self, timeout: std::time::Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
        })
    }

    fn queue_stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        Box::pin(self.read_store(|c| {
            let depth_by_status =
                c.prepare_cached(DEPTH_BY_STATE)?.query_map([], |r| count_of(r))?.collect::<Result<_, _>>()?;
            let next_jobs = c.prepare_cached(NEXT_JOBS)?.query_map([], |r| queued_job(r))?.collect::<Result<_, _>>()?;
            Ok(QueueStats { depth_by_status, next_jobs })
        }))
    }

    /// One process owns an embedded database, so it always runs the singleton loops.
    fn is_leader(&self) -> bool {
        true
    }
}
