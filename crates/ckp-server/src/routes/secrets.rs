//! `/api/secrets`: ckp's own encrypted secrets (the `db` provider) in LangOrch's shapes (`SecretOut`, never a
//! value). Values are sealed with the server's `secrets_encryption_key` before they reach the store; without a key,
//! writes of a value answer 503. Every write forgets the providers' cached values. The bodies live here rather than
//! in `api.rs` because nothing else uses them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ckp_store::{SecretRow, SecretUpdate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json};

/// The longest value accepted.
const MAX_VALUE_BYTES: usize = 64 * 1024;

/// A stored secret, without its value (SecretOut).
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretOut {
    /// Id.
    pub secret_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// LangOrch's provider hint (`db`).
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

impl From<SecretRow> for SecretOut {
    fn from(r: SecretRow) -> Self {
        SecretOut {
            secret_id: r.secret_id,
            name: r.name,
            description: r.description,
            provider_hint: r.provider_hint,
            tags: r.tags,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `POST /api/secrets`.
#[derive(Deserialize, ToSchema)]
pub struct SecretIn {
    /// Name: letters, digits, `_`, `-`, `.` and `/`.
    pub name: String,
    /// The value (write-only).
    pub value: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Provider hint (default `db`).
    #[serde(default)]
    pub provider_hint: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `PUT /api/secrets/{name}`: absent fields are left as they are.
#[derive(Deserialize, ToSchema)]
pub struct SecretUpdateIn {
    /// A new value (write-only).
    #[serde(default)]
    pub value: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Provider hint.
    #[serde(default)]
    pub provider_hint: Option<String>,
}

impl std::fmt::Debug for SecretIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretIn").field("name", &self.name).field("value", &"***").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SecretUpdateIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretUpdateIn").field("value", &self.value.as_ref().map(|_| "***")).finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 256
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    if !valid {
        return Err(ApiError::invalid(
            "invalid_body",
            "name must be 1 to 256 characters: letters, digits, _ - . and /",
        ));
    }
    Ok(())
}

fn check_value(value: &str) -> ApiResult<()> {
    if value.is_empty() || value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::invalid("invalid_body", format!("value must be 1 to {MAX_VALUE_BYTES} bytes")));
    }
    Ok(())
}

fn seal(state: &AppState, name: &str, value: &str) -> ApiResult<String> {
    let key = state.secrets.seal_key().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "secrets_key_missing",
            "SECRETS_ENCRYPTION_KEY must be configured before storing database-backed secrets (set secrets_encryption_key: CKP_SECRETS_ENCRYPTION_KEY)",
        )
    })?;
    Ok(key.seal(name, value))
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("Secret '{name}' not found"))
}

/// Stored secrets by name; never their values.
#[utoipa::path(get, path = "/api/secrets", tag = "secrets", responses((status = 200, body = Vec<SecretOut>)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<SecretOut>>> {
    Ok(Json(state.store.list_secrets().await?.into_iter().map(SecretOut::from).collect()))
}

/// Stores a secret, sealed with the server's key. A taken name is 409; no key configured is 503.
#[utoipa::path(post, path = "/api/secrets", tag = "secrets", request_body = SecretIn,
    responses((status = 201, body = SecretOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    who: crate::auth::Principal,
    Json(body): Json<SecretIn>,
) -> ApiResult<(StatusCode, Json<SecretOut>)> {
    check_name(&body.name)?;
    check_value(&body.value)?;
    let sealed_value = seal(&state, &body.name, &body.value)?;
    let row = SecretRow {
        secret_id: String::new(),
        sealed_value,
        description: body.description,
        provider_hint: body.provider_hint.filter(|h| !h.trim().is_empty()).unwrap_or_else(|| "db".into()),
        tags: body.tags,
        created_by: Some(who.identity),
        created_at: String::new(),
        updated_at: String::new(),
        name: body.name,
    };
    let stored = state.store.insert_secret(row).await?;
    state.secrets.invalidate();
    Ok((StatusCode::CREATED, Json(stored.into())))
}

/// One stored secret, without its value.
#[utoipa::path(get, path = "/api/secrets/{name}", tag = "secrets", params(("name" = String, Path)),
    responses((status = 200, body = SecretOut), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<SecretOut>> {
    Ok(Json(state.store.get_secret(&name).await?.ok_or_else(|| not_found(&name))?.into()))
}

/// Changes a stored secret (its value is sealed again). Unknown name 404; a value with no key configured 503.
#[utoipa::path(put, path = "/api/secrets/{name}", tag = "secrets", params(("name" = String, Path)),
    request_body = SecretUpdateIn,
    responses((status = 200, body = SecretOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<SecretUpdateIn>,
) -> ApiResult<Json<SecretOut>> {
    if state.store.get_secret(&name).await?.is_none() {
        return Err(not_found(&name));
    }
    let sealed_value = match &body.value {
        Some(v) => {
            check_value(v)?;
            Some(seal(&state, &name, v)?)
        }
        None => None,
    };
    let update = SecretUpdate {
        sealed_value,
        description: body.description,
        tags: body.tags,
        provider_hint: body.provider_hint.filter(|h| !h.trim().is_empty()),
    };
    let stored = state.store.update_secret(&name, update).await?;
    state.secrets.invalidate();
    Ok(Json(stored.into()))
}

/// Deletes a stored secret.
#[utoipa::path(delete, path = "/api/secrets/{name}", tag = "secrets", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_secret(&name).await.map_err(|e| match e {
        ckp_store::StoreError::NotFound(_) => not_found(&name),
        other => other.into(),
    })?;
    state.secrets.invalidate();
    Ok(StatusCode::NO_CONTENT)
}
