//! The secrets table behind the `db` provider and `/api/secrets`. Values arrive sealed (the server encrypts them
//! with its key before calling the store), so this module stores and returns opaque text; a duplicate name is
//! [`StoreError::Conflict`], an unknown one [`StoreError::NotFound`].

use chrono::Utc;
use rusqlite::{OptionalExtension, params};

use crate::StoreError;
use crate::sqlite::{SqliteStore, ts};

/// A stored secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// Id.
    pub secret_id: String,
    /// Unique name (what `{{secrets.NAME}}` and `secret_references` look up).
    pub name: String,
    /// The value, sealed by the server (never a clear value).
    pub sealed_value: String,
    /// Description.
    pub description: Option<String>,
    /// LangOrch's `provider_hint` (kept, shown; the store always serves the value itself).
    pub provider_hint: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Changes to a secret; None leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretUpdate {
    /// A new sealed value.
    pub sealed_value: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Provider hint.
    pub provider_hint: Option<String>,
}

const COLUMNS: &str =
    "secret_id, name, sealed_value, description, provider_hint, tags, created_by, created_at, updated_at";

fn row(r: &rusqlite::Row<'_>) -> Result<SecretRow, rusqlite::Error> {
    let tags: String = r.get(5)?;
    Ok(SecretRow {
        secret_id: r.get(0)?,
        name: r.get(1)?,
        sealed_value: r.get(2)?,
        description: r.get(3)?,
        provider_hint: r.get(4)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

fn get_in(c: &rusqlite::Connection, name: &str) -> Result<Option<SecretRow>, rusqlite::Error> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM secrets WHERE name = ?1"))?
        .query_row(params![name], row)
        .optional()
}

pub(crate) fn tags_text(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

impl SqliteStore {
    /// Stores a new secret (its id and timestamps are set here); a taken name is a conflict.
    pub async fn insert_secret(&self, mut secret: SecretRow) -> Result<SecretRow, StoreError> {
        let now = ts(Utc::now());
        secret.secret_id = uuid::Uuid::new_v4().to_string();
        secret.created_at.clone_from(&now);
        secret.updated_at = now;
        let s = secret.clone();
        self.write(move |tx| {
            if get_in(tx, &s.name)?.is_some() {
                return Ok(Err(StoreError::Conflict(format!(
                    "Secret '{}' already exists. Use PUT to update.",
                    s.name
                ))));
            }
            tx.prepare_cached(&format!("INSERT INTO secrets ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"))?
                .execute(params![
                    s.secret_id,
                    s.name,
                    s.sealed_value,
                    s.description,
                    s.provider_hint,
                    tags_text(&s.tags),
                    s.created_by,
                    s.created_at,
                    s.updated_at
                ])?;
            Ok(Ok(()))
        })
        .await??;
        Ok(secret)
    }

    /// Secrets by name.
    pub async fn list_secrets(&self) -> Result<Vec<SecretRow>, StoreError> {
        self.read_store(|c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM secrets ORDER BY name"))?.query_map([], row)?.collect()
        })
        .await
    }

    /// One secret by name.
    pub async fn get_secret(&self, name: &str) -> Result<Option<SecretRow>, StoreError> {
        let name = name.to_owned();
        self.read_store(move |c| get_in(c, &name)).await
    }

    /// Changes a secret.
    pub async fn update_secret(&self, name: &str, update: SecretUpdate) -> Result<SecretRow, StoreError> {
        let name = name.to_owned();
        self.write(move |tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE secrets SET sealed_value = coalesce(?2, sealed_value), description = coalesce(?3, description),
                     tags = coalesce(?4, tags), provider_hint = coalesce(?5, provider_hint), updated_at = ?6
                     WHERE name = ?1",
                )?
                .execute(params![
                    name,
                    update.sealed_value,
                    update.description,
                    update.tags.as_deref().map(tags_text),
                    update.provider_hint,
                    ts(Utc::now())
                ])?;
            if changed == 0 {
                return Ok(Err(StoreError::NotFound(format!("Secret '{name}' not found"))));
            }
            get_in(tx, &name)?.map_or_else(|| Ok(Err(StoreError::NotFound(format!("Secret '{name}' not found")))), |r| Ok(Ok(r)))
        })
        .await?
    }

    /// Deletes a secret.
    pub async fn delete_secret(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |tx| {
            let n = tx.prepare_cached("DELETE FROM secrets WHERE name = ?1")?.execute(params![name])?;
            Ok(if n == 0 { Err(StoreError::NotFound(format!("Secret '{name}' not found"))) } else { Ok(()) })
        })
        .await?
    }
}
