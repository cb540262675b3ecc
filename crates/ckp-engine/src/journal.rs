//! Durability: the checkpoint format, step records, commits, and the [`Journal`] trait a store implements.
//!
//! A commit is atomic: its events, step records and checkpoint become durable together or not at all. The
//! checkpoint always describes the start of the top-level node being executed (or the next one), so recovery
//! re-executes that node: internal work is recomputed, committed step results are served from the step records
//! (never called again), and events already committed are recognised by their count per thread and not emitted
//! twice. [`MemoryJournal`] is the in-process implementation for tests and `ckp run`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::effects::BoxFuture;
use crate::error::{EngineError, RunError, StepError};
use crate::events::Event;

/// The checkpoint format this engine writes and reads.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// A run's status, with LangOrch's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created, not started.
    Created,
    /// Executing (or runnable after a crash).
    Running,
    /// Paused for a human decision.
    WaitingApproval,
    /// Paused on a durable timer or a callback.
    Paused,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled.
    Canceled,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Created,
        RunStatus::Running,
        RunStatus::WaitingApproval,
        RunStatus::Paused,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Canceled,
    ];

    /// True for completed, failed and canceled.
    pub fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Failed | RunStatus::Canceled)
    }

    /// LangOrch's name, as the API shows it and the stores write it (the same as its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Created => "created",
            RunStatus::Running => "running",
            RunStatus::WaitingApproval => "waiting_approval",
            RunStatus::Paused => "paused",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Canceled => "canceled",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no run status (a query filter, a row written by something else than ckp).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a run status")]
pub struct UnknownRunStatus(pub String);

impl std::str::FromStr for RunStatus {
    type Err = UnknownRunStatus;

    /// The exact names of [`RunStatus::as_str`] (what a store wrote).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "created" => RunStatus::Created,
            "running" => RunStatus::Running,
            "waiting_approval" => RunStatus::WaitingApproval,
            "paused" => RunStatus::Paused,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "canceled" => RunStatus::Canceled,
            _ => return Err(UnknownRunStatus(s.to_owned())),
        })
    }
}

/// LLM usage of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Estimated cost in USD.
    pub cost_usd: f64,
}

/// An approval the run waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// Decision key: thread, node and visit (a loop that comes back asks again, A.2.8).
    pub key: String,
    /// The approval node.
    pub node_id: String,
    /// Its name.
    pub node_name: String,
    /// Rendered prompt.
    pub prompt: String,
    /// approve_reject | select_option | provide_input.
    pub decision_type: String,
    /// Rendered options.
    pub options: Value,
    /// Rendered context data.
    pub context_data: Value,
    /// Expiry.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What expiry does.
    pub timeout_action: Option<String>,
    /// standard | manager | executive.
    pub approval_level: Option<String>,
    /// Who may decide (`role:<role>`, `user:<username>`); empty: the role `approval_level` asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Escalation contact.
    pub escalation_contact: Option<String>,
}

/// A step delegated to an async workflow, waiting for its callback (CKP.md A.2.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCallback {
    /// The step record key: the callback writes the step's result there, so re-execution takes it from the record
    /// and never dispatches the workflow again.
    pub key: String,
    /// The node.
    pub node_id: String,
    /// The step.
    pub step_id: String,
    /// The step's action.
    pub action: String,
    /// When the workflow accepted the step.
    pub delegated_at: chrono::DateTime<chrono::Utc>,
    /// When the run fails for want of a callback (`workflow_callback_timeout_minutes`).
    pub timeout_at: chrono::DateTime<chrono::Utc>,
    /// The timeout in minutes, for the error message.
    pub timeout_minutes: f64,
}

/// The public id of an approval (LangOrch's `approval_id`): a UUID derived from the run that asks and its key, so
/// events, re-execution and the API agree on it without storing a mapping.
pub fn approval_id(run_id: &str, key: &str) -> String {
    let (run, key) = approval_origin(run_id, key);
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("ckp:approval:{run}/{key}").as_bytes()).to_string()
}

/// The run that asks and its own key, for a key that routes through subflow children (`child>key`).
pub fn approval_origin<'a>(run_id: &'a str, key: &'a str) -> (&'a str, &'a str) {
    match key.rsplit_once('>') {
        Some((route, own)) => (route.rsplit('>').next().unwrap_or(route), own),
        None => (run_id, key),
    }
}

/// The durable state of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`CHECKPOINT_FORMAT`] when written.
    pub format: u32,
    /// Procedure id.
    pub procedure_id: String,
    /// Procedure version.
    pub procedure_version: String,
    /// Status.
    pub status: RunStatus,
    /// Variables at the start of `node`.
    pub vars: Map<String, Value>,
    /// The top-level node to execute next (None before start or after the end).
    pub node: Option<String>,
    /// Visit counters (`thread|node` → visits) at the start of `node`.
    pub visits: BTreeMap<String, u32>,
    /// Events of `node` already committed, per thread: re-execution does not emit them again.
    pub replay: BTreeMap<String, u64>,
    /// Approval decisions by key.
    pub decisions: BTreeMap<String, Value>,
    /// LLM usage at the start of `node`.
    pub usage: Usage,
    /// Approvals the run waits for (several when parallel branches each pause).
    pub pending: Vec<PendingApproval>,
    /// A durable timer the run waits for.
    pub wake_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The run's outputs, once completed.
    pub outputs: Option<Map<String, Value>>,
    /// The error, once failed (or on the recovery path).
    pub error: Option<RunError>,
    /// `execution_started` was emitted.
    pub started: bool,
    /// The run is on the `global_config.on_failure` path.
    pub recovering: bool,
    /// When the run started executing.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the next execution resumes (`approval_resume`); emitted once as `execution_resumed`, even if the
    /// process dies between the decision and the resumption.
    #[serde(default)]
    pub resume_reason: Option<String>,
    /// Procedure ids of the parents of a subflow's child run (the recursion guard).
    #[serde(default)]
    pub call_stack: Vec<String>,
    /// Async workflow steps whose callbacks the run waits for (status `paused`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks: Vec<PendingCallback>,
    /// Events the engine has committed for the run so far (the `max_events_per_run` budget).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub events: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the journal remembers of one external call (or one non-deterministic internal value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StepRecord {
    /// The intent is committed; the result is not (yet).
    Started {
        /// The idempotency key sent to the executor.
        idempotency_key: String,
    },
    /// The call returned a value.
    Completed {
        /// The result.
        result: Value,
    },
    /// The call failed.
    Failed {
        /// The error.
        error: StepError,
    },
}

/// One atomic write.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// New events, in order.
    pub events: Vec<Event>,
    /// New or updated step records by key.
    pub steps: Vec<(String, StepRecord)>,
    /// The new checkpoint.
    pub checkpoint: Checkpoint,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The last committed checkpoint.
    pub checkpoint: Checkpoint,
    /// All step records.
    pub steps: HashMap<String, StepRecord>,
}

/// Durable storage of runs.
pub trait Journal: Send + Sync {
    /// The run's last committed state.
    fn load(&self, run_id: &str) -> BoxFuture<'_, Result<Option<Stored>, EngineError>>;
    /// Writes `commit` atomically.
    fn commit(&self, run_id: &str, commit: Commit) -> BoxFuture<'_, Result<(), EngineError>>;
}

/// Where an injected crash happens relative to a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The commit is lost (the process died before it).
    Before,
    /// The commit is durable, then the process dies.
    After,
}

#[derive(Debug, Default)]
struct MemRun {
    checkpoint: Option<Checkpoint>,
    steps: HashMap<String, StepRecord>,
    events: Vec<Event>,
    commits: usize,
}

/// An in-memory journal, with crash injection for tests.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    runs: Mutex<HashMap<String, MemRun>>,
    crash: Mutex<Option<(usize, CrashPoint)>>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the `n`-th commit from now (1-based, across runs) fail as a crash at `point`.
    pub fn crash_at(&self, n: usize, point: CrashPoint) {
        if let Ok(mut c) = self.crash.lock() {
            *c = Some((n, point));
        }
    }

    /// The committed events of a run.
    pub fn events(&self, run_id: &str) -> Vec<Event> {
        self.runs.lock().map(|r| r.get(run_id).map(|r| r.events.clone()).unwrap_or_default()).unwrap_or_default()
    }

    /// The number of commits of a run.
    pub fn commit_count(&self, run_id: &str) -> usize {
        self.runs.lock().map(|r| r.get(run_id).map_or(0, |r| r.commits)).unwrap_or(0)
    }

    /// The run's last checkpoint.
    pub fn checkpoint(&self, run_id: &str) -> Option<Checkpoint> {
        self.runs.lock().ok()?.get(run_id)?.checkpoint.clone()
    }

    fn take_crash(&self) -> Option<CrashPoint> {
        let mut c = self.crash.lock().ok()?;
        let (n, point) = (*c)?;
        if n <= 1 {
            *c = None;
            Some(point)
        } else {
            *c = Some((n - 1, point));
            None
        }
    }
}

impl Journal for MemoryJournal {
    fn load(&self, run_id: &str) -> BoxFuture<'_, Result<Option<Stored>, EngineError>> {
        let result = self.runs.lock().map_err(|_| EngineError::Journal("poisoned".into())).map(|runs| {
            runs.get(run_id)
                .and_then(|r| r.checkpoint.clone().map(|checkpoint| Stored { checkpoint, steps: r.steps.clone() }))
        });
        Box::pin(async move { result })
    }

    fn commit(&self, run_id: &str, commit: Commit) -> BoxFuture<'_, Result<(), EngineError>> {
        let crash = self.take_crash();
        let result = if crash == Some(CrashPoint::Before) {
            Err(EngineError::Journal("injected crash before commit".into()))
        } else {
            match self.runs.lock() {
                Ok(mut runs) => {
                    let run = runs.entry(run_id.to_owned()).or_default();
                    run.events.extend(commit.events);
                    run.steps.extend(commit.steps);
                    run.checkpoint = Some(commit.checkpoint);
                    run.commits += 1;
                    if crash == Some(CrashPoint::After) {
                        Err(EngineError::Journal("injected crash after commit".into()))
                    } else {
                        Ok(())
                    }
                }
                Err(_) => Err(EngineError::Journal("poisoned".into())),
            }
        };
        Box::pin(async move { result })
    }
}
