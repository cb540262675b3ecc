//! Workers: claim a job, keep its lease alive while the engine executes the run, then finish or reschedule the
//! job by the outcome (a durable timer becomes `available_at`). Idle workers wait for a pushed wake-up, or for the
//! next timer, never busy-poll. A reclaim loop returns the jobs of dead workers to the queue.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ckp_engine::callback::{Callback, CallbackOutcome};
use ckp_engine::engine::Procedures;
use ckp_engine::journal::{Checkpoint, RunStatus};
use ckp_engine::{Decision, Engine, RunOutcome};
use ckp_store::{Job, Store};
use tokio::sync::watch;

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Worker id, written into the lease.
    pub id: String,
    /// Lease length; heartbeats renew it every third of it.
    pub lease_ms: i64,
    /// Longest idle sleep when nothing is queued (a safety net; enqueues wake workers at once).
    pub idle_wait: Duration,
    /// Retry delay after an engine or store error.
    pub error_backoff: Duration,
}

impl WorkerConfig {
    /// Defaults for worker `id`: 30 s leases, 1 s idle safety net, 1 s error backoff.
    pub fn new(id: impl Into<String>) -> Self {
        WorkerConfig {
            id: id.into(),
            lease_ms: 30_000,
            idle_wait: Duration::from_secs(1),
            error_backoff: Duration::from_secs(1),
        }
    }
}

/// Runs a worker until `shutdown` turns true (a run in hand is executed to its next pause or end first).
pub async fn run_worker(
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    procedures: Arc<dyn Procedures>,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match store.claim_or_next(&config.id, config.lease_ms, Utc::now()).await {
            Ok(Ok(job)) => execute(&store, &engine, procedures.as_ref(), &config, job).await,
            Ok(Err(next)) => {
                let wait = match next {
                    Some(at) => (at - Utc::now()).to_std().unwrap_or_default().min(config.idle_wait),
                    None => config.idle_wait,
                };
                tokio::select! {
                    () = store.wait_for_work(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(_) => tokio::time::sleep(config.error_backoff).await,
        }
    }
}

async fn execute(
    store: &Arc<dyn Store>,
    engine: &Arc<Engine>,
    procedures: &dyn Procedures,
    config: &WorkerConfig,
    job: Job,
) {
    // Whether the run was already settled (ended, or waiting with nothing due) when claimed: then the engine
    // commits nothing and the worker must release the job itself.
    let execution = async {
        match store.load(&job.run_id).await {
            Ok(Some(stored)) => {
                let cp = &stored.checkpoint;
                let now = Utc::now();
                let settled = cp.status.is_terminal()
                    || (cp.status == RunStatus::WaitingApproval
                        && cp.pending.iter().all(|a| a.expires_at.is_none_or(|at| at > now)));
                // An expiry changes the checkpoint: the engine then reads it again; otherwise it goes on from this one.
                let expired = expire_due(store.as_ref(), &job.run_id, cp).await
                    || time_out_callbacks(store.as_ref(), &job.run_id, cp).await;
                let outcome = match procedures.find(&cp.procedure_id, Some(&cp.procedure_version)).await {
                    Some(p) if expired => engine.resume(p, &job.run_id).await.map_err(|e| e.to_string()),
                    Some(p) => engine.resume_loaded(p, &job.run_id, stored).await.map_err(|e| e.to_string()),
                    None => Err(format!("procedure {}:{} is not available", cp.procedure_id, cp.procedure_version)),
                };
                (settled && !expired, outcome)
            }
            Ok(None) => (false, Err(format!("run {} does not exist", job.run_id))),
            Err(e) => (false, Err(e.to_string())),
        }
    };
    // The lease is renewed beside the execution in this same task (no task spawned per job).
    let every = Duration::from_millis(u64::try_from(config.lease_ms / 3).unwrap_or(1000).max(10));
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(execution);
    let (settled_before, outcome) = loop {
        tokio::select! {
            done = &mut execution => break done,
            _ = renew.tick() => {
                if matches!(store.heartbeat(job.job_id, &config.id, config.lease_ms).await, Ok(true)) {
                    // A cancel recorded by another process reaches this execution at its next step.
                    if matches!(store.cancellation_requested(&job.run_id).await, Ok(true)) {
                        engine.cancel(&job.run_id);
                    }
                }
            }
        }
    };
    engine.forget_cancel(&job.run_id);
    let _ = match outcome {
        Ok(RunOutcome::Sleeping { until }) => store.reschedule(job.job_id, &config.id, until).await,
        // An approval with an expiry is a durable timer too: the job comes back when it is due.
        Ok(RunOutcome::WaitingApproval(pending)) => match pending.iter().filter_map(|a| a.expires_at).min() {
            Some(at) => store.reschedule(job.job_id, &config.id, at).await,
            None if settled_before => store.finish(job.job_id, &config.id).await,
            // The commit that paused the run released its job (same transaction).
            None => Ok(true),
        },
        // A run waiting for workflow callbacks comes back when the first of them times out; a callback queues it
        // sooner.
        Ok(RunOutcome::AwaitingCallback(callbacks)) => match callbacks.iter().map(|c| c.timeout_at).min() {
            Some(at) => store.reschedule(job.job_id, &config.id, at).await,
            None => store.finish(job.job_id, &config.id).await,
        },
        Ok(_) if settled_before => store.finish(job.job_id, &config.id).await,
        // The commit that ended the run released its job (same transaction).
        Ok(_) => Ok(true),
        Err(_) => {
            let at = Utc::now() + chrono::Duration::from_std(config.error_backoff).unwrap_or_default();
            store.reschedule(job.job_id, &config.id, at).await
        }
    };
}

/// Applies expiry to the run's due approvals (A.2.8) through the store's guarded decision, so an expiry and a
/// human decision arriving together cannot both win; the engine then routes by `timeout_action`. True when
/// something was due (the checkpoint changed).
async fn expire_due(store: &dyn Store, run_id: &str, cp: &Checkpoint) -> bool {
    if cp.status != RunStatus::WaitingApproval {
        return false;
    }
    let mut expired = false;
    let now = Utc::now();
    for a in cp.pending.iter().filter(|a| a.expires_at.is_some_and(|at| at <= now)) {
        let d = Decision {
            key: Some(a.key.clone()),
            value: "timed_out".into(),
            decided_by: Some("system:expiry".into()),
            comment: None,
        };
        // A conflict means a human decided first: nothing to expire.
        let _ = store.decide(run_id, d).await;
        expired = true;
    }
    expired
}

/// Fails the delegated steps whose callbacks did not come in time (`workflow_callback_timeout_minutes`), through
/// the store's guarded callback transition, so a late callback and the timeout cannot both win; the engine then
/// handles the step's error (retries, handlers, or the run fails). True when something timed out.
async fn time_out_callbacks(store: &dyn Store, run_id: &str, cp: &Checkpoint) -> bool {
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
        // A conflict means the callback came first.
        let _ = store.workflow_callback(run_id, callback).await;
        timed_out = true;
    }
    timed_out
}

/// Returns expired leases to the queue every `every` until `shutdown`, while this process is the leader (on a
/// shared database one process does it; another takes over when it dies).
pub async fn run_reclaimer(store: Arc<dyn Store>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {
                if store.is_leader() {
                    let _ = store.reclaim_expired(Utc::now()).await;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
