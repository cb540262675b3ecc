//! Runs as the API sees them: creation in one transaction with its first commit and its job, reads, filters and
//! pagination, events after an id (for SSE), cancel, retry, delete, history cleanup, queue statistics and
//! diagnostics. Every write is one transaction on the writer thread; a response sent after it can be read back.

use ckp_engine::journal::{Checkpoint, Commit, RunStatus, StepRecord};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use crate::StoreError;
use crate::queue::enqueue_in;
use crate::sqlite::{SqliteStore, apply, json_col, now, parse_checkpoint};

/// What the caller knows about a new run beyond its first commit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewRun {
    /// The run id.
    pub run_id: String,
    /// The inputs as given (None when empty).
    pub input_vars: Option<Value>,
    /// Owning project.
    pub project_id: Option<String>,
    /// Case.
    pub case_id: Option<String>,
    /// manual, scheduled, webhook, event, file_watch.
    pub trigger_type: Option<String>,
    /// Who or what triggered it.
    pub triggered_by: Option<String>,
}

/// A run row.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Id.
    pub run_id: String,
    /// Procedure id.
    pub procedure_id: String,
    /// Procedure version.
    pub procedure_version: String,
    /// created, running, waiting_approval, paused, completed, failed, canceled.
    pub status: String,
    /// Inputs as given.
    pub input_vars: Option<Value>,
    /// Final variables (completed runs).
    pub output_vars: Option<Value>,
    /// LLM prompt tokens.
    pub prompt_tokens: i64,
    /// LLM completion tokens.
    pub completion_tokens: i64,
    /// Estimated LLM cost.
    pub cost_usd: f64,
    /// First execution (RFC 3339).
    pub started_at: Option<String>,
    /// Terminal status reached.
    pub ended_at: Option<String>,
    /// The approval node it waits at (or last waited at).
    pub last_node_id: Option<String>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// The parent of a subflow's child run.
    pub parent_run_id: Option<String>,
    /// Trigger type.
    pub trigger_type: Option<String>,
    /// Trigger source.
    pub triggered_by: Option<String>,
    /// Project.
    pub project_id: Option<String>,
    /// Case.
    pub case_id: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Journal commits so far (the id of the current checkpoint).
    pub commits: i64,
}

const RUN_COLUMNS: &str = "run_id, procedure_id, procedure_version, status, input_vars, output_vars, prompt_tokens,
    completion_tokens, cost_usd, started_at, ended_at, last_node_id, error_message, parent_run_id, trigger_type,
    triggered_by, project_id, case_id, created_at, updated_at, commits";

fn run_row(r: &rusqlite::Row<'_>) -> Result<RunRow, rusqlite::Error> {
    Ok(RunRow {
        run_id: r.get(0)?,
        procedure_id: r.get(1)?,
        procedure_version: r.get(2)?,
        status: r.get(3)?,
        input_vars: json_col(r.get(4)?),
        output_vars: json_col(r.get(5)?),
        prompt_tokens: r.get(6)?,
        completion_tokens: r.get(7)?,
        cost_usd: r.get(8)?,
        started_at: r.get(9)?,
        ended_at: r.get(10)?,
        last_node_id: r.get(11)?,
        error_message: r.get(12)?,
        parent_run_id: r.get(13)?,
        trigger_type: r.get(14)?,
        triggered_by: r.get(15)?,
        project_id: r.get(16)?,
        case_id: r.get(17)?,
        created_at: r.get(18)?,
        updated_at: r.get(19)?,
        commits: r.get(20)?,
    })
}

pub(crate) fn get_run_in(c: &rusqlite::Connection, run_id: &str) -> Result<Option<RunRow>, rusqlite::Error> {
    c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"))?
        .query_row(params![run_id], run_row)
        .optional()
}

/// Filters of the run list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Procedure id.
    pub procedure_id: Option<String>,
    /// Project.
    pub project_id: Option<String>,
    /// Case.
    pub case_id: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<String>,
    /// Created at or before (RFC 3339).
    pub created_to: Option<String>,
    /// Oldest first instead of newest first.
    pub ascending: bool,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Monotonic id (the SSE id).
    pub event_id: i64,
    /// Run.
    pub run_id: String,
    /// Type.
    pub event_type: String,
    /// Node.
    pub node_id: Option<String>,
    /// Step.
    pub step_id: Option<String>,
    /// Payload as stored JSON text (None when empty): streams send it as it is, without re-encoding.
    pub payload: Option<String>,
    /// When.
    pub created_at: String,
}

/// Why a cancel, retry or delete was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunChange {
    /// Done; the run as it is now.
    Done,
    /// A worker is executing the run; for a cancel, the request is recorded and the worker stops it.
    Executing,
}

/// Job counts and the next jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    /// Jobs per state.
    pub depth_by_status: Vec<(String, i64)>,
    /// The next ready or delayed jobs: (job_id, run_id, state, priority, attempts, available_at, locked_by).
    pub next_jobs: Vec<QueuedJob>,
}

/// A job in [`QueueStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    /// Job id.
    pub job_id: i64,
    /// Run.
    pub run_id: String,
    /// queued, running, done.
    pub state: String,
    /// Priority.
    pub priority: i64,
    /// Claims so far.
    pub attempts: i64,
    /// Eligible from.
    pub available_at: String,
    /// Worker holding it.
    pub locked_by: Option<String>,
}

/// One step record, for diagnostics.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    /// The engine's key (thread, node, visit, step).
    pub key: String,
    /// The record.
    pub record: StepRecord,
    /// Last change.
    pub updated_at: String,
}

fn not_found(run_id: &str) -> StoreError {
    StoreError::NotFound(format!("run {run_id} not found"))
}

fn job_state(tx: &rusqlite::Connection, run_id: &str) -> Result<Option<String>, rusqlite::Error> {
    tx.prepare_cached("SELECT state FROM run_jobs WHERE run_id = ?1")?
        .query_row(params![run_id], |r| r.get(0))
        .optional()
}

fn checkpoint_of(tx: &rusqlite::Connection, run_id: &str) -> Result<Option<Checkpoint>, rusqlite::Error> {
    let text: Option<String> = tx
        .prepare_cached("SELECT checkpoint FROM runs WHERE run_id = ?1")?
        .query_row(params![run_id], |r| r.get(0))
        .optional()?;
    text.map(|t| parse_checkpoint(&t)).transpose()
}

/// Deletes a run with its children (subflow child ids extend the parent's id with `:`) and their jobs.
fn delete_in(tx: &rusqlite::Transaction<'_>, run_id: &str) -> Result<usize, rusqlite::Error> {
    let prefix = format!("{run_id}:");
    tx.prepare_cached("DELETE FROM run_jobs WHERE run_id = ?1 OR substr(run_id, 1, length(?2)) = ?2")?
        .execute(params![run_id, prefix])?;
    tx.prepare_cached("DELETE FROM runs WHERE run_id = ?1 OR substr(run_id, 1, length(?2)) = ?2")?
        .execute(params![run_id, prefix])
}

impl SqliteStore {
    /// Creates a run: its first commit (checkpoint + `run_created`), its API columns and, when `queue`, its job,
    /// in one transaction. Returns the run as stored.
    pub async fn create_run(&self, run: NewRun, commit: Commit, queue: bool) -> Result<RunRow, StoreError> {
        let row = self
            .write(move |tx| {
                apply(tx, &run.run_id, &commit)?;
                let input = run.input_vars.as_ref().map(Value::to_string);
                tx.prepare_cached(
                    "UPDATE runs SET input_vars = ?2, project_id = ?3, case_id = ?4, trigger_type = ?5, triggered_by = ?6
                     WHERE run_id = ?1",
                )?
                .execute(params![run.run_id, input, run.project_id, run.case_id, run.trigger_type, run.triggered_by])?;
                if queue {
                    let now = now();
                    enqueue_in(tx, &run.run_id, 0, &now, &now)?;
                }
                get_run_in(tx, &run.run_id)
            })
            .await?;
        if queue {
            self.notify_work();
        }
        if let Some(r) = &row {
            self.publish(&r.run_id);
        }
        row.ok_or_else(|| StoreError::Write("the new run was not stored".into()))
    }

    /// One run.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunRow>, StoreError> {
        let run_id = run_id.to_owned();
        self.read_store(move |c| get_run_in(c, &run_id)).await
    }

    /// Runs matching `filter`, by creation time.
    pub async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRow>, StoreError> {
        self.read_store(move |c| {
            let order = if filter.ascending { "ASC" } else { "DESC" };
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE (?1 IS NULL OR procedure_id = ?1) AND (?2 IS NULL OR project_id = ?2)
                   AND (?3 IS NULL OR case_id = ?3) AND (?4 IS NULL OR status = ?4)
                   AND (?5 IS NULL OR created_at >= ?5) AND (?6 IS NULL OR created_at <= ?6)
                 ORDER BY created_at {order}, run_id {order} LIMIT ?7 OFFSET ?8"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    filter.procedure_id,
                    filter.project_id,
                    filter.case_id,
                    filter.status,
                    filter.created_from,
                    filter.created_to,
                    filter.limit,
                    filter.offset
                ],
                run_row,
            )?;
            rows.collect()
        })
        .await
    }

    /// Events of `run_id` with an id above `after`, in order, at most `limit`.
    pub async fn events_after(&self, run_id: &str, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let run_id = run_id.to_owned();
        self.read_store(move |c| crate::events::after(c, &run_id, after, limit)).await
    }

    /// Cancels a run that no worker is executing, in one transaction: status `canceled`, `run_canceled`, pending
    /// approvals `canceled`, the job removed from the queue. A run being executed gets `cancellation_requested`
    /// and [`RunChange::Executing`]: its worker stops it at the next step. A finished run is a conflict.
    pub async fn cancel_run(&self, run_id: &str, reason: &str) -> Result<RunChange, StoreError> {
        let id = run_id.to_owned();
        let (run_id, reason) = (run_id.to_owned(), reason.to_owned());
        let result = self
            .write(move |tx| {
                let Some(mut cp) = checkpoint_of(tx, &run_id)? else { return Ok(Err(not_found(&run_id))) };
                if cp.status.is_terminal() {
                    return Ok(Err(StoreError::Conflict(format!(
                        "Run {run_id} is already {}",
                        status_text(cp.status)
                    ))));
                }
                let now = now();
                tx.prepare_cached("UPDATE runs SET cancellation_requested = 1, updated_at = ?2 WHERE run_id = ?1")?
                    .execute(params![run_id, now])?;
                if job_state(tx, &run_id)?.as_deref() == Some("running") {
                    return Ok(Ok(RunChange::Executing));
                }
                cp.status = RunStatus::Canceled;
                cp.pending.clear();
                cp.callbacks.clear();
                cp.wake_at = None;
                let event = ckp_engine::Event::of_run("run_canceled", serde_json::json!({"reason": reason}));
                apply(tx, &run_id, &Commit { events: vec![event], steps: Vec::new(), checkpoint: cp })?;
                tx.prepare_cached("UPDATE run_jobs SET state = 'done', rerun = 0, updated_at = ?2 WHERE run_id = ?1")?
                    .execute(params![run_id, now])?;
                Ok(Ok(RunChange::Done))
            })
            .await?;
        if result.is_ok() {
            self.publish(&id);
        }
        result
    }

    /// The status of a run (a light read for streams).
    pub async fn run_status(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        let run_id = run_id.to_owned();
        self.read_store(move |c| {
            c.prepare_cached("SELECT status FROM runs WHERE run_id = ?1")?
                .query_row(params![run_id], |r| r.get(0))
                .optional()
        })
        .await
    }

    /// A run's status, then its events after `after` (see [`crate::Store::status_and_events`]); one read
    /// connection, one transaction.
    pub async fn status_and_events(
        &self,
        run_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Option<(String, Vec<EventRow>)>, StoreError> {
        let run_id = run_id.to_owned();
        self.read_store(move |c| {
            let status: Option<String> = c
                .prepare_cached("SELECT status FROM runs WHERE run_id = ?1")?
                .query_row(params![run_id], |r| r.get(0))
                .optional()?;
            status.map(|s| Ok((s, crate::events::after(c, &run_id, after, limit)?))).transpose()
        })
        .await
    }

    /// Whether a cancel was requested for `run_id` (read by workers of other processes).
    pub async fn cancellation_requested(&self, run_id: &str) -> Result<bool, StoreError> {
        let run_id = run_id.to_owned();
        self.read_store(move |c| {
            c.prepare_cached("SELECT cancellation_requested FROM runs WHERE run_id = ?1")?
                .query_row(params![run_id], |r| r.get::<_, bool>(0))
                .optional()
                .map(|v| v.unwrap_or(false))
        })
        .await
    }

    /// Restarts a failed or canceled run from `fresh` (a new checkpoint at the start node): step records of
    /// completed external calls are kept (they are not called again), the others dropped; `run_retry_requested`
    /// is written and the run queued, all in one transaction. Other statuses are a conflict.
    pub async fn retry_run(&self, run_id: &str, fresh: Checkpoint) -> Result<RunRow, StoreError> {
        let id = run_id.to_owned();
        let run_id = run_id.to_owned();
        let result = self
            .write(move |tx| {
                let Some(cp) = checkpoint_of(tx, &run_id)? else { return Ok(Err(not_found(&run_id))) };
                if !matches!(cp.status, RunStatus::Failed | RunStatus::Canceled) {
                    return Ok(Err(StoreError::Conflict(format!(
                        "Run {run_id} is {}; only failed or canceled runs can be retried",
                        status_text(cp.status)
                    ))));
                }
                if job_state(tx, &run_id)?.as_deref() == Some("running") {
                    return Ok(Err(StoreError::Conflict(format!("Run {run_id} is being executed"))));
                }
                tx.prepare_cached(
                    "DELETE FROM step_results WHERE run_id = ?1 AND json_extract(record, '$.state') != 'completed'",
                )?
                .execute(params![run_id])?;
                let event = ckp_engine::Event::of_run("run_retry_requested", serde_json::json!({"thread_id": run_id}));
                apply(tx, &run_id, &Commit { events: vec![event], steps: Vec::new(), checkpoint: fresh })?;
                let now = now();
                tx.prepare_cached(
                    "UPDATE runs SET cancellation_requested = 0, error_message = NULL, ended_at = NULL WHERE run_id = ?1",
                )?
                .execute(params![run_id])?;
                enqueue_in(tx, &run_id, 0, &now, &now)?;
                Ok(get_run_in(tx, &run_id)?.ok_or_else(|| not_found(&run_id)))
            })
            .await?;
        if result.is_ok() {
            self.notify_work();
            self.publish(&id);
        }
        result
    }

    /// Deletes a run, its children, events, step records, approvals, artifacts metadata, leases and job. A run
    /// being executed is a conflict.
    pub async fn delete_run(&self, run_id: &str) -> Result<(), StoreError> {
        let id = run_id.to_owned();
        let run_id = run_id.to_owned();
        let deleted = self
            .write(move |tx| {
                if get_run_in(tx, &run_id)?.is_none() {
                    return Ok(Err(not_found(&run_id)));
                }
                if job_state(tx, &run_id)?.as_deref() == Some("running") {
                    return Ok(Err(StoreError::Conflict(format!("Run {run_id} is being executed; cancel it first"))));
                }
                delete_in(tx, &run_id)?;
                Ok(Ok(()))
            })
            .await?;
        if deleted.is_ok() {
            self.publish(&id);
        }
        deleted
    }

    /// Deletes top-level runs created before `before` (with `status`, when given) that no worker is executing.
    /// Returns how many were deleted.
    pub async fn cleanup_runs(&self, before: &str, status: Option<String>) -> Result<usize, StoreError> {
        let before = before.to_owned();
        self.write(move |tx| {
            let ids: Vec<String> = tx
                .prepare_cached(
                    "SELECT r.run_id FROM runs r LEFT JOIN run_jobs j ON j.run_id = r.run_id
                     WHERE r.created_at < ?1 AND (?2 IS NULL OR r.status = ?2) AND r.parent_run_id IS NULL
                       AND (j.state IS NULL OR j.state != 'running')",
                )?
                .query_map(params![before, status], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for id in &ids {
                delete_in(tx, id)?;
            }
            Ok(ids.len())
        })
        .await
    }

    /// Job counts per state and the next 20 queued jobs (priority first, then availability).
    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        self.read_store(|c| {
            let depth_by_status = c
                .prepare_cached("SELECT state, count(*) FROM run_jobs GROUP BY state ORDER BY state")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let next_jobs = c
                .prepare_cached(
                    "SELECT job_id, run_id, state, priority, attempts, available_at, locked_by FROM run_jobs
                     WHERE state = 'queued' ORDER BY priority DESC, available_at, job_id LIMIT 20",
                )?
                .query_map([], |r| {
                    Ok(QueuedJob {
                        job_id: r.get(0)?,
                        run_id: r.get(1)?,
                        state: r.get(2)?,
                        priority: r.get(3)?,
                        attempts: r.get(4)?,
                        available_at: r.get(5)?,
                        locked_by: r.get(6)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(QueueStats { depth_by_status, next_jobs })
        })
        .await
    }

    /// The step records of a run (idempotency entries), by key.
    pub async fn step_rows(&self, run_id: &str) -> Result<Vec<StepRow>, StoreError> {
        let run_id = run_id.to_owned();
        self.read_store(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT key, record, updated_at FROM step_results WHERE run_id = ?1 ORDER BY key")?;
            let rows = stmt.query_map(params![run_id], |r| {
                let record: String = r.get(1)?;
                Ok((r.get::<_, String>(0)?, record, r.get::<_, String>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (key, record, updated_at) = row?;
                if let Ok(record) = serde_json::from_str(&record) {
                    out.push(StepRow { key, record, updated_at });
                }
            }
            Ok(out)
        })
        .await
    }

    /// Event counts of a run: (total, error + run_failed, run_retry_requested).
    pub async fn event_counts(&self, run_id: &str) -> Result<(i64, i64, i64), StoreError> {
        let run_id = run_id.to_owned();
        self.read_store(move |c| crate::events::counts(c, &run_id)).await
    }

    /// The current checkpoint of a run.
    pub async fn checkpoint(&self, run_id: &str) -> Result<Option<Checkpoint>, StoreError> {
        let run_id = run_id.to_owned();
        self.read_store(move |c| checkpoint_of(c, &run_id)).await
    }

    /// Run counts per status, for metrics.
    pub async fn run_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read_store(|c| {
            c.prepare_cached("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
    }
}

/// True for the names of terminal statuses (completed, failed, canceled).
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "canceled")
}

/// LangOrch's name of a status.
pub fn status_text(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Created => "created",
        RunStatus::Running => "running",
        RunStatus::WaitingApproval => "waiting_approval",
        RunStatus::Paused => "paused",
        RunStatus::Completed => "completed",
        RunStatus::Failed => "failed",
        RunStatus::Canceled => "canceled",
    }
}
