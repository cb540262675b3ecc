//! [`RunStore`] on SQLite: creation in one transaction with the first commit and its job, reads, filters and
//! pagination, events after an id (for SSE), cancel, retry, delete, history cleanup and diagnostics. Every write is
//! one transaction on the writer thread; a response sent after it can be read back.

use ckp_engine::effects::BoxFuture;
use ckp_engine::journal::{Checkpoint, Commit};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::queue::enqueue_in;
use super::{SqliteStore, apply, events, parse_checkpoint};
use crate::StoreError;
use crate::codec::{now, shown_time, string_list};
use crate::row::RowSource;
use crate::status::{JobState, RunStatus};
use crate::store::{
    EventRow, LIVE_SQL, NewRun, RUN_COLUMNS, RetentionPolicy, RunChange, RunFilter, RunRow, RunStore, SpaceReclaimed,
    StatusPage, StepRow, TERMINAL_SQL, cancel_refused, canceled, list_run_columns, retried, retry_refused,
    run_not_found, run_row,
};

pub(crate) fn get_run_in(c: &rusqlite::Connection, run_id: &str) -> Result<Option<RunRow>, rusqlite::Error> {
    c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"))?
        .query_row(params![run_id], |r| run_row(r))
        .optional()
}

/// Whether the run's job is leased by a worker (the run is being executed).
fn is_executing(tx: &rusqlite::Connection, run_id: &str) -> Result<bool, rusqlite::Error> {
    let state: Option<JobState> = tx
        .prepare_cached("SELECT state FROM run_jobs WHERE run_id = ?1")?
        .query_row(params![run_id], |r| r.parsed(0))
        .optional()?;
    Ok(state == Some(JobState::Running))
}

pub(crate) fn checkpoint_of(tx: &rusqlite::Connection, run_id: &str) -> Result<Option<Checkpoint>, rusqlite::Error> {
    let text: Option<String> = tx
        .prepare_cached("SELECT checkpoint FROM runs WHERE run_id = ?1")?
        .query_row(params![run_id], |r| r.get(0))
        .optional()?;
    text.map(|t| parse_checkpoint(&t)).transpose()
}

fn status_of(c: &rusqlite::Connection, run_id: &str) -> Result<Option<RunStatus>, rusqlite::Error> {
    c.prepare_cached("SELECT status FROM runs WHERE run_id = ?1")?
        .query_row(params![run_id], |r| r.parsed(0))
        .optional()
}

/// Deletes a run with its children (subflow child ids extend the parent's id with `:`) and their jobs. The
/// children are the ids from `{run_id}:` (included) to `{run_id};` (excluded): in SQLite's binary order exactly
/// those starting with `{run_id}:`, found through the primary key's index.
fn delete_in(tx: &rusqlite::Transaction<'_>, run_id: &str) -> Result<usize, rusqlite::Error> {
    let (from, to) = (format!("{run_id}:"), format!("{run_id};"));
    tx.prepare_cached("DELETE FROM run_jobs WHERE run_id = ?1 OR (run_id >= ?2 AND run_id < ?3)")?
        .execute(params![run_id, from, to])?;
    tx.prepare_cached("DELETE FROM runs WHERE run_id = ?1 OR (run_id >= ?2 AND run_id < ?3)")?
        .execute(params![run_id, from, to])
}

/// The ids of a run's subflow children (see [`delete_in`]).
fn children_of(tx: &rusqlite::Connection, run_id: &str) -> Result<Vec<String>, rusqlite::Error> {
    tx.prepare_cached("SELECT run_id FROM runs WHERE run_id >= ?1 AND run_id < ?2")?
        .query_map(params![format!("{run_id}:"), format!("{run_id};")], |r| r.get(0))?
        .collect()
}

/// The conditions a top-level run `r` meets to be deleted by cleanup or retention: terminal, neither it nor a
/// child queued or executing, no child still alive.
fn removable() -> String {
    format!(
        "r.parent_run_id IS NULL AND r.status IN ({TERMINAL_SQL})
         AND NOT EXISTS (SELECT 1 FROM run_jobs j WHERE j.state IN ('queued', 'running')
             AND (j.run_id = r.run_id OR (j.run_id >= r.run_id || ':' AND j.run_id < r.run_id || ';')))
         AND NOT EXISTS (SELECT 1 FROM runs c WHERE c.status IN ({LIVE_SQL})
             AND c.run_id >= r.run_id || ':' AND c.run_id < r.run_id || ';')"
    )
}

/// One retention batch inside `tx` (see [`RunStore::delete_expired_runs`]): the ids deleted.
fn delete_expired_in(
    tx: &rusqlite::Transaction<'_>,
    policy: &RetentionPolicy,
    limit: i64,
) -> Result<Vec<String>, rusqlite::Error> {
    let removable = removable();
    let ids: Vec<String> = tx
        .prepare_cached(&format!(
            "SELECT r.run_id FROM runs r
             WHERE ((r.status = 'completed' AND r.ended_at < ?1) OR (r.status = 'failed' AND r.ended_at < ?2)
                    OR (r.status = 'canceled' AND r.ended_at < ?3))
               AND {removable}
             ORDER BY r.ended_at, r.run_id LIMIT ?4"
        ))?
        .query_map(params![policy.completed_before, policy.failed_before, policy.canceled_before, limit.max(0)], |r| {
            r.get(0)
        })?
        .collect::<Result<_, _>>()?;
    let mut deleted = Vec::with_capacity(ids.len());
    delete_all(tx, &ids, &mut deleted)?;
    let room = limit - i64::try_from(ids.len()).unwrap_or(i64::MAX);
    if let Some(max) = policy.max_runs
        && room > 0
    {
        let count: i64 =
            tx.prepare_cached("SELECT count(*) FROM runs WHERE parent_run_id IS NULL")?.query_row([], |r| r.get(0))?;
        let over = (count - max).min(room);
        if over > 0 {
            let oldest: Vec<String> = tx
                .prepare_cached(&format!(
                    "SELECT r.run_id FROM runs r WHERE {removable} ORDER BY r.created_at, r.run_id LIMIT ?1"
                ))?
                .query_map(params![over], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            delete_all(tx, &oldest, &mut deleted)?;
        }
    }
    Ok(deleted)
}

/// Deletes `ids` with their children; their ids and their children's are pushed on `deleted`.
fn delete_all(
    tx: &rusqlite::Transaction<'_>,
    ids: &[String],
    deleted: &mut Vec<String>,
) -> Result<(), rusqlite::Error> {
    for id in ids {
        deleted.push(id.clone());
        deleted.extend(children_of(tx, id)?);
        delete_in(tx, id)?;
    }
    Ok(())
}

/// Creates a run inside `tx`: its first commit, its API columns and, when `queue`, its job; the run as stored.
pub(crate) fn create_in(
    tx: &rusqlite::Transaction<'_>,
    run: &NewRun,
    commit: &Commit,
    queue: bool,
) -> Result<Option<RunRow>, rusqlite::Error> {
    apply(tx, &run.run_id, commit)?;
    let input = run.input_vars.as_ref().map(Value::to_string);
    tx.prepare_cached(
        "UPDATE runs SET input_vars = ?2, project_id = ?3, case_id = ?4, trigger_type = ?5, triggered_by = ?6,
             rerun_of = ?7
         WHERE run_id = ?1",
    )?
    .execute(params![
        run.run_id,
        input,
        run.project_id,
        run.case_id,
        run.trigger_type,
        run.triggered_by,
        run.rerun_of
    ])?;
    if queue {
        let now = now();
        enqueue_in(tx, &run.run_id, 0, &now, &now)?;
    }
    get_run_in(tx, &run.run_id)
}

impl RunStore for SqliteStore {
    fn create_run<'a>(&'a self, run: NewRun, commit: Commit, queue: bool) -> BoxFuture<'a, Result<RunRow, StoreError>> {
        Box::pin(async move {
            let row = self.write(move |tx| create_in(tx, &run, &commit, queue)).await?;
            if queue {
                self.notify_work();
            }
            if let Some(r) = &row {
                self.publish(&r.run_id);
            }
            row.ok_or_else(|| StoreError::Write(crate::cause("the new run was not stored")))
        })
    }

    fn get_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRow>, StoreError>> {
        let run_id = run_id.to_owned();
        Box::pin(self.read_store(move |c| get_run_in(c, &run_id)))
    }

    fn list_runs<'a>(&'a self, filter: RunFilter) -> BoxFuture<'a, Result<Vec<RunRow>, StoreError>> {
        Box::pin(self.read_store(move |c| {
            let order = if filter.ascending { "ASC" } else { "DESC" };
            // SQLite's length() counts the characters of a text; of a blob, its bytes.
            let columns = list_run_columns("length(CAST({} AS BLOB))", "?9");
            let sql = format!(
                "SELECT {columns} FROM runs
                 WHERE (?1 IS NULL OR procedure_id = ?1) AND (?2 IS NULL OR project_id = ?2)
                   AND (?3 IS NULL OR case_id = ?3) AND (?4 IS NULL OR status = ?4)
                   AND (?5 IS NULL OR created_at >= ?5) AND (?6 IS NULL OR created_at <= ?6)
                   AND (?10 IS NULL OR project_id IN (SELECT value FROM json_each(?10)))
                   AND (?11 IS NULL OR rerun_of = ?11)
                 ORDER BY created_at {order}, run_id {order} LIMIT ?7 OFFSET ?8"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    filter.procedure_id,
                    filter.project_id,
                    filter.case_id,
                    filter.status.map(RunStatus::as_str),
                    filter.created_from,
                    filter.created_to,
                    filter.limit,
                    filter.offset,
                    filter.field_bytes,
                    filter.projects.as_deref().map(string_list),
                    filter.rerun_of
                ],
                |r| run_row(r),
            )?;
            rows.collect()
        }))
    }

    fn events_after<'a>(
        &'a self,
        run_id: &'a str,
        after: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<EventRow>, StoreError>> {
        let run_id = run_id.to_owned();
        Box::pin(self.read_store(move |c| events::after(c, &run_id, after, limit)))
    }

    fn cancel_run<'a>(&'a self, run_id: &'a str, reason: &'a str) -> BoxFuture<'a, Result<RunChange, StoreError>> {
        let (id, reason) = (run_id.to_owned(), reason.to_owned());
        Box::pin(async move {
            let result = self
                .write(move |tx| {
                    let Some(cp) = checkpoint_of(tx, &id)? else { return Ok(Err(run_not_found(&id))) };
                    if let Some(refused) = cancel_refused(&id, cp.status) {
                        return Ok(Err(refused));
                    }
                    let now = now();
                    tx.prepare_cached("UPDATE runs SET cancellation_requested = 1, updated_at = ?2 WHERE run_id = ?1")?
                        .execute(params![id, now])?;
                    if is_executing(tx, &id)? {
                        return Ok(Ok(RunChange::Executing));
                    }
                    apply(tx, &id, &canceled(cp, &reason))?;
                    tx.prepare_cached(
                        "UPDATE run_jobs SET state = 'done', rerun = 0, updated_at = ?2 WHERE run_id = ?1",
                    )?
                    .execute(params![id, now])?;
                    Ok(Ok(RunChange::Done))
                })
                .await?;
            if result.is_ok() {
                self.publish(run_id);
            }
            result
        })
    }

    fn run_status<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunStatus>, StoreError>> {
        let run_id = run_id.to_owned();
        Box::pin(self.read_store(move |c| status_of(c, &run_id)))
    }

    /// One read connection, one transaction.
    fn status_and_events<'a>(
        &'a self,
        run_id: &'a str,
        after: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Option<StatusPage>, StoreError>> {
        let run_id = run_id.to_owned();
        Box::pin(self.read_store(move |c| {
            let status = status_of(c, &run_id)?;
            status.map(|s| Ok((s, events::after(c, &run_id, after, limit)?))).transpose()
        }))
    }

    fn cancellation_requested<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let run_id = run_id.to_owned();
        Box::pin(self.read_store(move |c| {
            c.prepare_cached("SELECT cancellation_requested FROM runs WHERE run_id = ?1")?
                .query_row(params![run_id], |r| r.get::<_, bool>(0))
                .optional()
                .map(|v| v.unwrap_or(false))
        }))
    }

    fn retry_run<'a>(&'a self, run_id: &'a str, fresh: Checkpoint) -> BoxFuture<'a, Result<RunRow, StoreError>> {
        let id = run_id.to_owned();
        Box::pin(async move {
            let result = self
                .write(move |tx| {
                    let Some(cp) = checkpoint_of(tx, &id)? else { return Ok(Err(run_not_found(&id))) };
                    if let Some(refused) = retry_refused(&id, cp.status) {
                        return Ok(Err(refused));
                    }
                    if is_executing(tx, &id)? {
                        return Ok(Err(StoreError::Conflict(format!("Run {id} is being executed"))));
                    }
                    tx.prepare_cached(
                        "DELETE FROM step_results WHERE run_id = ?1 AND json_extract(record, '$.state') != 'completed'",
                    )?
                    .execute(params![id])?;
                    apply(tx, &id, &retried(&id, fresh))?;
                    let now = now();
                    tx.prepare_cached(
                        "UPDATE runs SET cancellation_requested = 0, error_message = NULL, ended_at = NULL WHERE run_id = ?1",
                    )?
                    .execute(params![id])?;
                    enqueue_in(tx, &id, 0, &now, &now)?;
                    Ok(get_run_in(tx, &id)?.ok_or_else(|| run_not_found(&id)))
                })
                .await?;
            if result.is_ok() {
                self.notify_work();
                self.publish(run_id);
            }
            result
        })
    }

    fn delete_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let id = run_id.to_owned();
        Box::pin(async move {
            let deleted = self
                .write(move |tx| {
                    if get_run_in(tx, &id)?.is_none() {
                        return Ok(Err(run_not_found(&id)));
                    }
                    if is_executing(tx, &id)? {
                        return Ok(Err(StoreError::Conflict(format!("Run {id} is being executed; cancel it first"))));
                    }
                    delete_in(tx, &id)?;
                    Ok(Ok(()))
                })
                .await?;
            if deleted.is_ok() {
                self.publish(run_id);
            }
            deleted
        })
    }

    fn cleanup_runs<'a>(
        &'a self,
        before: &'a str,
        status: Option<RunStatus>,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        let before = before.to_owned();
        Box::pin(self.write(move |tx| {
            let ids: Vec<String> = tx
                .prepare_cached(&format!(
                    "SELECT r.run_id FROM runs r
                     WHERE r.created_at < ?1 AND (?2 IS NULL OR r.status = ?2) AND {}",
                    removable()
                ))?
                .query_map(params![before, status.map(RunStatus::as_str)], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if dry_run {
                return Ok(ids.len());
            }
            for id in &ids {
                delete_in(tx, id)?;
            }
            Ok(ids.len())
        }))
    }

    fn delete_expired_runs<'a>(
        &'a self,
        policy: &'a RetentionPolicy,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            // Stored times compare as text in their one format: the cut-offs are written the same way.
            let shown = |t: &Option<String>| t.as_deref().map(shown_time).transpose();
            let policy = RetentionPolicy {
                completed_before: shown(&policy.completed_before)?,
                failed_before: shown(&policy.failed_before)?,
                canceled_before: shown(&policy.canceled_before)?,
                max_runs: policy.max_runs,
            };
            let deleted = self.write(move |tx| delete_expired_in(tx, &policy, limit)).await?;
            for id in &deleted {
                self.publish(id);
            }
            Ok(deleted)
        })
    }

    fn reclaim_space(&self, max_pages: i64) -> BoxFuture<'_, Result<SpaceReclaimed, StoreError>> {
        Box::pin(self.write(move |tx| {
            // 2: incremental (0 none, 1 full).
            let mode: i64 = tx.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
            let free = |tx: &rusqlite::Transaction<'_>| tx.pragma_query_value(None, "freelist_count", |r| r.get(0));
            let free_before: i64 = free(tx)?;
            if mode == 2 && free_before > 0 && max_pages > 0 {
                // Each answer row is a page given back; they must all be stepped through.
                let mut stmt = tx.prepare(&format!("PRAGMA incremental_vacuum({max_pages})"))?;
                let mut rows = stmt.query([])?;
                while rows.next()?.is_some() {}
            }
            Ok(SpaceReclaimed { enabled: mode == 2, free_before, free_after: free(tx)? })
        }))
    }

    fn step_rows<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Vec<StepRow>, StoreError>> {
        let run_id = run_id.to_owned();
        Box::pin(self.read_store(move |c| {
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
        }))
    }

    fn event_counts<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<(i64, i64, i64), StoreError>> {
        let run_id = run_id.to_owned();
        Box::pin(self.read_store(move |c| events::counts(c, &run_id)))
    }

    fn checkpoint<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<Checkpoint>, StoreError>> {
        let run_id = run_id.to_owned();
        Box::pin(self.read_store(move |c| checkpoint_of(c, &run_id)))
    }

    fn run_counts(&self) -> BoxFuture<'_, Result<Vec<(RunStatus, i64)>, StoreError>> {
        Box::pin(self.read_store(|c| {
            c.prepare_cached("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status")?
                .query_map([], |r| crate::store::count_of(r))?
                .collect()
        }))
    }

    fn watch_run(&self, run_id: &str) -> tokio::sync::watch::Receiver<u64> {
        self.hub.watch_run(run_id)
    }

    fn watch_all(&self) -> tokio::sync::watch::Receiver<u64> {
        self.hub.watch_all()
    }
}
