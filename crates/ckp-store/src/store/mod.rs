//! The store contract: plain traits sized by concern — [`RunStore`] (runs and their journal as the API reads
//! them), [`QueueStore`] (the job queue), [`ApprovalStore`] (decisions, callbacks, approvals),
//! [`ProcedureStore`], [`RegistryStore`] (projects, agents, leases, artifacts), [`SecretStore`], [`AuthStore`]
//! (users, grants, API keys, sessions, signing keys, audit log), [`InsightStore`] (statistics and search for the
//! console) and [`TriggerStore`] (trigger registrations and their fires) — each with the rows it speaks, and [`Store`], all
//! of them with the engine's [`Journal`], which the server holds as
//! `Arc<dyn Store>`. The SQLite and PostgreSQL stores implement every trait and pass the same conformance suite
//! ([`crate::conformance`]). Async methods return boxed futures, so every trait is dyn-compatible.

mod approvals;
mod auth;
mod insights;
mod procedures;
mod queue;
mod registry;
mod runs;
mod secrets;
mod triggers;

use ckp_engine::journal::Journal;

pub(crate) use approvals::{
    APPROVAL_COLUMNS, CALLBACK_PRIORITY, approval_not_found, approval_row, decided_payload, refused,
};
pub use approvals::{ApprovalDecision, ApprovalRow, ApprovalStore, DECISION_PRIORITY};
pub(crate) use auth::{
    ADMIN_ROLE, API_KEY_COLUMNS, API_KEY_WIDTH, AUDIT_COLUMNS, GRANT_COLUMNS, SESSION_COLUMNS, SESSION_WIDTH,
    USER_COLUMNS, api_key_row, audit_row, contains_pattern, duplicate_email, duplicate_identity, duplicate_key_hash,
    duplicate_key_id, duplicate_session, duplicate_username, grant_row, last_admin_deleted, leaves_no_admin,
    opt_user_row, qualified, session_row, stored_email, stored_key, stored_session, time_or_now, user_not_found,
    user_row,
};
pub use auth::{ApiKeyRow, AuditFilter, AuditRow, AuthStore, GrantRow, KeyAndOwner, SessionRow, UserRow, UserUpdate};
pub use insights::{
    AgentHit, BucketCounts, InsightStore, ProcedureHit, ProcedureStats, RunHit, RunStats, SearchHits, SearchQuery,
    StatsQuery,
};
pub(crate) use insights::{ENDED, PER_PROCEDURE, RANKED, StatsRows, prefix_pattern};
pub use procedures::{DraftRecord, DraftWrite, ProcedureFilter, ProcedureRecord, ProcedureStore, TEST_VERSION_MARK};
pub(crate) use procedures::{
    PROCEDURE_COLUMNS, draft_conflict, duplicate_procedure, procedure_has_runs, procedure_in_use, procedure_not_found,
    procedure_row,
};
pub use queue::{ClaimedJob, Claims, Job, QueueStats, QueueStore, QueuedJob};
pub(crate) use queue::{DEPTH_BY_STATE, NEXT_JOBS, count_of, queued_job};
pub(crate) use registry::{
    AGENT_COLUMNS, ARTIFACT_COLUMNS, LEASE_COLUMNS, PROJECT_COLUMNS, agent_not_found, agent_row, artifact_row,
    cost_summary, lease_row, project_in_use, project_not_found, project_row,
};
pub use registry::{AgentRow, AgentUpdate, ArtifactRow, CostSummary, LeaseRow, ProjectRow, RegistryStore};
pub use runs::{
    EventRow, NewRun, RetentionPolicy, RunChange, RunFilter, RunRow, RunStore, SpaceReclaimed, StatusPage, StepRow,
};
pub(crate) use runs::{
    LIVE_SQL, RUN_COLUMNS, TERMINAL_SQL, cancel_refused, canceled, list_run_columns, retried, retry_refused,
    run_not_found, run_row,
};
pub(crate) use secrets::{SECRET_COLUMNS, duplicate_secret, secret_not_found, secret_row};
pub use secrets::{SecretRow, SecretStore, SecretUpdate};
pub(crate) use triggers::{
    ACTIVE_RUNS, FIRE_COLUMNS, PRUNABLE, TRIGGER_COLUMNS, fire_row, put_row, trigger_not_found, trigger_row,
};
pub use triggers::{
    FireOutcome, FireRow, PruneFires, TriggerFire, TriggerPut, TriggerRow, TriggerStore, TriggerSync, synced,
};

/// Durable storage of procedures, runs, approvals, jobs, the registry tables, secrets and authentication: every
/// concern's trait and the
/// engine's [`Journal`]. Implemented for every type that implements them all; every write is atomic and visible
/// to every reader once its future resolves.
pub trait Store:
    Journal
    + RunStore
    + QueueStore
    + ApprovalStore
    + ProcedureStore
    + RegistryStore
    + SecretStore
    + AuthStore
    + InsightStore
    + TriggerStore
    + Send
    + Sync
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: Journal
        + RunStore
        + QueueStore
        + ApprovalStore
        + ProcedureStore
        + RegistryStore
        + SecretStore
        + AuthStore
        + InsightStore
        + TriggerStore
        + Send
        + Sync
        + std::fmt::Debug
        + ?Sized
{
}
