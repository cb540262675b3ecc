//! [`AuthStore`] on SQLite: users, grants, API keys, sessions, signing keys and the audit log. Every change is one
//! transaction on the writer thread, which is the only writer: a rule checked in it (a taken name, the last admin)
//! still holds when its writes commit. Times are stored as text as the store shows them, so text order is time
//! order.

use std::sync::LazyLock;

use ckp_engine::effects::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::StoreError;
use crate::codec::{now, shown_time};
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
        "SELECT {}, {} FROM api_keys k LEFT JOIN users u ON u.user_id = k.owner WHERE k.hash = ?1",
        qualified(API_KEY_COLUMNS, "k"),
        qualified(USER_COLUMNS, "u")
    )
});

/// A session with its user: one indexed read on every request that presents a session token.
static SESSION_WITH_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {} FROM sessions s JOIN users u ON u.user_id = s.user_id WHERE s.session_id = ?1",
        qualified(SESSION_COLUMNS, "s"),
        qualified(USER_COLUMNS, "u")
    )
});

fn user_where(c: &Connection, condition: &str, args: impl rusqlite::Params) -> rusqlite::Result<Option<UserRow>> {
    c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE {condition}"))?
        .query_row(args, |r| user_row(r, 0))
        .optional()
}

fn get_user_in(c: &Connection, user_id: &str) -> rusqlite::Result<Option<UserRow>> {
    user_where(c, "user_id = ?1", params![user_id])
}

/// Active admins other than `user_id`.
fn other_admins(c: &Connection, user_id: &str) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT count(*) FROM users WHERE role = ?1 AND is_active AND user_id != ?2")?
        .query_row(params![ADMIN_ROLE, user_id], |r| r.get(0))
}

/// Whether a row matches `sql` (a `SELECT 1 ...`).
fn exists(c: &Connection, sql: &str, args: impl rusqlite::Params) -> rusqlite::Result<bool> {
    c.prepare_cached(sql)?.exists(args)
}

/// Why `email` cannot be given to `user_id` (another user has it), if it cannot.
fn email_taken(c: &Connection, email: Option<&str>, user_id: &str) -> rusqlite::Result<Option<StoreError>> {
    let Some(email) = email else { return Ok(None) };
    let taken = exists(c, "SELECT 1 FROM users WHERE email = ?1 AND user_id != ?2", params![email, user_id])?;
    Ok(taken.then(|| duplicate_email(email)))
}

fn get_key_in(c: &Connection, key_id: &str) -> rusqlite::Result<Option<ApiKeyRow>> {
    c.prepare_cached(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_id = ?1"))?
        .query_row(params![key_id], |r| api_key_row(r, 0))
        .optional()
}

/// A page size as SQLite's LIMIT takes it: -1 (no limit) for 0 or less.
fn limit_of(limit: i64) -> i64 {
    if limit > 0 { limit } else { -1 }
}

impl AuthStore for SqliteStore {
    fn insert_user(&self, mut user: UserRow) -> BoxFuture<'_, Result<UserRow, StoreError>> {
        Box::pin(async move {
            let at = now();
            user.user_id = uuid::Uuid::new_v4().to_string();
            user.email = stored_email(user.email);
            user.token_version = 0;
            user.created_at.clone_from(&at);
            user.updated_at = at;
            let u = user.clone();
            self.write(move |tx| {
                if exists(tx, "SELECT 1 FROM users WHERE username = ?1", params![u.username])? {
                    return Ok(Err(duplicate_username(&u.username)));
                }
                if let Some(taken) = email_taken(tx, u.email.as_deref(), &u.user_id)? {
                    return Ok(Err(taken));
                }
                if let (Some(provider), Some(subject)) = (&u.sso_provider, &u.sso_subject)
                    && exists(
                        tx,
                        "SELECT 1 FROM users WHERE sso_provider = ?1 AND sso_subject = ?2",
                        params![provider, subject],
                    )?
                {
                    return Ok(Err(duplicate_identity(provider, subject)));
                }
                tx.prepare_cached(&format!(
                    "INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ))?
                .execute(params![
                    u.user_id,
                    u.username,
                    u.email,
                    u.full_name,
                    u.password_hash,
                    u.role,
                    u.is_active,
                    u.sso_provider,
                    u.sso_subject,
                    u.token_version,
                    u.created_at,
                    u.updated_at
                ])?;
                Ok(Ok(()))
            })
            .await??;
            Ok(user)
        })
    }

    fn list_users(&self) -> BoxFuture<'_, Result<Vec<UserRow>, StoreError>> {
        Box::pin(self.read_store(|c| {
            c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, user_id"))?
                .query_map([], |r| user_row(r, 0))?
                .collect()
        }))
    }

    fn get_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<UserRow>, StoreError>> {
        let user_id = user_id.to_owned();
        Box::pin(self.read_store(move |c| get_user_in(c, &user_id)))
    }

    fn user_by_name<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Result<Option<UserRow>, StoreError>> {
        let username = username.to_owned();
        Box::pin(self.read_store(move |c| user_where(c, "username = ?1", params![username])))
    }

    fn user_by_subject<'a>(
        &'a self,
        provider: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRow>, StoreError>> {
        let (provider, subject) = (provider.to_owned(), subject.to_owned());
        Box::pin(
            self.read_store(move |c| {
                user_where(c, "sso_provider = ?1 AND sso_subject = ?2", params![provider, subject])
            }),
        )
    }

    fn update_user<'a>(
        &'a self,
        user_id: &'a str,
        update: UserUpdate,
        revoke_tokens: bool,
    ) -> BoxFuture<'a, Result<UserRow, StoreError>> {
        let id = user_id.to_owned();
        Box::pin(async move {
            self.write(move |tx| {
                let Some(before) = get_user_in(tx, &id)? else { return Ok(Err(user_not_found())) };
                let after = update.applied_to(&before);
                if update.may_demote()
                    && let Some(refused) = leaves_no_admin(&before, &after, other_admins(tx, &id)?)
                {
                    return Ok(Err(refused));
                }
                if after.email != before.email
                    && let Some(taken) = email_taken(tx, after.email.as_deref(), &id)?
                {
                    return Ok(Err(taken));
                }
                tx.prepare_cached(
                    "UPDATE users SET email = ?2, full_name = ?3, password_hash = ?4, role = ?5, is_active = ?6,
                         token_version = token_version + ?7, updated_at = ?8
                     WHERE user_id = ?1",
                )?
                .execute(params![
                    id,
                    after.email,
                    after.full_name,
                    after.password_hash,
                    after.role,
                    after.is_active,
                    i64::from(revoke_tokens),
                    now()
                ])?;
                Ok(get_user_in(tx, &id)?.ok_or_else(user_not_found))
            })
            .await?
        })
    }

    fn delete_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let id = user_id.to_owned();
        Box::pin(async move {
            self.write(move |tx| {
                let Some(user) = get_user_in(tx, &id)? else { return Ok(Err(user_not_found())) };
                if let Some(refused) = last_admin_deleted(&user, other_admins(tx, &id)?) {
                    return Ok(Err(refused));
                }
                tx.prepare_cached("DELETE FROM project_grants WHERE user_id = ?1")?.execute(params![id])?;
                tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?.execute(params![id])?;
                tx.prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE owner = ?1 AND revoked_at IS NULL")?
                    .execute(params![id, now()])?;
                tx.prepare_cached("DELETE FROM users WHERE user_id = ?1")?.execute(params![id])?;
                Ok(Ok(()))
            })
            .await?
        })
    }

    fn count_admins(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(self.read_store(|c| {
            c.prepare_cached("SELECT count(*) FROM users WHERE role = ?1 AND is_active")?
                .query_row(params![ADMIN_ROLE], |r| r.get(0))
        }))
    }

    fn set_grant<'a>(
        &'a self,
        user_id: &'a str,
        project_id: &'a str,
        role: Option<String>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (user_id, project_id) = (user_id.to_owned(), project_id.to_owned());
        Box::pin(async move {
            self.write(move |tx| {
                if get_user_in(tx, &user_id)?.is_none() {
                    return Ok(Err(user_not_found()));
                }
                if !exists(tx, "SELECT 1 FROM projects WHERE project_id = ?1", params![project_id])? {
                    return Ok(Err(project_not_found(&project_id)));
                }
                match role {
                    Some(role) => tx
                        .prepare_cached(
                            "INSERT INTO project_grants (user_id, project_id, role) VALUES (?1, ?2, ?3)
                             ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role",
                        )?
                        .execute(params![user_id, project_id, role])?,
                    None => tx
                        .prepare_cached("DELETE FROM project_grants WHERE user_id = ?1 AND project_id = ?2")?
                        .execute(params![user_id, project_id])?,
                };
                tx.prepare_cached(
                    "UPDATE users SET token_version = token_version + 1, updated_at = ?2 WHERE user_id = ?1",
                )?
                .execute(params![user_id, now()])?;
                Ok(Ok(()))
            })
            .await?
        })
    }

    fn user_grants<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<GrantRow>, StoreError>> {
        let user_id = user_id.to_owned();
        Box::pin(self.read_store(move |c| {
            c.prepare_cached(&format!(
                "SELECT {GRANT_COLUMNS} FROM project_grants WHERE user_id = ?1 ORDER BY project_id"
            ))?
            .query_map(params![user_id], |r| grant_row(r))?
            .collect()
        }))
    }

    fn insert_api_key(&self, key: ApiKeyRow) -> BoxFuture<'_, Result<ApiKeyRow, StoreError>> {
        Box::pin(async move {
            let key = stored_key(key)?;
            let k = key.clone();
            self.write(move |tx| {
                if get_key_in(tx, &k.key_id)?.is_some() {
                    return Ok(Err(duplicate_key_id(&k.key_id)));
                }
                if exists(tx, "SELECT 1 FROM api_keys WHERE hash = ?1", params![k.hash])? {
                    return Ok(Err(duplicate_key_hash()));
                }
                tx.prepare_cached(&format!(
                    "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ))?
                .execute(params![
                    k.key_id,
                    k.name,
                    k.prefix,
                    k.hash,
                    k.owner,
                    k.role,
                    k.project_id,
                    k.created_at,
                    k.expires_at,
                    k.last_used_at,
                    k.revoked_at
                ])?;
                Ok(Ok(()))
            })
            .await??;
            Ok(key)
        })
    }

    fn list_api_keys(&self, owner: Option<String>) -> BoxFuture<'_, Result<Vec<ApiKeyRow>, StoreError>> {
        Box::pin(self.read_store(move |c| {
            c.prepare_cached(&format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE (?1 IS NULL OR owner = ?1)
                 ORDER BY created_at DESC, key_id DESC"
            ))?
            .query_map(params![owner], |r| api_key_row(r, 0))?
            .collect()
        }))
    }

    fn get_api_key<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<ApiKeyRow>, StoreError>> {
        let key_id = key_id.to_owned();
        Box::pin(self.read_store(move |c| get_key_in(c, &key_id)))
    }

    fn api_key_by_hash<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<Option<KeyAndOwner>, StoreError>> {
        let hash = hash.to_owned();
        Box::pin(self.read_store(move |c| {
            c.prepare_cached(&KEY_BY_HASH)?
                .query_row(params![hash], |r| Ok((api_key_row(r, 0)?, opt_user_row(r, API_KEY_WIDTH)?)))
                .optional()
        }))
    }

    fn touch_api_key<'a>(&'a self, key_id: &'a str, at: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (key_id, at) = (key_id.to_owned(), shown_time(at)?);
            self.write(move |tx| {
                tx.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE key_id = ?1")?
                    .execute(params![key_id, at])
                    .map(drop)
            })
            .await
        })
    }

    fn revoke_api_key<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let key_id = key_id.to_owned();
        Box::pin(self.write(move |tx| {
            tx.prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at IS NULL")?
                .execute(params![key_id, now()])
                .map(|n| n > 0)
        }))
    }

    fn insert_session(&self, session: SessionRow) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let s = stored_session(session)?;
            self.write(move |tx| {
                if get_user_in(tx, &s.user_id)?.is_none() {
                    return Ok(Err(user_not_found()));
                }
                if exists(tx, "SELECT 1 FROM sessions WHERE session_id = ?1", params![s.session_id])? {
                    return Ok(Err(duplicate_session(&s.session_id)));
                }
                tx.prepare_cached(&format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ))?
                .execute(params![
                    s.session_id,
                    s.user_id,
                    s.token_version,
                    s.refresh_hash,
                    s.method,
                    s.created_at,
                    s.expires_at,
                    s.revoked_at
                ])?;
                Ok(Ok(()))
            })
            .await?
        })
    }

    fn session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<Option<(SessionRow, UserRow)>, StoreError>> {
        let session_id = session_id.to_owned();
        Box::pin(self.read_store(move |c| {
            c.prepare_cached(&SESSION_WITH_USER)?
                .query_row(params![session_id], |r| Ok((session_row(r, 0)?, user_row(r, SESSION_WIDTH)?)))
                .optional()
        }))
    }

    fn rotate_session<'a>(
        &'a self,
        session_id: &'a str,
        old_hash: &'a str,
        new_hash: &'a str,
        expires_at: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let expires_at = shown_time(expires_at)?;
            let (id, old, new) = (session_id.to_owned(), old_hash.to_owned(), new_hash.to_owned());
            self.write(move |tx| {
                tx.prepare_cached(
                    "UPDATE sessions SET refresh_hash = ?3, expires_at = ?4
                     WHERE session_id = ?1 AND refresh_hash = ?2 AND revoked_at IS NULL AND expires_at > ?5",
                )?
                .execute(params![id, old, new, expires_at, now()])
                .map(|n| n > 0)
            })
            .await
        })
    }

    fn revoke_session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let id = session_id.to_owned();
        Box::pin(self.write(move |tx| {
            tx.prepare_cached("UPDATE sessions SET revoked_at = ?2 WHERE session_id = ?1 AND revoked_at IS NULL")?
                .execute(params![id, now()])
                .map(|n| n > 0)
        }))
    }

    fn server_key<'a>(&'a self, name: &'a str, candidate: &'a str) -> BoxFuture<'a, Result<String, StoreError>> {
        let (name, candidate) = (name.to_owned(), candidate.to_owned());
        // The writer is the only writer of the file, and the file has one process: insert-if-absent then read in
        // one write transaction is atomic.
        Box::pin(self.write(move |tx| {
            tx.prepare_cached("INSERT OR IGNORE INTO server_keys (name, value, created_at) VALUES (?1, ?2, ?3)")?
                .execute(params![name, candidate, now()])?;
            tx.prepare_cached("SELECT value FROM server_keys WHERE name = ?1")?.query_row(params![name], |r| r.get(0))
        }))
    }

    fn append_audit(&self, events: Vec<AuditRow>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if events.is_empty() {
                return Ok(());
            }
            let times = events.iter().map(|e| time_or_now(&e.ts)).collect::<Result<Vec<_>, _>>()?;
            self.write(move |tx| {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO audit_events (ts, category, action, actor, credential, source_ip, resource_type,
                         resource_id, outcome, description, meta)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for (e, at) in events.iter().zip(times) {
                    insert.execute(params![
                        at,
                        e.category,
                        e.action,
                        e.actor,
                        e.credential,
                        e.source_ip,
                        e.resource_type,
                        e.resource_id,
                        e.outcome,
                        e.description,
                        e.meta.to_string()
                    ])?;
                }
                Ok(())
            })
            .await
        })
    }

    fn list_audit(&self, filter: AuditFilter) -> BoxFuture<'_, Result<Vec<AuditRow>, StoreError>> {
        Box::pin(async move {
            let since = filter.since.as_deref().map(shown_time).transpose()?;
            let until = filter.until.as_deref().map(shown_time).transpose()?;
            let search = filter.search.as_deref().map(contains_pattern);
            self.read_store(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events
                     WHERE (?1 IS NULL OR category = ?1) AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR action = ?3)
                       AND (?4 IS NULL OR lower(description) LIKE lower(?4) ESCAPE '\\')
                       AND (?5 IS NULL OR ts >= ?5) AND (?6 IS NULL OR ts <= ?6)
                     ORDER BY event_id DESC LIMIT ?7 OFFSET ?8"
                ))?
                .query_map(
                    params![
                        filter.category,
                        filter.actor,
                        filter.action,
                        search,
                        since,
                        until,
                        limit_of(filter.limit),
                        filter.offset.max(0)
                    ],
                    |r| audit_row(r),
                )?
                .collect()
            })
            .await
        })
    }

    fn purge_audit<'a>(&'a self, before: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let before = shown_time(before)?;
            self.write(move |tx| {
                tx.prepare_cached("DELETE FROM audit_events WHERE ts < ?1")?
                    .execute(params![before])
                    .map(|n| u64::try_from(n).unwrap_or(u64::MAX))
            })
            .await
        })
    }
}
