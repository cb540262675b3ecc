//! Imported procedures: insert (a duplicate id + version is a conflict, never an overwrite), get one version or
//! the latest, list with filters, replace a version's document, status lifecycle, delete. The CKP text is stored
//! verbatim; compiling it is the caller's business (the catalog in `ckp-server` compiles once per version and
//! caches).

use rusqlite::{OptionalExtension, params};

use crate::StoreError;
use crate::sqlite::{SqliteStore, now};

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
    pub status: String,
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

/// Filters of the procedure list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcedureFilter {
    /// Project.
    pub project_id: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Only this procedure id (its versions).
    pub procedure_id: Option<String>,
}

fn row(r: &rusqlite::Row<'_>) -> Result<ProcedureRecord, rusqlite::Error> {
    Ok(ProcedureRecord {
        id: r.get(0)?,
        procedure_id: r.get(1)?,
        version: r.get(2)?,
        name: r.get(3)?,
        status: r.get(4)?,
        effective_date: r.get(5)?,
        description: r.get(6)?,
        project_id: r.get(7)?,
        ckp_json: r.get(8)?,
        provenance: r.get(9)?,
        retrieval_metadata: r.get(10)?,
        trigger_config: r.get(11)?,
        release_channel: r.get(12)?,
        created_at: r.get(13)?,
    })
}

const COLUMNS: &str = "rowid, procedure_id, version, name, status, effective_date, description, project_id, ckp_json,
    provenance, retrieval_metadata, trigger_config, release_channel, created_at";

fn get_in(
    c: &rusqlite::Connection,
    id: &str,
    version: Option<&str>,
) -> Result<Option<ProcedureRecord>, rusqlite::Error> {
    match version.filter(|v| *v != "latest") {
        Some(v) => c
            .prepare_cached(&format!("SELECT {COLUMNS} FROM procedures WHERE procedure_id = ?1 AND version = ?2"))?
            .query_row(params![id, v], row)
            .optional(),
        None => c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM procedures WHERE procedure_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ))?
            .query_row(params![id], row)
            .optional(),
    }
}

impl SqliteStore {
    /// A write to the procedures table, announced once committed (catalogs drop their caches).
    async fn write_procedures<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let written = self.write(f).await;
        self.publish_procedures();
        written
    }

    /// Stores a new procedure version; [`StoreError::Conflict`] when that id and version exist.
    pub async fn insert_procedure(&self, mut record: ProcedureRecord) -> Result<ProcedureRecord, StoreError> {
        record.created_at = now();
        let r = record.clone();
        self.write_procedures(move |tx| {
            if get_in(tx, &r.procedure_id, Some(&r.version))?.is_some() {
                return Ok(Err(StoreError::Conflict(format!(
                    "Procedure {} version {} already exists",
                    r.procedure_id, r.version
                ))));
            }
            tx.prepare_cached(
                "INSERT INTO procedures (procedure_id, version, name, status, effective_date, description, project_id,
                     ckp_json, provenance, retrieval_metadata, trigger_config, release_channel, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
            )?
            .execute(params![
                r.procedure_id,
                r.version,
                r.name,
                r.status,
                r.effective_date,
                r.description,
                r.project_id,
                r.ckp_json,
                r.provenance,
                r.retrieval_metadata,
                r.trigger_config,
                r.release_channel,
                r.created_at
            ])?;
            Ok(Ok(tx.last_insert_rowid()))
        })
        .await?
        .map(|id| ProcedureRecord { id, ..record })
    }

    /// One version of a procedure, or the latest imported one when `version` is None or `latest`.
    pub async fn get_procedure(&self, id: &str, version: Option<&str>) -> Result<Option<ProcedureRecord>, StoreError> {
        let id = id.to_owned();
        let version = version.map(str::to_owned);
        self.read_store(move |c| get_in(c, &id, version.as_deref())).await
    }

    /// Procedure versions matching `filter`, newest first.
    pub async fn list_procedures(&self, filter: ProcedureFilter) -> Result<Vec<ProcedureRecord>, StoreError> {
        self.read_store(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM procedures
                 WHERE (?1 IS NULL OR project_id = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR procedure_id = ?3)
                 ORDER BY created_at DESC, rowid DESC"
            ))?;
            let rows = stmt.query_map(params![filter.project_id, filter.status, filter.procedure_id], row)?;
            rows.collect()
        })
        .await
    }

    /// Replaces the document and the fields derived from it of an existing version (the caller validated it).
    pub async fn update_procedure(&self, record: ProcedureRecord) -> Result<ProcedureRecord, StoreError> {
        let r = record.clone();
        self.write_procedures(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE procedures SET name = ?3, status = ?4, effective_date = ?5, description = ?6, ckp_json = ?7,
                         provenance = ?8, retrieval_metadata = ?9, trigger_config = ?10, updated_at = ?11
                     WHERE procedure_id = ?1 AND version = ?2",
                )?
                .execute(params![
                    r.procedure_id,
                    r.version,
                    r.name,
                    r.status,
                    r.effective_date,
                    r.description,
                    r.ckp_json,
                    r.provenance,
                    r.retrieval_metadata,
                    r.trigger_config,
                    now()
                ])?;
            if n == 0 {
                return Ok(Err(StoreError::NotFound("Procedure not found".into())));
            }
            Ok(get_in(tx, &r.procedure_id, Some(&r.version))?
                .ok_or_else(|| StoreError::NotFound("Procedure not found".into())))
        })
        .await?
    }

    /// Sets the lifecycle status of a version, in its row and in its stored document (`ckp_json` given by the
    /// caller with the status mirrored).
    pub async fn set_procedure_status(
        &self,
        id: &str,
        version: &str,
        status: &str,
        ckp_json: String,
    ) -> Result<ProcedureRecord, StoreError> {
        let (id, version, status) = (id.to_owned(), version.to_owned(), status.to_owned());
        self.write_procedures(move |tx| {
            tx.prepare_cached(
                "UPDATE procedures SET status = ?3, ckp_json = ?4, updated_at = ?5 WHERE procedure_id = ?1 AND version = ?2",
            )?
            .execute(params![id, version, status, ckp_json, now()])?;
            Ok(get_in(tx, &id, Some(&version))?.ok_or_else(|| StoreError::NotFound("Procedure not found".into())))
        })
        .await?
    }

    /// Deletes one version. Runs keep their history (they record the version they ran); a version with runs still
    /// in progress (not completed, failed or canceled) is a conflict, since they could not continue.
    pub async fn delete_procedure(&self, id: &str, version: &str) -> Result<(), StoreError> {
        let (id, version) = (id.to_owned(), version.to_owned());
        self.write_procedures(move |tx| {
            let active: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM runs WHERE procedure_id = ?1 AND procedure_version = ?2
                       AND status NOT IN ('completed', 'failed', 'canceled')",
                )?
                .query_row(params![id, version], |r| r.get(0))?;
            if active > 0 {
                return Ok(Err(StoreError::Conflict(format!(
                    "Procedure {id} version {version} has {active} run(s) in progress; cancel them or let them finish first"
                ))));
            }
            let n = tx
                .prepare_cached("DELETE FROM procedures WHERE procedure_id = ?1 AND version = ?2")?
                .execute(params![id, version])?;
            Ok(if n == 0 { Err(StoreError::NotFound("Procedure not found".into())) } else { Ok(()) })
        })
        .await?
    }
}
