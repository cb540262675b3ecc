//! [`ProcedureStore`] on SQLite: every write is announced once committed, so catalogs drop their caches.

use ckp_engine::effects::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::StoreError;
use crate::codec::{now, string_list};
use crate::status::ProcedureStatus;
use crate::store::{
    DraftRecord, DraftWrite, PROCEDURE_COLUMNS, ProcedureFilter, ProcedureRecord, ProcedureStore, TEST_VERSION_MARK,
    draft_conflict, duplicate_procedure, procedure_has_runs, procedure_in_use, procedure_not_found, procedure_row,
};

/// The `LIKE` pattern of test snapshot versions (`+test.` has no `LIKE` wildcard).
fn test_versions() -> String {
    format!("%{TEST_VERSION_MARK}%")
}

fn draft_in(c: &rusqlite::Connection, id: &str, version: &str) -> Result<Option<DraftRecord>, rusqlite::Error> {
    c.prepare_cached(
        "SELECT procedure_id, version, draft_json, revision, updated_at, updated_by FROM builder_drafts
         WHERE procedure_id = ?1 AND version = ?2",
    )?
    .query_row(params![id, version], |r| {
        Ok(DraftRecord {
            procedure_id: r.get(0)?,
            version: r.get(1)?,
            draft_json: r.get(2)?,
            revision: r.get(3)?,
            updated_at: r.get(4)?,
            updated_by: r.get(5)?,
        })
    })
    .optional()
}

fn get_in(
    c: &rusqlite::Connection,
    id: &str,
    version: Option<&str>,
) -> Result<Option<ProcedureRecord>, rusqlite::Error> {
    match version.filter(|v| *v != "latest") {
        Some(v) => c
            .prepare_cached(&format!(
                "SELECT rowid, {PROCEDURE_COLUMNS} FROM procedures WHERE procedure_id = ?1 AND version = ?2"
            ))?
            .query_row(params![id, v], |r| procedure_row(r))
            .optional(),
        None => c
            .prepare_cached(&format!(
                "SELECT rowid, {PROCEDURE_COLUMNS} FROM procedures WHERE procedure_id = ?1 AND version NOT LIKE ?2
                 ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ))?
            .query_row(params![id, test_versions()], |r| procedure_row(r))
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
}

impl ProcedureStore for SqliteStore {
    fn insert_procedure(&self, mut record: ProcedureRecord) -> BoxFuture<'_, Result<ProcedureRecord, StoreError>> {
        record.created_at = now();
        let r = record.clone();
        Box::pin(async move {
            self.write_procedures(move |tx| {
                if get_in(tx, &r.procedure_id, Some(&r.version))?.is_some() {
                    return Ok(Err(duplicate_procedure(&r)));
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
                    r.status.as_str(),
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
        })
    }

    fn get_procedure<'a>(
        &'a self,
        id: &'a str,
        version: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<ProcedureRecord>, StoreError>> {
        let id = id.to_owned();
        let version = version.map(str::to_owned);
        Box::pin(self.read_store(move |c| get_in(c, &id, version.as_deref())))
    }

    fn list_procedures(&self, filter: ProcedureFilter) -> BoxFuture<'_, Result<Vec<ProcedureRecord>, StoreError>> {
        Box::pin(self.read_store(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT rowid, {PROCEDURE_COLUMNS} FROM procedures
                 WHERE (?1 IS NULL OR project_id = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR procedure_id = ?3)
                   AND (?4 IS NULL OR project_id IN (SELECT value FROM json_each(?4))) AND version NOT LIKE ?5
                 ORDER BY created_at DESC, rowid DESC"
            ))?;
            let status = filter.status.map(ProcedureStatus::as_str);
            let projects = filter.projects.as_deref().map(string_list);
            let rows = stmt.query_map(
                params![filter.project_id, status, filter.procedure_id, projects, test_versions()],
                |r| procedure_row(r),
            )?;
            rows.collect()
        }))
    }

    fn update_procedure(&self, record: ProcedureRecord) -> BoxFuture<'_, Result<ProcedureRecord, StoreError>> {
        Box::pin(async move {
            self.write_procedures(move |tx| {
                let r = record;
                let runs: i64 = tx
                    .prepare_cached("SELECT count(*) FROM runs WHERE procedure_id = ?1 AND procedure_version = ?2")?
                    .query_row(params![r.procedure_id, r.version], |row| row.get(0))?;
                if runs > 0 {
                    return Ok(Err(procedure_has_runs(&r.procedure_id, &r.version, runs)));
                }
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
                    r.status.as_str(),
                    r.effective_date,
                    r.description,
                    r.ckp_json,
                    r.provenance,
                    r.retrieval_metadata,
                    r.trigger_config,
                    now()
                ])?;
                if n == 0 {
                    return Ok(Err(procedure_not_found()));
                }
                Ok(get_in(tx, &r.procedure_id, Some(&r.version))?.ok_or_else(procedure_not_found))
            })
            .await?
        })
    }

    fn set_procedure_status<'a>(
        &'a self,
        id: &'a str,
        version: &'a str,
        status: ProcedureStatus,
        ckp_json: String,
    ) -> BoxFuture<'a, Result<ProcedureRecord, StoreError>> {
        let (id, version) = (id.to_owned(), version.to_owned());
        Box::pin(async move {
            self.write_procedures(move |tx| {
                tx.prepare_cached(
                    "UPDATE procedures SET status = ?3, ckp_json = ?4, updated_at = ?5 WHERE procedure_id = ?1 AND version = ?2",
                )?
                .execute(params![id, version, status.as_str(), ckp_json, now()])?;
                Ok(get_in(tx, &id, Some(&version))?.ok_or_else(procedure_not_found))
            })
            .await?
        })
    }

    fn delete_procedure<'a>(&'a self, id: &'a str, version: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let (id, version) = (id.to_owned(), version.to_owned());
        Box::pin(async move {
            self.write_procedures(move |tx| {
                let active: i64 = tx
                    .prepare_cached(
                        "SELECT count(*) FROM runs WHERE procedure_id = ?1 AND procedure_version = ?2
                           AND status NOT IN ('completed', 'failed', 'canceled')",
                    )?
                    .query_row(params![id, version], |r| r.get(0))?;
                if active > 0 {
                    return Ok(Err(procedure_in_use(&id, &version, active)));
                }
                let n = tx
                    .prepare_cached("DELETE FROM procedures WHERE procedure_id = ?1 AND version = ?2")?
                    .execute(params![id, version])?;
                tx.prepare_cached("DELETE FROM builder_drafts WHERE procedure_id = ?1 AND version = ?2")?
                    .execute(params![id, version])?;
                Ok(if n == 0 { Err(procedure_not_found()) } else { Ok(()) })
            })
            .await?
        })
    }

    fn get_draft<'a>(
        &'a self,
        id: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<Option<DraftRecord>, StoreError>> {
        let (id, version) = (id.to_owned(), version.to_owned());
        Box::pin(self.read_store(move |c| draft_in(c, &id, &version)))
    }

    fn put_draft(&self, draft: DraftWrite) -> BoxFuture<'_, Result<DraftRecord, StoreError>> {
        Box::pin(async move {
            self.write(move |tx| {
                let stored = draft_in(tx, &draft.procedure_id, &draft.version)?.map_or(0, |d| d.revision);
                if let Some(expected) = draft.expected_revision
                    && expected != stored
                {
                    return Ok(Err(draft_conflict(stored, expected)));
                }
                tx.prepare_cached(
                    "INSERT INTO builder_drafts (procedure_id, version, draft_json, revision, updated_at, updated_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (procedure_id, version) DO UPDATE SET draft_json = excluded.draft_json,
                         revision = excluded.revision, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                )?
                .execute(params![
                    draft.procedure_id,
                    draft.version,
                    draft.draft_json,
                    stored + 1,
                    now(),
                    draft.updated_by
                ])?;
                Ok(draft_in(tx, &draft.procedure_id, &draft.version)?.ok_or_else(procedure_not_found))
            })
            .await?
        })
    }

    fn delete_draft<'a>(&'a self, id: &'a str, version: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (id, version) = (id.to_owned(), version.to_owned());
        Box::pin(self.write(move |tx| {
            Ok(tx
                .prepare_cached("DELETE FROM builder_drafts WHERE procedure_id = ?1 AND version = ?2")?
                .execute(params![id, version])?
                > 0)
        }))
    }

    fn watch_procedures(&self) -> tokio::sync::watch::Receiver<u64> {
        self.hub.watch_procedures()
    }
}
