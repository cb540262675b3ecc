//! `/api/auth`: sign-in with a password, a ckp user's or an LDAP directory's (LangOrch's `POST /api/auth/login` and
//! its `TokenResponse`), refresh, logout, `GET /api/auth/me`, and `POST /api/auth/token` (administrators only, off
//! unless `auth_token_endpoint`).
//! A session is a store row; its access token is short-lived and checked against the row on every request, and
//! its refresh token is single-use (a replayed one ends the session). The console gets the access token as an
//! HttpOnly, SameSite=Strict cookie as well; API clients use the body.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use ckp_store::{SessionRow, StoreError, UserRow, UserUpdate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::password::{self, Verified};
use crate::auth::principal::{SESSION_COOKIE, stamp, user_principal};
use crate::auth::{Principal, Role, keys, ldap};
use crate::error::{ApiError, ApiResult, ErrorBody, Json};

/// LangOrch's login body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginIn {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// LangOrch's `TokenResponse`, plus ckp's refresh token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access token (`Authorization: Bearer ...`).
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The username.
    pub identity: String,
    /// The user's roles (the highest one).
    pub roles: Vec<String>,
    /// Single-use token for `POST /api/auth/refresh` (a new one comes with each refresh).
    pub refresh_token: String,
}

/// `POST /api/auth/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshIn {
    /// The refresh token of the last sign-in or refresh.
    pub refresh_token: String,
}

/// `POST /api/auth/token` (LangOrch's body; `secret` is ignored: the caller's admin credential is what counts).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenIn {
    /// The username to sign in as.
    pub identity: String,
    /// Ignored: the user's own roles apply.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `GET /api/auth/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeOut {
    /// The identity audit records show.
    pub identity: String,
    /// LangOrch's roles.
    pub roles: Vec<String>,
    /// The user, when a user is behind the credential.
    pub user_id: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Display name.
    pub full_name: Option<String>,
    /// Global role.
    pub role: Option<String>,
    /// Roles per project, above the global one.
    pub projects: std::collections::BTreeMap<String, Role>,
    /// `key:<id>`, `session:<id>`, or None (anonymous with authentication off).
    pub credential: Option<String>,
    /// Whether the server requires credentials.
    pub auth_enabled: bool,
}

const INVALID_LOGIN: &str = "Invalid username or password";

/// Signs in with a username and password: LangOrch's `TokenResponse`, and the console's session cookie. Local
/// users sign in with their ckp password; with LDAP configured, any other username (or a user made by an earlier
/// LDAP sign-in) signs in against the directory, which also sets the user's global role from their groups.
/// Failures are rate-limited per address and per username (429 with `Retry-After`); a directory that cannot be
/// reached answers 503 `ldap_unavailable`.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginIn,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Json(body): Json<LoginIn>,
) -> ApiResult<Response> {
    let source = peer.map(|p| p.0.0.ip());
    let limit_keys: Vec<String> =
        [source.map(|s| format!("ip:{s}")), Some(format!("id:{}", body.username))].into_iter().flatten().collect();
    if let Some(wait) = state.auth.limiter.blocked(&limit_keys) {
        return Err(ApiError::too_many_attempts(wait));
    }
    let known = state.store.user_by_name(&body.username).await?;
    let directory = state
        .auth
        .config
        .ldap
        .as_ref()
        .filter(|_| known.as_ref().is_none_or(|u| u.sso_provider.as_deref() == Some(ldap::PROVIDER)));
    let (user, method) = match directory {
        Some(directory) => (ldap_user(&state, directory, &body, known).await?, ldap::PROVIDER),
        None => (password_user(&state, known, body.password.clone()).await, "password"),
    };
    let Some(user) = user else {
        state.auth.limiter.fail(&limit_keys);
        state.audit.event(
            "auth",
            "login_failed",
            &body.username,
            None,
            source,
            StatusCode::UNAUTHORIZED,
            format!("Failed sign-in for {:?}", body.username),
            json!({"method": method}),
        );
        return Err(ApiError::unauthorized(INVALID_LOGIN));
    };
    state.auth.limiter.clear(&format!("id:{}", body.username));
    let response = open_session(&state, &user, method).await?;
    state.audit.event(
        "auth",
        "login",
        &user.username,
        None,
        source,
        StatusCode::OK,
        format!("{} signed in", user.username),
        json!({"method": method}),
    );
    Ok(response)
}

/// The active local user whose password this is, else None (an unknown user takes as long as a wrong password).
async fn password_user(state: &AppState, known: Option<UserRow>, password: String) -> Option<UserRow> {
    let user = known.filter(|u| u.is_active);
    match password::verify(password.clone(), user.as_ref().and_then(|u| u.password_hash.clone())).await {
        Verified::Ok => user,
        Verified::OkRehash => {
            if let Some(user) = &user {
                rehash(state, user, password).await;
            }
            user
        }
        Verified::No => None,
    }
}

/// The user the directory signs in (created at their first sign-in, their email, name and global role kept in
/// step with the directory), or None when the directory refuses the credentials, the user is disabled in ckp, or
/// the ckp user of that name was made for another directory entry. 503 when the directory cannot answer.
async fn ldap_user(
    state: &AppState,
    directory: &ldap::Directory,
    body: &LoginIn,
    known: Option<UserRow>,
) -> ApiResult<Option<UserRow>> {
    let found = match directory.authenticate(&body.username, &body.password).await {
        Ok(found) => found,
        Err(ldap::LdapError::Rejected(reason)) => {
            tracing::debug!(user = %body.username, reason, "LDAP sign-in refused");
            return Ok(None);
        }
        Err(e) => return Err(ApiError::internal(StatusCode::SERVICE_UNAVAILABLE, "ldap_unavailable", &e)),
    };
    // The entry's DN identifies the user: a username typed in another case finds the same ckp user.
    let known = match state.store.user_by_subject(ldap::PROVIDER, &found.dn).await? {
        Some(user) => Some(user),
        None => known,
    };
    let role = found.role.map(|r| r.as_str().to_owned());
    let Some(user) = known else {
        return provision(state, &body.username, found, role).await;
    };
    if user.sso_subject.as_deref() != Some(found.dn.as_str()) {
        tracing::warn!(
            user = %user.username, dn = %found.dn,
            "LDAP sign-in refused: this ckp user was made for another directory entry (delete it to sign in as the new one)"
        );
        return Ok(None);
    }
    if !user.is_active {
        return Ok(None);
    }
    let update = UserUpdate {
        email: found.email.filter(|e| user.email.as_ref() != Some(e)),
        full_name: found.full_name.filter(|n| user.full_name.as_ref() != Some(n)),
        role: (user.role != role).then_some(role),
        ..UserUpdate::default()
    };
    if update == UserUpdate::default() {
        return Ok(Some(user));
    }
    // A new role ends the user's other sessions, as any role change does.
    let revoke = update.role.is_some();
    match state.store.update_user(&user.user_id, update, revoke).await {
        Ok(updated) => Ok(Some(updated)),
        Err(StoreError::Conflict(why)) => {
            tracing::warn!(user = %user.username, reason = %why, "the directory's values for this user were not stored");
            Ok(Some(user))
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates the ckp user of a first LDAP sign-in (no password hash: the directory checks passwords). When the
/// directory's email is another user's already, the user is made without one; None when the user cannot be made
/// (the sign-in then fails as any other, and the reason is logged).
async fn provision(
    state: &AppState,
    username: &str,
    found: ldap::DirectoryUser,
    role: Option<String>,
) -> ApiResult<Option<UserRow>> {
    let mut row = UserRow {
        username: username.to_owned(),
        email: found.email,
        full_name: found.full_name,
        password_hash: None,
        role,
        is_active: true,
        sso_provider: Some(ldap::PROVIDER.to_owned()),
        sso_subject: Some(found.dn.clone()),
        ..UserRow::default()
    };
    for _ in 0..2 {
        match state.store.insert_user(row.clone()).await {
            Ok(user) => {
                tracing::info!(user = %user.username, dn = %found.dn, "user created at their first LDAP sign-in");
                return Ok(Some(user));
            }
            Err(StoreError::Conflict(why)) => {
                // The same user signing in twice at once: the other sign-in made them.
                if let Some(user) = state.store.user_by_subject(ldap::PROVIDER, &found.dn).await? {
                    return Ok(user.is_active.then_some(user));
                }
                if row.email.is_none() {
                    tracing::warn!(user = %username, reason = %why, "LDAP sign-in refused: the user cannot be created");
                    return Ok(None);
                }
                tracing::warn!(user = %username, reason = %why, "LDAP user created without the directory's email");
                row.email = None;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Replaces an imported bcrypt hash with argon2id after a successful sign-in.
async fn rehash(state: &AppState, user: &UserRow, password: String) {
    match password::hash(password).await {
        Ok(hash) => {
            let update = UserUpdate { password_hash: Some(hash), ..UserUpdate::default() };
            if let Err(e) = state.store.update_user(&user.user_id, update, false).await {
                tracing::warn!(user = %user.username, error = %e, "cannot store a rehashed password");
            }
        }
        Err(e) => tracing::warn!(user = %user.username, error = %e, "cannot rehash a password"),
    }
}

/// A new session of `user`: the token response and the session cookie.
pub async fn open_session(state: &AppState, user: &UserRow, method: &str) -> ApiResult<Response> {
    let session_id = uuid::Uuid::new_v4().simple().to_string();
    let secret = keys::random_token();
    let refresh_token = format!("{session_id}.{secret}");
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(state.auth.config.session_ttl).unwrap_or(chrono::Duration::days(7));
    state
        .store
        .insert_session(SessionRow {
            session_id: session_id.clone(),
            user_id: user.user_id.clone(),
            token_version: user.token_version,
            refresh_hash: keys::hash(&refresh_token),
            method: method.to_owned(),
            created_at: stamp(now),
            expires_at: stamp(now + ttl),
            revoked_at: None,
        })
        .await?;
    token_answer(state, user, &session_id, refresh_token).await
}

async fn token_answer(
    state: &AppState,
    user: &UserRow,
    session_id: &str,
    refresh_token: String,
) -> ApiResult<Response> {
    let grants = state.store.user_grants(&user.user_id).await?;
    let roles = user_principal(user, &grants, None).role_names();
    let (access_token, expires_in) = state.auth.access_token(user, session_id, roles.clone());
    let cookie = session_cookie(state, &access_token, expires_in);
    let body = TokenResponse {
        access_token,
        token_type: "bearer",
        expires_in,
        identity: user.username.clone(),
        roles,
        refresh_token,
    };
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

fn session_cookie(state: &AppState, token: &str, max_age: u64) -> String {
    let secure = if state.auth.config.secure_cookies { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// Trades a refresh token for a new access token and a new refresh token. A refresh token works once: a replayed
/// one ends its session (someone else may hold it).
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshIn,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Json(body): Json<RefreshIn>,
) -> ApiResult<Response> {
    const INVALID: &str = "Invalid or expired refresh token";
    let source = peer.map(|p| p.0.0.ip());
    let limit_keys: Vec<String> = source.map(|s| format!("ip:{s}")).into_iter().collect();
    if let Some(wait) = state.auth.limiter.blocked(&limit_keys) {
        return Err(ApiError::too_many_attempts(wait));
    }
    let refused = || {
        state.auth.limiter.fail(&limit_keys);
        ApiError::unauthorized(INVALID)
    };
    let (session_id, _) = body.refresh_token.split_once('.').ok_or_else(refused)?;
    let (session, user) = state.store.session(session_id).await?.ok_or_else(refused)?;
    let expired = crate::auth::principal::parse_time(&session.expires_at).is_none_or(|t| t <= Utc::now());
    if session.revoked_at.is_some() || expired || !user.is_active || user.token_version != session.token_version {
        return Err(refused());
    }
    let new_token = format!("{session_id}.{}", keys::random_token());
    let ttl = chrono::Duration::from_std(state.auth.config.session_ttl).unwrap_or(chrono::Duration::days(7));
    let rotated = state
        .store
        .rotate_session(session_id, &keys::hash(&body.refresh_token), &keys::hash(&new_token), &stamp(Utc::now() + ttl))
        .await?;
    if !rotated {
        state.store.revoke_session(session_id).await?;
        state.audit.event(
            "auth",
            "refresh_replayed",
            &user.username,
            Some(format!("session:{session_id}")),
            source,
            StatusCode::UNAUTHORIZED,
            format!("A used refresh token of {} was presented again: the session is ended", user.username),
            json!({}),
        );
        return Err(refused());
    }
    token_answer(&state, &user, session_id, new_token).await
}

/// Ends the caller's session (its access and refresh tokens stop working at once) and clears the cookie.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, principal: Principal) -> ApiResult<Response> {
    if let Some(session_id) = principal.credential.as_deref().and_then(|c| c.strip_prefix("session:")) {
        state.store.revoke_session(session_id).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&state, "", 0)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// The caller: identity, roles, and the user's fields when a user is behind the credential.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", responses((status = 200, body = MeOut)))]
pub async fn me(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<MeOut>> {
    let user = match &principal.user_id {
        Some(id) => state.store.get_user(id).await?,
        None => None,
    };
    Ok(Json(MeOut {
        roles: principal.role_names(),
        user_id: principal.user_id.clone(),
        email: user.as_ref().and_then(|u| u.email.clone()),
        full_name: user.as_ref().and_then(|u| u.full_name.clone()),
        role: principal.global.map(|r| r.as_str().to_owned()),
        projects: principal.projects.clone(),
        credential: principal.credential.clone(),
        identity: principal.identity,
        auth_enabled: state.auth.config.enabled,
    }))
}

/// LangOrch's token endpoint, made safe: off unless `auth_token_endpoint` is set, and then only for
/// administrators, who get a session of an existing active user with that user's own roles (never roles chosen
/// by the caller, never by knowing a shared secret).
#[utoipa::path(post, path = "/api/auth/token", tag = "auth", request_body = TokenIn,
    responses((status = 200, body = TokenResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn token(State(state): State<AppState>, Json(body): Json<TokenIn>) -> ApiResult<Response> {
    if !state.auth.config.enabled || !state.auth.config.token_endpoint {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_endpoint_disabled",
            "The token endpoint is disabled (auth_token_endpoint); sign in with POST /api/auth/login or use an API key",
        ));
    }
    let user = state.store.user_by_name(&body.identity).await?.filter(|u| u.is_active);
    let user = user.ok_or_else(|| ApiError::not_found("User"))?;
    open_session(&state, &user, "token").await
}
