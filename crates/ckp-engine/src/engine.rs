//! The engine's public face: start a run, resume it from its last committed checkpoint, apply an approval
//! decision, cancel. The top-level loop lives here: it walks the graph node by node, moves the checkpoint at node
//! boundaries, routes failures (error handlers, `global_config.on_failure`) and writes the final commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ckp_core::procedure::{ExecutionMode, NodeIdx, Procedure};
use serde_json::{Map, Value, json};

use crate::effects::Effects;
use crate::error::{EngineError, ErrorKind, RunError};
use crate::events::{Event, EventSink, payload};
use crate::journal::{
    CHECKPOINT_FORMAT, Checkpoint, Commit, Journal, PendingApproval, PendingCallback, RunStatus, Stored, Usage,
};
use crate::run::{Core, Ctx, Flow, Runner};

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Waits up to this long happen in-process; longer ones are durable timers.
    pub inline_wait_ms: u64,
    /// Most node visits on one path before the run is failed as a runaway cycle.
    pub max_hops: u64,
    /// Most node entries of one run, loop iterations and revisits included, across resumes (the server's
    /// `max_node_entries`; a procedure may ask for fewer): a cycle that never exits fails the run at this budget
    /// instead of filling the disk with its events.
    pub max_node_entries: u64,
    /// Most events one run records (the server's `max_events_per_run`): the node entered past it fails the run.
    pub max_events_per_run: u64,
    /// Most bytes one variable may take as JSON (`max_variable_bytes`): a step writing more fails with an error
    /// naming the variable, and the variable keeps its previous value.
    pub max_variable_bytes: usize,
    /// Most bytes a run's variables may take together as JSON (`max_state_bytes`), checked after each top-level
    /// node and at a loop's commits.
    pub max_state_bytes: usize,
    /// Commit at the next node boundary once this many events are buffered (so long internal runs show progress).
    pub max_buffered_events: usize,
    /// Commit at the next node boundary once the oldest buffered event is this old (so slow internal runs show
    /// progress live; fast runs finish before and commit once).
    pub max_buffer_age_ms: u64,
    /// Answer every external step with a mock result (`ckp run --mock-external`), as `mock_external_calls` does.
    pub mock_external: bool,
    /// A run paused on an async workflow fails when its callback has not come after this many minutes
    /// (`workflow_callback_timeout_minutes`).
    pub callback_timeout_minutes: f64,
    /// LLM prices for cost and budgets (defaults merged with `llm_prices`).
    pub prices: Arc<crate::pricing::PriceTable>,
    /// The server's artifacts folder (absolute): artifact URIs naming files under it become `/api/artifacts/...`
    /// (langorch.md B §5.12).
    pub artifacts_dir: Option<std::path::PathBuf>,
    /// How long a step attempt waits for an agent of its channel to come online when its agents are all offline
    /// (`agent_wait_ms`; 0 fails the step at once). The wait is a durable timer that looks again every 2 s: no
    /// worker is held meanwhile.
    pub agent_wait_ms: u64,
    /// Trace context for outbound calls (None: runs are not traced, nothing is asked).
    pub trace: Option<Arc<dyn crate::effects::TraceContext>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            inline_wait_ms: 1_000,
            max_hops: 100_000,
            max_node_entries: 1_000_000,
            max_events_per_run: 5_000_000,
            max_variable_bytes: 16 << 20,
            max_state_bytes: 64 << 20,
            max_buffered_events: 512,
            max_buffer_age_ms: 200,
            mock_external: false,
            callback_timeout_minutes: 60.0,
            prices: Arc::new(crate::pricing::PriceTable::default()),
            artifacts_dir: None,
            agent_wait_ms: 60_000,
            trace: None,
        }
    }
}

/// How an execution ended for now.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// The run completed; its outputs (the final variables).
    Completed {
        /// Outputs.
        outputs: Map<String, Value>,
    },
    /// The run failed.
    Failed {
        /// Why.
        error: RunError,
    },
    /// The run was cancelled.
    Cancelled,
    /// The run waits for these decisions.
    WaitingApproval(Vec<PendingApproval>),
    /// The run waits for the callbacks of async workflows (status `paused`).
    AwaitingCallback(Vec<PendingCallback>),
    /// The run waits for a durable timer.
    Sleeping {
        /// When to resume it.
        until: chrono::DateTime<chrono::Utc>,
    },
}

/// A human decision on a pending approval.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The approval key ([`PendingApproval::key`]); None: the only pending approval.
    pub key: Option<String>,
    /// `approved`/`approve`, `rejected`/`reject`, `timed_out`, an option, or an input value.
    pub value: Value,
    /// Who decided.
    pub decided_by: Option<String>,
    /// Why.
    pub comment: Option<String>,
}

/// A token bucket per procedure for `global_config.rate_limiting.max_requests_per_minute` (in-process, as in
/// LangOrch): each sequence, LLM, loop and parallel node takes a token, waiting up to 5 s for one.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, chrono::DateTime<chrono::Utc>)>>,
}

/// The longest a node waits for a rate-limit token before failing.
pub const RATE_LIMIT_MAX_WAIT_MS: u64 = 5_000;

impl RateLimiter {
    /// Takes a token for `procedure` at `now`; returns how long to wait first (None: too long, fail).
    pub fn acquire(&self, procedure: &str, per_minute: u32, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
        let Ok(mut buckets) = self.buckets.lock() else { return Some(0) };
        let capacity = f64::from(per_minute.max(1));
        let rate_per_ms = capacity / 60_000.0;
        let (tokens, at) = buckets.entry(procedure.to_owned()).or_insert((capacity, now));
        let elapsed = (now - *at).num_milliseconds().max(0) as f64;
        *tokens = (*tokens + elapsed * rate_per_ms).min(capacity);
        *at = now;
        *tokens -= 1.0;
        if *tokens >= 0.0 {
            return Some(0);
        }
        let wait = (-*tokens / rate_per_ms).ceil() as u64;
        if wait > RATE_LIMIT_MAX_WAIT_MS {
            *tokens += 1.0;
            return None;
        }
        Some(wait)
    }
}

/// Where subflows find their child procedures.
pub trait Procedures: Send + Sync {
    /// The procedure `id` at `version` (None: the latest).
    fn find<'a>(
        &'a self,
        id: &'a str,
        version: Option<&'a str>,
    ) -> crate::effects::BoxFuture<'a, Option<Arc<Procedure>>>;
}

/// A fixed set of procedures; the latest version of an id is the last one added.
#[derive(Debug, Default, Clone)]
pub struct ProcedureSet(pub Vec<Arc<Procedure>>);

impl Procedures for ProcedureSet {
    fn find<'a>(
        &'a self,
        id: &'a str,
        version: Option<&'a str>,
    ) -> crate::effects::BoxFuture<'a, Option<Arc<Procedure>>> {
        let found = self.0.iter().rev().find(|p| p.id == id && version.is_none_or(|v| p.version == v)).cloned();
        Box::pin(async move { found })
    }
}

/// Executes procedures durably.
pub struct Engine {
    journal: Arc<dyn Journal>,
    effects: Effects,
    sink: Option<Arc<dyn EventSink>>,
    config: EngineConfig,
    cancelled: Mutex<HashSet<String>>,
    stopping: std::sync::atomic::AtomicBool,
    limiter: RateLimiter,
    procedures: Option<Arc<dyn Procedures>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("effects", &self.effects).field("config", &self.config).finish()
    }
}

impl Engine {
    /// An engine on `journal` with `effects`.
    pub fn new(journal: Arc<dyn Journal>, effects: Effects) -> Self {
        Engine {
            journal,
            effects,
            sink: None,
            config: EngineConfig::default(),
            cancelled: Mutex::new(HashSet::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            limiter: RateLimiter::default(),
            procedures: None,
        }
    }

    /// Sends committed events to `sink`.
    pub fn with_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Lets subflow nodes find their child procedures.
    pub fn with_procedures(mut self, procedures: Arc<dyn Procedures>) -> Self {
        self.procedures = Some(procedures);
        self
    }

    /// The child procedure of a subflow.
    pub(crate) async fn find_procedure(&self, id: &str, version: Option<&str>) -> Option<Arc<Procedure>> {
        self.procedures.as_ref()?.find(id, version).await
    }

    /// Creates (first time) or continues (afterwards) a subflow's child run.
    pub(crate) fn run_child<'a>(
        &'a self,
        p: Arc<Procedure>,
        run_id: String,
        inputs: Map<String, Value>,
        call_stack: Vec<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<RunOutcome, EngineError>> + Send + 'a>> {
        Box::pin(async move {
            if self.journal.load(&run_id).await?.is_none() {
                let parent = run_id.rsplit_once(':').map(|(parent, _)| parent);
                let origin = Origin::Child { parent_run_id: parent, call_stack };
                let commit = first_commit(&p, &run_id, &inputs, origin, self.effects.clock.now());
                self.write(&run_id, commit).await?;
            }
            let stored = self.load(&run_id).await?;
            self.drive(p, &run_id, stored).await
        })
    }

    /// Replaces the configuration.
    pub fn with_config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Asks a run to stop at its next step boundary.
    pub fn cancel(&self, run_id: &str) {
        if let Ok(mut c) = self.cancelled.lock() {
            c.insert(run_id.to_owned());
        }
    }

    /// Forgets a cancel request once the run has stopped (the set would otherwise grow with every cancel).
    pub fn forget_cancel(&self, run_id: &str) {
        if let Ok(mut c) = self.cancelled.lock() {
            c.remove(run_id);
        }
    }

    /// Graceful shutdown: every execution commits its checkpoint at the next top-level node boundary and returns
    /// [`RunOutcome::Sleeping`] with a wake-up time of now, so its worker releases the run to the queue.
    pub fn stop_at_next_node(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_cancelled(&self, run_id: &str) -> bool {
        self.cancelled.lock().map(|c| c.contains(run_id)).unwrap_or(false)
    }

    /// The checkpoint of a new run: schema defaults, inputs, and the built-ins `run_id` and `procedure_id`.
    pub fn new_checkpoint(p: &Procedure, run_id: &str, inputs: &Map<String, Value>) -> Checkpoint {
        let mut vars = ckp_core::inputs::initial_vars(p, inputs);
        vars.entry("run_id").or_insert_with(|| Value::from(run_id));
        vars.entry("procedure_id").or_insert_with(|| Value::from(p.id.as_str()));
        Checkpoint {
            format: CHECKPOINT_FORMAT,
            procedure_id: p.id.clone(),
            procedure_version: p.version.clone(),
            status: RunStatus::Created,
            vars,
            node: Some(p.node(p.start).id.clone()),
            visits: BTreeMap::new(),
            replay: BTreeMap::new(),
            decisions: BTreeMap::new(),
            usage: Usage::default(),
            pending: Vec::new(),
            wake_at: None,
            outputs: None,
            error: None,
            started: false,
            recovering: false,
            started_at: None,
            resume_reason: None,
            call_stack: Vec::new(),
            callbacks: Vec::new(),
            events: 0,
        }
    }

    /// Creates and executes a run. Inputs are checked against `variables_schema` first; invalid inputs fail the
    /// run with every problem in the error message.
    pub async fn start(
        &self,
        p: Arc<Procedure>,
        run_id: &str,
        inputs: Map<String, Value>,
    ) -> Result<RunOutcome, EngineError> {
        if let Some(error) = self.create(&p, run_id, inputs).await? {
            return Ok(RunOutcome::Failed { error });
        }
        self.resume(p, run_id).await
    }

    /// Creates a run without executing it (the server: a worker resumes it). Returns the error when the inputs
    /// are invalid, in which case the run is created already failed.
    pub async fn create(
        &self,
        p: &Procedure,
        run_id: &str,
        inputs: Map<String, Value>,
    ) -> Result<Option<RunError>, EngineError> {
        let mut commit = first_commit(p, run_id, &inputs, Origin::Top, self.effects.clock.now());
        if let Err(errors) = ckp_core::inputs::check_inputs(p, &inputs) {
            let list: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let error = RunError {
                message: format!("Invalid input_vars: {}", list.join("; ")),
                node_id: None,
                step_id: None,
                kind: ErrorKind::ValidationError,
            };
            commit.checkpoint.status = RunStatus::Failed;
            commit.checkpoint.error = Some(error.clone());
            commit.events.push(self.event("error", None, None, json!({"message": error.message, "errors": errors})));
            commit.events.push(self.event("run_failed", None, None, json!({"error": error.to_value()})));
            self.write(run_id, commit).await?;
            return Ok(Some(error));
        }
        commit.checkpoint.status = RunStatus::Running;
        self.write(run_id, commit).await?;
        Ok(None)
    }

    /// Continues a run from its last committed checkpoint (after a crash, a timer, or to read its outcome).
    pub async fn resume(&self, p: Arc<Procedure>, run_id: &str) -> Result<RunOutcome, EngineError> {
        let stored = self.load(run_id).await?;
        self.drive(p, run_id, stored).await
    }

    /// [`Engine::resume`] from a state the caller has just loaded from this engine's journal (a worker reads it to
    /// find the procedure; reading it twice would cost a query).
    pub async fn resume_loaded(
        &self,
        p: Arc<Procedure>,
        run_id: &str,
        stored: Stored,
    ) -> Result<RunOutcome, EngineError> {
        let stored = Self::readable(run_id, stored)?;
        self.drive(p, run_id, stored).await
    }

    /// Records a decision on a pending approval and continues the run.
    pub async fn decide(&self, p: Arc<Procedure>, run_id: &str, decision: Decision) -> Result<RunOutcome, EngineError> {
        let still_pending = self.record_decision(run_id, decision).await?;
        if !still_pending.is_empty() {
            return Ok(RunOutcome::WaitingApproval(still_pending));
        }
        self.resume(p, run_id).await
    }

    /// Records a decision in one commit without executing anything (a worker resumes the run). Returns the
    /// approvals still pending; when none is, the run is runnable (`approval_resume`). A decision for a subflow's
    /// child is recorded on the child run first. Stores with transactions use [`apply_decision`] inside one
    /// transaction instead, so concurrent decisions cannot both win.
    pub async fn record_decision(&self, run_id: &str, decision: Decision) -> Result<Vec<PendingApproval>, EngineError> {
        let mut stored = self.load(run_id).await?;
        let applied = apply_decision(&mut stored.checkpoint, run_id, decision, self.effects.clock.now())?;
        if let Some((child_run, child_decision)) = applied.child {
            Box::pin(self.record_decision(&child_run, child_decision)).await?;
        }
        self.write(run_id, Commit { events: applied.events, steps: Vec::new(), checkpoint: stored.checkpoint }).await?;
        Ok(applied.still_pending)
    }

    /// Applies expiry to the run's pending approvals whose `expires_at` has passed (A.2.8): each gets the decision
    /// `timed_out`, which routes by `timeout_action`, and the run resumes. The server's scheduler calls this; a
    /// run with nothing due is returned as it is.
    pub async fn expire_due(&self, p: Arc<Procedure>, run_id: &str) -> Result<RunOutcome, EngineError> {
        let stored = self.load(run_id).await?;
        let due = due_expiries(&stored.checkpoint, self.effects.clock.now());
        if due.is_empty() {
            return self.drive(p, run_id, stored).await;
        }
        let mut outcome = RunOutcome::WaitingApproval(stored.checkpoint.pending.clone());
        for d in due {
            outcome = self.decide(p.clone(), run_id, d).await?;
        }
        Ok(outcome)
    }

    async fn load(&self, run_id: &str) -> Result<Stored, EngineError> {
        let stored = self.journal.load(run_id).await?.ok_or_else(|| EngineError::RunNotFound(run_id.to_owned()))?;
        Self::readable(run_id, stored)
    }

    /// The stored state, if this engine reads its checkpoint format.
    fn readable(run_id: &str, stored: Stored) -> Result<Stored, EngineError> {
        if stored.checkpoint.format != CHECKPOINT_FORMAT {
            return Err(EngineError::CheckpointFormat {
                run_id: run_id.to_owned(),
                found: stored.checkpoint.format,
                supported: CHECKPOINT_FORMAT,
            });
        }
        Ok(stored)
    }

    fn event(&self, event_type: &str, node_id: Option<&str>, step_id: Option<&str>, payload: Value) -> Event {
        Event {
            event_type: event_type.to_owned(),
            node_id: node_id.map(str::to_owned),
            step_id: step_id.map(str::to_owned),
            payload,
            created_at: self.effects.clock.now(),
        }
    }

    async fn write(&self, run_id: &str, commit: Commit) -> Result<(), EngineError> {
        let events = if self.sink.is_some() { commit.events.clone() } else { Vec::new() };
        self.journal.commit(run_id, commit).await?;
        if let Some(sink) = &self.sink {
            sink.committed(run_id, &events);
        }
        Ok(())
    }

    async fn drive(&self, p: Arc<Procedure>, run_id: &str, stored: Stored) -> Result<RunOutcome, EngineError> {
        let mut cp = stored.checkpoint;
        if cp.procedure_id != p.id || cp.procedure_version != p.version {
            return Err(EngineError::InvalidState {
                run_id: run_id.to_owned(),
                message: format!(
                    "the run belongs to procedure {} version {}, not {} version {}",
                    cp.procedure_id, cp.procedure_version, p.id, p.version
                ),
            });
        }
        let resume_reason = cp.resume_reason.take();
        match cp.status {
            RunStatus::Completed => return Ok(RunOutcome::Completed { outputs: cp.outputs.unwrap_or_default() }),
            RunStatus::Failed => {
                return Ok(RunOutcome::Failed {
                    error: cp.error.unwrap_or_else(|| RunError {
                        message: "run failed".into(),
                        node_id: None,
                        step_id: None,
                        kind: ErrorKind::InternalError,
                    }),
                });
            }
            RunStatus::Canceled => return Ok(RunOutcome::Cancelled),
            RunStatus::WaitingApproval => return Ok(RunOutcome::WaitingApproval(cp.pending)),
            RunStatus::Paused if !cp.callbacks.is_empty() => return Ok(RunOutcome::AwaitingCallback(cp.callbacks)),
            _ => {}
        }
        if let Some(until) = cp.wake_at
            && until > self.effects.clock.now()
        {
            return Ok(RunOutcome::Sleeping { until });
        }
        cp.wake_at = None;
        cp.status = RunStatus::Running;
        let cancelled_check = || self.is_cancelled(run_id);
        // The live variables move out of the checkpoint: the base is refreshed from them (`begin_top_node` with a
        // snapshot, or at the boundary) before any commit reads it, so it need not hold a copy meanwhile.
        let mut vars = std::mem::take(&mut cp.vars);
        // The replay counts apply to this execution's first node only; the base must not carry them further.
        let replay = std::mem::take(&mut cp.replay);
        let core = Core {
            suppress: replay,
            entries: cp.visits.values().map(|&v| u64::from(v)).sum(),
            events: cp.events,
            base_bytes: None,
            visits: cp.visits.clone(),
            usage: cp.usage,
            base: cp,
            buf: Vec::new(),
            new_steps: Vec::new(),
            steps: stored.steps,
            emitted: HashMap::new(),
            pause_marks: HashMap::new(),
            delegated: HashMap::new(),
            agent_waits: HashMap::new(),
        };
        let runner = Runner {
            p: p.clone(),
            run_id: run_id.to_owned(),
            effects: &self.effects,
            journal: self.journal.as_ref(),
            sink: self.sink.as_deref(),
            config: &self.config,
            cancelled: &cancelled_check,
            deadline: p.config.timeout_ms.map(|ms| {
                self.effects.clock.now() + chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2))
            }),
            limiter: &self.limiter,
            engine: self,
            ops_limit: p
                .config
                .rate_limit
                .and_then(|r| r.max_concurrent)
                .map(|n| tokio::sync::Semaphore::new(usize::try_from(n.max(1)).unwrap_or(1))),
            core: std::sync::Mutex::new(core),
        };
        let top = Ctx::default();
        let Some(mut cursor) = runner.core().base.node.as_deref().and_then(|id| p.find(id)) else {
            return Err(EngineError::InvalidState {
                run_id: run_id.to_owned(),
                message: "the checkpoint names no node of this procedure version".into(),
            });
        };
        {
            let entry = p.node(cursor).id.clone();
            let started = runner.core().base.started;
            if !started {
                let now = self.effects.clock.now();
                {
                    let mut core = runner.core();
                    core.base.started = true;
                    core.base.started_at = Some(now);
                }
                if p.config.execution_mode == ExecutionMode::ValidationOnly {
                    return self.finish_validation_only(&runner, vars).await;
                }
                runner.emit_run_event(
                    "execution_started",
                    None,
                    None,
                    payload([("entry_node_id", entry.into()), ("resume_reason", Value::Null)]),
                );
            } else if let Some(reason) = resume_reason {
                runner.emit_run_event(
                    "execution_resumed",
                    None,
                    None,
                    payload([("entry_node_id", entry.into()), ("resume_reason", reason.as_str().into())]),
                );
            }
        }
        loop {
            let snapshot = runner.may_commit_inside(cursor);
            runner.begin_top_node(cursor, &vars, snapshot);
            let flow = match runner.interrupted(cursor) {
                Some(flow) => flow,
                None => runner.exec_node(&top, &mut vars, cursor).await?,
            };
            let flow = runner.within_state_cap(flow, &vars, cursor);
            match flow {
                Flow::Next(Some(next)) => {
                    runner.end_top_node();
                    let previous = cursor;
                    cursor = next;
                    let (buffered, oldest) = {
                        let core = runner.core();
                        (core.buf.len(), core.buf.first().map(|e| e.created_at))
                    };
                    let stale = oldest.is_some_and(|t| {
                        (self.effects.clock.now() - t).num_milliseconds()
                            >= i64::try_from(self.config.max_buffer_age_ms).unwrap_or(i64::MAX)
                    });
                    let strategy_commit = p.node(previous).is_checkpoint;
                    let stopping = self.stopping.load(std::sync::atomic::Ordering::SeqCst);
                    if buffered >= self.config.max_buffered_events || strategy_commit || stopping || stale {
                        runner.begin_top_node(cursor, &vars, true);
                        let checkpoint = runner.core().base.clone();
                        runner.commit_with(checkpoint).await?;
                    }
                    if stopping {
                        return Ok(RunOutcome::Sleeping { until: self.effects.clock.now() });
                    }
                }
                Flow::Next(None) => return self.finish(&runner, vars).await,
                Flow::End(ending) => {
                    if ending.failed {
                        let recovered = {
                            let core = runner.core();
                            core.base.error.clone().filter(|_| core.base.recovering)
                        };
                        let error = recovered.unwrap_or(RunError {
                            message: "Execution terminated with failed status".into(),
                            node_id: Some(p.node(cursor).id.clone()),
                            step_id: None,
                            kind: ErrorKind::InternalError,
                        });
                        return self.fail(&runner, vars, error).await;
                    }
                    let _ = ending.status;
                    return self.finish(&runner, vars).await;
                }
                Flow::Pause(approvals) => return self.pause(&runner, approvals).await,
                Flow::Delegated(callbacks) => return self.await_callbacks(&runner, callbacks).await,
                Flow::Fail(error) => {
                    let recovering = runner.core().base.recovering;
                    match p.config.on_failure.filter(|_| !recovering) {
                        Some(recovery) => {
                            runner.end_top_node();
                            vars.insert("last_error".into(), error.to_value());
                            {
                                let mut core = runner.core();
                                core.base.recovering = true;
                                core.base.error = Some(error);
                            }
                            cursor = recovery;
                        }
                        None => return self.fail(&runner, vars, error).await,
                    }
                }
                Flow::Cancelled => return self.cancelled(&runner, vars).await,
                Flow::Sleep(until) => {
                    let cp = {
                        let core = runner.core();
                        let mut cp = core.base.clone();
                        cp.replay = core.emitted.iter().map(|(k, v)| (k.clone(), *v)).collect();
                        cp.status = RunStatus::Paused;
                        cp.wake_at = Some(until);
                        cp
                    };
                    runner.commit_with(cp).await?;
                    return Ok(RunOutcome::Sleeping { until });
                }
            }
        }
    }

    fn terminal_checkpoint(runner: &Runner<'_>, vars: Map<String, Value>, status: RunStatus) -> Checkpoint {
        let mut core = runner.core();
        // The run ends here: its node-start snapshot is not needed again, so it is not copied.
        core.base.vars = Map::new();
        let mut cp = core.base.clone();
        cp.vars = vars;
        cp.visits = core.visits.clone();
        cp.usage = core.usage;
        cp.replay.clear();
        cp.status = status;
        cp.node = None;
        cp.pending.clear();
        cp.callbacks.clear();
        cp
    }

    async fn finish(&self, runner: &Runner<'_>, vars: Map<String, Value>) -> Result<RunOutcome, EngineError> {
        let recovering = runner.core().base.recovering;
        let mut body = payload([("outputs", Value::Object(vars.clone()))]);
        if recovering && let (Value::Object(m), Some(of)) = (&mut body, runner.p.config.on_failure) {
            m.insert("recovered_via".into(), runner.p.node(of).id.clone().into());
        }
        runner.emit_run_event("run_completed", None, None, body);
        let mut cp = Self::terminal_checkpoint(runner, vars.clone(), RunStatus::Completed);
        cp.outputs = Some(vars.clone());
        runner.commit_with(cp).await?;
        Ok(RunOutcome::Completed { outputs: vars })
    }

    async fn fail(
        &self,
        runner: &Runner<'_>,
        vars: Map<String, Value>,
        error: RunError,
    ) -> Result<RunOutcome, EngineError> {
        // The run's end is its own business (its events say why); the log keeps one line for operators.
        tracing::warn!(run_id = %runner.run_id, procedure_id = %runner.p.id, node_id = error.node_id.as_deref(),
            step_id = error.step_id.as_deref(), error_kind = error.kind.as_str(), error = %error.message, "run failed");
        let top = Ctx::default();
        runner.emit(
            &top,
            "run_failed",
            error.node_id.as_deref(),
            error.step_id.as_deref(),
            json!({"error": error.to_value()}),
        );
        let mut cp = Self::terminal_checkpoint(runner, vars.clone(), RunStatus::Failed);
        cp.error = Some(error.clone());
        cp.outputs = Some(vars);
        runner.commit_with(cp).await?;
        Ok(RunOutcome::Failed { error })
    }

    async fn cancelled(&self, runner: &Runner<'_>, vars: Map<String, Value>) -> Result<RunOutcome, EngineError> {
        runner.emit_run_event("run_canceled", None, None, json!({"reason": "cancel_signal"}));
        let cp = Self::terminal_checkpoint(runner, vars, RunStatus::Canceled);
        runner.commit_with(cp).await?;
        if let Ok(mut c) = self.cancelled.lock() {
            c.remove(&runner.run_id);
        }
        Ok(RunOutcome::Cancelled)
    }

    async fn pause(&self, runner: &Runner<'_>, approvals: Vec<PendingApproval>) -> Result<RunOutcome, EngineError> {
        let cp = {
            let core = runner.core();
            let mut cp = core.base.clone();
            cp.replay =
                core.emitted.iter().map(|(k, v)| (k.clone(), core.pause_marks.get(k).copied().unwrap_or(*v))).collect();
            cp.status = RunStatus::WaitingApproval;
            cp.pending = approvals.clone();
            cp
        };
        runner.commit_with(cp).await?;
        Ok(RunOutcome::WaitingApproval(approvals))
    }

    /// Pauses (status `paused`) until the callbacks of the delegated steps; the node re-executes after them.
    async fn await_callbacks(
        &self,
        runner: &Runner<'_>,
        callbacks: Vec<PendingCallback>,
    ) -> Result<RunOutcome, EngineError> {
        let cp = {
            let core = runner.core();
            let mut cp = core.base.clone();
            cp.replay =
                core.emitted.iter().map(|(k, v)| (k.clone(), core.pause_marks.get(k).copied().unwrap_or(*v))).collect();
            cp.status = RunStatus::Paused;
            cp.callbacks = callbacks.clone();
            cp
        };
        runner.commit_with(cp).await?;
        Ok(RunOutcome::AwaitingCallback(callbacks))
    }

    async fn finish_validation_only(
        &self,
        runner: &Runner<'_>,
        _vars: Map<String, Value>,
    ) -> Result<RunOutcome, EngineError> {
        runner.emit_run_event(
            "run_completed",
            None,
            None,
            json!({"mode": "validation_only", "message": "Execution skipped (mode=validation_only). CKP compiled and validated successfully.", "outputs": {}}),
        );
        let mut cp = Self::terminal_checkpoint(runner, Map::new(), RunStatus::Completed);
        cp.outputs = Some(Map::new());
        runner.commit_with(cp).await?;
        Ok(RunOutcome::Completed { outputs: Map::new() })
    }
}

/// What [`apply_decision`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionApplied {
    /// Events to commit with the new checkpoint (`approval_decision_received`).
    pub events: Vec<Event>,
    /// Approvals still pending; empty means the run is runnable again.
    pub still_pending: Vec<PendingApproval>,
    /// A decision to record on a subflow's child run as well (the child's run id and its own key).
    pub child: Option<(String, Decision)>,
}

/// Applies a decision to a waiting run's checkpoint, purely: the pending approval is removed, the decision
/// recorded for its visit, and the run made runnable when nothing else is pending. Errors when the run is not
/// waiting or no pending approval matches (a second decision on the same approval is such an error).
pub fn apply_decision(
    cp: &mut Checkpoint,
    run_id: &str,
    decision: Decision,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<DecisionApplied, EngineError> {
    let invalid = |message: &str| EngineError::InvalidState { run_id: run_id.to_owned(), message: message.to_owned() };
    if cp.status != RunStatus::WaitingApproval {
        return Err(invalid("the run is not waiting for an approval"));
    }
    let position = match &decision.key {
        Some(k) => cp.pending.iter().position(|a| &a.key == k),
        None if cp.pending.len() == 1 => Some(0),
        None => None,
    }
    .ok_or_else(|| invalid("no pending approval matches this decision"))?;
    let approval = cp.pending.remove(position);
    let mut events = Vec::new();
    let mut child = None;
    if let Some((child_run, child_key)) = approval.key.split_once('>') {
        child = Some((child_run.to_owned(), Decision { key: Some(child_key.to_owned()), ..decision }));
    } else {
        let value = normalise_decision(&decision.value);
        cp.decisions.insert(approval.key.clone(), value.clone());
        events.push(Event {
            event_type: "approval_decision_received".into(),
            node_id: Some(approval.node_id.clone()),
            step_id: None,
            payload: json!({"approval_id": crate::journal::approval_id(run_id, &approval.key), "decision": value, "decided_by": decision.decided_by,
                            "comment": decision.comment, "node_name": approval.node_name}),
            created_at: now,
        });
    }
    if cp.pending.is_empty() {
        cp.status = RunStatus::Running;
        cp.resume_reason = Some("approval_resume".into());
    }
    Ok(DecisionApplied { events, still_pending: cp.pending.clone(), child })
}

/// `approve` → `approved`, `reject` → `rejected`, `timeout` → `timed_out`; anything else verbatim.
fn normalise_decision(v: &Value) -> Value {
    match v.as_str().map(|s| s.trim().to_ascii_lowercase()) {
        Some(s) if s == "approve" || s == "approved" => "approved".into(),
        Some(s) if s == "reject" || s == "rejected" => "rejected".into(),
        Some(s) if s == "timeout" || s == "timed_out" => "timed_out".into(),
        _ => v.clone(),
    }
}

/// The node index of a node id (for tests and callers holding ids).
pub fn node_index(p: &Procedure, id: &str) -> Option<NodeIdx> {
    p.find(id)
}

/// The expiry decisions due at `now` on a run waiting for approvals (A.2.8): `timed_out`, by `system:expiry`, for
/// each pending approval whose `expires_at` has passed; none when the run is not waiting. Whoever applies them
/// ([`Engine::expire_due`], the server's workers through the store's guarded decision) applies the same rule, and
/// `timed_out` then routes by the node's `timeout_action`.
pub fn due_expiries(cp: &Checkpoint, now: chrono::DateTime<chrono::Utc>) -> Vec<Decision> {
    if cp.status != RunStatus::WaitingApproval {
        return Vec::new();
    }
    cp.pending
        .iter()
        .filter(|a| a.expires_at.is_some_and(|at| at <= now))
        .map(|a| Decision {
            key: Some(a.key.clone()),
            value: Value::from("timed_out"),
            decided_by: Some("system:expiry".into()),
            comment: None,
        })
        .collect()
}

/// Who creates a run, as its first commit records it.
#[derive(Debug, Clone)]
pub enum Origin<'a> {
    /// A run of its own (the API, `ckp run`, a trigger): queued until a worker or the caller executes it.
    Top,
    /// A subflow's child run, executed at once by its parent's execution.
    Child {
        /// The parent run, recorded in `run_created` (None for a child id that names no parent).
        parent_run_id: Option<&'a str>,
        /// The procedures above the child, to refuse recursive subflows.
        call_stack: Vec<String>,
    },
}

/// The first commit of a new run: its checkpoint (schema defaults, inputs, the built-ins `run_id` and
/// `procedure_id`) and its `run_created` event. Every way of creating a run builds it here (the API, a
/// trigger, [`Engine::create`], a subflow's child), so they all start runs alike; inputs are checked by the
/// caller first, because each answers invalid ones its own way (the API refuses, `Engine::create` records a
/// failed run).
pub fn first_commit(
    p: &Procedure,
    run_id: &str,
    inputs: &Map<String, Value>,
    origin: Origin<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Commit {
    let mut checkpoint = Engine::new_checkpoint(p, run_id, inputs);
    let payload = match origin {
        Origin::Top => json!({}),
        Origin::Child { parent_run_id, call_stack } => {
            checkpoint.status = RunStatus::Running;
            checkpoint.call_stack = call_stack;
            json!({"parent_run_id": parent_run_id})
        }
    };
    let created = Event { event_type: "run_created".into(), node_id: None, step_id: None, payload, created_at: now };
    checkpoint.events = 1;
    Commit { events: vec![created], steps: Vec::new(), checkpoint }
}
