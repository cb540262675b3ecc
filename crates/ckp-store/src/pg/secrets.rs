//! The secrets table on PostgreSQL (see the SQLite module `secrets`): sealed values only, a duplicate name is a
//! conflict, an unknown one not found.

use chrono::Utc;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PgStore, t};
use crate::StoreError;
use crate::secrets::{SecretRow, SecretUpdate, tags_text};
use crate::sqlite::ts;

const COLUMNS: &str =
    "secret_id, name, sealed_value, description, provider_hint, tags, created_by, created_at, updated_at";

fn row(r: &Row) -> Result<SecretRow, StoreError> {
    let tags: String = r.try_get(5)?;
    Ok(SecretRow {
        secret_id: r.try_get(0)?,
        name: r.try_get(1)?,
        sealed_value: r.try_get(2)?,
        description: r.try_get(3)?,
        provider_hint: r.try_get(4)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        created_by: r.try_get(6)?,
        created_at: t(r, 7)?,
        updated_at: t(r, 8)?,
    })
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("Secret '{name}' not found"))
}

async fn get_in(c: &impl GenericClient, name: &str) -> Result<Option<SecretRow>, StoreError> {
    let stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM secrets WHERE name = $1")).await?;
    c.query_opt(&stmt, &[&name]).await?.as_ref().map(row).transpose()
}

impl PgStore {
    /// Stores a new sealed secret; a taken name is a conflict.
    pub async fn insert_secret(&self, mut secret: SecretRow) -> Result<SecretRow, StoreError> {
        let now = Utc::now();
        secret.secret_id = uuid::Uuid::new_v4().to_string();
        secret.created_at = ts(now);
        secret.updated_at = ts(now);
        let s = &secret;
        let n = self
            .exec(
                &format!(
                    "INSERT INTO secrets ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
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
            return Err(StoreError::Conflict(format!("Secret '{}' already exists. Use PUT to update.", secret.name)));
        }
        Ok(secret)
    }

    /// Secrets by name (sealed).
    pub async fn list_secrets(&self) -> Result<Vec<SecretRow>, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM secrets ORDER BY name")).await?;
        c.query(&stmt, &[]).await?.iter().map(row).collect()
    }

    /// One secret (sealed).
    pub async fn get_secret(&self, name: &str) -> Result<Option<SecretRow>, StoreError> {
        get_in(&self.client().await?, name).await
    }

    /// Changes the given fields of a secret.
    pub async fn update_secret(&self, name: &str, update: SecretUpdate) -> Result<SecretRow, StoreError> {
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
            return Err(not_found(name));
        }
        get_in(&c, name).await?.ok_or_else(|| not_found(name))
    }

    /// Deletes a secret.
    pub async fn delete_secret(&self, name: &str) -> Result<(), StoreError> {
        let n = self.exec("DELETE FROM secrets WHERE name = $1", &[&name]).await?;
        if n == 0 { Err(not_found(name)) } else { Ok(()) }
    }
}
