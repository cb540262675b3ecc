//! The [`Store`] trait: everything the server and its workers ask of durable storage, beyond the engine's
//! [`Journal`]. The SQLite and PostgreSQL stores implement it and pass the same conformance suite
//! ([`crate::conformance`]).
//!
//! The contract is written once, in the macro call below: each entry becomes a trait method returning a boxed
//! future, and each implementation (`SqliteStore`, `PgStore`) forwards to its inherent method of the same name.

use chrono::{DateTime, Utc};
use ckp_engine::callback::Callback;
use ckp_engine::effects::BoxFuture;
use ckp_engine::engine::Decision;
use ckp_engine::journal::{Checkpoint, Commit, Journal, PendingApproval};

use crate::approvals::{ApprovalDecision, ApprovalRow};
use crate::procedures::{ProcedureFilter, ProcedureRecord};
use crate::queue::{Claims, Job};
use crate::registry::{AgentRow, AgentUpdate, ArtifactRow, CostSummary, LeaseRow, ProjectRow};
use crate::runs::{EventRow, NewRun, QueueStats, RunChange, RunFilter, RunRow, StepRow};
use crate::secrets::{SecretRow, SecretUpdate};
use crate::{PgStore, SqliteStore, StoreError};

macro_rules! store_contract {
    (@trait $( $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*) => {
        /// Durable storage of procedures, runs, approvals, jobs and the registry tables. Every write is atomic
        /// and visible to every reader once its future resolves.
        pub trait Store: Journal + Send + Sync + std::fmt::Debug {
            /// A watch that changes after each commit touching `run_id` (several commits may show as one).
            fn watch_run(&self, run_id: &str) -> tokio::sync::watch::Receiver<u64>;
            /// A watch that changes after every commit.
            fn watch_all(&self) -> tokio::sync::watch::Receiver<u64>;
            /// A watch that changes after every change of procedures, by this process or (shared database)
            /// another one: whoever caches procedures drops its cache.
            fn watch_procedures(&self) -> tokio::sync::watch::Receiver<u64>;
            /// Whether this process runs the singleton loops (lease reclaim, agent health): always for an
            /// embedded database, for the elected process on a shared one.
            fn is_leader(&self) -> bool;
            $( $(#[$doc])* fn $name<'a>(&'a self $(, $arg: $ty)*) -> BoxFuture<'a, $ret>; )*

            /// Claims the best ready job for `worker` for `lease_ms` (a batch claim for one worker).
            fn claim<'a>(&'a self, worker: &'a str, lease_ms: i64, now: DateTime<Utc>) -> BoxFuture<'a, R<Option<Job>>> {
                Box::pin(async move {
                    let claims = self.claim_batch(vec![worker.to_owned()], lease_ms, now).await?;
                    Ok(claims.jobs.into_iter().next().map(|c| c.job))
                })
            }
        }
    };
    (@impl $store:ident; $( $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*) => {
        impl Store for $store {
            fn watch_run(&self, run_id: &str) -> tokio::sync::watch::Receiver<u64> {
                $store::watch_run(self, run_id)
            }
            fn watch_all(&self) -> tokio::sync::watch::Receiver<u64> {
                $store::watch_all(self)
            }
            fn watch_procedures(&self) -> tokio::sync::watch::Receiver<u64> {
                $store::watch_procedures(self)
            }
            fn is_leader(&self) -> bool {
                $store::is_leader(self)
            }
            $( fn $name<'a>(&'a self $(, $arg: $ty)*) -> BoxFuture<'a, $ret> {
                Box::pin($store::$name(self $(, $arg)*))
            } )*
        }
    };
    ($($contract:tt)*) => {
        store_contract!(@trait $($contract)*);
        store_contract!(@impl SqliteStore; $($contract)*);
        store_contract!(@impl PgStore; $($contract)*);
    };
}

type R<T> = Result<T, StoreError>;

store_contract! {
    /// Makes a run runnable from `available_at` (now when None); a running job keeps its lease and runs again.
    fn enqueue(&self, run_id: &'a str, priority: i64, available_at: Option<DateTime<Utc>>) -> R<()>;
    /// Claims up to one ready job per worker named (best first, each leased to the worker it is given to) in one
    /// transaction; when fewer were ready, also tells when the next queued job becomes available.
    fn claim_batch(&self, workers: Vec<String>, lease_ms: i64, now: DateTime<Utc>) -> R<Claims>;
    /// Extends a lease; false when it was lost.
    fn heartbeat(&self, job_id: i64, worker: &'a str, lease_ms: i64) -> R<bool>;
    /// Ends a job (requeued if a requeue arrived meanwhile).
    fn finish(&self, job_id: i64, worker: &'a str) -> R<bool>;
    /// Puts a running job back until `available_at` (a durable timer).
    fn reschedule(&self, job_id: i64, worker: &'a str, available_at: DateTime<Utc>) -> R<bool>;
    /// Returns jobs whose lease expired before `now` to the queue.
    fn reclaim_expired(&self, now: DateTime<Utc>) -> R<usize>;
    /// When the next queued job becomes available.
    fn next_available(&self) -> R<Option<DateTime<Utc>>>;
    /// Waits for a pushed wake-up (a job became ready) or `timeout`.
    fn wait_for_work(&self, timeout: std::time::Duration) -> ();
    /// Records a decision on a waiting run, guarded: only a pending approval can be decided.
    fn decide(&self, run_id: &'a str, decision: Decision) -> R<Vec<PendingApproval>>;
    /// Applies a workflow callback to a paused run, guarded: only a step still waiting can be answered; true
    /// when the run was queued.
    fn workflow_callback(&self, run_id: &'a str, callback: Callback) -> R<bool>;
    /// Approvals, newest first, by status and run.
    fn list_approvals(&self, status: Option<String>, run_id: Option<String>) -> R<Vec<ApprovalRow>>;
    /// One approval.
    fn get_approval(&self, approval_id: &'a str) -> R<Option<ApprovalRow>>;
    /// Decides an approval by id in one transaction (conflict unless pending).
    fn decide_approval(&self, approval_id: &'a str, decision: ApprovalDecision) -> R<ApprovalRow>;
    /// Stores a new procedure version (conflict on duplicates).
    fn insert_procedure(&self, record: ProcedureRecord) -> R<ProcedureRecord>;
    /// One version, or the latest.
    fn get_procedure(&self, id: &'a str, version: Option<&'a str>) -> R<Option<ProcedureRecord>>;
    /// Versions matching a filter, newest first.
    fn list_procedures(&self, filter: ProcedureFilter) -> R<Vec<ProcedureRecord>>;
    /// Replaces a version's document.
    fn update_procedure(&self, record: ProcedureRecord) -> R<ProcedureRecord>;
    /// Sets a version's lifecycle status.
    fn set_procedure_status(&self, id: &'a str, version: &'a str, status: &'a str, ckp_json: String) -> R<ProcedureRecord>;
    /// Deletes a version.
    fn delete_procedure(&self, id: &'a str, version: &'a str) -> R<()>;
    /// Creates a run with its first commit (and its job when `queue`).
    fn create_run(&self, run: NewRun, commit: Commit, queue: bool) -> R<RunRow>;
    /// One run.
    fn get_run(&self, run_id: &'a str) -> R<Option<RunRow>>;
    /// Runs matching a filter.
    fn list_runs(&self, filter: RunFilter) -> R<Vec<RunRow>>;
    /// Events after an id, in order.
    fn events_after(&self, run_id: &'a str, after: i64, limit: i64) -> R<Vec<EventRow>>;
    /// Cancels a run (or records the request for the worker executing it).
    fn cancel_run(&self, run_id: &'a str, reason: &'a str) -> R<RunChange>;
    /// A run's status (a light read).
    fn run_status(&self, run_id: &'a str) -> R<Option<String>>;
    /// A run's status, read first, and then its events after an id (a stream's page: when the status is
    /// terminal, every event up to the terminal one is in the page or before it); None when the run does not exist.
    fn status_and_events(&self, run_id: &'a str, after: i64, limit: i64) -> R<Option<(String, Vec<EventRow>)>>;
    /// Whether a cancel was requested.
    fn cancellation_requested(&self, run_id: &'a str) -> R<bool>;
    /// Restarts a failed or canceled run from `fresh`.
    fn retry_run(&self, run_id: &'a str, fresh: Checkpoint) -> R<RunRow>;
    /// Deletes a run and what it owns.
    fn delete_run(&self, run_id: &'a str) -> R<()>;
    /// Deletes old runs; the count deleted.
    fn cleanup_runs(&self, before: &'a str, status: Option<String>) -> R<usize>;
    /// Job counts and the next jobs.
    fn queue_stats(&self) -> R<QueueStats>;
    /// Step records of a run.
    fn step_rows(&self, run_id: &'a str) -> R<Vec<StepRow>>;
    /// (total, errors, retries) event counts of a run.
    fn event_counts(&self, run_id: &'a str) -> R<(i64, i64, i64)>;
    /// The current checkpoint of a run.
    fn checkpoint(&self, run_id: &'a str) -> R<Option<Checkpoint>>;
    /// Run counts per status.
    fn run_counts(&self) -> R<Vec<(String, i64)>>;
    /// Creates a project.
    fn create_project(&self, name: &'a str, description: Option<String>) -> R<ProjectRow>;
    /// Projects by name.
    fn list_projects(&self) -> R<Vec<ProjectRow>>;
    /// One project.
    fn get_project(&self, id: &'a str) -> R<Option<ProjectRow>>;
    /// Updates a project.
    fn update_project(&self, id: &'a str, name: Option<String>, description: Option<String>) -> R<ProjectRow>;
    /// Deletes an unused project.
    fn delete_project(&self, id: &'a str) -> R<()>;
    /// LLM usage of a project since a time.
    fn project_costs(&self, id: &'a str, since: DateTime<Utc>) -> R<CostSummary>;
    /// Registers an agent (conflict on a taken id).
    fn insert_agent(&self, agent: AgentRow) -> R<AgentRow>;
    /// Agents by name.
    fn list_agents(&self) -> R<Vec<AgentRow>>;
    /// One agent.
    fn get_agent(&self, id: &'a str) -> R<Option<AgentRow>>;
    /// Updates an agent.
    fn update_agent(&self, id: &'a str, update: AgentUpdate) -> R<AgentRow>;
    /// Records a health check (online on success; offline with an open circuit after `offline_after` failures).
    fn record_agent_health(&self, id: &'a str, ok: bool, offline_after: i64) -> R<AgentRow>;
    /// Removes an agent.
    fn delete_agent(&self, id: &'a str) -> R<()>;
    /// Takes a lease if the resource has room.
    fn acquire_lease(
        &self,
        resource_key: &'a str,
        limit: i64,
        run_id: &'a str,
        node_id: Option<String>,
        step_id: Option<String>,
        ttl: chrono::Duration,
    ) -> R<Option<LeaseRow>>;
    /// Extends an unreleased lease.
    fn renew_lease(&self, lease_id: &'a str, ttl: chrono::Duration) -> R<bool>;
    /// Leases, by resource.
    fn list_leases(&self, resource_key: Option<String>) -> R<Vec<LeaseRow>>;
    /// Unreleased leases of a run.
    fn run_leases(&self, run_id: &'a str) -> R<Vec<LeaseRow>>;
    /// Releases a lease.
    fn release_lease(&self, lease_id: &'a str) -> R<bool>;
    /// Artifact metadata of a run.
    fn run_artifacts(&self, run_id: &'a str) -> R<Vec<ArtifactRow>>;
    /// Stores a new secret (sealed value; id and timestamps set by the store); conflict on a taken name.
    fn insert_secret(&self, secret: SecretRow) -> R<SecretRow>;
    /// Secrets by name.
    fn list_secrets(&self) -> R<Vec<SecretRow>>;
    /// One secret by name.
    fn get_secret(&self, name: &'a str) -> R<Option<SecretRow>>;
    /// Changes a secret (not found when absent).
    fn update_secret(&self, name: &'a str, update: SecretUpdate) -> R<SecretRow>;
    /// Deletes a secret (not found when absent).
    fn delete_secret(&self, name: &'a str) -> R<()>;
}
