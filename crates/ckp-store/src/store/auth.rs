//! [`AuthStore`]: users, their project grants, API keys, sign-in sessions, the server's signing keys and the audit
//! log, with one decoder per row for both backends. The store keeps hashes only (argon2id or bcrypt PHC strings for
//! passwords, SHA-256 hex for API keys and refresh tokens) and roles as text (the server parses them). A taken
//! username, email or key hash is [`StoreError::Conflict`], an unknown id [`StoreError::NotFound`]. Times given by
//! callers are RFC 3339 (any offset; a malformed one is [`StoreError::Invalid`]) and read back as the store shows
//! every time ([`crate::codec::ts`]). The rules both backends share (what an update does to a user, when a change
//! would leave no admin, the conflict messages) are written once here.

use ckp_engine::effects::BoxFuture;
use serde_json::Value;

use crate::StoreError;
use crate::codec::{json_col, now, shown_time};
use crate::row::RowSource;

/// Users, grants, API keys, sessions, signing keys and the audit log.
pub trait AuthStore: Send + Sync {
    /// Creates a user (`user_id`, `created_at`, `updated_at` and `token_version` are set by the store; an empty
    /// email is stored as none). A taken username, a taken email, or a single-sign-on identity (`sso_provider`,
    /// `sso_subject`) another user has, is a conflict naming which.
    fn insert_user(&self, user: UserRow) -> BoxFuture<'_, Result<UserRow, StoreError>>;
    /// Users, oldest first.
    fn list_users(&self) -> BoxFuture<'_, Result<Vec<UserRow>, StoreError>>;
    /// One user by id.
    fn get_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<UserRow>, StoreError>>;
    /// One user by username (exact match).
    fn user_by_name<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Result<Option<UserRow>, StoreError>>;
    /// One user by single-sign-on identity (`sso_provider`, `sso_subject`).
    fn user_by_subject<'a>(
        &'a self,
        provider: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRow>, StoreError>>;
    /// Changes the given fields of a user and bumps `updated_at`. When `revoke_tokens` is true (a password,
    /// role, grant or activity change; a logout everywhere), `token_version` is incremented in the same
    /// transaction, which ends every session of the user. An empty email removes the email. A taken email is a
    /// conflict, and so is a change that would leave no active user whose global role is `admin` (demoting or
    /// disabling the last one: "Cannot remove the last admin user"); an unknown id is not found.
    fn update_user<'a>(
        &'a self,
        user_id: &'a str,
        update: UserUpdate,
        revoke_tokens: bool,
    ) -> BoxFuture<'a, Result<UserRow, StoreError>>;
    /// Deletes a user, their grants and sessions, and revokes their API keys, in one transaction. Deleting the
    /// last active user whose global role is `admin` is a conflict ("Cannot delete the last admin user").
    fn delete_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Number of active users whose global role is `admin`.
    fn count_admins(&self) -> BoxFuture<'_, Result<i64, StoreError>>;

    /// Sets (inserts or replaces) a user's role in a project, or removes it with `role: None`; bumps the user's
    /// `token_version` in the same transaction. Unknown user or project: not found.
    fn set_grant<'a>(
        &'a self,
        user_id: &'a str,
        project_id: &'a str,
        role: Option<String>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// A user's project grants, by project id.
    fn user_grants<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<GrantRow>, StoreError>>;

    /// Stores a new API key (every field given by the caller, `hash` being the SHA-256 hex of the whole key; an
    /// empty `created_at` is now) and returns it as stored; a taken `key_id` or hash is a conflict.
    fn insert_api_key(&self, key: ApiKeyRow) -> BoxFuture<'_, Result<ApiKeyRow, StoreError>>;
    /// API keys, newest first; only `owner`'s when given.
    fn list_api_keys(&self, owner: Option<String>) -> BoxFuture<'_, Result<Vec<ApiKeyRow>, StoreError>>;
    /// One API key by id.
    fn get_api_key<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<ApiKeyRow>, StoreError>>;
    /// The key with this hash, with its owner when it has one (one indexed read: it runs on every request that
    /// presents a key). Revoked and expired keys are returned too: the caller decides.
    fn api_key_by_hash<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<Option<KeyAndOwner>, StoreError>>;
    /// Sets `last_used_at` (callers throttle this: at most once a minute per key); an unknown key is left alone.
    fn touch_api_key<'a>(&'a self, key_id: &'a str, at: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Revokes a key (sets `revoked_at` now); false when it was unknown or already revoked.
    fn revoke_api_key<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Stores a new sign-in session (an empty `created_at` is now). An unknown user is not found, a taken
    /// `session_id` a conflict.
    fn insert_session(&self, session: SessionRow) -> BoxFuture<'_, Result<(), StoreError>>;
    /// A session with its user (one read: it runs on every request that presents a session token).
    fn session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<Option<(SessionRow, UserRow)>, StoreError>>;
    /// Replaces a live session's refresh hash and expiry when its current refresh hash is `old_hash` (a refresh
    /// token is single use); false when the session is unknown, revoked, expired or the hash does not match (a
    /// replayed refresh token: the caller then revokes the session).
    fn rotate_session<'a>(
        &'a self,
        session_id: &'a str,
        old_hash: &'a str,
        new_hash: &'a str,
        expires_at: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Revokes a session (sets `revoked_at`); false when unknown or already revoked.
    fn revoke_session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The named server secret (a signing key), created from `candidate` when it does not exist yet, atomically:
    /// every process of a PostgreSQL deployment reads the same value.
    fn server_key<'a>(&'a self, name: &'a str, candidate: &'a str) -> BoxFuture<'a, Result<String, StoreError>>;

    /// Appends audit events (`event_id` is set by the store, increasing; an empty `ts` is now), in one
    /// transaction.
    fn append_audit(&self, events: Vec<AuditRow>) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Audit events, newest first, filtered and paged.
    fn list_audit(&self, filter: AuditFilter) -> BoxFuture<'_, Result<Vec<AuditRow>, StoreError>>;
    /// Deletes audit events older than `before` (RFC 3339); how many were deleted.
    fn purge_audit<'a>(&'a self, before: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// An API key with the user it acts for, if it has one ([`AuthStore::api_key_by_hash`]).
pub type KeyAndOwner = (ApiKeyRow, Option<UserRow>);

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserRow {
    /// Id (a UUID).
    pub user_id: String,
    /// Unique login name.
    pub username: String,
    /// Email (unique when set; never empty).
    pub email: Option<String>,
    /// Display name.
    pub full_name: Option<String>,
    /// PHC string (argon2id; `$2b$...` bcrypt imported from LangOrch); None for single-sign-on users.
    pub password_hash: Option<String>,
    /// Global role (`viewer`..`admin`), or None for a user with project grants only.
    pub role: Option<String>,
    /// A disabled user cannot sign in and their keys and sessions stop working at once.
    pub is_active: bool,
    /// `oidc`, `ldap`, or None for a local user.
    pub sso_provider: Option<String>,
    /// The identity provider's subject.
    pub sso_subject: Option<String>,
    /// Incremented to end every session of the user.
    pub token_version: i64,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Changes to a user; None leaves a field as it is. `role: Some(None)` removes the global role, `email: Some("")`
/// the email.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// Email.
    pub email: Option<String>,
    /// Display name.
    pub full_name: Option<String>,
    /// New password hash.
    pub password_hash: Option<String>,
    /// Global role.
    pub role: Option<Option<String>>,
    /// Active or disabled.
    pub is_active: Option<bool>,
}

/// A user's role in one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// User.
    pub user_id: String,
    /// Project.
    pub project_id: String,
    /// Role in that project.
    pub role: String,
}

/// An API key (never the key itself: its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiKeyRow {
    /// Id (also inside the key: `ckp_<key_id>_<secret>`).
    pub key_id: String,
    /// A name for people.
    pub name: String,
    /// The visible start of the key (`ckp_<key_id>`), to recognise it.
    pub prefix: String,
    /// SHA-256 hex of the whole key.
    pub hash: String,
    /// The user it acts for (its rights never exceed theirs), or None for a key made from the command line or at
    /// first start.
    pub owner: Option<String>,
    /// Role.
    pub role: String,
    /// The one project it may act in, or None for every project its role and owner allow.
    pub project_id: Option<String>,
    /// Created.
    pub created_at: String,
    /// Refused after this instant.
    pub expires_at: Option<String>,
    /// Last request that used it (updated at most once a minute).
    pub last_used_at: Option<String>,
    /// Refused from this instant.
    pub revoked_at: Option<String>,
}

/// A sign-in session: its access tokens carry `session_id` and are valid while the session is live and the user's
/// `token_version` is the one it was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Id (the tokens' `jti`).
    pub session_id: String,
    /// User.
    pub user_id: String,
    /// The user's `token_version` when it was made.
    pub token_version: i64,
    /// SHA-256 hex of the current refresh token.
    pub refresh_hash: String,
    /// How the user signed in: `password`, `oidc`, `ldap`.
    pub method: String,
    /// Created.
    pub created_at: String,
    /// The refresh token is refused after this instant.
    pub expires_at: String,
    /// Ended by logout or revocation.
    pub revoked_at: Option<String>,
}

/// An audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Increasing id (set by the store).
    pub event_id: i64,
    /// When (RFC 3339).
    pub ts: String,
    /// `auth`, `user_mgmt`, `api_key`, `procedure`, `run`, `approval`, `agent`, `project`, `secret`, ...
    pub category: String,
    /// What was done (`login`, `login_failed`, `create`, `decide`, ...).
    pub action: String,
    /// Who: the principal's identity (`anonymous` with auth off).
    pub actor: String,
    /// Which credential: `key:<key_id>`, `session:<session_id>`, or None.
    pub credential: Option<String>,
    /// From where: the client's address.
    pub source_ip: Option<String>,
    /// The object's type (`run`, `procedure`, ...).
    pub resource_type: Option<String>,
    /// The object's id.
    pub resource_id: Option<String>,
    /// HTTP status answered (the outcome).
    pub outcome: i64,
    /// A sentence for people.
    pub description: String,
    /// More (method and path, the project, ...).
    pub meta: Value,
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Category.
    pub category: Option<String>,
    /// Actor (exact).
    pub actor: Option<String>,
    /// Action (exact).
    pub action: Option<String>,
    /// Case-insensitive substring of the description.
    pub search: Option<String>,
    /// At or after (RFC 3339).
    pub since: Option<String>,
    /// At or before (RFC 3339).
    pub until: Option<String>,
    /// Page size (0 or less: every event).
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// The columns [`user_row`] reads, in its order.
pub(crate) const USER_COLUMNS: &str = "user_id, username, email, full_name, password_hash, role, is_active, \
    sso_provider, sso_subject, token_version, created_at, updated_at";

/// A user from the columns of [`USER_COLUMNS`], starting at column `at` (so a join can read two rows).
pub(crate) fn user_row<R: RowSource>(r: &R, at: usize) -> Result<UserRow, R::Error> {
    Ok(UserRow {
        user_id: r.text(at)?,
        username: r.text(at + 1)?,
        email: r.opt_text(at + 2)?,
        full_name: r.opt_text(at + 3)?,
        password_hash: r.opt_text(at + 4)?,
        role: r.opt_text(at + 5)?,
        is_active: r.flag(at + 6)?,
        sso_provider: r.opt_text(at + 7)?,
        sso_subject: r.opt_text(at + 8)?,
        token_version: r.int(at + 9)?,
        created_at: r.time(at + 10)?,
        updated_at: r.time(at + 11)?,
    })
}

/// The answer when an id names no user.
pub(crate) fn user_not_found() -> StoreError {
    StoreError::NotFound("User not found".into())
}

/// The global role that administers the server (at least one active user keeps it).
pub(crate) const ADMIN_ROLE: &str = "admin";

/// Whether a user is an active admin (what [`AuthStore::count_admins`] counts).
pub(crate) fn is_active_admin(user: &UserRow) -> bool {
    user.is_active && user.role.as_deref() == Some(ADMIN_ROLE)
}

/// An email as stored: an empty one is none.
pub(crate) fn stored_email(email: Option<String>) -> Option<String> {
    email.filter(|e| !e.is_empty())
}

impl UserUpdate {
    /// `user` with this update applied (the store then sets `updated_at` and `token_version`).
    pub(crate) fn applied_to(&self, user: &UserRow) -> UserRow {
        let mut next = user.clone();
        if let Some(email) = &self.email {
            next.email = stored_email(Some(email.clone()));
        }
        if let Some(full_name) = &self.full_name {
            next.full_name = Some(full_name.clone());
        }
        if let Some(hash) = &self.password_hash {
            next.password_hash = Some(hash.clone());
        }
        if let Some(role) = &self.role {
            next.role.clone_from(role);
        }
        if let Some(active) = self.is_active {
            next.is_active = active;
        }
        next
    }

    /// Whether this update can make an active admin stop being one (so the backend must see the other admins
    /// before applying it).
    pub(crate) fn may_demote(&self) -> bool {
        self.is_active == Some(false) || self.role.as_ref().is_some_and(|r| r.as_deref() != Some(ADMIN_ROLE))
    }
}

/// Why a user change is refused: `before` was an active admin, `after` is not, and no other active admin is left
/// (`other_admins` counts the active admins other than this user).
pub(crate) fn leaves_no_admin(before: &UserRow, after: &UserRow, other_admins: i64) -> Option<StoreError> {
    (is_active_admin(before) && !is_active_admin(after) && other_admins == 0)
        .then(|| StoreError::Conflict("Cannot remove the last admin user".into()))
}

/// Why deleting `user` is refused: it is the last active admin (`other_admins` as for [`leaves_no_admin`]).
pub(crate) fn last_admin_deleted(user: &UserRow, other_admins: i64) -> Option<StoreError> {
    (is_active_admin(user) && other_admins == 0)
        .then(|| StoreError::Conflict("Cannot delete the last admin user".into()))
}

/// The conflict of a taken username.
pub(crate) fn duplicate_username(username: &str) -> StoreError {
    StoreError::Conflict(format!("Username '{username}' already exists"))
}

/// The conflict of a taken email.
pub(crate) fn duplicate_email(email: &str) -> StoreError {
    StoreError::Conflict(format!("Email '{email}' already exists"))
}

/// The conflict of a single-sign-on identity another user has.
pub(crate) fn duplicate_identity(provider: &str, subject: &str) -> StoreError {
    StoreError::Conflict(format!("A user with {provider} identity '{subject}' already exists"))
}

/// The conflict of a taken API key id.
pub(crate) fn duplicate_key_id(key_id: &str) -> StoreError {
    StoreError::Conflict(format!("API key '{key_id}' already exists"))
}

/// The conflict of an API key whose hash another key has.
pub(crate) fn duplicate_key_hash() -> StoreError {
    StoreError::Conflict("An API key with the same hash already exists".into())
}

/// The conflict of a taken session id.
pub(crate) fn duplicate_session(session_id: &str) -> StoreError {
    StoreError::Conflict(format!("Session '{session_id}' already exists"))
}

/// A caller's time as stored, or now when it is empty.
pub(crate) fn time_or_now(s: &str) -> Result<String, StoreError> {
    if s.is_empty() { Ok(now()) } else { shown_time(s) }
}

/// A caller's optional time as stored.
pub(crate) fn opt_time(s: Option<&str>) -> Result<Option<String>, StoreError> {
    s.map(shown_time).transpose()
}

/// A key with its times as the store shows them, so the row returned by an insert is the row read back.
pub(crate) fn stored_key(mut key: ApiKeyRow) -> Result<ApiKeyRow, StoreError> {
    key.created_at = time_or_now(&key.created_at)?;
    key.expires_at = opt_time(key.expires_at.as_deref())?;
    key.last_used_at = opt_time(key.last_used_at.as_deref())?;
    key.revoked_at = opt_time(key.revoked_at.as_deref())?;
    Ok(key)
}

/// A session with its times as the store shows them.
pub(crate) fn stored_session(mut session: SessionRow) -> Result<SessionRow, StoreError> {
    session.created_at = time_or_now(&session.created_at)?;
    session.expires_at = shown_time(&session.expires_at)?;
    session.revoked_at = opt_time(session.revoked_at.as_deref())?;
    Ok(session)
}

/// The `LIKE` pattern of a case-insensitive substring search: `%`, `_` and `\` in `search` match themselves
/// (escaped with `\`, the statements say `ESCAPE '\'`).
pub(crate) fn contains_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `columns` (a list like [`USER_COLUMNS`]) with each column qualified by the table alias `alias`, for a join.
pub(crate) fn qualified(columns: &str, alias: &str) -> String {
    columns.split(',').map(|c| format!("{alias}.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

/// A user from the columns of [`USER_COLUMNS`] at `at` of an outer join: None when the join found no user.
pub(crate) fn opt_user_row<R: RowSource>(r: &R, at: usize) -> Result<Option<UserRow>, R::Error> {
    match r.opt_text(at)? {
        Some(_) => user_row(r, at).map(Some),
        None => Ok(None),
    }
}

/// The columns [`grant_row`] reads, in its order.
pub(crate) const GRANT_COLUMNS: &str = "user_id, project_id, role";

/// A grant from the columns of [`GRANT_COLUMNS`].
pub(crate) fn grant_row<R: RowSource>(r: &R) -> Result<GrantRow, R::Error> {
    Ok(GrantRow { user_id: r.text(0)?, project_id: r.text(1)?, role: r.text(2)? })
}

/// The columns [`api_key_row`] reads, in its order.
pub(crate) const API_KEY_COLUMNS: &str =
    "key_id, name, prefix, hash, owner, role, project_id, created_at, expires_at, last_used_at, revoked_at";

/// The number of columns of [`API_KEY_COLUMNS`] (where a joined owner's columns start).
pub(crate) const API_KEY_WIDTH: usize = 11;

/// An API key from the columns of [`API_KEY_COLUMNS`], starting at column `at`.
pub(crate) fn api_key_row<R: RowSource>(r: &R, at: usize) -> Result<ApiKeyRow, R::Error> {
    Ok(ApiKeyRow {
        key_id: r.text(at)?,
        name: r.text(at + 1)?,
        prefix: r.text(at + 2)?,
        hash: r.text(at + 3)?,
        owner: r.opt_text(at + 4)?,
        role: r.text(at + 5)?,
        project_id: r.opt_text(at + 6)?,
        created_at: r.time(at + 7)?,
        expires_at: r.opt_time(at + 8)?,
        last_used_at: r.opt_time(at + 9)?,
        revoked_at: r.opt_time(at + 10)?,
    })
}

/// The columns [`session_row`] reads, in its order.
pub(crate) const SESSION_COLUMNS: &str =
    "session_id, user_id, token_version, refresh_hash, method, created_at, expires_at, revoked_at";

/// The number of columns of [`SESSION_COLUMNS`] (where the joined user's columns start).
pub(crate) const SESSION_WIDTH: usize = 8;

/// A session from the columns of [`SESSION_COLUMNS`], starting at column `at`.
pub(crate) fn session_row<R: RowSource>(r: &R, at: usize) -> Result<SessionRow, R::Error> {
    Ok(SessionRow {
        session_id: r.text(at)?,
        user_id: r.text(at + 1)?,
        token_version: r.int(at + 2)?,
        refresh_hash: r.text(at + 3)?,
        method: r.text(at + 4)?,
        created_at: r.time(at + 5)?,
        expires_at: r.time(at + 6)?,
        revoked_at: r.opt_time(at + 7)?,
    })
}

/// The columns [`audit_row`] reads, in its order.
pub(crate) const AUDIT_COLUMNS: &str = "event_id, ts, category, action, actor, credential, source_ip, resource_type, \
    resource_id, outcome, description, meta";

/// An audit event from the columns of [`AUDIT_COLUMNS`]; unreadable `meta` reads as null.
pub(crate) fn audit_row<R: RowSource>(r: &R) -> Result<AuditRow, R::Error> {
    Ok(AuditRow {
        event_id: r.int(0)?,
        ts: r.time(1)?,
        category: r.text(2)?,
        action: r.text(3)?,
        actor: r.text(4)?,
        credential: r.opt_text(5)?,
        source_ip: r.opt_text(6)?,
        resource_type: r.opt_text(7)?,
        resource_id: r.opt_text(8)?,
        outcome: r.int(9)?,
        description: r.text(10)?,
        meta: json_col(r.opt_text(11)?).unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_matches_its_wildcards_literally() {
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn joins_qualify_every_column() {
        assert_eq!(qualified(GRANT_COLUMNS, "g"), "g.user_id, g.project_id, g.role");
        assert_eq!(qualified(API_KEY_COLUMNS, "k").matches("k.").count(), API_KEY_WIDTH);
        assert_eq!(qualified(SESSION_COLUMNS, "s").matches("s.").count(), SESSION_WIDTH);
    }

    #[test]
    fn an_update_changes_only_what_it_names() {
        let user = UserRow {
            user_id: "u".into(),
            username: "ann".into(),
            email: Some("a@x".into()),
            role: Some(ADMIN_ROLE.into()),
            is_active: true,
            ..UserRow::default()
        };
        let cleared = UserUpdate { email: Some(String::new()), ..UserUpdate::default() }.applied_to(&user);
        assert_eq!((cleared.email, cleared.role.as_deref()), (None, Some(ADMIN_ROLE)));
        let demoted = UserUpdate { role: Some(None), ..UserUpdate::default() };
        assert!(demoted.may_demote());
        assert!(leaves_no_admin(&user, &demoted.applied_to(&user), 0).is_some());
        assert!(leaves_no_admin(&user, &demoted.applied_to(&user), 1).is_none());
        let renamed =
            UserUpdate { full_name: Some("Ann".into()), role: Some(Some(ADMIN_ROLE.into())), ..UserUpdate::default() };
        assert!(!renamed.may_demote());
        assert!(leaves_no_admin(&user, &renamed.applied_to(&user), 0).is_none());
    }
}
