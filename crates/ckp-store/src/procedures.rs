//! Imported procedures: insert (a duplicate id + version is a conflict, never an overwrite), get one version or
//! the latest, list. The CKP text is stored verbatim; compiling it is the caller's business (the catalog in
//! `ckp-server` compiles once per version and caches).

use chrono::{SecondsFormat, Utc};
use rusqlite::{OptionalExtension, params};

use crate::StoreError;
use crate::sqlite::SqliteStore;

/// A stored procedure version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureRecord {
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
    /// When it was imported (RFC 3339 UTC).
    pub created_at: String,
}

fn row(r: &rusqlite::Row<'_>) -> Result<ProcedureRecord, rusqlite::Error> {
    Ok(ProcedureRecord {
        procedure_id: r.get(0)?,
        version: r.get(1)?,
        name: r.get(2)?,
        status: r.get(3)?,
        effective_date: r.get(4)?,
        description: r.get(5)?,
        project_id: r.get(6)?,
        ckp_json: r.get(7)?,
        created_at: r.get(8)?,
    })
}

const COLUMNS: &str =
    "procedure_id, version, name, status, effective_date, description, project_id, ckp_json, created_at";

impl SqliteStore {
    /// Stores a new procedure version; [`StoreError::Conflict`] when that id and version exist.
    pub async fn insert_procedure(&self, mut record: ProcedureRecord) -> Result<ProcedureRecord, StoreError> {
        record.created_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let r = record.clone();
        self.write(move |tx| {
            let exists: Option<i64> = tx
                .prepare_cached("SELECT 1 FROM procedures WHERE procedure_id = ?1 AND version = ?2")?
                .query_row(params![r.procedure_id, r.version], |row| row.get(0))
                .optional()?;
            if exists.is_some() {
                return Ok(false);
            }
            tx.prepare_cached(&format!(
                "INSERT INTO procedures ({COLUMNS}, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)"
            ))?
            .execute(params![
                r.procedure_id,
                r.version,
                r.name,
                r.status,
                r.effective_date,
                r.description,
                r.project_id,
                r.ckp_json,
                r.created_at
            ])?;
            Ok(true)
        })
        .await?
        .then_some(record.clone())
        .ok_or_else(|| {
            StoreError::Conflict(format!("procedure {} version {} already exists", record.procedure_id, record.version))
        })
    }

    /// One version of a procedure, or the latest imported one when `version` is None or `latest`.
    pub async fn get_procedure(&self, id: &str, version: Option<&str>) -> Result<Option<ProcedureRecord>, StoreError> {
        let id = id.to_owned();
        let version = version.filter(|v| *v != "latest").map(str::to_owned);
        self.read_store(move |c| match &version {
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
        })
        .await
    }

    /// Every procedure version, newest first.
    pub async fn list_procedures(&self) -> Result<Vec<ProcedureRecord>, StoreError> {
        self.read_store(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM procedures ORDER BY created_at DESC, rowid DESC"))?;
            let rows = stmt.query_map([], row)?;
            rows.collect()
        })
        .await
    }
}
