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
    PROCEDURE_COLUMNS, ProcedureFilter, ProcedureRecord, ProcedureStore, duplicate_procedure, procedure_in_use,
    procedure_not_found, procedure_row,
};

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
                "SELECT id, {PROCEDURE_COLUMNS} FROM procedures WHERE procedure_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
            );
            let stmt = c.prepare_cached(&sql).await?;
            c.query_opt(&stmt, &[&id]).await?
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
                     ORDER BY created_at DESC, id DESC"
                ))
                .await?;
            let status = filter.status.map(ProcedureStatus::as_str);
            c.query(&stmt, &[&filter.project_id, &status, &filter.procedure_id, &filter.projects])
                .await?
                .iter()
                .map(procedure_row)
                .collect()
        })
    }

    fn update_procedure(&self, record: ProcedureRecord) -> BoxFuture<'_, Result<ProcedureRecord, StoreError>> {
        Box::pin(async move {
            let r = &record;
            let c = self.client().await?;
            let n = c
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
            self.publish_procedures();
            if n == 0 {
                return Err(procedure_not_found());
            }
            get_procedure_in(&c, &r.procedure_id, Some(&r.version)).await?.ok_or_else(procedure_not_found)
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
            tx.commit().await?;
            self.publish_procedures();
            if n == 0 { Err(procedure_not_found()) } else { Ok(()) }
        })
    }

    fn watch_procedures(&self) -> tokio::sync::watch::Receiver<u64> {
        self.hub.watch_procedures()
    }
}
