//! [`ProcedureStore`]: imported procedure versions (insert, get one version or the latest, list, replace, status
//! lifecycle, delete) and their one decoder for both backends. The CKP text is stored verbatim; compiling it is
//! the caller's business (the catalog in `ckp-server` compiles once per version and caches).

use ckp_engine::effects::BoxFuture;

use crate::StoreError;
use crate::row::RowSource;
use crate::status::ProcedureStatus;

/// Procedure versions. A duplicate id + version is a conflict, never an overwrite; every change is announced to
/// [`ProcedureStore::watch_procedures`].
pub trait ProcedureStore: Send + Sync {
    /// Stores a new procedure version; [`StoreError::Conflict`] when that id and version exist.
    fn insert_procedure(&self, record: ProcedureRecord) -> BoxFuture<'_, Result<ProcedureRecord, StoreError>>;
    /// One version of a procedure, or the latest imported one when `version` is None or `latest`.
    fn get_procedure<'a>(
        &'a self,
        id: &'a str,
        version: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<ProcedureRecord>, StoreError>>;
    /// Procedure versions matching `filter`, newest first.
    fn list_procedures(&self, filter: ProcedureFilter) -> BoxFuture<'_, Result<Vec<ProcedureRecord>, StoreError>>;
    /// Replaces the document and the fields derived from it of an existing version (the caller validated it).
    fn update_procedure(&self, record: ProcedureRecord) -> BoxFuture<'_, Result<ProcedureRecord, StoreError>>;
    /// Sets the lifecycle status of a version, in its row and in its stored document (`ckp_json` given by the
    /// caller with the status mirrored).
    fn set_procedure_status<'a>(
        &'a self,
        id: &'a str,
        version: &'a str,
        status: ProcedureStatus,
        ckp_json: String,
    ) -> BoxFuture<'a, Result<ProcedureRecord, StoreError>>;
    /// Deletes one version. Runs keep their history (they record the version they ran); a version with runs still
    /// in progress (not completed, failed or canceled) is a conflict, since they could not continue.
    fn delete_procedure<'a>(&'a self, id: &'a str, version: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The builder draft of a version, if one is stored.
    fn get_draft<'a>(&'a self, id: &'a str, version: &'a str)
    -> BoxFuture<'a, Result<Option<DraftRecord>, StoreError>>;
    /// Stores a version's builder draft with the next revision. With `expected_revision`, the stored revision (0
    /// when there is none) must be that one, else [`StoreError::Conflict`] and nothing changes.
    fn put_draft(&self, draft: DraftWrite) -> BoxFuture<'_, Result<DraftRecord, StoreError>>;
    /// Deletes a version's builder draft; whether there was one.
    fn delete_draft<'a>(&'a self, id: &'a str, version: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// A watch that changes after every change of procedures, by this process or (shared database) another one:
    /// whoever caches procedures drops its cache.
    fn watch_procedures(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// A stored procedure version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcedureRecord {
    /// Row id (LangOrch's integer `id`; 0 before insertion).
    pub id: i64,
    /// `procedure_id`.
    pub procedure_id: String,
    /// `version`.
    pub version: String,
    /// Display name.
    pub name: String,
    /// Lifecycle status (draft when the document says nothing).
    pub status: ProcedureStatus,
    /// Not runnable before this date.
    pub effective_date: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Owning project.
    pub project_id: Option<String>,
    /// The CKP document, verbatim.
    pub ckp_json: String,
    /// `provenance` (JSON text).
    pub provenance: Option<String>,
    /// `retrieval_metadata` (JSON text).
    pub retrieval_metadata: Option<String>,
    /// `trigger` (JSON text).
    pub trigger_config: Option<String>,
    /// dev, qa, prod.
    pub release_channel: Option<String>,
    /// When it was imported (RFC 3339 UTC).
    pub created_at: String,
}

/// A version's builder draft (the console's working copy: a JSON object the server does not interpret).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DraftRecord {
    /// `procedure_id`.
    pub procedure_id: String,
    /// `version`.
    pub version: String,
    /// The draft, JSON text.
    pub draft_json: String,
    /// 1 for the first write, one more for each write after.
    pub revision: i64,
    /// When it was last written (RFC 3339 UTC).
    pub updated_at: String,
    /// Who wrote it last, when known.
    pub updated_by: Option<String>,
}

/// A write of a builder draft.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DraftWrite {
    /// `procedure_id`.
    pub procedure_id: String,
    /// `version`.
    pub version: String,
    /// The draft, JSON text.
    pub draft_json: String,
    /// The revision the writer read (0: none stored); `None` writes unconditionally.
    pub expected_revision: Option<i64>,
    /// Who writes it.
    pub updated_by: Option<String>,
}

/// Versions holding this mark are the snapshots test runs of a draft execute (`1.2.0+test.0a1b2c3d`): stored so
/// that their runs can resume, but never listed and never "the latest".
pub const TEST_VERSION_MARK: &str = "+test.";

/// Filters of the procedure list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcedureFilter {
    /// Project.
    pub project_id: Option<String>,
    /// Status.
    pub status: Option<ProcedureStatus>,
    /// Only this procedure id (its versions).
    pub procedure_id: Option<String>,
    /// Only versions of these projects (one with no project is left out): what a user may see. `None`: every
    /// version.
    pub projects: Option<Vec<String>>,
}

/// The columns [`procedure_row`] reads after the row id (SQLite's `rowid`, PostgreSQL's `id`), in its order.
pub(crate) const PROCEDURE_COLUMNS: &str = "procedure_id, version, name, status, effective_date, description,
    project_id, ckp_json, provenance, retrieval_metadata, trigger_config, release_channel, created_at";

/// A procedure version from its row id and the columns of [`PROCEDURE_COLUMNS`].
pub(crate) fn procedure_row<R: RowSource>(r: &R) -> Result<ProcedureRecord, R::Error> {
    Ok(ProcedureRecord {
        id: r.int(0)?,
        procedure_id: r.text(1)?,
        version: r.text(2)?,
        name: r.text(3)?,
        status: r.parsed(4)?,
        effective_date: r.opt_text(5)?,
        description: r.opt_text(6)?,
        project_id: r.opt_text(7)?,
        ckp_json: r.text(8)?,
        provenance: r.opt_text(9)?,
        retrieval_metadata: r.opt_text(10)?,
        trigger_config: r.opt_text(11)?,
        release_channel: r.opt_text(12)?,
        created_at: r.time(13)?,
    })
}

/// The answer when a procedure version does not exist.
pub(crate) fn procedure_not_found() -> StoreError {
    StoreError::NotFound("Procedure not found".into())
}

/// The conflict of an import whose id and version exist.
pub(crate) fn duplicate_procedure(r: &ProcedureRecord) -> StoreError {
    StoreError::Conflict(format!("Procedure {} version {} already exists", r.procedure_id, r.version))
}

/// The conflict of a draft write whose writer read another revision.
pub(crate) fn draft_conflict(stored: i64, expected: i64) -> StoreError {
    StoreError::Conflict(format!(
        "The draft changed since it was read (revision {stored} is stored, the write expected {expected})"
    ))
}

/// The conflict of a replacement of a version that has runs: they ran (or are running) that document.
pub(crate) fn procedure_has_runs(id: &str, version: &str, runs: i64) -> StoreError {
    StoreError::Conflict(format!(
        "Procedure {id} version {version} has {runs} run(s); a version that has run is never replaced: save the change as a new version"
    ))
}

/// The conflict of a delete of a version that still has `active` runs in progress.
pub(crate) fn procedure_in_use(id: &str, version: &str, active: i64) -> StoreError {
    StoreError::Conflict(format!(
        "Procedure {id} version {version} has {active} run(s) in progress; cancel them or let them finish first"
    ))
}
