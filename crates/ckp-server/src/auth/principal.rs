//! [`Principal`]: the caller of a request with its roles, and [`Authenticator`], which resolves it from the
//! request's credentials: `X-API-Key` (checked first, as LangOrch does), then `Authorization: Bearer` (an API key or
//! a session token), then the `ckp_session` cookie (the console; unsafe methods then need `X-Requested-With`, which
//! a cross-site form cannot send). API keys cost one SHA-256 and one indexed read; session tokens an HMAC and one
//! indexed read, which is what makes logout, revocation and disabling a user act on the very next request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode, header};
use chrono::{DateTime, Utc};
use ckp_store::{ApiKeyRow, Store, UserRow};
use serde::Serialize;

use super::keys;
use super::token::{self, Claims, TokenKey};
use crate::error::ApiError;

/// LangOrch's five roles, in order of power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything of its projects.
    Viewer,
    /// Viewer, and decides approvals.
    Approver,
    /// Approver, and imports procedures, starts, cancels and retries runs, manages agents.
    Operator,
    /// Operator, and manages projects, triggers and reads the user list.
    Manager,
    /// Everything: users, API keys of others, secrets, server operations.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 5] = [Role::Viewer, Role::Approver, Role::Operator, Role::Manager, Role::Admin];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Operator => "operator",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// The role named `name` (case-insensitive), or None.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// 422 for a role name that is not one of the five.
    pub fn parse_or_invalid(name: &str) -> Result<Role, ApiError> {
        Role::parse(name).ok_or_else(|| {
            ApiError::invalid(
                "invalid_role",
                format!("Unknown role {name:?}: one of viewer, approver, operator, manager, admin"),
            )
        })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The name audit records and `decided_by` show: a username, `api-key:<prefix>`, or `anonymous`.
    pub identity: String,
    /// The user behind the request (a session's user, an API key's owner).
    pub user_id: Option<String>,
    /// Which credential: `key:<key_id>` or `session:<session_id>`.
    pub credential: Option<String>,
    /// Role on every project and on the server's own resources.
    pub global: Option<Role>,
    /// Roles on single projects (each above `global`, else it would not be listed).
    pub projects: BTreeMap<String, Role>,
}

impl Principal {
    /// The caller when authentication is off and no credential is given: LangOrch's anonymous administrator.
    pub fn anonymous_admin() -> Self {
        Principal {
            identity: "anonymous".into(),
            user_id: None,
            credential: None,
            global: Some(Role::Admin),
            projects: BTreeMap::new(),
        }
    }

    /// A caller with no rights (what a handler sees on a route the middleware did not guard).
    pub fn nobody() -> Self {
        Principal {
            identity: "anonymous".into(),
            user_id: None,
            credential: None,
            global: None,
            projects: BTreeMap::new(),
        }
    }

    /// The caller's role on objects of `project` (None: objects outside any project, which only global roles reach).
    pub fn role_in(&self, project: Option<&str>) -> Option<Role> {
        let local = project.and_then(|p| self.projects.get(p).copied());
        self.global.max(local)
    }

    /// The highest role the caller holds anywhere.
    pub fn highest(&self) -> Option<Role> {
        self.projects.values().copied().max().max(self.global)
    }

    /// Every role the caller holds, named (LangOrch's `roles`): the global one, else the highest project one.
    pub fn role_names(&self) -> Vec<String> {
        self.highest().map(|r| vec![r.as_str().to_owned()]).unwrap_or_default()
    }

    /// Whether the caller holds `role` or higher on objects of `project`.
    pub fn may(&self, role: Role, project: Option<&str>) -> bool {
        self.role_in(project).is_some_and(|r| r >= role)
    }

    /// The projects whose objects the caller may see with `role`: None when every project (a global role).
    pub fn visible_projects(&self, role: Role) -> Option<Vec<String>> {
        match self.global.is_some_and(|g| g >= role) {
            true => None,
            false => Some(self.projects.iter().filter(|(_, r)| **r >= role).map(|(p, _)| p.clone()).collect()),
        }
    }

    /// Checks the caller may act with `role` on an object of `project`: an object the caller may not even view is
    /// `not_found` (404 under `what`, as if absent); one it may view but not change is 403.
    pub fn require(&self, role: Role, project: Option<&str>, what: &str) -> Result<(), ApiError> {
        match self.role_in(project) {
            Some(r) if r >= role => Ok(()),
            Some(_) => Err(forbidden(role)),
            None => Err(ApiError::not_found(what)),
        }
    }
}

/// Handlers take the caller as an argument: what the guard resolved, or a caller with no rights on a route it
/// did not guard.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned().unwrap_or_else(Principal::nobody))
    }
}

/// 403 in LangOrch's words.
pub fn forbidden(role: Role) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("Role '{role}' or higher is required"))
}

/// How authentication behaves, from the settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Whether credentials are required. Off: a request without one is the anonymous administrator (a credential
    /// that is given is still checked).
    pub enabled: bool,
    /// Lifetime of a session's access token.
    pub token_ttl: Duration,
    /// Lifetime of a session (its refresh token), renewed by each refresh.
    pub session_ttl: Duration,
    /// Whether `POST /api/auth/token` is available (to administrators only).
    pub token_endpoint: bool,
    /// Failed sign-ins or keys allowed per minute from one address or for one identity before 429.
    pub failures_per_minute: u32,
    /// Whether the session cookie gets `Secure` (set when ckp is reached over HTTPS).
    pub secure_cookies: bool,
    /// Origins allowed to call the API from a browser (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// The four-eyes rule: whoever started a run cannot decide its approvals.
    pub four_eyes: bool,
    /// Sign-in through an LDAP directory, when `ldap_url` is set.
    pub ldap: Option<super::ldap::Directory>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: false,
            token_ttl: Duration::from_secs(900),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            token_endpoint: false,
            failures_per_minute: 10,
            secure_cookies: false,
            cors_origins: Vec::new(),
            four_eyes: false,
            ldap: None,
        }
    }
}

/// The cookie the console signs in with.
pub const SESSION_COOKIE: &str = "ckp_session";

/// Resolves principals; shared by every request.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    /// The settings.
    pub config: AuthConfig,
    key: TokenKey,
    /// Failed credentials per source and identity.
    pub limiter: Arc<super::limit::FailureLimiter>,
    touched: Arc<std::sync::Mutex<std::collections::HashMap<String, DateTime<Utc>>>>,
}

/// A credential as presented.
enum Presented<'a> {
    ApiKey(&'a str),
    Token(&'a str),
    Cookie(&'a str),
}

impl Authenticator {
    /// An authenticator over `store`, signing session tokens with `key`.
    pub fn new(store: Arc<dyn Store>, config: AuthConfig, key: TokenKey) -> Self {
        let limiter = Arc::new(super::limit::FailureLimiter::new(config.failures_per_minute));
        Authenticator { store, config, key, limiter, touched: Arc::default() }
    }

    /// The key signing session tokens.
    pub fn token_key(&self) -> &TokenKey {
        &self.key
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The caller of a request: None when it presents no credential (the caller decides what that means).
    /// A credential that is presented and wrong is 401, whatever the route, as LangOrch does.
    pub async fn resolve(&self, method: &Method, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
        let Some(presented) = presented(headers) else { return Ok(None) };
        match presented {
            Presented::ApiKey(k) => self.api_key(k, "Invalid API key").await.map(Some),
            Presented::Token(t) if t.starts_with(keys::PREFIX) => self.api_key(t, "Invalid API key").await.map(Some),
            Presented::Token(t) => self.session_token(t).await.map(Some),
            Presented::Cookie(t) => {
                let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
                if !safe && !headers.contains_key("x-requested-with") {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf",
                        "A request signed in by cookie that changes something must carry the X-Requested-With header",
                    ));
                }
                self.session_token(t).await.map(Some)
            }
        }
    }

    /// The principal of an API key, or 401.
    async fn api_key(&self, presented: &str, invalid: &str) -> Result<Principal, ApiError> {
        let hash = keys::hash(presented);
        let Some((key, owner)) = self.store.api_key_by_hash(&hash).await? else {
            return Err(ApiError::unauthorized(invalid));
        };
        let now = Utc::now();
        if key.revoked_at.is_some() || key.expires_at.as_deref().and_then(parse_time).is_some_and(|t| t <= now) {
            return Err(ApiError::unauthorized(invalid));
        }
        if owner.as_ref().is_some_and(|u| !u.is_active) {
            return Err(ApiError::unauthorized(invalid));
        }
        let grants = match &owner {
            Some(u) => self.store.user_grants(&u.user_id).await?,
            None => Vec::new(),
        };
        self.touch(&key, now);
        Ok(key_principal(&key, owner.as_ref(), &grants))
    }

    /// Records a key's last use at most once a minute (a write per request would cost every request a commit).
    fn touch(&self, key: &ApiKeyRow, now: DateTime<Utc>) {
        let stale = |t: &DateTime<Utc>| now.signed_duration_since(*t) >= chrono::Duration::seconds(60);
        let due = {
            let mut touched = self.touched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let last = touched.get(&key.key_id).copied().or_else(|| key.last_used_at.as_deref().and_then(parse_time));
            let due = last.as_ref().is_none_or(stale);
            if due {
                touched.insert(key.key_id.clone(), now);
            }
            due
        };
        if due {
            let (store, id, at) = (self.store.clone(), key.key_id.clone(), stamp(now));
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_key(&id, &at).await {
                    tracing::warn!(key_id = %id, error = %e, "cannot record an API key's last use");
                }
            });
        }
    }

    /// The principal of a session token, or 401.
    async fn session_token(&self, token: &str) -> Result<Principal, ApiError> {
        const INVALID: &str = "Invalid or expired token";
        let claims: Claims = self.key.verify(token, Utc::now()).map_err(|_| ApiError::unauthorized(INVALID))?;
        let Some((session, user)) = self.store.session(&claims.jti).await? else {
            return Err(ApiError::unauthorized(INVALID));
        };
        if session.revoked_at.is_some() || !user.is_active || user.token_version != session.token_version {
            return Err(ApiError::unauthorized(INVALID));
        }
        let grants = self.store.user_grants(&user.user_id).await?;
        Ok(user_principal(&user, &grants, Some(format!("session:{}", session.session_id))))
    }

    /// A signed access token for a session of `user`.
    pub fn access_token(&self, user: &UserRow, session_id: &str, roles: Vec<String>) -> (String, u64) {
        let ttl = self.config.token_ttl.as_secs().max(1);
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user.username.clone(),
            uid: user.user_id.clone(),
            roles,
            iat: now,
            exp: now + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
            jti: session_id.to_owned(),
            iss: token::ISSUER.into(),
            aud: token::AUDIENCE.into(),
        };
        (self.key.sign(&claims), ttl)
    }
}

/// The credential a request presents, if any.
fn presented(headers: &HeaderMap) -> Option<Presented<'_>> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(Presented::ApiKey(k.trim()));
    }
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(Presented::Token(v[7..].trim()));
        }
    }
    cookie(headers, SESSION_COOKIE).map(Presented::Cookie)
}

/// The value of the cookie `name` the request carries.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// A user's principal from their global role and grants.
pub fn user_principal(user: &UserRow, grants: &[ckp_store::GrantRow], credential: Option<String>) -> Principal {
    let global = user.role.as_deref().and_then(Role::parse);
    let projects = grants
        .iter()
        .filter_map(|g| Some((g.project_id.clone(), Role::parse(&g.role)?)))
        .filter(|(_, r)| global.is_none_or(|g| *r > g))
        .collect();
    Principal { identity: user.username.clone(), user_id: Some(user.user_id.clone()), credential, global, projects }
}

/// An API key's principal: its role, never above its owner's, and only in its project when it has one.
pub fn key_principal(key: &ApiKeyRow, owner: Option<&UserRow>, grants: &[ckp_store::GrantRow]) -> Principal {
    let credential = Some(format!("key:{}", key.key_id));
    let cap = Role::parse(&key.role);
    let owned = owner.map(|u| user_principal(u, grants, None));
    let within = |r: Option<Role>| r.min(cap);
    let (global, projects) = match (&key.project_id, owned) {
        (Some(p), Some(o)) => (None, within(o.role_in(Some(p))).map(|r| (p.clone(), r)).into_iter().collect()),
        (Some(p), None) => (None, cap.map(|r| (p.clone(), r)).into_iter().collect()),
        (None, Some(o)) => {
            let global = within(o.global);
            let projects = o
                .projects
                .iter()
                .filter_map(|(p, r)| within(Some(*r)).map(|r| (p.clone(), r)))
                .filter(|(_, r)| global.is_none_or(|g| *r > g))
                .collect();
            (global, projects)
        }
        (None, None) => (cap, BTreeMap::new()),
    };
    Principal {
        identity: format!("api-key:{}", key.prefix),
        user_id: owner.map(|u| u.user_id.clone()),
        credential,
        global,
        projects,
    }
}

/// An instant as the store writes them (RFC 3339, microseconds, `Z`), so that text comparisons order them.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// An RFC 3339 instant.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Option<&str>) -> UserRow {
        UserRow {
            user_id: "u1".into(),
            username: "ann".into(),
            role: role.map(Into::into),
            is_active: true,
            ..UserRow::default()
        }
    }

    fn grant(project: &str, role: &str) -> ckp_store::GrantRow {
        ckp_store::GrantRow { user_id: "u1".into(), project_id: project.into(), role: role.into() }
    }

    #[test]
    fn roles_are_ordered_and_parsed() {
        assert!(Role::Viewer < Role::Approver && Role::Approver < Role::Operator);
        assert!(Role::Operator < Role::Manager && Role::Manager < Role::Admin);
        assert_eq!(Role::parse(" Operator "), Some(Role::Operator));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn a_project_grant_reaches_only_its_project() {
        let p = user_principal(&user(None), &[grant("a", "operator")], None);
        assert!(p.may(Role::Operator, Some("a")));
        assert!(!p.may(Role::Viewer, Some("b")));
        assert!(!p.may(Role::Viewer, None));
        assert_eq!(p.visible_projects(Role::Viewer), Some(vec!["a".to_owned()]));
        assert_eq!(p.require(Role::Viewer, Some("b"), "Run").unwrap_err().status, StatusCode::NOT_FOUND);
        let viewer = user_principal(&user(Some("viewer")), &[grant("a", "operator")], None);
        assert_eq!(viewer.require(Role::Operator, Some("b"), "Run").unwrap_err().status, StatusCode::FORBIDDEN);
        assert_eq!(viewer.visible_projects(Role::Viewer), None);
    }

    #[test]
    fn a_key_never_exceeds_its_owner_or_its_project() {
        let owner = user(Some("operator"));
        let key =
            ApiKeyRow { key_id: "k".into(), prefix: "ckp_k".into(), role: "admin".into(), ..ApiKeyRow::default() };
        let p = key_principal(&key, Some(&owner), &[]);
        assert_eq!(p.global, Some(Role::Operator));
        let scoped = ApiKeyRow { project_id: Some("a".into()), role: "viewer".into(), ..key.clone() };
        let p = key_principal(&scoped, Some(&owner), &[]);
        assert_eq!((p.global, p.role_in(Some("a")), p.role_in(Some("b"))), (None, Some(Role::Viewer), None));
        let system = key_principal(&ApiKeyRow { role: "admin".into(), ..key }, None, &[]);
        assert_eq!(system.global, Some(Role::Admin));
    }
}
