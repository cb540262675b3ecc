//! Durable storage: the store contract ([`Store`], made of one trait per concern: [`RunStore`], [`QueueStore`],
//! [`ApprovalStore`], [`ProcedureStore`], [`RegistryStore`], [`SecretStore`], [`AuthStore`], [`InsightStore`], plus the engine's
//! [`ckp_engine::Journal`]) with the rows and statuses it speaks, and its two implementations: the embedded SQLite
//! store ([`SqliteStore`], `sqlite/`) and the PostgreSQL store for several processes on one database ([`PgStore`],
//! `pg/`). Runs with their checkpoint, event batches and step records, the API's tables (procedures, approvals,
//! projects, agents, leases, artifacts, sealed secrets), authentication (users, project grants, API keys, sessions,
//! signing keys, the audit log), the job queue of DESIGN §4 (leases, heartbeats, reclaim, durable timers, pushed
//! wake-ups), change notices for SSE, versioned migrations, and the conformance suite every backend must pass.
//!
//! Shared by both backends and importing neither: `store/` (the traits, rows and their decoders over
//! `row.rs`'s `RowSource`), `status.rs`, `codec.rs` (how values are written as text), `events.rs` (the event batch
//! codec), `derived.rs` (what a commit implies for the API's tables), `hub.rs` (change notices). Neither backend
//! imports the other.

mod codec;
pub mod conformance;
mod derived;
mod events;
mod hub;
mod pg;
mod row;
mod sqlite;
mod status;
mod store;

pub use pg::{GroupCommitStats, PgOptions, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use status::{AgentStatus, ApprovalStatus, JobState, ProcedureStatus, RunStatus, UnknownRunStatus, UnknownStatus};
pub use store::{
    AgentHit, AgentRow, AgentUpdate, ApiKeyRow, ApprovalDecision, ApprovalRow, ApprovalStore, ArtifactRow, AuditFilter,
    AuditRow, AuthStore, BucketCounts, ClaimedJob, Claims, CostSummary, DECISION_PRIORITY, DraftRecord, DraftWrite,
    EventRow, GrantRow, InsightStore, Job, KeyAndOwner, LeaseRow, NewRun, ProcedureFilter, ProcedureHit,
    ProcedureRecord, ProcedureStats, ProcedureStore, ProjectRow, QueueStats, QueueStore, QueuedJob, RegistryStore,
    RetentionPolicy, RunChange, RunFilter, RunHit, RunRow, RunStats, RunStore, SearchHits, SearchQuery, SecretRow,
    SecretStore, SecretUpdate, SessionRow, SpaceReclaimed, StatsQuery, StatusPage, StepRow, Store, TEST_VERSION_MARK,
    UserRow, UserUpdate,
};
pub use store::{
    FireOutcome, FireRow, PruneFires, TriggerFire, TriggerPut, TriggerRow, TriggerStore, TriggerSync, synced,
};

/// A lower layer's error kept whole (its cause chain reaches the log), shared: one failed group write answers
/// every write of the group with it.
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// A cause from an error, or from a message when there is no lower error to keep.
pub fn cause(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Cause {
    Cause::from(e.into())
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer ckp.
    #[error("the database is at schema version {found}, newer than this ckp knows ({known}); upgrade ckp")]
    SchemaTooNew {
        /// Version found.
        found: i64,
        /// Latest version known.
        known: i64,
    },
    /// The row exists already (a duplicate procedure version, ...).
    #[error("{0}")]
    Conflict(String),
    /// No such row (run, procedure, ...).
    #[error("{0}")]
    NotFound(String),
    /// A read failed.
    #[error("read failed: {0}")]
    Read(#[source] Cause),
    /// A write failed.
    #[error("write failed: {0}")]
    Write(#[source] Cause),
    /// PostgreSQL refused an operation, or the connection failed.
    #[error("database: {0}")]
    Database(#[source] Cause),
    /// An argument the store cannot use (a malformed time, a bad database URL).
    #[error("{0}")]
    Invalid(String),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// Another process has the embedded database open (one process per SQLite file).
    #[error(
        "{} is in use by another ckp process{}: stop it first, or use another data directory",
        .path.display(),
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse {
        /// The database file.
        path: std::path::PathBuf,
        /// The holder's process id, as it wrote it in the lock file.
        pid: Option<u32>,
    },
    /// A filesystem problem.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
