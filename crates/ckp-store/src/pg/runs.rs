//! Runs, approvals and decisions on PostgreSQL: the same operations and rules as the SQLite modules `runs`,
//! `approvals` and `decisions`. Every transaction that reads a run's checkpoint to change it locks the run row
//! first (`FOR UPDATE`), so concurrent decisions, cancels and commits of one run — from any process — are
//! serialized and exactly one of competing decisions wins.

use chrono::Utc;
use ckp_engine::EngineError;
use ckp_engine::callback::{Callback, apply_callback};
use ckp_engine::engine::{Decision, apply_decision};
use ckp_engine::journal::{Checkpoint, Commit, PendingApproval, RunStatus};
use deadpool_postgres::{GenericClient, Transaction};
use serde_json::{Map, Value};
use tokio_postgres::Row;

use super::queue::enqueue_in;
use super::{PgStore, apply, ot, parse_time, t};
use crate::StoreError;
use crate::approvals::{ApprovalDecision, ApprovalRow};
use crate::decisions::DECISION_PRIORITY;
use crate::runs::{EventRow, NewRun, QueueStats, QueuedJob, RunChange, RunFilter, RunRow, StepRow, status_text};
use crate::sqlite::json_col;

const RUN_COLUMNS: &str = "run_id, procedure_id, procedure_version, status, input_vars, output_vars, prompt_tokens,
    completion_tokens, cost_usd, started_at, ended_at, last_node_id, error_message, parent_run_id, trigger_type,
    triggered_by, project_id, case_id, created_at, updated_at, commits";

fn run_row(r: &Row) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        run_id: r.try_get(0)?,
        procedure_id: r.try_get(1)?,
        procedure_version: r.try_get(2)?,
        status: r.try_get(3)?,
        input_vars: json_col(r.try_get(4)?),
        output_vars: json_col(r.try_get(5)?),
        prompt_tokens: r.try_get(6)?,
        completion_tokens: r.try_get(7)?,
        cost_usd: r.try_get(8)?,
        started_at: ot(r, 9)?,
        ended_at: ot(r, 10)?,
        last_node_id: r.try_get(11)?,
        error_message: r.try_get(12)?,
        parent_run_id: r.try_get(13)?,
        trigger_type: r.try_get(14)?,
        triggered_by: r.try_get(15)?,
        project_id: r.try_get(16)?,
        case_id: r.try_get(17)?,
        created_at: t(r, 18)?,
        updated_at: t(r, 19)?,
        commits: r.try_get(20)?,
    })
}

async fn get_run_in(c: &impl GenericClient, run_id: &str) -> Result<Option<RunRow>, StoreError> {
    let stmt = c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1")).await?;
    c.query_opt(&stmt, &[&run_id]).await?.as_ref().map(run_row).transpose()
}

fn not_found(run_id: &str) -> StoreError {
    StoreError::NotFound(format!("run {run_id} not found"))
}

/// The run's checkpoint, with its row locked until the transaction ends.
async fn lock_checkpoint(tx: &Transaction<'_>, run_id: &str) -> Result<Option<Checkpoint>, StoreError> {
    let stmt = tx.prepare_cached("SELECT checkpoint FROM runs WHERE run_id = $1 FOR UPDATE").await?;
    let Some(row) = tx.query_opt(&stmt, &[&run_id]).await? else { return Ok(None) };
    let text: String = row.try_get(0)?;
    serde_json::from_str(&text).map(Some).map_err(|e| StoreError::Read(format!("unreadable checkpoint: {e}")))
}

/// The state of the run's job, with the job row locked until the transaction ends: a worker releasing or
/// rescheduling the job meanwhile waits for this transaction, and then sees what it wrote (a cancel request
/// recorded for a run being executed is never missed by the worker that stops executing it).
async fn job_state(c: &impl GenericClient, run_id: &str) -> Result<Option<String>, StoreError> {
    let stmt = c.prepare_cached("SELECT state FROM run_jobs WHERE run_id = $1 FOR UPDATE").await?;
    Ok(c.query_opt(&stmt, &[&run_id]).await?.map(|r| r.get(0)))
}

/// Deletes a run with its children (ids extending the parent's with `:`) and their jobs.
async fn delete_in(tx: &Transaction<'_>, run_id: &str) -> Result<u64, StoreError> {
    let prefix = format!("{run_id}:");
    tx.execute("DELETE FROM run_jobs WHERE run_id = $1 OR starts_with(run_id, $2)", &[&run_id, &prefix]).await?;
    Ok(tx.execute("DELETE FROM runs WHERE run_id = $1 OR starts_with(run_id, $2)", &[&run_id, &prefix]).await?)
}

/// Records `decision` on `run_id` inside `tx` (see the SQLite store's `decide_in`); adds the runs it changed (the
/// run, and the parents a subflow's decision reaches) to `touched`.
async fn decide_in(
    tx: &Transaction<'_>,
    run_id: &str,
    decision: Decision,
    touched: &mut Vec<String>,
) -> Result<Result<Vec<PendingApproval>, StoreError>, StoreError> {
    let at = Utc::now();
    let (mut run, mut decision) = (run_id.to_owned(), decision);
    let mut first: Option<Vec<PendingApproval>> = None;
    loop {
        let Some(mut cp) = lock_checkpoint(tx, &run).await? else { return Ok(Err(not_found(&run))) };
        let applied = match apply_decision(&mut cp, &run, decision, at) {
            Ok(a) => a,
            Err(EngineError::InvalidState { message, .. }) => return Ok(Err(StoreError::Conflict(message))),
            Err(e) => return Ok(Err(StoreError::Conflict(e.to_string()))),
        };
        apply(tx, &run, &Commit { events: applied.events, steps: Vec::new(), checkpoint: cp }).await?;
        touched.push(run.clone());
        if first.is_none() {
            if applied.still_pending.is_empty() {
                enqueue_in(tx, &run, DECISION_PRIORITY, at).await?;
            }
            first = Some(applied.still_pending);
        }
        match applied.child {
            Some((child, d)) => (run, decision) = (child, d),
            None => break,
        }
    }
    Ok(Ok(first.unwrap_or_default()))
}

const APPROVAL_COLUMNS: &str = "a.approval_id, a.run_id, a.approval_key, a.node_id, a.node_name, a.prompt,
    a.decision_type, a.options, a.context_data, a.status, a.decided_by, a.decision_payload, a.created_at,
    a.decided_at, a.expires_at, r.status";

fn approval_row(r: &Row) -> Result<ApprovalRow, StoreError> {
    Ok(ApprovalRow {
        approval_id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        approval_key: r.try_get(2)?,
        node_id: r.try_get(3)?,
        node_name: r.try_get(4)?,
        prompt: r.try_get(5)?,
        decision_type: r.try_get(6)?,
        options: json_col(r.try_get(7)?),
        context_data: json_col(r.try_get(8)?),
        status: r.try_get(9)?,
        decided_by: r.try_get(10)?,
        decision_payload: json_col(r.try_get(11)?),
        created_at: t(r, 12)?,
        decided_at: ot(r, 13)?,
        expires_at: ot(r, 14)?,
        run_status: r.try_get(15)?,
    })
}

async fn get_approval_in(c: &impl GenericClient, approval_id: &str) -> Result<Option<ApprovalRow>, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals a JOIN runs r ON r.run_id = a.run_id WHERE a.approval_id = $1"
        ))
        .await?;
    c.query_opt(&stmt, &[&approval_id]).await?.as_ref().map(approval_row).transpose()
}

impl PgStore {
    /// Creates a run with its first commit, API columns and (when `queue`) its job, in one transaction.
    pub async fn create_run(&self, run: NewRun, commit: Commit, queue: bool) -> Result<RunRow, StoreError> {
        let run_id = run.run_id.clone();
        let row = self.commits.write(run_id.clone(), commit, Some((run, queue))).await?;
        let row = row.ok_or_else(|| StoreError::Write("the new run was not stored".into()))?;
        if queue {
            self.notify_work();
        }
        // Other processes are not told: no stream can follow a run before it exists (that is a 404), and a new
        // run has no approvals yet.
        self.hub.publish(&run_id);
        Ok(row)
    }

    /// One run.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunRow>, StoreError> {
        get_run_in(&self.client().await?, run_id).await
    }

    /// Runs matching `filter`, by creation time.
    pub async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let from = filter.created_from.as_deref().map(parse_time).transpose()?;
        let to = filter.created_to.as_deref().map(parse_time).transpose()?;
        let order = if filter.ascending { "ASC" } else { "DESC" };
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE ($1::text IS NULL OR procedure_id = $1) AND ($2::text IS NULL OR project_id = $2)
                   AND ($3::text IS NULL OR case_id = $3) AND ($4::text IS NULL OR status = $4)
                   AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at <= $6)
                 ORDER BY created_at {order}, run_id {order} LIMIT $7 OFFSET $8"
            ))
            .await?;
        let rows = c
            .query(
                &stmt,
                &[
                    &filter.procedure_id,
                    &filter.project_id,
                    &filter.case_id,
                    &filter.status,
                    &from,
                    &to,
                    &filter.limit.max(0),
                    &filter.offset.max(0),
                ],
            )
            .await?;
        rows.iter().map(run_row).collect()
    }

    /// Events of `run_id` with an id above `after`, in order, at most `limit`.
    pub async fn events_after(&self, run_id: &str, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let batches = self.batches(run_id, crate::events::first_batch(after)).await?;
        crate::events::rows_after(batches.into_iter().map(Ok), StoreError::Read, run_id, after, limit)
    }

    /// Cancels a run that no worker is executing; a run being executed gets `cancellation_requested`.
    pub async fn cancel_run(&self, run_id: &str, reason: &str) -> Result<RunChange, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some(mut cp) = lock_checkpoint(&tx, run_id).await? else { return Err(not_found(run_id)) };
        if cp.status.is_terminal() {
            return Err(StoreError::Conflict(format!("Run {run_id} is already {}", status_text(cp.status))));
        }
        tx.execute("UPDATE runs SET cancellation_requested = true, updated_at = now() WHERE run_id = $1", &[&run_id])
            .await?;
        if job_state(&tx, run_id).await?.as_deref() == Some("running") {
            tx.commit().await?;
            return Ok(RunChange::Executing);
        }
        cp.status = RunStatus::Canceled;
        cp.pending.clear();
        cp.callbacks.clear();
        cp.wake_at = None;
        let events = vec![ckp_engine::Event::of_run("run_canceled", serde_json::json!({"reason": reason}))];
        apply(&tx, run_id, &Commit { events, steps: Vec::new(), checkpoint: cp }).await?;
        tx.execute(
            "UPDATE run_jobs SET state = 'done', rerun = false, updated_at = now() WHERE run_id = $1",
            &[&run_id],
        )
        .await?;
        tx.commit().await?;
        self.publish(run_id);
        Ok(RunChange::Done)
    }

    /// The status of a run.
    pub async fn run_status(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached("SELECT status FROM runs WHERE run_id = $1").await?;
        Ok(c.query_opt(&stmt, &[&run_id]).await?.map(|r| r.get(0)))
    }

    /// A run's status and its events after `after` (see [`crate::Store::status_and_events`]): one statement, so
    /// both come from one snapshot.
    pub async fn status_and_events(
        &self,
        run_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Option<(String, Vec<EventRow>)>, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT r.status, b.batch_id, b.data FROM runs r
                 LEFT JOIN run_event_batches b ON b.run_id = r.run_id AND b.batch_id >= $2
                 WHERE r.run_id = $1 ORDER BY b.batch_id",
            )
            .await?;
        let rows = c.query(&stmt, &[&run_id, &crate::events::first_batch(after)]).await?;
        let Some(first) = rows.first() else { return Ok(None) };
        let status: String = first.try_get(0)?;
        let batches = rows.iter().filter_map(|r| match r.try_get::<_, Option<i64>>(1) {
            Ok(Some(batch)) => Some(r.try_get(2).map(|data| (batch, data)).map_err(StoreError::from)),
            Ok(None) => None,
            Err(e) => Some(Err(e.into())),
        });
        let page = crate::events::rows_after(batches, StoreError::Read, run_id, after, limit)?;
        Ok(Some((status, page)))
    }

    /// Whether a cancel was requested for `run_id`.
    pub async fn cancellation_requested(&self, run_id: &str) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached("SELECT cancellation_requested FROM runs WHERE run_id = $1").await?;
        Ok(c.query_opt(&stmt, &[&run_id]).await?.is_some_and(|r| r.get(0)))
    }

    /// Restarts a failed or canceled run from `fresh` (see the SQLite store's `retry_run`).
    pub async fn retry_run(&self, run_id: &str, fresh: Checkpoint) -> Result<RunRow, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some(cp) = lock_checkpoint(&tx, run_id).await? else { return Err(not_found(run_id)) };
        if !matches!(cp.status, RunStatus::Failed | RunStatus::Canceled) {
            return Err(StoreError::Conflict(format!(
                "Run {run_id} is {}; only failed or canceled runs can be retried",
                status_text(cp.status)
            )));
        }
        if job_state(&tx, run_id).await?.as_deref() == Some("running") {
            return Err(StoreError::Conflict(format!("Run {run_id} is being executed")));
        }
        tx.execute(
            "DELETE FROM step_results WHERE run_id = $1 AND (record::jsonb ->> 'state') IS DISTINCT FROM 'completed'",
            &[&run_id],
        )
        .await?;
        let events = vec![ckp_engine::Event::of_run("run_retry_requested", serde_json::json!({"thread_id": run_id}))];
        apply(&tx, run_id, &Commit { events, steps: Vec::new(), checkpoint: fresh }).await?;
        tx.execute(
            "UPDATE runs SET cancellation_requested = false, error_message = NULL, ended_at = NULL WHERE run_id = $1",
            &[&run_id],
        )
        .await?;
        enqueue_in(&tx, run_id, 0, Utc::now()).await?;
        let row = get_run_in(&tx, run_id).await?.ok_or_else(|| not_found(run_id))?;
        tx.commit().await?;
        self.notify_work();
        self.publish(run_id);
        Ok(row)
    }

    /// Deletes a run and everything it owns; a run being executed is a conflict.
    pub async fn delete_run(&self, run_id: &str) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        if lock_checkpoint(&tx, run_id).await?.is_none() {
            return Err(not_found(run_id));
        }
        if job_state(&tx, run_id).await?.as_deref() == Some("running") {
            return Err(StoreError::Conflict(format!("Run {run_id} is being executed; cancel it first")));
        }
        delete_in(&tx, run_id).await?;
        tx.commit().await?;
        self.publish(run_id);
        Ok(())
    }

    /// Deletes top-level runs created before `before` (with `status`) that no worker is executing.
    pub async fn cleanup_runs(&self, before: &str, status: Option<String>) -> Result<usize, StoreError> {
        let before = parse_time(before)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let ids: Vec<String> = tx
            .query(
                "SELECT r.run_id FROM runs r LEFT JOIN run_jobs j ON j.run_id = r.run_id
                 WHERE r.created_at < $1 AND ($2::text IS NULL OR r.status = $2) AND r.parent_run_id IS NULL
                   AND (j.state IS NULL OR j.state != 'running')
                 FOR UPDATE OF r SKIP LOCKED",
                &[&before, &status],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for id in &ids {
            delete_in(&tx, id).await?;
        }
        tx.commit().await?;
        Ok(ids.len())
    }

    /// Job counts per state and the next 20 queued jobs.
    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let c = self.client().await?;
        let depth_by_status = c
            .query("SELECT state, count(*) FROM run_jobs GROUP BY state ORDER BY state", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let next_jobs = c
            .query(
                "SELECT job_id, run_id, state, priority, attempts, available_at, locked_by FROM run_jobs
                 WHERE state = 'queued' ORDER BY priority DESC, available_at, job_id LIMIT 20",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(QueuedJob {
                    job_id: r.try_get(0)?,
                    run_id: r.try_get(1)?,
                    state: r.try_get(2)?,
                    priority: r.try_get(3)?,
                    attempts: r.try_get(4)?,
                    available_at: t(r, 5)?,
                    locked_by: r.try_get(6)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(QueueStats { depth_by_status, next_jobs })
    }

    /// The step records of a run, by key.
    pub async fn step_rows(&self, run_id: &str) -> Result<Vec<StepRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT key, record, updated_at FROM step_results WHERE run_id = $1 ORDER BY key", &[&run_id])
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Ok(record) = serde_json::from_str(r.try_get(1)?) {
                out.push(StepRow { key: r.try_get(0)?, record, updated_at: t(r, 2)? });
            }
        }
        Ok(out)
    }

    /// Event counts of a run: (total, error + run_failed, run_retry_requested).
    pub async fn event_counts(&self, run_id: &str) -> Result<(i64, i64, i64), StoreError> {
        let batches = self.batches(run_id, 0).await?;
        crate::events::counts_of(batches.into_iter().map(Ok), StoreError::Read)
    }

    /// The current checkpoint of a run.
    pub async fn checkpoint(&self, run_id: &str) -> Result<Option<Checkpoint>, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached("SELECT checkpoint FROM runs WHERE run_id = $1").await?;
        let Some(row) = c.query_opt(&stmt, &[&run_id]).await? else { return Ok(None) };
        serde_json::from_str(row.try_get(0)?)
            .map(Some)
            .map_err(|e| StoreError::Read(format!("unreadable checkpoint: {e}")))
    }

    /// Run counts per status.
    pub async fn run_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let c = self.client().await?;
        let rows = c.query("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status", &[]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Records `decision` on `run_id` atomically; returns the approvals still pending.
    pub async fn decide(&self, run_id: &str, decision: Decision) -> Result<Vec<PendingApproval>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let mut touched = Vec::new();
        let pending = decide_in(&tx, run_id, decision, &mut touched).await??;
        tx.commit().await?;
        if pending.is_empty() {
            self.notify_work();
        }
        touched.iter().for_each(|run| self.publish(run));
        Ok(pending)
    }

    /// Applies a workflow callback to a paused run atomically (see the SQLite store's `workflow_callback`); true
    /// when the run was queued.
    pub async fn workflow_callback(&self, run_id: &str, callback: Callback) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some(mut cp) = lock_checkpoint(&tx, run_id).await? else { return Err(not_found(run_id)) };
        let applied = match apply_callback(&mut cp, run_id, callback, Utc::now()) {
            Ok(a) => a,
            Err(EngineError::InvalidState { message, .. }) => return Err(StoreError::Conflict(message)),
            Err(e) => return Err(StoreError::Conflict(e.to_string())),
        };
        apply(&tx, run_id, &Commit { events: applied.events, steps: applied.steps, checkpoint: cp }).await?;
        if applied.runnable {
            enqueue_in(&tx, run_id, crate::callbacks::CALLBACK_PRIORITY, Utc::now()).await?;
        }
        tx.commit().await?;
        if applied.runnable {
            self.notify_work();
        }
        self.publish(run_id);
        Ok(applied.runnable)
    }

    /// Approvals, newest first, optionally by status and run.
    pub async fn list_approvals(
        &self,
        status: Option<String>,
        run_id: Option<String>,
    ) -> Result<Vec<ApprovalRow>, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals a JOIN runs r ON r.run_id = a.run_id
                 WHERE ($1::text IS NULL OR a.status = $1) AND ($2::text IS NULL OR a.run_id = $2)
                 ORDER BY a.created_at DESC, a.approval_id"
            ))
            .await?;
        c.query(&stmt, &[&status, &run_id]).await?.iter().map(approval_row).collect()
    }

    /// One approval, with its run's status.
    pub async fn get_approval(&self, approval_id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        get_approval_in(&self.client().await?, approval_id).await
    }

    /// Decides an approval in one transaction, only while it is pending (see the SQLite store).
    pub async fn decide_approval(
        &self,
        approval_id: &str,
        decision: ApprovalDecision,
    ) -> Result<ApprovalRow, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some(found) = get_approval_in(&tx, approval_id).await? else {
            return Err(StoreError::NotFound(format!("Approval {approval_id} not found")));
        };
        if found.status != "pending" {
            return Err(StoreError::Conflict(format!("Approval {approval_id} is already {}", found.status)));
        }
        let engine_decision = Decision {
            key: Some(found.approval_key.clone()),
            value: decision.value.clone(),
            decided_by: decision.decided_by.clone(),
            comment: decision.comment.clone(),
        };
        // The run row lock inside decide_in serializes competing decisions; the loser sees the approval decided.
        let mut touched = Vec::new();
        let pending = decide_in(&tx, &found.run_id, engine_decision, &mut touched).await??;
        let mut payload = Map::new();
        let settled: Option<String> = tx
            .query_one("SELECT decision_payload FROM approvals WHERE approval_id = $1", &[&approval_id])
            .await?
            .try_get(0)?;
        if let Some(Value::Object(m)) = json_col(settled) {
            payload.extend(m);
        }
        payload.extend(decision.payload);
        tx.execute(
            "UPDATE approvals SET decision_payload = $2, decided_by = $3 WHERE approval_id = $1",
            &[&approval_id, &Value::Object(payload).to_string(), &decision.decided_by],
        )
        .await?;
        let row = get_approval_in(&tx, approval_id).await?;
        tx.commit().await?;
        if pending.is_empty() {
            self.notify_work();
        }
        touched.iter().for_each(|run| self.publish(run));
        row.ok_or_else(|| StoreError::NotFound(format!("Approval {approval_id} not found")))
    }
}
