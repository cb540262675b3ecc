//! [`QueueStore`]: the job queue of DESIGN §4 (enqueue, batch claims with leases, heartbeats, finish, durable
//! timers, reclaim of expired leases, pushed wake-ups) and the rows it speaks.

use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;

use crate::StoreError;
use crate::status::JobState;

/// The job queue. Two workers can never hold the same job.
pub trait QueueStore: Send + Sync {
    /// Makes a run runnable from `available_at` (now when None) with `priority` (higher first). An existing job of
    /// the run is requeued (a decision, a timer); a running one keeps its lease and runs again after.
    fn enqueue<'a>(
        &'a self,
        run_id: &'a str,
        priority: i64,
        available_at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Claims up to one ready job per worker named (best first, each leased for `lease_ms` to the worker it is
    /// given to) in one transaction; when fewer were ready, also tells when the next queued job becomes available.
    fn claim_batch(
        &self,
        workers: Vec<String>,
        lease_ms: i64,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Claims, StoreError>>;
    /// Claims the best ready job for `worker` for `lease_ms` (a batch claim for one worker).
    fn claim<'a>(
        &'a self,
        worker: &'a str,
        lease_ms: i64,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<Job>, StoreError>> {
        Box::pin(async move {
            let claims = self.claim_batch(vec![worker.to_owned()], lease_ms, now).await?;
            Ok(claims.jobs.into_iter().next().map(|c| c.job))
        })
    }
    /// Extends `worker`'s lease on a job; false when the lease was lost (reclaimed by another worker).
    fn heartbeat<'a>(&'a self, job_id: i64, worker: &'a str, lease_ms: i64) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Ends a job (the run finished or waits for a decision); a job requeued meanwhile goes back to the queue.
    /// False when `worker` no longer held it.
    fn finish<'a>(&'a self, job_id: i64, worker: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Puts a running job back in the queue until `available_at` (a durable timer). False when `worker` no longer
    /// held it.
    fn reschedule<'a>(
        &'a self,
        job_id: i64,
        worker: &'a str,
        available_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Returns jobs whose lease expired before `now` to the queue (their worker died); the count reclaimed.
    fn reclaim_expired(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<usize, StoreError>>;
    /// Returns to the queue the running jobs of processes seen dead without waiting for their leases (on a shared
    /// database: a process that held a liveness lock whose session ended, seen on two calls in a row, so the
    /// caller calls it about every second); the count reclaimed. An embedded database has one process, whose
    /// jobs left running are all reclaimed when it opens: nothing to do there.
    fn reclaim_orphaned(&self) -> BoxFuture<'_, Result<usize, StoreError>>;
    /// When the next queued job becomes available (for a worker's sleep), if any.
    fn next_available(&self) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>>;
    /// Waits for a pushed wake-up (a job became ready, in this process or, on a shared database, any) or `timeout`.
    fn wait_for_work(&self, timeout: std::time::Duration) -> BoxFuture<'_, ()>;
    /// Job counts per state and the next 20 queued jobs (priority first, then availability).
    fn queue_stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>>;
    /// Whether this process runs the singleton loops (lease reclaim, agent health): always for an embedded
    /// database, for the elected process on a shared one.
    fn is_leader(&self) -> bool;
}

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

/// A job claimed by [`QueueStore::claim_batch`] for one of the workers named in the call.
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

/// Job counts and the next jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    /// Jobs per state.
    pub depth_by_status: Vec<(JobState, i64)>,
    /// The next ready or delayed jobs.
    pub next_jobs: Vec<QueuedJob>,
}

/// A job in [`QueueStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    /// Job id.
    pub job_id: i64,
    /// Run.
    pub run_id: String,
    /// Where it is.
    pub state: JobState,
    /// Priority.
    pub priority: i64,
    /// Claims so far.
    pub attempts: i64,
    /// Eligible from.
    pub available_at: String,
    /// Worker holding it.
    pub locked_by: Option<String>,
}

/// The columns of the next jobs [`queued_job`] reads, in its order.
pub(crate) const NEXT_JOBS: &str = "SELECT job_id, run_id, state, priority, attempts, available_at, locked_by
    FROM run_jobs WHERE state = 'queued' ORDER BY priority DESC, available_at, job_id LIMIT 20";

/// Job counts per state, in state order.
pub(crate) const DEPTH_BY_STATE: &str = "SELECT state, count(*) FROM run_jobs GROUP BY state ORDER BY state";

/// A job of [`NEXT_JOBS`].
pub(crate) fn queued_job<R: crate::row::RowSource>(r: &R) -> Result<QueuedJob, R::Error> {
    Ok(QueuedJob {
        job_id: r.int(0)?,
        run_id: r.text(1)?,
        state: r.parsed(2)?,
        priority: r.int(3)?,
        attempts: r.int(4)?,
        available_at: r.time(5)?,
        locked_by: r.opt_text(6)?,
    })
}

/// A count per state of [`DEPTH_BY_STATE`] (also the runs' counts per status).
pub(crate) fn count_of<T: std::str::FromStr, R: crate::row::RowSource>(r: &R) -> Result<(T, i64), R::Error>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok((r.parsed(0)?, r.int(1)?))
}
