//! [`SecretStore`] on SQLite: sealed values only, stored and returned as opaque text.

use chrono::Utc;
use ckp_engine::effects::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::StoreError;
use crate::codec::{tags_text, ts};
use crate::store::{
    SECRET_COLUMNS, SecretRow, SecretStore, SecretUpdate, duplicate_secret, secret_not_found, secret_row,
};

fn get_in(c: &rusqlite::Connection, name: &str) -> Result<Option<SecretRow>, rusqlite::Error> {
    c.prepare_cached(&format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE name = ?1"))?
        .query_row(params![name], |r| secret_row(r))
        .optional()
}

impl SecretStore for SqliteStore {
    fn insert_secret(&self, mut secret: SecretRow) -> BoxFuture<'_, Result<SecretRow, StoreError>> {
        Box::pin(async move {
            let now = ts(Utc::now());
            secret.secret_id = uuid::Uuid::new_v4().to_string();
            secret.created_at.clone_from(&now);
            secret.updated_at = now;
            let s = secret.clone();
            self.write(move |tx| {
                if get_in(tx, &s.name)?.is_some() {
                    return Ok(Err(duplicate_secret(&s.name)));
                }
                tx.prepare_cached(&format!(
                    "INSERT INTO secrets ({SECRET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ))?
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
        })
    }

    fn list_secrets(&self) -> BoxFuture<'_, Result<Vec<SecretRow>, StoreError>> {
        Box::pin(async move {
            self.read_store(|c| {
                c.prepare_cached(&format!("SELECT {SECRET_COLUMNS} FROM secrets ORDER BY name"))?
                    .query_map([], |r| secret_row(r))?
                    .collect()
            })
            .await
        })
    }

    fn get_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<SecretRow>, StoreError>> {
        Box::pin(async move {
            let name = name.to_owned();
            self.read_store(move |c| get_in(c, &name)).await
        })
    }

    fn update_secret<'a>(
        &'a self,
        name: &'a str,
        update: SecretUpdate,
    ) -> BoxFuture<'a, Result<SecretRow, StoreError>> {
        Box::pin(async move {
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
                    return Ok(Err(secret_not_found(&name)));
                }
                get_in(tx, &name)?.map_or_else(|| Ok(Err(secret_not_found(&name))), |r| Ok(Ok(r)))
            })
            .await?
        })
    }

    fn delete_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let name = name.to_owned();
            self.write(move |tx| {
                let n = tx.prepare_cached("DELETE FROM secrets WHERE name = ?1")?.execute(params![name])?;
                Ok(if n == 0 { Err(secret_not_found(&name)) } else { Ok(()) })
            })
            .await?
        })
    }
}
