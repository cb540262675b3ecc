//! Durable storage: the [`Store`] trait (everything the server asks beyond the engine's [`ckp_engine::Journal`])
//! and its embedded SQLite implementation — runs with their checkpoint, event batches and step records, the API's
//! tables (procedures, approvals, projects, agents, leases, artifacts, sealed secrets), the job queue of DESIGN §4 (leases,
//! heartbeats, reclaim, durable timers, pushed wake-ups), change notices for SSE, versioned migrations — and the
//! conformance suite every backend must pass — and the PostgreSQL store ([`PgStore`]) implementing the same trait
//! for several processes on one database.
//!
//! SQLite discipline (STYLE.md): WAL, `synchronous=NORMAL` by default (`FULL` on request), foreign keys on, a busy
//! timeout, one writer thread that owns the only write connection and groups every queued write into one
//! transaction (`BEGIN IMMEDIATE`, a savepoint per write), and separate read connections.

#[path = "sqlite/approvals.rs"]
mod approvals;
#[path = "sqlite/callbacks.rs"]
mod callbacks;
pub mod conformance;
#[path = "sqlite/decisions.rs"]
mod decisions;
mod derived;
mod events;
mod hub;
mod pg;
#[path = "sqlite/procedures.rs"]
mod procedures;
#[path = "sqlite/queue.rs"]
mod queue;
#[path = "sqlite/registry.rs"]
mod registry;
#[path = "sqlite/runs.rs"]
mod runs;
#[path = "sqlite/secrets.rs"]
mod secrets;
mod sqlite;
mod store;

pub use approvals::{ApprovalDecision, ApprovalRow};
pub use decisions::DECISION_PRIORITY;
pub use pg::{GroupCommitStats, PgOptions, PgStore};
pub use procedures::{ProcedureFilter, ProcedureRecord};
pub use queue::{ClaimedJob, Claims, Job};
pub use registry::{AgentRow, AgentUpdate, ArtifactRow, CostSummary, LeaseRow, ProjectRow};
pub use runs::{
    EventRow, NewRun, QueueStats, QueuedJob, RunChange, RunFilter, RunRow, StepRow, is_terminal, status_text,
};
pub use secrets::{SecretRow, SecretUpdate};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use store::Store;

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
    Read(String),
    /// A write failed.
    #[error("write failed: {0}")]
    Write(String),
    /// PostgreSQL refused an operation, or the connection failed.
    #[error("database: {0}")]
    Database(String),
    /// An argument the store cannot use (a malformed time, a bad database URL).
    #[error("{0}")]
    Invalid(String),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// A filesystem problem.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
