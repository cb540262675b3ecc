//! `GET /api/agent-credentials/{secret_name}`: an agent trades the credential-grant token it was given
//! (`{{secret_grants.NAME}}`, CKP.md A.3) for the secret's value, read through the provider of the run the token
//! was issued to (its procedure's `secrets_config`, else the server's default).
//!
//! This answer is the only place a secret value leaves ckp: nothing here logs, records or caches the value or the
//! token, and every refusal says why without quoting either.

use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ckp_connectors::secrets::grant::GrantError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody, Json};

/// The secret's value.
#[derive(Serialize, ToSchema)]
pub struct CredentialOut {
    /// The value, as the run's provider holds it.
    pub value: String,
}

impl std::fmt::Debug for CredentialOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialOut").field("value", &"***").finish()
    }
}

/// A 401 with the challenge RFC 6750 asks for.
fn unauthorized(code: &'static str, detail: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, code, detail).into_response();
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn not_found(name: &str) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("Secret '{name}' not found")).into_response()
}

/// The bearer token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// Exchanges a credential-grant token for the secret's value. The token (`Authorization: Bearer …`) is what a step
/// received for `{{secret_grants.NAME}}`: an HS256 JWT issued by this server for one run and one secret, valid for
/// five minutes. Missing header 401; a token that is not this server's, altered, or for another audience 401
/// "Invalid credential grant token"; past its expiry 401 "Credential grant token expired"; issued for another
/// secret 403; a secret the run's provider does not have (or a deleted run) 404; a provider failure 502.
#[utoipa::path(get, path = "/api/agent-credentials/{secret_name}", tag = "secrets",
    params(("secret_name" = String, Path, description = "The secret's name as the procedure writes it"),
        ("Authorization" = String, Header, description = "`Bearer <credential-grant token>`")),
    responses((status = 200, body = CredentialOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn exchange(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return unauthorized("not_authenticated", "Not authenticated");
    };
    let Some(key) = state.secrets.grant_key() else {
        return unauthorized("invalid_grant", &GrantError::Invalid.to_string());
    };
    let grant = match key.verify(token, &name, chrono::Utc::now().timestamp()) {
        Ok(grant) => grant,
        Err(e @ GrantError::Invalid) => return unauthorized("invalid_grant", &e.to_string()),
        Err(e @ GrantError::Expired) => return unauthorized("grant_expired", &e.to_string()),
        Err(e @ GrantError::OtherSecret) => {
            return ApiError::new(StatusCode::FORBIDDEN, "grant_other_secret", e.to_string()).into_response();
        }
    };
    // The run names the provider: a run deleted since the token was issued has none left to ask.
    let run = match state.store.get_run(&grant.run_id).await {
        Ok(Some(run)) => run,
        Ok(None) => return not_found(&name),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let procedure = match state.catalog.get(&run.procedure_id, Some(&run.procedure_version)).await {
        Ok(Some(p)) => p,
        Ok(None) => return not_found(&name),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let spec = procedure.config.secrets.as_ref();
    match state.secrets.lookup(spec, &name).await {
        Ok(Some(value)) => Json(CredentialOut { value }).into_response(),
        Ok(None) => not_found(&name),
        Err(e) => ApiError::internal(StatusCode::BAD_GATEWAY, "secrets_provider_error", &e).into_response(),
    }
}
