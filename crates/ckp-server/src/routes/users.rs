//! `/api/users` (LangOrch's shapes: `UserOut`, its status codes and texts) with ckp's project grants
//! (`PUT|DELETE /api/users/{user_id}/projects/{project_id}`). A change of password, role, grants or activity ends
//! every session of the user at once (the store bumps its token version). Password hashes never leave the server.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ckp_store::{GrantRow, StoreError, UserRow, UserUpdate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::{Principal, Role, password};
use crate::error::{ApiError, ApiResult, ErrorBody, Json};

/// A user (LangOrch's `UserOut`, plus the project grants).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    /// Id.
    pub user_id: String,
    /// Login name.
    pub username: String,
    /// Email.
    pub email: Option<String>,
    /// Display name.
    pub full_name: Option<String>,
    /// Global role (None: project grants only).
    pub role: Option<String>,
    /// Whether the user may sign in.
    pub is_active: bool,
    /// `oidc`, `ldap`, or None for a local user.
    pub sso_provider: Option<String>,
    /// Roles per project.
    pub projects: Vec<GrantOut>,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// A role in one project.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantOut {
    /// Project.
    pub project_id: String,
    /// Role there.
    pub role: String,
}

fn user_out(u: UserRow, grants: Vec<GrantRow>) -> UserOut {
    UserOut {
        user_id: u.user_id,
        username: u.username,
        email: u.email,
        full_name: u.full_name,
        role: u.role,
        is_active: u.is_active,
        sso_provider: u.sso_provider,
        projects: grants.into_iter().map(|g| GrantOut { project_id: g.project_id, role: g.role }).collect(),
        created_at: u.created_at,
        updated_at: u.updated_at,
    }
}

async fn with_grants(state: &AppState, u: UserRow) -> ApiResult<UserOut> {
    let grants = state.store.user_grants(&u.user_id).await?;
    Ok(user_out(u, grants))
}

/// `POST /api/users` (LangOrch's `UserCreate`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserIn {
    /// Login name (1-128 characters: letters, digits, `.`, `_`, `-`, `@`).
    pub username: String,
    /// Email.
    pub email: Option<String>,
    /// Password (at least 8 characters); or give `password_hash`.
    pub password: Option<String>,
    /// A hash imported from LangOrch (bcrypt `$2b$...`) or another ckp (argon2id PHC string), instead of `password`:
    /// the user signs in with the same password, and a bcrypt hash is replaced with argon2id at the first sign-in.
    pub password_hash: Option<String>,
    /// Display name.
    pub full_name: Option<String>,
    /// Global role (LangOrch's default `viewer`); `none` for a user with project grants only.
    pub role: Option<String>,
}

/// `PUT /api/users/{user_id}` (LangOrch's `UserUpdate`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserChange {
    /// Display name.
    pub full_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Global role, or `none`.
    pub role: Option<String>,
    /// Enable or disable (a disabled user's sessions and keys stop working at once).
    pub is_active: Option<bool>,
    /// A new password.
    pub password: Option<String>,
}

/// `PUT /api/users/{user_id}/projects/{project_id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GrantIn {
    /// The role in the project.
    pub role: String,
}

/// The global role a body names: None for `none`.
fn global_role(name: &str) -> Result<Option<String>, ApiError> {
    match name.trim().eq_ignore_ascii_case("none") {
        true => Ok(None),
        false => Ok(Some(Role::parse_or_invalid(name)?.as_str().to_owned())),
    }
}

fn check_username(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    match ok {
        true => Ok(()),
        false => Err(ApiError::invalid(
            "invalid_username",
            "A username has 1 to 128 characters: letters, digits, '.', '_', '-' and '@'",
        )),
    }
}

/// Store conflicts on users are LangOrch's 400s.
fn user_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::new(StatusCode::BAD_REQUEST, "conflict", m),
        other => other.into(),
    }
}

/// Every user, oldest first.
#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, body = Vec<UserOut>)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<UserOut>>> {
    let mut out = Vec::new();
    for u in state.store.list_users().await? {
        out.push(with_grants(&state, u).await?);
    }
    Ok(Json(out))
}

/// Creates a local user with a password (argon2id).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = UserIn,
    responses((status = 201, body = UserOut), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, Json(body): Json<UserIn>) -> ApiResult<(StatusCode, Json<UserOut>)> {
    check_username(&body.username)?;
    let role = global_role(body.role.as_deref().unwrap_or("viewer"))?;
    let hash = match (body.password, body.password_hash) {
        (Some(p), None) => {
            if let Some(why) = password::weak(&p) {
                return Err(ApiError::invalid("weak_password", why));
            }
            password::hash(p).await.map_err(|e| {
                ApiError::internal(StatusCode::INTERNAL_SERVER_ERROR, "password_hash_failed", &std::io::Error::other(e))
            })?
        }
        (None, Some(h)) if password::importable(&h) => h,
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_password_hash",
                "password_hash must be a bcrypt hash ($2a$, $2b$, $2y$) or an argon2id PHC string",
            ));
        }
        _ => {
            return Err(ApiError::invalid("password_required", "Give either password or password_hash"));
        }
    };
    let row = UserRow {
        username: body.username,
        email: body.email.filter(|e| !e.trim().is_empty()),
        full_name: body.full_name,
        password_hash: Some(hash),
        role,
        is_active: true,
        ..UserRow::default()
    };
    let user = state.store.insert_user(row).await.map_err(user_conflict)?;
    Ok((StatusCode::CREATED, Json(with_grants(&state, user).await?)))
}

/// One user: managers see anyone, others only themselves.
#[utoipa::path(get, path = "/api/users/{user_id}", tag = "users", params(("user_id" = String, Path)),
    responses((status = 200, body = UserOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<UserOut>> {
    let own = principal.user_id.as_deref() == Some(id.as_str());
    if !own && principal.global.is_none_or(|r| r < Role::Manager) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden"));
    }
    let user = state.store.get_user(&id).await?.ok_or_else(|| ApiError::not_found("User"))?;
    Ok(Json(with_grants(&state, user).await?))
}

/// Changes a user. A new password, role or activity ends the user's sessions.
#[utoipa::path(put, path = "/api/users/{user_id}", tag = "users", params(("user_id" = String, Path)),
    request_body = UserChange,
    responses((status = 200, body = UserOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<UserChange>,
) -> ApiResult<Json<UserOut>> {
    let role = body.role.as_deref().map(global_role).transpose()?;
    let password_hash = match body.password {
        Some(p) => {
            if let Some(why) = password::weak(&p) {
                return Err(ApiError::invalid("weak_password", why));
            }
            Some(password::hash(p).await.map_err(|e| {
                ApiError::internal(StatusCode::INTERNAL_SERVER_ERROR, "password_hash_failed", &std::io::Error::other(e))
            })?)
        }
        None => None,
    };
    let revoke = password_hash.is_some() || role.is_some() || body.is_active.is_some();
    let update =
        UserUpdate { email: body.email, full_name: body.full_name, password_hash, role, is_active: body.is_active };
    let user = state.store.update_user(&id, update, revoke).await.map_err(user_conflict)?;
    Ok(Json(with_grants(&state, user).await?))
}

/// Deletes a user: their sessions end and their API keys are revoked. The last administrator stays.
#[utoipa::path(delete, path = "/api/users/{user_id}", tag = "users", params(("user_id" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_user(&id).await.map_err(user_conflict)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a user a role in a project (replacing the one they had there).
#[utoipa::path(put, path = "/api/users/{user_id}/projects/{project_id}", tag = "users",
    params(("user_id" = String, Path), ("project_id" = String, Path)), request_body = GrantIn,
    responses((status = 200, body = UserOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn grant(
    State(state): State<AppState>,
    Path((id, project)): Path<(String, String)>,
    Json(body): Json<GrantIn>,
) -> ApiResult<Json<UserOut>> {
    let role = Role::parse_or_invalid(&body.role)?;
    state.store.set_grant(&id, &project, Some(role.as_str().to_owned())).await?;
    let user = state.store.get_user(&id).await?.ok_or_else(|| ApiError::not_found("User"))?;
    Ok(Json(with_grants(&state, user).await?))
}

/// Takes a user's role in a project away.
#[utoipa::path(delete, path = "/api/users/{user_id}/projects/{project_id}", tag = "users",
    params(("user_id" = String, Path), ("project_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_grant(
    State(state): State<AppState>,
    Path((id, project)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.store.set_grant(&id, &project, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
