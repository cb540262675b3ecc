//! Workers: a process's claimer takes ready jobs for all its idle workers in one claim (the PostgreSQL store reads
//! each claimed run with it), and each worker keeps its job's lease alive while the engine executes the run, then
//! finishes or reschedules the job by the outcome (a durable timer becomes `available_at`). The claimer looks at
//! the queue only when it may hold work: after a pushed wake-up, when the next timer is due, or while its last
//! claim filled every idle worker; it never busy-polls, and a worker that finishes does not claim on its own. A
//! reclaim loop returns the jobs of dead workers to the queue: at once for a process seen dead (its liveness lock
//! gone, on PostgreSQL), else when their leases expire.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ckp_engine::EngineError;
use ckp_engine::callback::{Callback, CallbackOutcome};
use ckp_engine::engine::{Procedures, due_expiries};
use ckp_engine::error::ErrorChain;
use ckp_engine::journal::{Checkpoint, RunStatus};
use ckp_engine::{Engine, RunOutcome};
use ckp_store::{ClaimedJob, Store, StoreError};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// How a process's workers behave.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Prefix of the worker ids written into leases (worker `i` is `{id}-{i}`); unique per process.
    pub id: String,
    /// How many runs the process executes at once.
    pub workers: usize,
    /// Lease length; heartbeats renew it every third of it.
    pub lease_ms: i64,
    /// Longest idle sleep when nothing is queued (a safety net; enqueues wake workers at once).
    pub idle_wait: Duration,
    /// Retry delay after an engine or store error.
    pub error_backoff: Duration,
    /// Where claims and executions are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Traces each execution as a run segment (None: tracing is off).
    pub tracer: Option<Arc<crate::otel::Tracer>>,
    /// Raises `approval_expired` alerts (None: alerts are off).
    pub alerts: Option<Arc<crate::alerts::Alerts>>,
}

impl WorkerConfig {
    /// Defaults for one worker with ids prefixed `id`: 30 s leases, 1 s idle safety net, 1 s error backoff.
    pub fn new(id: impl Into<String>) -> Self {
        WorkerConfig {
            id: id.into(),
            workers: 1,
            lease_ms: 30_000,
            idle_wait: Duration::from_secs(1),
            error_backoff: Duration::from_secs(1),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            tracer: None,
            alerts: None,
        }
    }
}

/// Runs a process's workers until `shutdown` turns true; runs in hand are executed to their next pause or end
/// first.
pub async fn run_workers(
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    procedures: Arc<dyn Procedures>,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    config.metrics.set_workers(config.workers);
    let ids: Vec<String> = (0..config.workers).map(|i| format!("{}-{i}", config.id)).collect();
    let (freed, mut idle) = mpsc::unbounded_channel::<usize>();
    let mut hands = Vec::with_capacity(ids.len());
    let mut tasks = tokio::task::JoinSet::new();
    for (slot, id) in ids.iter().enumerate() {
        let (hand, mut jobs) = mpsc::channel::<ClaimedJob>(1);
        hands.push(hand);
        let (store, engine, procedures, config, freed, id) =
            (store.clone(), engine.clone(), procedures.clone(), config.clone(), freed.clone(), id.clone());
        tasks.spawn(async move {
            while let Some(claimed) = jobs.recv().await {
                execute(&store, &engine, procedures.as_ref(), &config, &id, claimed).await;
                let _ = freed.send(slot);
            }
        });
    }
    // Idle workers (slots), and whether the queue may hold a ready job.
    let mut free: Vec<usize> = (0..ids.len()).rev().collect();
    let mut look = true;
    let mut idle_wait = config.idle_wait;
    while !*shutdown.borrow() {
        while let Ok(slot) = idle.try_recv() {
            free.push(slot);
        }
        if look && !free.is_empty() {
            let names = free.iter().filter_map(|&slot| ids.get(slot).cloned()).collect();
            let asked = std::time::Instant::now();
            match store.claim_batch(names, config.lease_ms, Utc::now()).await {
                Ok(claims) => {
                    config.metrics.claimed(asked.elapsed(), claims.jobs.len());
                    // A claim that filled every idle worker may have left more behind.
                    look = claims.jobs.len() == free.len();
                    idle_wait = match claims.next_available {
                        Some(at) => (at - Utc::now()).to_std().unwrap_or_default().min(config.idle_wait).max(MIN_WAIT),
                        None => config.idle_wait,
                    };
                    let mut given = vec![false; free.len()];
                    for claimed in claims.jobs {
                        if let (Some(&slot), Some(g)) = (free.get(claimed.worker), given.get_mut(claimed.worker))
                            && let Some(hand) = hands.get(slot)
                        {
                            *g = true;
                            // The worker is idle, so its hand is empty; a closed one means it died: the lease
                            // expires and the job is reclaimed.
                            let _ = hand.try_send(claimed);
                        }
                    }
                    let mut given = given.into_iter();
                    free.retain(|_| !given.next().unwrap_or(false));
                }
                Err(e) => {
                    tracing::error!(error = %ErrorChain(&e), backoff_ms = config.error_backoff.as_millis(),
                        "claiming jobs failed");
                    tokio::select! {
                        () = tokio::time::sleep(config.error_backoff) => {}
                        changed = shutdown.changed() => if changed.is_err() { break },
                    }
                }
            }
            continue;
        }
        tokio::select! {
            Some(slot) = idle.recv() => free.push(slot),
            () = store.wait_for_work(idle_wait), if !look => look = true,
            // The sender gone without a word is a shutdown too (rather than a loop on a closed channel).
            changed = shutdown.changed() => if changed.is_err() { break },
        }
    }
    drop(hands);
    while tasks.join_next().await.is_some() {}
}

/// Why a claimed run could not be executed; the job is retried after `error_backoff`.
#[derive(Debug, thiserror::Error)]
enum ExecError {
    #[error("executing the run")]
    Engine(#[source] EngineError),
    #[error("procedure {id} version {version} is not available")]
    MissingProcedure { id: String, version: String },
    #[error("the run does not exist")]
    MissingRun,
}

/// Shortest idle sleep before looking again for a job that was due but held by another transaction.
const MIN_WAIT: Duration = Duration::from_millis(1);

async fn execute(
    store: &Arc<dyn Store>,
    engine: &Arc<Engine>,
    procedures: &dyn Procedures,
    config: &WorkerConfig,
    worker: &str,
    claimed: ClaimedJob,
) {
    let ClaimedJob { job, stored, .. } = claimed;
    let _busy = config.metrics.execution_started();
    // Every line logged while the run executes (engine, connectors) carries the run and the job.
    let span = tracing::info_span!("run", run_id = %job.run_id, job_id = job.job_id, trace_id = tracing::field::Empty);
    // Whether the run was already settled (ended, or waiting with nothing due) when claimed: then the engine
    // commits nothing and the worker must release the job itself.
    let execution = async {
        let loaded = match stored {
            Some(stored) => Ok(Some(stored)),
            None => store.load(&job.run_id).await,
        };
        match loaded {
            Ok(Some(stored)) => {
                let cp = &stored.checkpoint;
                if let Some(tracer) = &config.tracer {
                    begin_segment(store.as_ref(), tracer, &job.run_id, cp).await;
                    if let Some(trace_id) = tracer.trace_id(&job.run_id) {
                        tracing::Span::current().record("trace_id", trace_id.as_str());
                    }
                }
                let now = Utc::now();
                let settled = cp.status.is_terminal()
                    || (cp.status == RunStatus::WaitingApproval
                        && cp.pending.iter().all(|a| a.expires_at.is_none_or(|at| at > now)));
                // An expiry changes the checkpoint: the engine then reads it again; otherwise it goes on from this one.
                let metrics = &config.metrics;
                let expired = expire_due(store.as_ref(), &job.run_id, cp, metrics, config.alerts.as_deref()).await
                    || time_out_callbacks(store.as_ref(), &job.run_id, cp, metrics).await;
                let outcome = match procedures.find(&cp.procedure_id, Some(&cp.procedure_version)).await {
                    Some(p) if expired => engine.resume(p, &job.run_id).await.map_err(ExecError::Engine),
                    Some(p) => engine.resume_loaded(p, &job.run_id, stored).await.map_err(ExecError::Engine),
                    None => Err(ExecError::MissingProcedure {
                        id: cp.procedure_id.clone(),
                        version: cp.procedure_version.clone(),
                    }),
                };
                (settled && !expired, outcome)
            }
            Ok(None) => (false, Err(ExecError::MissingRun)),
            Err(e) => (false, Err(ExecError::Engine(e))),
        }
    }
    .instrument(span.clone());
    // The lease is renewed beside the execution in this same task (no task spawned per job).
    let every = Duration::from_millis(u64::try_from(config.lease_ms / 3).unwrap_or(1000).max(10));
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(execution);
    let (settled_before, outcome) = loop {
        tokio::select! {
            done = &mut execution => break done,
            _ = renew.tick() => {
                match store.heartbeat(job.job_id, worker, config.lease_ms).await {
                    // A cancel recorded by another process reaches this execution at its next step.
                    Ok(true) => {
                        if matches!(store.cancellation_requested(&job.run_id).await, Ok(true)) {
                            engine.cancel(&job.run_id);
                        }
                    }
                    Ok(false) => tracing::warn!(parent: &span, worker,
                        "lease lost: another worker may take the run over from its last commit"),
                    Err(e) => tracing::warn!(parent: &span, worker, error = %ErrorChain(&e), "lease renewal failed"),
                }
            }
        }
    };
    engine.forget_cancel(&job.run_id);
    let ended = match &outcome {
        Ok(RunOutcome::Completed { .. }) => "completed",
        Ok(RunOutcome::Failed { .. }) => "failed",
        Ok(RunOutcome::Cancelled) => "canceled",
        Ok(RunOutcome::Sleeping { .. }) => "sleeping",
        Ok(_) => "waiting",
        Err(_) => "error",
    };
    config.metrics.execution_ended(ended);
    if let Some(tracer) = &config.tracer {
        tracer.end(&job.run_id, ended);
    }
    // A cancel asked while the run was executing is recorded for the worker; one that arrived after the engine
    // stopped checking is applied here, once the job is released (below), so it is not left until the run's
    // next wake-up.
    let stopped =
        !matches!(outcome, Ok(RunOutcome::Completed { .. } | RunOutcome::Failed { .. } | RunOutcome::Cancelled));
    let released = match outcome {
        Ok(RunOutcome::Sleeping { until }) => store.reschedule(job.job_id, worker, until).await,
        // An approval with an expiry is a durable timer too: the job comes back when it is due.
        Ok(RunOutcome::WaitingApproval(pending)) => match pending.iter().filter_map(|a| a.expires_at).min() {
            Some(at) => store.reschedule(job.job_id, worker, at).await,
            None if settled_before => store.finish(job.job_id, worker).await,
            // The commit that paused the run released its job (same transaction).
            None => Ok(true),
        },
        // A run waiting for workflow callbacks comes back when the first of them times out; a callback queues it
        // sooner.
        Ok(RunOutcome::AwaitingCallback(callbacks)) => match callbacks.iter().map(|c| c.timeout_at).min() {
            Some(at) => store.reschedule(job.job_id, worker, at).await,
            None => store.finish(job.job_id, worker).await,
        },
        Ok(_) if settled_before => store.finish(job.job_id, worker).await,
        // The commit that ended the run released its job (same transaction).
        Ok(_) => Ok(true),
        Err(e) => {
            let at = Utc::now() + chrono::Duration::from_std(config.error_backoff).unwrap_or_default();
            tracing::error!(parent: &span, error = %ErrorChain(&e), retry_at = %at, "run execution failed; retrying later");
            store.reschedule(job.job_id, worker, at).await
        }
    };
    if let Err(e) = released {
        // The lease then expires and the run is reclaimed from its last commit.
        tracing::error!(parent: &span, error = %ErrorChain(&e), "releasing the job failed");
    }
    if stopped && matches!(store.cancellation_requested(&job.run_id).await, Ok(true)) {
        // Conflict: it ended meanwhile; Executing: another worker holds it now and sees the request.
        if let Ok(ckp_store::RunChange::Done) = store.cancel_run(&job.run_id, "cancel_requested").await
            && let Ok(Some(run)) = store.get_run(&job.run_id).await
        {
            config.metrics.run_canceled(&run.procedure_id);
        }
    }
}

/// Opens the trace segment of an execution: the run's first joins the trace its creator sent (`traceparent` in
/// `run_created`), a later one links to the first.
async fn begin_segment(store: &dyn Store, tracer: &crate::otel::Tracer, run_id: &str, cp: &Checkpoint) {
    let created_with = match store.events_after(run_id, 0, 1).await {
        Ok(events) => events
            .first()
            .and_then(|e| e.payload.as_deref())
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| p.get("traceparent").and_then(|t| t.as_str()).and_then(crate::otel::Context::parse)),
        Err(_) => None,
    };
    tracer.begin(run_id, &cp.procedure_id, &cp.procedure_version, !cp.started, created_with);
}

/// Applies expiry to the run's due approvals (A.2.8) through the store's guarded decision, so an expiry and a
/// human decision arriving together cannot both win; the engine then routes by `timeout_action`. True when
/// something was due (the checkpoint changed).
async fn expire_due(
    store: &dyn Store,
    run_id: &str,
    cp: &Checkpoint,
    metrics: &crate::metrics::Metrics,
    alerts: Option<&crate::alerts::Alerts>,
) -> bool {
    let due = due_expiries(cp, Utc::now());
    let expired = !due.is_empty();
    for d in due {
        let key = d.key.clone().unwrap_or_default();
        match store.decide(run_id, d).await {
            Ok(_) => {
                metrics.callback_timed_out("approval");
                if let Some(alerts) = alerts {
                    let fields = serde_json::json!({"run_id": run_id, "procedure_id": cp.procedure_id,
                        "procedure_version": cp.procedure_version, "approval_key": key});
                    alerts.raise("approval_expired", &format!("{run_id}/{key}"), fields);
                }
            }
            // A conflict means a human decided first: nothing to expire.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => tracing::error!(run_id, error = %ErrorChain(&e), "expiring an approval failed"),
        }
    }
    expired
}

/// Fails the delegated steps whose callbacks did not come in time (`workflow_callback_timeout_minutes`), through
/// the store's guarded callback transition, so a late callback and the timeout cannot both win; the engine then
/// handles the step's error (retries, handlers, or the run fails). True when something timed out.
async fn time_out_callbacks(
    store: &dyn Store,
    run_id: &str,
    cp: &Checkpoint,
    metrics: &crate::metrics::Metrics,
) -> bool {
    if cp.status != RunStatus::Paused {
        return false;
    }
    let mut timed_out = false;
    let now = Utc::now();
    for c in cp.callbacks.iter().filter(|c| c.timeout_at <= now) {
        let callback = Callback {
            node_id: Some(c.node_id.clone()),
            step_id: Some(c.step_id.clone()),
            outcome: CallbackOutcome::TimedOut,
        };
        match store.workflow_callback(run_id, callback).await {
            Ok(_) => metrics.callback_timed_out("workflow"),
            // A conflict means the callback came first.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => tracing::error!(run_id, error = %ErrorChain(&e), "timing out a workflow callback failed"),
        }
        timed_out = true;
    }
    timed_out
}

/// How often the leader looks for dead processes whose jobs it can take back before their leases expire.
pub const ORPHAN_CHECK: Duration = Duration::from_secs(1);

/// While this process is the leader (on a shared database one process does it; another takes over when it dies),
/// returns to the queue the jobs of processes seen dead every [`ORPHAN_CHECK`] (their liveness lock is gone) and
/// expired leases every `every` (a process that died without being seen, or that took no liveness lock), until
/// `shutdown`.
pub async fn run_reclaimer(store: Arc<dyn Store>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let start = tokio::time::Instant::now();
    let mut expired = tokio::time::interval_at(start + every, every);
    let mut orphans = tokio::time::interval_at(start + ORPHAN_CHECK, ORPHAN_CHECK);
    for tick in [&mut expired, &mut orphans] {
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = expired.tick() => {
                if store.is_leader() {
                    match store.reclaim_expired(Utc::now()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(jobs = n, "reclaimed expired leases: their runs resume from their last commit"),
                        Err(e) => tracing::error!(error = %ErrorChain(&e), "reclaiming expired leases failed"),
                    }
                }
            }
            _ = orphans.tick() => {
                if store.is_leader() {
                    match store.reclaim_orphaned().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(jobs = n,
                            "reclaimed the jobs of a process that died: its runs resume from their last commit"),
                        Err(e) => tracing::error!(error = %ErrorChain(&e), "reclaiming dead processes' jobs failed"),
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
