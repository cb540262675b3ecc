//! [`RunStore`]: runs as the API sees them (creation with the first commit, reads, filters, events, cancel, retry,
//! delete, history cleanup, diagnostics) and the rows it speaks, with their one decoder for both backends.

use ckp_engine::effects::BoxFuture;
use ckp_engine::journal::{Checkpoint, Commit, StepRecord};
use serde_json::Value;

use crate::StoreError;
use crate::codec::json_col;
use crate::row::RowSource;
use crate::status::RunStatus;

/// Runs and their journal as the API reads them. Every write is one transaction; a response sent after it can be
/// read back.
pub trait RunStore: Send + Sync {
    /// Creates a run: its first commit (checkpoint + `run_created`), its API columns and, when `queue`, its job,
    /// in one transaction. Returns the run as stored.
    fn create_run<'a>(&'a self, run: NewRun, commit: Commit, queue: bool) -> BoxFuture<'a, Result<RunRow, StoreError>>;
    /// One run.
    fn get_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRow>, StoreError>>;
    /// Runs matching a filter, by creation time.
    fn list_runs<'a>(&'a self, filter: RunFilter) -> BoxFuture<'a, Result<Vec<RunRow>, StoreError>>;
    /// Events of a run with an id above `after`, in order, at most `limit`.
    fn events_after<'a>(
        &'a self,
        run_id: &'a str,
        after: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<EventRow>, StoreError>>;
    /// Cancels a run that no worker is executing, in one transaction: status `canceled`, `run_canceled`, pending
    /// approvals `canceled`, the job removed from the queue. A run being executed gets `cancellation_requested` and
    /// [`RunChange::Executing`]: its worker stops it at the next step. A finished run is a conflict.
    fn cancel_run<'a>(&'a self, run_id: &'a str, reason: &'a str) -> BoxFuture<'a, Result<RunChange, StoreError>>;
    /// A run's status (a light read for streams).
    fn run_status<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunStatus>, StoreError>>;
    /// A run's status, read first, and then its events after an id (a stream's page: when the status is
    /// terminal, every event up to the terminal one is in the page or before it); None when the run does not exist.
    fn status_and_events<'a>(
        &'a self,
        run_id: &'a str,
        after: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Option<StatusPage>, StoreError>>;
    /// Whether a cancel was requested (read by workers of other processes).
    fn cancellation_requested<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Restarts a failed or canceled run from `fresh` (a new checkpoint at the start node): step records of
    /// completed external calls are kept (they are not called again), the others dropped; `run_retry_requested`
    /// is written and the run queued, all in one transaction. Other statuses are a conflict.
    fn retry_run<'a>(&'a self, run_id: &'a str, fresh: Checkpoint) -> BoxFuture<'a, Result<RunRow, StoreError>>;
    /// Deletes a run, its children, events, step records, approvals, artifacts metadata, leases and job. A run
    /// being executed is a conflict.
    fn delete_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Deletes top-level runs created before `before` (with `status`, when given) that no worker is executing;
    /// the count deleted. With `dry_run`, the same selection is made and counted, and nothing is deleted.
    fn cleanup_runs<'a>(
        &'a self,
        before: &'a str,
        status: Option<RunStatus>,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<usize, StoreError>>;
    /// Retention: deletes at most `limit` terminal top-level runs (completed, failed, canceled) that `policy`
    /// selects, with their subflow children and everything they own (events, step records, checkpoints,
    /// approvals, artifact rows, leases, jobs), in one transaction. A run is never taken while it or one of its
    /// children is not terminal or has a queued or running job; a child is never taken on its own. Runs past their
    /// status's cut-off go first (oldest end first); then, while more than `max_runs` top-level runs remain, the
    /// oldest terminal ones by creation. Returns the ids deleted (the top-level runs and their children); fewer
    /// top-level runs than `limit` means nothing else is selected now.
    fn delete_expired_runs<'a>(
        &'a self,
        policy: &'a RetentionPolicy,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;
    /// Gives at most `max_pages` free pages of the database file back to the file system (SQLite's
    /// `incremental_vacuum`, one short write); PostgreSQL's autovacuum does it there, so nothing is done and the
    /// answer is all zeros.
    fn reclaim_space(&self, max_pages: i64) -> BoxFuture<'_, Result<SpaceReclaimed, StoreError>>;
    /// The step records of a run (idempotency entries), by key.
    fn step_rows<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Vec<StepRow>, StoreError>>;
    /// Event counts of a run: (total, `error` + `run_failed`, `run_retry_requested`).
    fn event_counts<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<(i64, i64, i64), StoreError>>;
    /// The current checkpoint of a run.
    fn checkpoint<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<Checkpoint>, StoreError>>;
    /// Run counts per status, for metrics.
    fn run_counts(&self) -> BoxFuture<'_, Result<Vec<(RunStatus, i64)>, StoreError>>;
    /// A watch that changes after each commit touching `run_id`, by this process or (shared database) another one
    /// (several commits may show as one change).
    fn watch_run(&self, run_id: &str) -> tokio::sync::watch::Receiver<u64>;
    /// A watch that changes after every commit.
    fn watch_all(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// Which terminal runs retention deletes ([`RunStore::delete_expired_runs`]). Times are RFC 3339; `None` keeps
/// the runs of that status whatever their age.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Completed runs that ended before this time.
    pub completed_before: Option<String>,
    /// Failed runs that ended before this time.
    pub failed_before: Option<String>,
    /// Canceled runs that ended before this time.
    pub canceled_before: Option<String>,
    /// At most this many top-level runs (of any status) are kept: beyond it, the oldest terminal ones (by
    /// creation) are deleted. `None`: no cap.
    pub max_runs: Option<i64>,
}

impl RetentionPolicy {
    /// Whether the policy can select anything.
    pub fn is_active(&self) -> bool {
        self.completed_before.is_some()
            || self.failed_before.is_some()
            || self.canceled_before.is_some()
            || self.max_runs.is_some()
    }
}

/// What [`RunStore::reclaim_space`] did, in pages of the database file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpaceReclaimed {
    /// Whether the database gives free pages back (SQLite: `auto_vacuum` is incremental). A database created
    /// before ckp set it keeps its free pages for reuse until a `VACUUM` (docs/operations.md).
    pub enabled: bool,
    /// Free pages before.
    pub free_before: i64,
    /// Free pages after.
    pub free_after: i64,
}

/// The terminal statuses, as SQL text for `IN (...)`.
pub(crate) const TERMINAL_SQL: &str = "'completed', 'failed', 'canceled'";

/// The statuses a run is still alive in, as SQL text for `IN (...)`.
pub(crate) const LIVE_SQL: &str = "'created', 'running', 'waiting_approval', 'paused'";

/// A run's status and a page of its events ([`RunStore::status_and_events`]).
pub type StatusPage = (RunStatus, Vec<EventRow>);

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
    /// The run this one starts again with other inputs (a rerun).
    pub rerun_of: Option<String>,
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
    /// Where the run is (LangOrch's names).
    pub status: RunStatus,
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
    /// The run this one starts again with other inputs (None unless it is a rerun).
    pub rerun_of: Option<String>,
}

/// The columns [`run_row`] reads, in its order.
pub(crate) const RUN_COLUMNS: &str = "run_id, procedure_id, procedure_version, status, input_vars, output_vars,
    prompt_tokens, completion_tokens, cost_usd, started_at, ended_at, last_node_id, error_message, parent_run_id,
    trigger_type, triggered_by, project_id, case_id, created_at, updated_at, commits, rerun_of";

/// [`RUN_COLUMNS`] for a list page: `input_vars` and `output_vars` longer than the bytes in query parameter `limit`
/// (when it is not null) come back as `{"_omitted":{"bytes":N}}`, so the page never loads them. `length` is the
/// database's byte length of the text column written `{}` (`octet_length({})` on PostgreSQL).
pub(crate) fn list_run_columns(length: &str, limit: &str) -> String {
    let bounded = |col: &str| {
        let len = length.replace("{}", col);
        format!("CASE WHEN {len} > {limit} THEN '{{\"_omitted\":{{\"bytes\":' || {len} || '}}}}' ELSE {col} END")
    };
    RUN_COLUMNS.replacen(
        "input_vars, output_vars",
        &format!("{}, {}", bounded("input_vars"), bounded("output_vars")),
        1,
    )
}

/// A run from the columns of [`RUN_COLUMNS`].
pub(crate) fn run_row<R: RowSource>(r: &R) -> Result<RunRow, R::Error> {
    Ok(RunRow {
        run_id: r.text(0)?,
        procedure_id: r.text(1)?,
        procedure_version: r.text(2)?,
        status: r.parsed(3)?,
        input_vars: json_col(r.opt_text(4)?),
        output_vars: json_col(r.opt_text(5)?),
        prompt_tokens: r.int(6)?,
        completion_tokens: r.int(7)?,
        cost_usd: r.float(8)?,
        started_at: r.opt_time(9)?,
        ended_at: r.opt_time(10)?,
        last_node_id: r.opt_text(11)?,
        error_message: r.opt_text(12)?,
        parent_run_id: r.opt_text(13)?,
        trigger_type: r.opt_text(14)?,
        triggered_by: r.opt_text(15)?,
        project_id: r.opt_text(16)?,
        case_id: r.opt_text(17)?,
        created_at: r.time(18)?,
        updated_at: r.time(19)?,
        commits: r.int(20)?,
        rerun_of: r.opt_text(21)?,
    })
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
    pub status: Option<RunStatus>,
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
    /// `input_vars` and `output_vars` over this many bytes are left out of the page: they read
    /// `{"_omitted": {"bytes": N}}` (the whole run has them). `None`: every field whole.
    pub field_bytes: Option<i64>,
    /// Only runs of these projects (a run with no project is left out): what a user may see. `None`: every run.
    pub projects: Option<Vec<String>>,
    /// Only the reruns of this run.
    pub rerun_of: Option<String>,
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

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunChange {
    /// Done; the run as it is now.
    Done,
    /// A worker is executing the run; for a cancel, the request is recorded and the worker stops it.
    Executing,
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

/// The answer when a run id names no run.
pub(crate) fn run_not_found(run_id: &str) -> StoreError {
    StoreError::NotFound(format!("run {run_id} not found"))
}

/// Why a cancel of a run with `status` is refused (it ended), if it is.
pub(crate) fn cancel_refused(run_id: &str, status: RunStatus) -> Option<StoreError> {
    status.is_terminal().then(|| StoreError::Conflict(format!("Run {run_id} is already {status}")))
}

/// Why a retry of a run with `status` is refused (only failed or canceled runs are retried), if it is.
pub(crate) fn retry_refused(run_id: &str, status: RunStatus) -> Option<StoreError> {
    (!matches!(status, RunStatus::Failed | RunStatus::Canceled))
        .then(|| StoreError::Conflict(format!("Run {run_id} is {status}; only failed or canceled runs can be retried")))
}

/// The checkpoint a cancel commits: the run canceled, with nothing left to wait for.
pub(crate) fn canceled(mut cp: Checkpoint, reason: &str) -> Commit {
    cp.status = RunStatus::Canceled;
    cp.pending.clear();
    cp.callbacks.clear();
    cp.wake_at = None;
    let event = ckp_engine::Event::of_run("run_canceled", serde_json::json!({"reason": reason}));
    Commit { events: vec![event], steps: Vec::new(), checkpoint: cp }
}

/// The commit a retry writes: `fresh` with `run_retry_requested`.
pub(crate) fn retried(run_id: &str, fresh: Checkpoint) -> Commit {
    let event = ckp_engine::Event::of_run("run_retry_requested", serde_json::json!({"thread_id": run_id}));
    Commit { events: vec![event], steps: Vec::new(), checkpoint: fresh }
}

#[cfg(test)]
mod tests {
    use super::{LIVE_SQL, TERMINAL_SQL};
    use crate::status::RunStatus;

    #[test]
    fn every_status_is_either_terminal_or_live_in_the_retention_sql() {
        for s in RunStatus::ALL {
            // A new status must be placed: this match fails to compile until it is.
            match s {
                RunStatus::Created
                | RunStatus::Running
                | RunStatus::WaitingApproval
                | RunStatus::Paused
                | RunStatus::Completed
                | RunStatus::Failed
                | RunStatus::Canceled => {}
            }
            let quoted = format!("'{}'", s.as_str());
            assert_eq!(TERMINAL_SQL.contains(&quoted), s.is_terminal(), "{s}");
            assert_eq!(LIVE_SQL.contains(&quoted), !s.is_terminal(), "{s}");
        }
    }
}
