//! [`SecretStore`] on PostgreSQL: sealed values only, with the same rules as the SQLite store.

use chrono::Utc;
use ckp_engine::effects::BoxFuture;
use deadpool_postgres::GenericClient;

use super::PgStore;
use crate::StoreError;
use crate::codec::{tags_text, ts};
use crate::store::{
    SECRET_COLUMNS, SecretRow, SecretStore, SecretUpdate, duplicate_secret, secret_not_found, secret_row,
};

async fn get_in(c: &impl GenericClient, name: &str) -> Result<Option<SecretRow>, StoreError> {
    let stmt = c.prepare_cached(&format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE name = $1")).await?;
    c.query_opt(&stmt, &[&name]).await?.as_ref().map(secret_row).transpose()
}

impl SecretStore for PgStore {
    fn insert_secret(&self, mut secret: SecretRow) -> BoxFuture<'_, Result<SecretRow, StoreError>> {
        Box::pin(async move {
            let now = Utc::now();
            secret.secret_id = uuid::Uuid::new_v4().to_string();
            secret.created_at = ts(now);
            secret.updated_at = ts(now);
            let s = &secret;
            let n = self
                .exec(
                    &format!(
                        "INSERT INTO secrets ({SECRET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                         ON CONFLICT (name) DO NOTHING"
                    ),
                    &[
                        &s.secret_id,
                        &s.name,
                        &s.sealed_value,
                        &s.description,
                        &s.provider_hint,
                        &tags_text(&s.tags),
                        &s.created_by,
                        &now,
                    ],
                )
                .await?;
            if n == 0 {
                return Err(duplicate_secret(&secret.name));
            }
            Ok(secret)
        })
    }

    fn list_secrets(&self) -> BoxFuture<'_, Result<Vec<SecretRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c.prepare_cached(&format!("SELECT {SECRET_COLUMNS} FROM secrets ORDER BY name")).await?;
            c.query(&stmt, &[]).await?.iter().map(secret_row).collect()
        })
    }

    fn get_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<SecretRow>, StoreError>> {
        Box::pin(async move { get_in(&self.client().await?, name).await })
    }

    fn update_secret<'a>(
        &'a self,
        name: &'a str,
        update: SecretUpdate,
    ) -> BoxFuture<'a, Result<SecretRow, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    "UPDATE secrets SET sealed_value = coalesce($2, sealed_value), description = coalesce($3, description),
                         tags = coalesce($4, tags), provider_hint = coalesce($5, provider_hint), updated_at = now()
                     WHERE name = $1",
                    &[
                        &name,
                        &update.sealed_value,
                        &update.description,
                        &update.tags.as_deref().map(tags_text),
                        &update.provider_hint,
                    ],
                )
                .await?;
            if n == 0 {
                return Err(secret_not_found(name));
            }
            get_in(&c, name).await?.ok_or_else(|| secret_not_found(name))
        })
    }

    fn delete_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let n = self.exec("DELETE FROM secrets WHERE name = $1", &[&name]).await?;
            if n == 0 { Err(secret_not_found(name)) } else { Ok(()) }
        })
    }
}
