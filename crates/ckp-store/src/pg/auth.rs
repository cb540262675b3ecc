//! [`AuthStore`] on PostgreSQL: the same rules as the SQLite store, for several processes on one database. A taken
//! name is found by the unique index it violates (named in migration 0009), so concurrent inserts cannot both win;
//! a change that could remove the last admin first locks every active admin's row (in id order), so two such
//! changes are serialized and the second sees what the first did.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::error::SqlState;

use super::{PgStore, parse_time};
use crate::StoreError;
use crate::store::{
    ADMIN_ROLE, API_KEY_COLUMNS, API_KEY_WIDTH, AUDIT_COLUMNS, ApiKeyRow, AuditFilter, AuditRow, AuthStore,
    GRANT_COLUMNS, GrantRow, KeyAndOwner, SESSION_COLUMNS, SESSION_WIDTH, SessionRow, USER_COLUMNS, UserRow,
    UserUpdate, api_key_row, audit_row, contains_pattern, duplicate_email, duplicate_identity, duplicate_key_hash,
    duplicate_key_id, duplicate_session, duplicate_username, grant_row, last_admin_deleted, leaves_no_admin,
    opt_user_row, project_not_found, qualified, session_row, stored_email, stored_key, stored_session, time_or_now,
    user_not_found, user_row,
};

/// A key by hash with its owner: one indexed read on every request that presents a key.
static KEY_BY_HASH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {} FROM api_keys k LEFT JOIN users u ON u.user_id = k.owner WHERE k.hash = $1",
        qualified(API_KEY_COLUMNS, "k"),
        qualified(USER_COLUMNS, "u")
    )
});

/// A session with its user: one indexed read on every request that presents a session token.
static SESSION_WITH_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {} FROM sessions s JOIN users u ON u.user_id = s.user_id WHERE s.session_id = $1",
        qualified(SESSION_COLUMNS, "s"),
        qualified(USER_COLUMNS, "u")
    )
});

/// The unique index or constraint a statement violated, if that is why it failed.
fn unique_violation(e: &tokio_postgres::Error) -> Option<&str> {
    let d = e.as_db_error()?;
    if *d.code() == SqlState::UNIQUE_VIOLATION { d.constraint() } else { None }
}

/// Whether a statement failed on a foreign key (a row it refers to does not exist, or no longer).
fn foreign_key_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
}

/// The error of a write of `user`: the conflict naming what is taken, or the database's error.
fn user_write_error(e: tokio_postgres::Error, user: &UserRow) -> StoreError {
    match unique_violation(&e) {
        Some("users_username") => duplicate_username(&user.username),
        Some("users_email") => duplicate_email(user.email.as_deref().unwrap_or_default()),
        Some("users_identity") => duplicate_identity(
            user.sso_provider.as_deref().unwrap_or_default(),
            user.sso_subject.as_deref().unwrap_or_default(),
        ),
        _ => e.into(),
    }
}

/// A time as PostgreSQL binds it, from a time as the store shows it.
fn opt_at(s: Option<&str>) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.map(parse_time).transpose()
}

async fn user_where(
    c: &impl GenericClient,
    condition: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<UserRow>, StoreError> {
    let stmt = c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE {condition}")).await?;
    c.query_opt(&stmt, args).await?.map(|r| user_row(&r, 0)).transpose()
}

async fn get_user_in(c: &impl GenericClient, user_id: &str) -> Result<Option<UserRow>, StoreError> {
    user_where(c, "user_id = $1", &[&user_id]).await
}

/// Locks every active admin's row until the transaction ends (in id order, so two lockers never deadlock) and
/// returns how many there are besides `user_id`. A concurrent change of an admin waits for this transaction, and
/// a concurrent locker re-reads the rows this one changed once it may lock them.
async fn lock_other_admins(tx: &Transaction<'_>, user_id: &str) -> Result<i64, StoreError> {
    let stmt = tx
        .prepare_cached("SELECT user_id FROM users WHERE role = $1 AND is_active ORDER BY user_id FOR UPDATE")
        .await?;
    let rows = tx.query(&stmt, &[&ADMIN_ROLE]).await?;
    let mut others = 0;
    for r in &rows {
        if r.try_get::<_, &str>(0)? != user_id {
            others += 1;
        }
    }
    Ok(others)
}

async fn get_key_in(c: &impl GenericClient, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
    let stmt = c.prepare_cached(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_id = $1")).await?;
    c.query_opt(&stmt, &[&key_id]).await?.map(|r| api_key_row(&r, 0)).transpose()
}

impl AuthStore for PgStore {
    fn insert_user(&self, mut user: UserRow) -> BoxFuture<'_, Result<UserRow, StoreError>> {
        Box::pin(async move {
            let at = Utc::now();
            user.user_id = uuid::Uuid::new_v4().to_string();
            user.email = stored_email(user.email);
            user.token_version = 0;
            user.created_at = crate::codec::ts(at);
            user.updated_at.clone_from(&user.created_at);
            let u = &user;
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"
                ))
                .await?;
            c.execute(
                &stmt,
                &[
                    &u.user_id,
                    &u.username,
                    &u.email,
                    &u.full_name,
                    &u.password_hash,
                    &u.role,
                    &u.is_active,
                    &u.sso_provider,
                    &u.sso_subject,
                    &u.token_version,
                    &at,
                ],
            )
            .await
            .map_err(|e| user_write_error(e, u))?;
            Ok(user)
        })
    }

    fn list_users(&self) -> BoxFuture<'_, Result<Vec<UserRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt =
                c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, user_id")).await?;
            c.query(&stmt, &[]).await?.iter().map(|r| user_row(r, 0)).collect()
        })
    }

    fn get_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<UserRow>, StoreError>> {
        Box::pin(async move { get_user_in(&self.client().await?, user_id).await })
    }

    fn user_by_name<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Result<Option<UserRow>, StoreError>> {
        Box::pin(async move { user_where(&self.client().await?, "username = $1", &[&username]).await })
    }

    fn user_by_subject<'a>(
        &'a self,
        provider: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRow>, StoreError>> {
        Box::pin(async move {
            user_where(&self.client().await?, "sso_provider = $1 AND sso_subject = $2", &[&provider, &subject]).await
        })
    }

    fn update_user<'a>(
        &'a self,
        user_id: &'a str,
        update: UserUpdate,
        revoke_tokens: bool,
    ) -> BoxFuture<'a, Result<UserRow, StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let others = if update.may_demote() { Some(lock_other_admins(&tx, user_id).await?) } else { None };
            let Some(before) = user_where(&tx, "user_id = $1 FOR UPDATE", &[&user_id]).await? else {
                return Err(user_not_found());
            };
            let after = update.applied_to(&before);
            if let Some(refused) = others.and_then(|n| leaves_no_admin(&before, &after, n)) {
                return Err(refused);
            }
            let stmt = tx
                .prepare_cached(
                    "UPDATE users SET email = $2, full_name = $3, password_hash = $4, role = $5, is_active = $6,
                         token_version = token_version + $7, updated_at = now()
                     WHERE user_id = $1",
                )
                .await?;
            tx.execute(
                &stmt,
                &[
                    &user_id,
                    &after.email,
                    &after.full_name,
                    &after.password_hash,
                    &after.role,
                    &after.is_active,
                    &i64::from(revoke_tokens),
                ],
            )
            .await
            .map_err(|e| user_write_error(e, &after))?;
            let row = get_user_in(&tx, user_id).await?.ok_or_else(user_not_found)?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn delete_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let others = lock_other_admins(&tx, user_id).await?;
            let Some(user) = user_where(&tx, "user_id = $1 FOR UPDATE", &[&user_id]).await? else {
                return Err(user_not_found());
            };
            if let Some(refused) = last_admin_deleted(&user, others) {
                return Err(refused);
            }
            tx.execute("DELETE FROM project_grants WHERE user_id = $1", &[&user_id]).await?;
            tx.execute("DELETE FROM sessions WHERE user_id = $1", &[&user_id]).await?;
            tx.execute("UPDATE api_keys SET revoked_at = now() WHERE owner = $1 AND revoked_at IS NULL", &[&user_id])
                .await?;
            tx.execute("DELETE FROM users WHERE user_id = $1", &[&user_id]).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn count_admins(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c.prepare_cached("SELECT count(*) FROM users WHERE role = $1 AND is_active").await?;
            Ok(c.query_one(&stmt, &[&ADMIN_ROLE]).await?.try_get(0)?)
        })
    }

    fn set_grant<'a>(
        &'a self,
        user_id: &'a str,
        project_id: &'a str,
        role: Option<String>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            // The bump locks the user's row (a concurrent delete of the user waits); FOR SHARE keeps the project.
            let bumped = tx
                .execute(
                    "UPDATE users SET token_version = token_version + 1, updated_at = now() WHERE user_id = $1",
                    &[&user_id],
                )
                .await?;
            if bumped == 0 {
                return Err(user_not_found());
            }
            if tx.query_opt("SELECT 1 FROM projects WHERE project_id = $1 FOR SHARE", &[&project_id]).await?.is_none() {
                return Err(project_not_found(project_id));
            }
            match role {
                Some(role) => {
                    tx.execute(
                        "INSERT INTO project_grants (user_id, project_id, role) VALUES ($1, $2, $3)
                         ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role",
                        &[&user_id, &project_id, &role],
                    )
                    .await?
                }
                None => {
                    tx.execute(
                        "DELETE FROM project_grants WHERE user_id = $1 AND project_id = $2",
                        &[&user_id, &project_id],
                    )
                    .await?
                }
            };
            tx.commit().await?;
            Ok(())
        })
    }

    fn user_grants<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<GrantRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {GRANT_COLUMNS} FROM project_grants WHERE user_id = $1 ORDER BY project_id"
                ))
                .await?;
            c.query(&stmt, &[&user_id]).await?.iter().map(grant_row).collect()
        })
    }

    fn insert_api_key(&self, key: ApiKeyRow) -> BoxFuture<'_, Result<ApiKeyRow, StoreError>> {
        Box::pin(async move {
            let k = stored_key(key)?;
            let created_at = parse_time(&k.created_at)?;
            let (expires_at, last_used_at, revoked_at) = (
                opt_at(k.expires_at.as_deref())?,
                opt_at(k.last_used_at.as_deref())?,
                opt_at(k.revoked_at.as_deref())?,
            );
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .await?;
            let inserted = c
                .execute(
                    &stmt,
                    &[
                        &k.key_id,
                        &k.name,
                        &k.prefix,
                        &k.hash,
                        &k.owner,
                        &k.role,
                        &k.project_id,
                        &created_at,
                        &expires_at,
                        &last_used_at,
                        &revoked_at,
                    ],
                )
                .await;
            match inserted {
                Ok(_) => Ok(k),
                Err(e) => Err(match unique_violation(&e) {
                    Some("api_keys_pkey") => duplicate_key_id(&k.key_id),
                    Some("api_keys_hash") => duplicate_key_hash(),
                    _ => e.into(),
                }),
            }
        })
    }

    fn list_api_keys(&self, owner: Option<String>) -> BoxFuture<'_, Result<Vec<ApiKeyRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE ($1::text IS NULL OR owner = $1)
                     ORDER BY created_at DESC, key_id DESC"
                ))
                .await?;
            c.query(&stmt, &[&owner]).await?.iter().map(|r| api_key_row(r, 0)).collect()
        })
    }

    fn get_api_key<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<ApiKeyRow>, StoreError>> {
        Box::pin(async move { get_key_in(&self.client().await?, key_id).await })
    }

    fn api_key_by_hash<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<Option<KeyAndOwner>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c.prepare_cached(&KEY_BY_HASH).await?;
            let Some(r) = c.query_opt(&stmt, &[&hash]).await? else { return Ok(None) };
            Ok(Some((api_key_row(&r, 0)?, opt_user_row(&r, API_KEY_WIDTH)?)))
        })
    }

    fn touch_api_key<'a>(&'a self, key_id: &'a str, at: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let at = parse_time(at)?;
            self.exec("UPDATE api_keys SET last_used_at = $2 WHERE key_id = $1", &[&key_id, &at]).await.map(drop)
        })
    }

    fn revoke_api_key<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let n = self
                .exec("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", &[&key_id])
                .await?;
            Ok(n > 0)
        })
    }

    fn insert_session(&self, session: SessionRow) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let s = stored_session(session)?;
            let (created_at, expires_at) = (parse_time(&s.created_at)?, parse_time(&s.expires_at)?);
            let revoked_at = opt_at(s.revoked_at.as_deref())?;
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ))
                .await?;
            let inserted = c
                .execute(
                    &stmt,
                    &[
                        &s.session_id,
                        &s.user_id,
                        &s.token_version,
                        &s.refresh_hash,
                        &s.method,
                        &created_at,
                        &expires_at,
                        &revoked_at,
                    ],
                )
                .await;
            match inserted {
                Ok(_) => Ok(()),
                Err(e) if foreign_key_violation(&e) => Err(user_not_found()),
                Err(e) if unique_violation(&e).is_some() => Err(duplicate_session(&s.session_id)),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<Option<(SessionRow, UserRow)>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c.prepare_cached(&SESSION_WITH_USER).await?;
            let Some(r) = c.query_opt(&stmt, &[&session_id]).await? else { return Ok(None) };
            Ok(Some((session_row(&r, 0)?, user_row(&r, SESSION_WIDTH)?)))
        })
    }

    fn rotate_session<'a>(
        &'a self,
        session_id: &'a str,
        old_hash: &'a str,
        new_hash: &'a str,
        expires_at: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let expires_at = parse_time(expires_at)?;
            let n = self
                .exec(
                    "UPDATE sessions SET refresh_hash = $3, expires_at = $4
                     WHERE session_id = $1 AND refresh_hash = $2 AND revoked_at IS NULL AND expires_at > now()",
                    &[&session_id, &old_hash, &new_hash, &expires_at],
                )
                .await?;
            Ok(n > 0)
        })
    }

    fn revoke_session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let n = self
                .exec(
                    "UPDATE sessions SET revoked_at = now() WHERE session_id = $1 AND revoked_at IS NULL",
                    &[&session_id],
                )
                .await?;
            Ok(n > 0)
        })
    }

    fn server_key<'a>(&'a self, name: &'a str, candidate: &'a str) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(async move {
            // Two statements, each with its own snapshot: when another process inserted the key first, the insert
            // waits for its commit and does nothing, and the read that follows sees its value.
            let c = self.client().await?;
            let insert = c
                .prepare_cached(
                    "INSERT INTO server_keys (name, value, created_at) VALUES ($1, $2, now())
                     ON CONFLICT (name) DO NOTHING",
                )
                .await?;
            c.execute(&insert, &[&name, &candidate]).await?;
            let read = c.prepare_cached("SELECT value FROM server_keys WHERE name = $1").await?;
            Ok(c.query_one(&read, &[&name]).await?.try_get(0)?)
        })
    }

    fn append_audit(&self, events: Vec<AuditRow>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if events.is_empty() {
                return Ok(());
            }
            let times = events.iter().map(|e| parse_time(&time_or_now(&e.ts)?)).collect::<Result<Vec<_>, _>>()?;
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let insert = tx
                .prepare_cached(
                    "INSERT INTO audit_events (ts, category, action, actor, credential, source_ip, resource_type,
                         resource_id, outcome, description, meta)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .await?;
            for (e, at) in events.iter().zip(times) {
                tx.execute(
                    &insert,
                    &[
                        &at,
                        &e.category,
                        &e.action,
                        &e.actor,
                        &e.credential,
                        &e.source_ip,
                        &e.resource_type,
                        &e.resource_id,
                        &e.outcome,
                        &e.description,
                        &e.meta.to_string(),
                    ],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn list_audit(&self, filter: AuditFilter) -> BoxFuture<'_, Result<Vec<AuditRow>, StoreError>> {
        Box::pin(async move {
            let since = opt_at(filter.since.as_deref())?;
            let until = opt_at(filter.until.as_deref())?;
            let search = filter.search.as_deref().map(contains_pattern);
            let limit = (filter.limit > 0).then_some(filter.limit);
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events
                     WHERE ($1::text IS NULL OR category = $1) AND ($2::text IS NULL OR actor = $2)
                       AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR description ILIKE $4 ESCAPE '\\')
                       AND ($5::timestamptz IS NULL OR ts >= $5) AND ($6::timestamptz IS NULL OR ts <= $6)
                     ORDER BY event_id DESC LIMIT $7 OFFSET $8"
                ))
                .await?;
            c.query(
                &stmt,
                &[
                    &filter.category,
                    &filter.actor,
                    &filter.action,
                    &search,
                    &since,
                    &until,
                    &limit,
                    &filter.offset.max(0),
                ],
            )
            .await?
            .iter()
            .map(audit_row)
            .collect()
        })
    }

    fn purge_audit<'a>(&'a self, before: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let before = parse_time(before)?;
            self.exec("DELETE FROM audit_events WHERE ts < $1", &[&before]).await
        })
    }
}
