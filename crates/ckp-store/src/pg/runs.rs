//! [`RunStore`] on PostgreSQL: the same operations and rules as the SQLite store. Every transaction that reads a
//! run's checkpoint to change it locks the run row first (`FOR UPDATE`), so concurrent decisions, cancels and
//! commits of one run — from any process — are serialized.

use chrono::Utc;
use ckp_engine::effects::BoxFuture;
use ckp_engine::journal::{Checkpoint, Commit};
use deadpool_postgres::{GenericClient, Transaction};

use super::queue::enqueue_in;
use super::{PgStore, apply, parse_time};
use crate::StoreError;
use crate::row::RowSource;
use crate::status::{JobState, RunStatus};
use crate::store::{
    EventRow, LIVE_SQL, NewRun, RUN_COLUMNS, RetentionPolicy, RunChange, RunFilter, RunRow, RunStore, SpaceReclaimed,
    StatusPage, StepRow, TERMINAL_SQL, cancel_refused, canceled, count_of, list_run_columns, retried, retry_refused,
    run_not_found, run_row,
};

async fn get_run_in(c: &impl GenericClient, run_id: &str) -> Result<Option<RunRow>, StoreError> {
    let stmt = c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1")).await?;
    c.query_opt(&stmt, &[&run_id]).await?.as_ref().map(run_row).transpose()
}

/// The run's checkpoint, with its row locked until the transaction ends.
pub(crate) async fn lock_checkpoint(tx: &Transaction<'_>, run_id: &str) -> Result<Option<Checkpoint>, StoreError> {
    let stmt = tx.prepare_cached("SELECT checkpoint FROM runs WHERE run_id = $1 FOR UPDATE").await?;
    let Some(row) = tx.query_opt(&stmt, &[&run_id]).await? else { return Ok(None) };
    let text: String = row.try_get(0)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| StoreError::Read(crate::cause(format!("unreadable checkpoint: {e}"))))
}

/// Whether the run's job is leased by a worker, with the job row locked until the transaction ends: a worker
/// releasing or rescheduling the job meanwhile waits for this transaction, and then sees what it wrote (a cancel
/// request recorded for a run being executed is never missed by the worker that stops executing it).
async fn is_executing(c: &impl GenericClient, run_id: &str) -> Result<bool, StoreError> {
    let stmt = c.prepare_cached("SELECT state FROM run_jobs WHERE run_id = $1 FOR UPDATE").await?;
    let state: Option<JobState> = c.query_opt(&stmt, &[&run_id]).await?.map(|r| r.parsed(0)).transpose()?;
    Ok(state == Some(JobState::Running))
}

/// Deletes a run with its children (ids extending the parent's with `:`) and their jobs; the ids deleted.
async fn delete_in(tx: &Transaction<'_>, run_id: &str) -> Result<Vec<String>, StoreError> {
    let prefix = format!("{run_id}:");
    tx.execute("DELETE FROM run_jobs WHERE run_id = $1 OR starts_with(run_id, $2)", &[&run_id, &prefix]).await?;
    // Children have a parent (an indexed column): only they are compared with the prefix.
    let rows = tx
        .query(
            "DELETE FROM runs WHERE run_id = $1 OR (parent_run_id IS NOT NULL AND starts_with(run_id, $2))
             RETURNING run_id",
            &[&run_id, &prefix],
        )
        .await?;
    rows.iter().map(|r| r.try_get(0).map_err(StoreError::from)).collect()
}

/// The conditions a top-level run `r` meets to be deleted by cleanup or retention: terminal, neither it nor a
/// child queued or executing, no child still alive.
fn removable() -> String {
    format!(
        "r.parent_run_id IS NULL AND r.status IN ({TERMINAL_SQL})
         AND NOT EXISTS (SELECT 1 FROM run_jobs j WHERE j.state IN ('queued', 'running')
             AND (j.run_id = r.run_id OR starts_with(j.run_id, r.run_id || ':')))
         AND NOT EXISTS (SELECT 1 FROM runs c WHERE c.status IN ({LIVE_SQL}) AND c.parent_run_id IS NOT NULL
             AND starts_with(c.run_id, r.run_id || ':'))"
    )
}

/// The ids selected by `sql` (locked, others' locked rows skipped) deleted with their children; pushed on
/// `deleted`. The number of top-level runs deleted.
async fn delete_selected(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    deleted: &mut Vec<String>,
) -> Result<i64, StoreError> {
    let ids: Vec<String> = tx.query(sql, params).await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
    for id in &ids {
        deleted.extend(delete_in(tx, id).await?);
    }
    Ok(i64::try_from(ids.len()).unwrap_or(i64::MAX))
}

impl RunStore for PgStore {
    fn create_run(&self, run: NewRun, commit: Commit, queue: bool) -> BoxFuture<'_, Result<RunRow, StoreError>> {
        Box::pin(async move {
            let run_id = run.run_id.clone();
            let row = self.commits.write(run_id.clone(), commit, Some((run, queue))).await?;
            let row = row.ok_or_else(|| StoreError::Write(crate::cause("the new run was not stored")))?;
            if queue {
                self.notify_work();
            }
            // Other processes are not told: no stream can follow a run before it exists (that is a 404), and a new
            // run has no approvals yet.
            self.hub.publish(&run_id);
            Ok(row)
        })
    }

    fn get_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRow>, StoreError>> {
        Box::pin(async move { get_run_in(&self.client().await?, run_id).await })
    }

    fn list_runs(&self, filter: RunFilter) -> BoxFuture<'_, Result<Vec<RunRow>, StoreError>> {
        Box::pin(async move {
            let from = filter.created_from.as_deref().map(parse_time).transpose()?;
            let to = filter.created_to.as_deref().map(parse_time).transpose()?;
            let order = if filter.ascending { "ASC" } else { "DESC" };
            let c = self.client().await?;
            let columns = list_run_columns("octet_length({})", "$9::bigint");
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {columns} FROM runs
                     WHERE ($1::text IS NULL OR procedure_id = $1) AND ($2::text IS NULL OR project_id = $2)
                       AND ($3::text IS NULL OR case_id = $3) AND ($4::text IS NULL OR status = $4)
                       AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at <= $6)
                       AND ($10::text[] IS NULL OR project_id = ANY($10))
                       AND ($11::text IS NULL OR rerun_of = $11)
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
                        &filter.status.map(RunStatus::as_str),
                        &from,
                        &to,
                        &filter.limit.max(0),
                        &filter.offset.max(0),
                        &filter.field_bytes,
                        &filter.projects,
                        &filter.rerun_of,
                    ],
                )
                .await?;
            rows.iter().map(run_row).collect()
        })
    }

    fn events_after<'a>(
        &'a self,
        run_id: &'a str,
        after: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<EventRow>, StoreError>> {
        Box::pin(async move {
            let batches = self.batches(run_id, crate::events::first_batch(after)).await?;
            crate::events::rows_after(
                batches.into_iter().map(Ok),
                |m| StoreError::Read(crate::cause(m)),
                run_id,
                after,
                limit,
            )
        })
    }

    fn cancel_run<'a>(&'a self, run_id: &'a str, reason: &'a str) -> BoxFuture<'a, Result<RunChange, StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let Some(cp) = lock_checkpoint(&tx, run_id).await? else { return Err(run_not_found(run_id)) };
            if let Some(refused) = cancel_refused(run_id, cp.status) {
                return Err(refused);
            }
            tx.execute(
                "UPDATE runs SET cancellation_requested = true, updated_at = now() WHERE run_id = $1",
                &[&run_id],
            )
            .await?;
            if is_executing(&tx, run_id).await? {
                tx.commit().await?;
                return Ok(RunChange::Executing);
            }
            apply(&tx, run_id, &canceled(cp, reason)).await?;
            tx.execute(
                "UPDATE run_jobs SET state = 'done', rerun = false, updated_at = now() WHERE run_id = $1",
                &[&run_id],
            )
            .await?;
            tx.commit().await?;
            self.publish(run_id);
            Ok(RunChange::Done)
        })
    }

    fn run_status<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunStatus>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c.prepare_cached("SELECT status FROM runs WHERE run_id = $1").await?;
            c.query_opt(&stmt, &[&run_id]).await?.map(|r| r.parsed(0)).transpose()
        })
    }

    fn status_and_events<'a>(
        &'a self,
        run_id: &'a str,
        after: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Option<StatusPage>, StoreError>> {
        Box::pin(async move {
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
            let status: RunStatus = first.parsed(0)?;
            let batches = rows.iter().filter_map(|r| match r.try_get::<_, Option<i64>>(1) {
                Ok(Some(batch)) => Some(r.try_get(2).map(|data| (batch, data)).map_err(StoreError::from)),
                Ok(None) => None,
                Err(e) => Some(Err(e.into())),
            });
            let page = crate::events::rows_after(batches, |m| StoreError::Read(crate::cause(m)), run_id, after, limit)?;
            Ok(Some((status, page)))
        })
    }

    fn cancellation_requested<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c.prepare_cached("SELECT cancellation_requested FROM runs WHERE run_id = $1").await?;
            Ok(c.query_opt(&stmt, &[&run_id]).await?.is_some_and(|r| r.get(0)))
        })
    }

    fn retry_run<'a>(&'a self, run_id: &'a str, fresh: Checkpoint) -> BoxFuture<'a, Result<RunRow, StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let Some(cp) = lock_checkpoint(&tx, run_id).await? else { return Err(run_not_found(run_id)) };
            if let Some(refused) = retry_refused(run_id, cp.status) {
                return Err(refused);
            }
            if is_executing(&tx, run_id).await? {
                return Err(StoreError::Conflict(format!("Run {run_id} is being executed")));
            }
            tx.execute(
                "DELETE FROM step_results WHERE run_id = $1 AND (record::jsonb ->> 'state') IS DISTINCT FROM 'completed'",
                &[&run_id],
            )
            .await?;
            apply(&tx, run_id, &retried(run_id, fresh)).await?;
            tx.execute(
                "UPDATE runs SET cancellation_requested = false, error_message = NULL, ended_at = NULL WHERE run_id = $1",
                &[&run_id],
            )
            .await?;
            enqueue_in(&tx, run_id, 0, Utc::now()).await?;
            let row = get_run_in(&tx, run_id).await?.ok_or_else(|| run_not_found(run_id))?;
            tx.commit().await?;
            self.notify_work();
            self.publish(run_id);
            Ok(row)
        })
    }

    fn delete_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            if lock_checkpoint(&tx, run_id).await?.is_none() {
                return Err(run_not_found(run_id));
            }
            if is_executing(&tx, run_id).await? {
                return Err(StoreError::Conflict(format!("Run {run_id} is being executed; cancel it first")));
            }
            delete_in(&tx, run_id).await?;
            tx.commit().await?;
            self.publish(run_id);
            Ok(())
        })
    }

    fn cleanup_runs<'a>(
        &'a self,
        before: &'a str,
        status: Option<RunStatus>,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async move {
            let before = parse_time(before)?;
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let ids: Vec<String> = tx
                .query(
                    &format!(
                        "SELECT r.run_id FROM runs r
                         WHERE r.created_at < $1 AND ($2::text IS NULL OR r.status = $2) AND {}
                         FOR UPDATE OF r SKIP LOCKED",
                        removable()
                    ),
                    &[&before, &status.map(RunStatus::as_str)],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if dry_run {
                // The same selection, locks and all, so the count is what the deletion would take; released here.
                tx.rollback().await?;
                return Ok(ids.len());
            }
            for id in &ids {
                delete_in(&tx, id).await?;
            }
            tx.commit().await?;
            Ok(ids.len())
        })
    }

    fn delete_expired_runs<'a>(
        &'a self,
        policy: &'a RetentionPolicy,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let cutoff = |t: &Option<String>| t.as_deref().map(parse_time).transpose();
            let (completed, failed, canceled) =
                (cutoff(&policy.completed_before)?, cutoff(&policy.failed_before)?, cutoff(&policy.canceled_before)?);
            let removable = removable();
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let mut deleted = Vec::new();
            // Rows locked by another transaction (a retry, a decision) are skipped: the next pass sees them.
            let expired = format!(
                "SELECT r.run_id FROM runs r
                 WHERE ((r.status = 'completed' AND r.ended_at < $1) OR (r.status = 'failed' AND r.ended_at < $2)
                        OR (r.status = 'canceled' AND r.ended_at < $3))
                   AND {removable}
                 ORDER BY r.ended_at, r.run_id LIMIT $4 FOR UPDATE OF r SKIP LOCKED"
            );
            let limit = limit.max(0);
            let taken = delete_selected(&tx, &expired, &[&completed, &failed, &canceled, &limit], &mut deleted).await?;
            let room = limit - taken;
            if let Some(max) = policy.max_runs
                && room > 0
            {
                let count: i64 =
                    tx.query_one("SELECT count(*) FROM runs WHERE parent_run_id IS NULL", &[]).await?.try_get(0)?;
                let over = (count - max).min(room);
                if over > 0 {
                    let oldest = format!(
                        "SELECT r.run_id FROM runs r WHERE {removable}
                         ORDER BY r.created_at, r.run_id LIMIT $1 FOR UPDATE OF r SKIP LOCKED"
                    );
                    delete_selected(&tx, &oldest, &[&over], &mut deleted).await?;
                }
            }
            tx.commit().await?;
            for id in &deleted {
                self.publish(id);
            }
            Ok(deleted)
        })
    }

    fn reclaim_space(&self, _max_pages: i64) -> BoxFuture<'_, Result<SpaceReclaimed, StoreError>> {
        Box::pin(async { Ok(SpaceReclaimed::default()) })
    }

    fn step_rows<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Vec<StepRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let rows = c
                .query("SELECT key, record, updated_at FROM step_results WHERE run_id = $1 ORDER BY key", &[&run_id])
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                if let Ok(record) = serde_json::from_str(r.try_get(1)?) {
                    out.push(StepRow { key: r.try_get(0)?, record, updated_at: r.time(2)? });
                }
            }
            Ok(out)
        })
    }

    fn event_counts<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<(i64, i64, i64), StoreError>> {
        Box::pin(async move {
            let batches = self.batches(run_id, 0).await?;
            crate::events::counts_of(batches.into_iter().map(Ok), |m| StoreError::Read(crate::cause(m)))
        })
    }

    fn checkpoint<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<Checkpoint>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c.prepare_cached("SELECT checkpoint FROM runs WHERE run_id = $1").await?;
            let Some(row) = c.query_opt(&stmt, &[&run_id]).await? else { return Ok(None) };
            serde_json::from_str(row.try_get(0)?)
                .map(Some)
                .map_err(|e| StoreError::Read(crate::cause(format!("unreadable checkpoint: {e}"))))
        })
    }

    fn run_counts(&self) -> BoxFuture<'_, Result<Vec<(RunStatus, i64)>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let rows = c.query("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status", &[]).await?;
            rows.iter().map(count_of).collect()
        })
    }

    fn watch_run(&self, run_id: &str) -> tokio::sync::watch::Receiver<u64> {
        self.hub.watch_run(run_id)
    }

    fn watch_all(&self) -> tokio::sync::watch::Receiver<u64> {
        self.hub.watch_all()
    }
}
