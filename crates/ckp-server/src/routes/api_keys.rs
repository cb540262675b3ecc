//! `/api/api-keys`: a caller's API keys (an administrator sees and revokes everyone's). A key is shown once, in
//! the answer that creates it; its role never exceeds its creator's (in its project, when it has one), and it
//! acts for its creator, so disabling the creator stops it too.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ckp_store::ApiKeyRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::keys::{self, KeySpec};
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, ErrorBody, Json};

/// An API key, without the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    /// Id.
    pub key_id: String,
    /// Name.
    pub name: String,
    /// The visible start of the key.
    pub prefix: String,
    /// Role.
    pub role: String,
    /// The one project it acts in.
    pub project_id: Option<String>,
    /// The user it acts for.
    pub owner: Option<String>,
    /// Created.
    pub created_at: String,
    /// Refused after.
    pub expires_at: Option<String>,
    /// Last used (to the minute).
    pub last_used_at: Option<String>,
    /// Revoked at.
    pub revoked_at: Option<String>,
}

impl From<ApiKeyRow> for ApiKeyOut {
    fn from(k: ApiKeyRow) -> Self {
        ApiKeyOut {
            key_id: k.key_id,
            name: k.name,
            prefix: k.prefix,
            role: k.role,
            project_id: k.project_id,
            owner: k.owner,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key: the only answer that holds the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyOut {
    /// The key: store it now, it is never shown again.
    pub key: String,
    /// The stored key's fields.
    #[serde(flatten)]
    pub info: ApiKeyOut,
}

/// `POST /api/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ApiKeyIn {
    /// A name for people.
    pub name: String,
    /// Role (at most the caller's).
    pub role: String,
    /// The one project it may act in.
    pub project_id: Option<String>,
    /// Days until it expires (none: never).
    pub expires_in_days: Option<u32>,
}

/// The caller's keys (an administrator's list has every key; a key without an owner sees itself).
#[utoipa::path(get, path = "/api/api-keys", tag = "auth", responses((status = 200, body = Vec<ApiKeyOut>)))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<ApiKeyOut>>> {
    if principal.global == Some(Role::Admin) {
        return Ok(Json(state.store.list_api_keys(None).await?.into_iter().map(ApiKeyOut::from).collect()));
    }
    if let Some(owner) = principal.user_id.clone() {
        return Ok(Json(state.store.list_api_keys(Some(owner)).await?.into_iter().map(ApiKeyOut::from).collect()));
    }
    let own = principal.credential.as_deref().and_then(|c| c.strip_prefix("key:"));
    let key = match own {
        Some(id) => state.store.get_api_key(id).await?,
        None => None,
    };
    Ok(Json(key.into_iter().map(ApiKeyOut::from).collect()))
}

fn no_owner() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Only a user (or an administrator) has API keys")
}

/// Creates a key acting for the caller, with at most the caller's role.
#[utoipa::path(post, path = "/api/api-keys", tag = "auth", request_body = ApiKeyIn,
    responses((status = 201, body = NewKeyOut), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such project_id"), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<ApiKeyIn>,
) -> ApiResult<(StatusCode, Json<NewKeyOut>)> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid("invalid_name", "A key's name has 1 to 200 characters"));
    }
    let role = Role::parse_or_invalid(&body.role)?;
    let project = body.project_id.filter(|p| !p.is_empty());
    if !principal.may(role, project.as_deref()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("A key cannot have more rights than its creator: you do not hold '{role}' there"),
        ));
    }
    if principal.user_id.is_none() && principal.global != Some(Role::Admin) {
        return Err(no_owner());
    }
    if let Some(p) = &project {
        state.store.get_project(p).await?.ok_or_else(|| ApiError::not_found("Project"))?;
    }
    let expires_at = body.expires_in_days.map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d.max(1))));
    let spec = KeySpec {
        name: name.to_owned(),
        role: role.as_str().into(),
        project_id: project,
        owner: principal.user_id,
        expires_at,
    };
    let (row, key) = keys::issue(state.store.as_ref(), spec).await?;
    Ok((StatusCode::CREATED, Json(NewKeyOut { key, info: row.into() })))
}

/// Revokes a key (its owner or an administrator); it is refused from the next request on.
#[utoipa::path(delete, path = "/api/api-keys/{key_id}", tag = "auth", params(("key_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let key = state.store.get_api_key(&id).await?.ok_or_else(|| ApiError::not_found("API key"))?;
    let mine = key.owner.is_some() && key.owner == principal.user_id;
    if !mine && principal.global != Some(Role::Admin) {
        return Err(ApiError::not_found("API key"));
    }
    if !state.store.revoke_api_key(&id).await? {
        return Err(ApiError::not_found("API key"));
    }
    Ok(StatusCode::NO_CONTENT)
}
