//! [`ProcedureStore`] on PostgreSQL: the same rules as the SQLite store; every change is announced in this process
//! at once and to the others by migration 0006's trigger.

use chrono::Utc;
use ckp_engine::effects::BoxFuture;
use deadpool_postgres::GenericClient;

use super::PgStore;
use crate::StoreError;
use crate::codec::ts;
use crate::status::ProcedureStatus;
use crate::store::{
    DraftRecord, DraftWrite, PROCEDURE_COLUMNS, ProcedureFilter, ProcedureRecord, ProcedureStore, TEST_VERSION_MARK,
    draft_conflict, duplicate_procedure, procedure_has_runs, procedure_in_use, procedure_not_found, procedure_row,
};

/// The `LIKE` pattern of test snapshot versions (`+test.` has no `LIKE` wildcard).
fn test_versions() -> String {
    format!("%{TEST_VERSION_MARK}%")
}

async fn draft_in(c: &impl GenericClient, id: &str, version: &str) -> Result<Option<DraftRecord>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT procedure_id, version, draft_json, revision, updated_at, updated_by FROM builder_drafts
             WHERE procedure_id = $1 AND version = $2",
        )
        .await?;
    let Some(row) = c.query_opt(&stmt, &[&id, &version]).await? else { return Ok(None) };
    Ok(Some(DraftRecord {
        procedure_id: row.try_get(0)?,
        version: row.try_get(1)?,
        draft_json: row.try_get(2)?,
        revision: row.try_get(3)?,
        updated_at: ts(row.try_get(4)?),
        updated_by: row.try_get(5)?,
    }))
}

async fn get_procedure_in(
    c: &impl GenericClient,
    id: &str,
    version: Option<&str>,
) -> Result<Option<ProcedureRecord>, StoreError> {
    let row = match version.filter(|v| *v != "latest") {
        Some(v) => {
            let sql =
                format!("SELECT id, {PROCEDURE_COLUMNS} FROM procedures WHERE procedure_id = $1 AND version = $2");
            let stmt = c.prepare_cached(&sql).await?;
            c.query_opt(&stmt, &[&id, &v]).await?
        }
        None => {
            let sql = format!(
                "SELECT id, {PROCEDURE_COLUMNS} FROM procedures WHERE procedure_id = $1 AND version NOT LIKE $2
                 ORDER BY created_at DESC, id DESC LIMIT 1"
            );
            let stmt = c.prepare_cached(&sql).await?;
            c.query_opt(&stmt, &[&id, &test_versions()]).await?
        }
    };
    row.as_ref().map(procedure_row).transpose()
}

impl ProcedureStore for PgStore {
    fn insert_procedure(&self, mut record: ProcedureRecord) -> BoxFuture<'_, Result<ProcedureRecord, StoreError>> {
        Box::pin(async move {
            let now = Utc::now();
            record.created_at = ts(now);
            let r = &record;
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "INSERT INTO procedures (procedure_id, version, name, status, effective_date, description, project_id,
                         ckp_json, provenance, retrieval_metadata, trigger_config, release_channel, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
                     ON CONFLICT (procedure_id, version) DO NOTHING RETURNING id",
                )
                .await?;
            let row = c
                .query_opt(
                    &stmt,
                    &[
                        &r.procedure_id,
                        &r.version,
                        &r.name,
                        &r.status.as_str(),
                        &r.effective_date,
                        &r.description,
                        &r.project_id,
                        &r.ckp_json,
                        &r.provenance,
                        &r.retrieval_metadata,
                        &r.trigger_config,
                        &r.release_channel,
                        &now,
                    ],
                )
                .await?;
            self.publish_procedures();
            match row {
                Some(row) => Ok(ProcedureRecord { id: row.try_get(0)?, ..record }),
                None => Err(duplicate_procedure(&record)),
            }
        })
    }

    fn get_procedure<'a>(
        &'a self,
        id: &'a str,
        version: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<ProcedureRecord>, StoreError>> {
        Box::pin(async move { get_procedure_in(&self.client().await?, id, version).await })
    }

    fn list_procedures(&self, filter: ProcedureFilter) -> BoxFuture<'_, Result<Vec<ProcedureRecord>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT id, {PROCEDURE_COLUMNS} FROM procedures
                     WHERE ($1::text IS NULL OR project_id = $1) AND ($2::text IS NULL OR status = $2)
                       AND ($3::text IS NULL OR procedure_id = $3) AND ($4::text[] IS NULL OR project_id = ANY($4))
                       AND version NOT LIKE $5
                     ORDER BY created_at DESC, id DESC"
                ))
                .await?;
            let status = filter.status.map(ProcedureStatus::as_str);
            c.query(&stmt, &[&filter.project_id, &status, &filter.procedure_id, &filter.projects, &test_versions()])
                .await?
                .iter()
                .map(procedure_row)
                .collect()
        })
    }

    fn update_procedure(&self, record: ProcedureRecord) -> BoxFuture<'_, Result<ProcedureRecord, StoreError>> {
        Box::pin(async move {
            let r = &record;
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            // Serialized with concurrent changes of the same version.
            tx.execute(
                "SELECT 1 FROM procedures WHERE procedure_id = $1 AND version = $2 FOR UPDATE",
                &[&r.procedure_id, &r.version],
            )
            .await?;
            let runs: i64 = tx
                .query_one(
                    "SELECT count(*) FROM runs WHERE procedure_id = $1 AND procedure_version = $2",
                    &[&r.procedure_id, &r.version],
                )
                .await?
                .try_get(0)?;
            if runs > 0 {
                return Err(procedure_has_runs(&r.procedure_id, &r.version, runs));
            }
            let n = tx
                .execute(
                    "UPDATE procedures SET name = $3, status = $4, effective_date = $5, description = $6, ckp_json = $7,
                         provenance = $8, retrieval_metadata = $9, trigger_config = $10, updated_at = now()
                     WHERE procedure_id = $1 AND version = $2",
                    &[
                        &r.procedure_id,
                        &r.version,
                        &r.name,
                        &r.status.as_str(),
                        &r.effective_date,
                        &r.description,
                        &r.ckp_json,
                        &r.provenance,
                        &r.retrieval_metadata,
                        &r.trigger_config,
                    ],
                )
                .await?;
            if n == 0 {
                return Err(procedure_not_found());
            }
            let stored =
                get_procedure_in(&tx, &r.procedure_id, Some(&r.version)).await?.ok_or_else(procedure_not_found);
            tx.commit().await?;
            self.publish_procedures();
            stored
        })
    }

    fn set_procedure_status<'a>(
        &'a self,
        id: &'a str,
        version: &'a str,
        status: ProcedureStatus,
        ckp_json: String,
    ) -> BoxFuture<'a, Result<ProcedureRecord, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            c.execute(
                "UPDATE procedures SET status = $3, ckp_json = $4, updated_at = now() WHERE procedure_id = $1 AND version = $2",
                &[&id, &version, &status.as_str(), &ckp_json],
            )
            .await?;
            self.publish_procedures();
            get_procedure_in(&c, id, Some(version)).await?.ok_or_else(procedure_not_found)
        })
    }

    fn delete_procedure<'a>(&'a self, id: &'a str, version: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            // Serialized with concurrent changes of the same version.
            tx.execute(
                "SELECT 1 FROM procedures WHERE procedure_id = $1 AND version = $2 FOR UPDATE",
                &[&id, &version],
            )
            .await?;
            let active: i64 = tx
                .query_one(
                    "SELECT count(*) FROM runs WHERE procedure_id = $1 AND procedure_version = $2
                       AND status NOT IN ('completed', 'failed', 'canceled')",
                    &[&id, &version],
                )
                .await?
                .try_get(0)?;
            if active > 0 {
                return Err(procedure_in_use(id, version, active));
            }
            let n =
                tx.execute("DELETE FROM procedures WHERE procedure_id = $1 AND version = $2", &[&id, &version]).await?;
            tx.execute("DELETE FROM builder_drafts WHERE procedure_id = $1 AND version = $2", &[&id, &version]).await?;
            tx.commit().await?;
            self.publish_procedures();
            if n == 0 { Err(procedure_not_found()) } else { Ok(()) }
        })
    }

    fn get_draft<'a>(
        &'a self,
        id: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<Option<DraftRecord>, StoreError>> {
        Box::pin(async move { draft_in(&self.client().await?, id, version).await })
    }

    fn put_draft(&self, draft: DraftWrite) -> BoxFuture<'_, Result<DraftRecord, StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            // The first write of a draft races no row lock: an insert that loses gets a unique violation, which
            // is the same conflict.
            let stored: i64 = tx
                .query_opt(
                    "SELECT revision FROM builder_drafts WHERE procedure_id = $1 AND version = $2 FOR UPDATE",
                    &[&draft.procedure_id, &draft.version],
                )
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0);
            if let Some(expected) = draft.expected_revision
                && expected != stored
            {
                return Err(draft_conflict(stored, expected));
            }
            let sql = if stored == 0 {
                "INSERT INTO builder_drafts (procedure_id, version, draft_json, revision, updated_at, updated_by)
                 VALUES ($1, $2, $3, $4, now(), $5)"
            } else {
                "UPDATE builder_drafts SET draft_json = $3, revision = $4, updated_at = now(), updated_by = $5
                 WHERE procedure_id = $1 AND version = $2"
            };
            let written = tx
                .execute(
                    sql,
                    &[&draft.procedure_id, &draft.version, &draft.draft_json, &(stored + 1), &draft.updated_by],
                )
                .await;
            if let Err(e) = written {
                if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                    return Err(draft_conflict(stored + 1, stored));
                }
                return Err(e.into());
            }
            let record = draft_in(&tx, &draft.procedure_id, &draft.version).await?.ok_or_else(procedure_not_found)?;
            tx.commit().await?;
            Ok(record)
        })
    }

    fn delete_draft<'a>(&'a self, id: &'a str, version: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            Ok(c.execute("DELETE FROM builder_drafts WHERE procedure_id = $1 AND version = $2", &[&id, &version])
                .await?
                > 0)
        })
    }

    fn watch_procedures(&self) -> tokio::sync::watch::Receiver<u64> {
        self.hub.watch_procedures()
    }
}
