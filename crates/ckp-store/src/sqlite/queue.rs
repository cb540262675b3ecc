//! The job queue on SQLite (DESIGN §4): enqueue, claim with a lease, heartbeat, finish, reschedule (durable
//! timers), reclaim of expired leases, and pushed wake-ups for workers in this process. Claims go through the
//! writer connection in short `BEGIN IMMEDIATE` transactions, so two workers can never hold the same job.

use chrono::{DateTime, Utc};
use rusqlite::params;

use crate::StoreError;
use crate::sqlite::{SqliteStore, ts};

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Job id.
    pub job_id: i64,
    /// The run to execute.
    pub run_id: String,
    /// How many times it has been claimed (1 on the first claim).
    pub attempts: i64,
    /// Until when the lease holds.
    pub locked_until: DateTime<Utc>,
}

/// A job claimed by [`SqliteStore::claim_batch`] for one of the workers named in the call.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// The job.
    pub job: Job,
    /// Which of the named workers holds its lease (an index into the call's `workers`).
    pub worker: usize,
    /// The run as stored when claimed, when the store read it with the claim (saves the worker a load).
    pub stored: Option<ckp_engine::journal::Stored>,
}

/// What a batch claim got: up to one job per named worker and, when fewer were ready, when the next queued job
/// becomes available.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Claims {
    /// The jobs claimed, each for a distinct worker.
    pub jobs: Vec<ClaimedJob>,
    /// When the next queued job becomes available (set only when fewer jobs than workers were claimed).
    pub next_available: Option<DateTime<Utc>>,
}

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

/// Makes a run runnable inside an open transaction (see [`SqliteStore::enqueue`]).
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

impl SqliteStore {
    /// Makes `run_id` runnable from `available_at` (now when None) with `priority` (higher first). An existing
    /// job of the run is requeued (a decision, a timer); a running one keeps its lease.
    pub async fn enqueue(
        &self,
        run_id: &str,
        priority: i64,
        available_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let run_id = run_id.to_owned();
        let at = ts(available_at.unwrap_or_else(Utc::now));
        let now = ts(Utc::now());
        self.write(move |tx| enqueue_in(tx, &run_id, priority, &at, &now)).await?;
        self.notify_work();
        Ok(())
    }

    /// Claims up to one ready job per worker in `workers` (best first) in one transaction, each leased for
    /// `lease_ms` by the worker it is given to; when fewer were ready, also tells when the next queued job becomes
    /// available.
    pub async fn claim_batch(
        &self,
        workers: Vec<String>,
        lease_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<Claims, StoreError> {
        let until = now + chrono::Duration::milliseconds(lease_ms);
        self.write(move |tx| {
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
        })
        .await
    }

    /// Extends `worker`'s lease on a job. False when the lease was lost (reclaimed by another worker).
    pub async fn heartbeat(&self, job_id: i64, worker: &str, lease_ms: i64) -> Result<bool, StoreError> {
        let worker = worker.to_owned();
        let now = Utc::now();
        let until = ts(now + chrono::Duration::milliseconds(lease_ms));
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE run_jobs SET locked_until = ?3, updated_at = ?4 WHERE job_id = ?1 AND locked_by = ?2 AND state = 'running'",
                )?
                .execute(params![job_id, worker, until, ts(now)])?;
            Ok(n == 1)
        })
        .await
    }

    /// Ends a job (the run finished or waits for a decision); a job requeued meanwhile goes back to the queue.
    /// False when `worker` no longer held it.
    pub async fn finish(&self, job_id: i64, worker: &str) -> Result<bool, StoreError> {
        let worker = worker.to_owned();
        let now = ts(Utc::now());
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE run_jobs SET state = CASE WHEN rerun = 1 THEN 'queued' ELSE 'done' END, rerun = 0,
                         locked_by = NULL, locked_until = NULL, updated_at = ?3
                     WHERE job_id = ?1 AND locked_by = ?2 AND state = 'running'",
                )?
                .execute(params![job_id, worker, now])?;
            Ok(n == 1)
        })
        .await
    }

    /// Puts a running job back in the queue until `available_at` (a durable timer). False when `worker` no
    /// longer held it.
    pub async fn reschedule(&self, job_id: i64, worker: &str, available_at: DateTime<Utc>) -> Result<bool, StoreError> {
        let worker = worker.to_owned();
        let now = ts(Utc::now());
        let at = ts(available_at);
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
    }

    /// Returns jobs whose lease expired before `now` to the queue (their worker died). The count reclaimed.
    pub async fn reclaim_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
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
    }

    /// When the next queued job becomes available (for a worker's sleep), if any.
    pub async fn next_available(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read_store(next_available_in).await
    }

    /// Waits until a job is enqueued or rescheduled in this process (pushed wake-up), or `timeout` passes.
    pub async fn wait_for_work(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }
}
