//! One execution of a run: the shared state of a run while it executes, event emission with replay
//! suppression, step records, commits, and the path walker that every thread (the top level, a loop body, a
//! parallel branch) uses.
//!
//! Concurrency: parallel branches are futures polled together inside the run; the shared state sits behind a
//! mutex that is never held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use ckp_core::procedure::{CheckpointStrategy, Kind, NodeIdx, Procedure};
use serde_json::{Map, Value};

use crate::effects::Effects;
use crate::engine::EngineConfig;
use crate::error::{EngineError, RunError};
use crate::events::{Event, EventSink};
use crate::journal::{Checkpoint, Commit, Journal, PendingApproval, PendingCallback, RunStatus, StepRecord, Usage};

/// How a node or a path ended.
#[derive(Debug)]
pub(crate) enum Flow {
    /// Go on to this node (None: the path ends).
    Next(Option<NodeIdx>),
    /// Pause for decisions.
    Pause(Vec<PendingApproval>),
    /// The node failed.
    Fail(RunError),
    /// A terminate node ended the run.
    End(Ending),
    /// The run was cancelled.
    Cancelled,
    /// Wait on a durable timer until then (the node re-executes after it).
    Sleep(chrono::DateTime<chrono::Utc>),
    /// Steps delegated to async workflows: pause until their callbacks (the node re-executes after them, taking
    /// the delegated steps' results from their records).
    Delegated(Vec<PendingCallback>),
}

/// A terminate node's verdict.
#[derive(Debug)]
pub(crate) struct Ending {
    pub failed: bool,
    pub status: String,
}

/// What one buffered event weighs for [`Runner::loop_progress`] (a small event's stored row, roughly).
const EVENT_BYTES: usize = 128;

pub(crate) type FlowResult = Result<Flow, EngineError>;
pub(crate) type BoxFlow<'a> = Pin<Box<dyn Future<Output = FlowResult> + Send + 'a>>;

/// Where a piece of work runs: the thread key (`""` for the top level, one per parallel branch) and the extra
/// payload keys its node events carry (`loop_index`, `branch_id`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Ctx {
    pub thread: String,
    pub tags: Vec<(&'static str, Value)>,
}

/// The mutable state shared by every thread of a run.
pub(crate) struct Core {
    /// The checkpoint of the start of the current top-level node (vars/visits/usage may be stale when
    /// `base_fresh` is false; they are refreshed before any commit that needs them).
    pub base: Checkpoint,
    pub buf: Vec<Event>,
    pub new_steps: Vec<(String, StepRecord)>,
    pub steps: HashMap<String, StepRecord>,
    pub emitted: HashMap<String, u64>,
    pub suppress: BTreeMap<String, u64>,
    pub visits: BTreeMap<String, u32>,
    /// Node entries of the run so far, on every thread and across resumes (the sum of `visits`).
    pub entries: u64,
    /// Events committed for the run so far, across resumes (the checkpoint's `events`).
    pub events: u64,
    /// The size of `base.vars` as JSON, measured once per top-level node when a loop first needs it.
    pub base_bytes: Option<usize>,
    pub usage: Usage,
    /// Per thread, the event count at the point it paused: events after it are not replayed on resume.
    pub pause_marks: HashMap<String, u64>,
    /// Step attempts (by step record key) just delegated to an async workflow, taken by their step.
    pub delegated: HashMap<String, PendingCallback>,
    /// Step attempts (by step record key) that wait for an agent of their channel: when to look again.
    pub agent_waits: HashMap<String, chrono::DateTime<chrono::Utc>>,
}

pub(crate) struct Runner<'e> {
    pub p: Arc<Procedure>,
    pub run_id: String,
    pub effects: &'e Effects,
    pub journal: &'e dyn Journal,
    pub sink: Option<&'e dyn EventSink>,
    pub config: &'e EngineConfig,
    pub cancelled: &'e (dyn Fn() -> bool + Send + Sync),
    /// When this execution must stop (`global_config.timeout_ms`, per execution as in LangOrch).
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
    /// The engine's per-procedure rate limiter.
    pub limiter: &'e crate::engine::RateLimiter,
    /// `rate_limiting.max_concurrent_operations`: external calls of this run in flight at once.
    pub ops_limit: Option<tokio::sync::Semaphore>,
    /// The engine, for subflows' child runs.
    pub engine: &'e crate::engine::Engine,
    pub core: Mutex<Core>,
}

impl Runner<'_> {
    pub fn core(&self) -> MutexGuard<'_, Core> {
        match self.core.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Emits an event on a thread, unless re-execution is replaying events that were already committed.
    pub fn emit(&self, ctx: &Ctx, event_type: &str, node_id: Option<&str>, step_id: Option<&str>, payload: Value) {
        let mut payload = payload;
        if let Value::Object(map) = &mut payload {
            for (k, v) in &ctx.tags {
                map.insert((*k).to_owned(), v.clone());
            }
        }
        let now = self.effects.clock.now();
        let mut core = self.core();
        let count = core.emitted.entry(ctx.thread.clone()).or_insert(0);
        *count += 1;
        let n = *count;
        if core.suppress.get(&ctx.thread).is_some_and(|s| n <= *s) {
            return;
        }
        core.buf.push(Event {
            event_type: event_type.to_owned(),
            node_id: node_id.map(str::to_owned),
            step_id: step_id.filter(|s| !s.is_empty()).map(str::to_owned),
            payload,
            created_at: now,
        });
    }

    /// Emits a run-level event (`execution_started`, `execution_resumed`, `run_completed`, `run_failed`,
    /// `run_canceled`): not part of any node's replayable
    /// sequence, so it is never counted or suppressed.
    pub fn emit_run_event(&self, event_type: &str, node_id: Option<&str>, step_id: Option<&str>, payload: Value) {
        let now = self.effects.clock.now();
        self.core().buf.push(Event {
            event_type: event_type.to_owned(),
            node_id: node_id.map(str::to_owned),
            step_id: step_id.map(str::to_owned),
            payload,
            created_at: now,
        });
    }

    /// Counts a visit of `node` on a thread; returns the visit number (1-based), the run's node entries so far and
    /// its events so far (committed and buffered), under one lock.
    pub fn visit(&self, ctx: &Ctx, node: &str) -> (u32, u64, u64) {
        let mut core = self.core();
        core.entries += 1;
        let entries = core.entries;
        let events = core.events + core.buf.len() as u64;
        let v = core.visits.entry(format!("{}|{node}", ctx.thread)).or_insert(0);
        *v += 1;
        (*v, entries, events)
    }

    /// Checks a value about to be written to variable `name` against `max_variable_bytes`.
    pub fn var_fits(&self, name: &str, value: &Value) -> Result<(), String> {
        crate::size::check_variable(name, value, self.config.max_variable_bytes)
    }

    /// Checks the run's variables against `max_state_bytes`; the error names the largest variables.
    pub fn state_fits(&self, vars: &Map<String, Value>) -> Result<(), String> {
        let bytes = crate::size::map_bytes(vars);
        let cap = self.config.max_state_bytes;
        if bytes <= cap {
            return Ok(());
        }
        Err(format!(
            "the run's variables take {bytes} bytes, over the server's max_state_bytes ({cap} bytes); the largest: {}",
            crate::size::largest(vars, 3)
        ))
    }

    /// A node's flow, or a failure when the node left the run's variables over `max_state_bytes` (checked after
    /// every top-level node).
    pub fn within_state_cap(&self, flow: Flow, vars: &Map<String, Value>, at: NodeIdx) -> Flow {
        if !matches!(flow, Flow::Next(_) | Flow::End(_)) {
            return flow;
        }
        match self.state_fits(vars) {
            Ok(()) => flow,
            Err(message) => Flow::Fail(RunError {
                message,
                node_id: Some(self.p.node(at).id.clone()),
                step_id: None,
                kind: crate::error::ErrorKind::ValidationError,
            }),
        }
    }

    /// After a loop iteration: once the buffered events outweigh the checkpoint a commit rewrites (at least
    /// `max_buffered_events` of them, and about as many bytes as the variables at the node's start), checks the
    /// variables against `max_state_bytes` and commits the events mid-node. A long loop so streams its events in
    /// bounded commits, and the checkpoints it writes cost no more than its events. The error is the state cap's.
    pub async fn loop_progress(&self, vars: &Map<String, Value>) -> Result<Result<(), String>, EngineError> {
        let due = {
            let mut core = self.core();
            let buffered = core.buf.len();
            if buffered < self.config.max_buffered_events {
                return Ok(Ok(()));
            }
            let base = match core.base_bytes {
                Some(b) => b,
                None => {
                    let b = crate::size::map_bytes(&core.base.vars);
                    core.base_bytes = Some(b);
                    b
                }
            };
            buffered.saturating_mul(EVENT_BYTES) >= base
        };
        if !due {
            return Ok(Ok(()));
        }
        if let Err(message) = self.state_fits(vars) {
            return Ok(Err(message));
        }
        self.commit_mid_node().await?;
        Ok(Ok(()))
    }

    /// The run's node-entry budget: the server's, or the procedure's when lower.
    pub fn entry_budget(&self) -> u64 {
        self.p.config.max_node_entries.map_or(self.config.max_node_entries, |n| n.min(self.config.max_node_entries))
    }

    /// The `traceparent` for a call this run makes at `node_id`/`step_id`, when the server traces runs.
    pub fn traceparent(&self, node_id: &str, step_id: &str) -> Option<String> {
        self.config.trace.as_ref().and_then(|t| t.traceparent(&self.run_id, node_id, step_id))
    }

    pub fn step_record(&self, key: &str) -> Option<StepRecord> {
        self.core().steps.get(key).cloned()
    }

    pub fn record_step(&self, key: String, record: StepRecord) {
        let mut core = self.core();
        core.steps.insert(key.clone(), record.clone());
        core.new_steps.push((key, record));
    }

    /// Commits the buffer, new step records and the checkpoint of the current top-level node (mid-node commit
    /// points: before and after an external effect).
    pub async fn commit_mid_node(&self) -> Result<(), EngineError> {
        let commit = {
            let mut core = self.core();
            let mut checkpoint = core.base.clone();
            checkpoint.replay = core.emitted.iter().map(|(k, v)| (k.clone(), *v)).collect();
            checkpoint.status = RunStatus::Running;
            Commit { events: std::mem::take(&mut core.buf), steps: std::mem::take(&mut core.new_steps), checkpoint }
        };
        self.write(commit).await
    }

    /// Commits with an explicit checkpoint (boundaries, pauses, the end).
    pub async fn commit_with(&self, checkpoint: Checkpoint) -> Result<(), EngineError> {
        let commit = {
            let mut core = self.core();
            Commit { events: std::mem::take(&mut core.buf), steps: std::mem::take(&mut core.new_steps), checkpoint }
        };
        self.write(commit).await
    }

    async fn write(&self, mut commit: Commit) -> Result<(), EngineError> {
        {
            let mut core = self.core();
            core.events += commit.events.len() as u64;
            commit.checkpoint.events = core.events;
        }
        if self.p.config.checkpoint_strategy == CheckpointStrategy::Disabled
            && !commit.checkpoint.status.is_terminal()
            && commit.checkpoint.pending.is_empty()
            && commit.checkpoint.callbacks.is_empty()
        {
            // `disabled`: the run lives in memory; events still reach the sink (A.2.11).
            if let Some(sink) = self.sink {
                sink.committed(&self.run_id, &commit.events);
            }
            let mut core = self.core();
            core.buf.clear();
            return Ok(());
        }
        let events = if self.sink.is_some() { commit.events.clone() } else { Vec::new() };
        self.journal.commit(&self.run_id, commit).await?;
        if let Some(sink) = self.sink {
            sink.committed(&self.run_id, &events);
        }
        Ok(())
    }

    /// Marks the start of a top-level node: the base checkpoint moves to it. The variables, visits and usage are
    /// snapshotted only when a commit may happen inside the node (`snapshot`); otherwise the next commit takes
    /// them from the live state at a boundary.
    pub fn begin_top_node(&self, node: NodeIdx, vars: &Map<String, Value>, snapshot: bool) {
        let id = self.p.node(node).id.clone();
        let mut core = self.core();
        core.base.node = Some(id);
        core.base_bytes = None;
        if snapshot {
            core.base.vars = vars.clone();
            core.base.visits = core.visits.clone();
            core.base.usage = core.usage;
        }
    }

    /// Records that `ctx`'s thread pauses here (before any node_paused event).
    pub fn mark_pause(&self, ctx: &Ctx) {
        let mut core = self.core();
        let n = core.emitted.get(&ctx.thread).copied().unwrap_or(0);
        core.pause_marks.entry(ctx.thread.clone()).or_insert(n);
    }

    /// Marks the end of a top-level node: its events can no longer be replayed.
    pub fn end_top_node(&self) {
        let mut core = self.core();
        core.emitted.clear();
        core.suppress.clear();
        core.pause_marks.clear();
    }

    /// True when the node (at top level) may reach a commit point before it finishes.
    pub fn may_commit_inside(&self, node: NodeIdx) -> bool {
        match &self.p.node(node).kind {
            Kind::Sequence(s) => {
                s.steps.iter().any(|st| {
                    !matches!(st.action, ckp_core::procedure::Action::Internal(_))
                        || st.wait_ms.is_some_and(|w| w > self.config.inline_wait_ms)
                        || st.wait_after_ms.is_some_and(|w| w > self.config.inline_wait_ms)
                        || st.retry.is_some()
                }) || s.handlers.iter().any(|h| {
                    h.action == ckp_core::procedure::HandlerAction::Retry
                        || h.recovery == Some(ckp_core::procedure::RecoveryStrategy::RetryNode)
                })
            }
            Kind::Logic(_) | Kind::Processing(_) | Kind::Verification(_) | Kind::Transform(_) | Kind::Terminate(_) => {
                false
            }
            _ => true,
        }
    }

    /// A cancellation or an exceeded `global_config.timeout_ms`, checked before each node and each step.
    pub fn interrupted(&self, at: NodeIdx) -> Option<Flow> {
        if (self.cancelled)() {
            return Some(Flow::Cancelled);
        }
        let deadline = self.deadline?;
        if self.effects.clock.now() < deadline {
            return None;
        }
        Some(Flow::Fail(RunError {
            message: format!(
                "Procedure execution timed out after {}ms (global_config.timeout_ms)",
                self.p.config.timeout_ms.unwrap_or(0)
            ),
            node_id: Some(self.p.node(at).id.clone()),
            step_id: None,
            kind: crate::error::ErrorKind::Timeout,
        }))
    }

    /// [`Runner::interrupted`] for a node already known by reference.
    pub fn interrupted_at(&self, node: &ckp_core::procedure::Node) -> Option<Flow> {
        self.p.find(&node.id).and_then(|i| self.interrupted(i))
    }

    /// Walks a path from `start` until `stop_at` (a loop node or a parallel join) or a node with no successor.
    pub fn run_path<'a>(
        &'a self,
        ctx: &'a Ctx,
        vars: &'a mut Map<String, Value>,
        start: NodeIdx,
        stop_at: Option<NodeIdx>,
    ) -> BoxFlow<'a> {
        Box::pin(async move {
            let mut current = start;
            let mut hops: u64 = 0;
            loop {
                if Some(current) == stop_at {
                    return Ok(Flow::Next(None));
                }
                hops += 1;
                if hops > self.config.max_hops {
                    let node = self.p.node(current);
                    return Ok(Flow::Fail(RunError {
                        message: format!(
                            "path exceeded {} node visits without ending; check for a cycle that never exits",
                            self.config.max_hops
                        ),
                        node_id: Some(node.id.clone()),
                        step_id: None,
                        kind: crate::error::ErrorKind::InternalError,
                    }));
                }
                if let Some(flow) = self.interrupted(current) {
                    return Ok(flow);
                }
                match self.exec_node(ctx, vars, current).await? {
                    Flow::Next(Some(n)) => current = n,
                    Flow::Next(None) => return Ok(Flow::Next(None)),
                    other => return Ok(other),
                }
            }
        })
    }
}
