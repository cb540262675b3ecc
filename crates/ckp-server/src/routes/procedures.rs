//! `/api/procedures`: import (compile + validate), list with filters, versions, get (`latest` allowed), update,
//! delete, status lifecycle, graph, explain.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ckp_core::Diagnostic;
use ckp_store::{ProcedureFilter, ProcedureRecord, ProcedureStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use crate::api::{Deleted, ExplainIn, ProcedureDetail, ProcedureImported, ProcedureIn, ProcedureOut, StatusIn};
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::catalog::ImportError;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Query};

/// The 413 of the operations that take a CKP document.
const TOO_LARGE: &str = "The body is over max_body_bytes (body_too_large), or the CKP document over max_procedure_bytes \
                         or max_procedure_nodes (procedure_too_large)";

/// The statuses a version can be set to by hand.
const STATUSES: [ProcedureStatus; 4] =
    [ProcedureStatus::Active, ProcedureStatus::Archived, ProcedureStatus::Deprecated, ProcedureStatus::Draft];

/// The CKP text of a `ckp_json` field: an object, or a string holding one.
pub(crate) fn ckp_text(v: &Value) -> ApiResult<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Object(_) => Ok(v.to_string()),
        _ => Err(ApiError::invalid("invalid_body", "ckp_json must be a JSON object (or a string holding one)")),
    }
}

/// Versions holding `+test.` are the snapshots of test runs; an import may not take one.
fn refuse_test_version(text: &str) -> ApiResult<()> {
    let version = serde_json::from_str::<Value>(text).ok().and_then(|d| d.get("version").cloned());
    if version.as_ref().and_then(Value::as_str).is_some_and(|v| v.contains(ckp_store::TEST_VERSION_MARK)) {
        return Err(ApiError::invalid(
            "reserved_version",
            format!("Versions containing {:?} are reserved for test runs", ckp_store::TEST_VERSION_MARK),
        ));
    }
    Ok(())
}

pub(crate) fn diagnostics_json(d: &[Diagnostic]) -> Vec<Value> {
    d.iter().map(|d| serde_json::to_value(d).unwrap_or(Value::Null)).collect()
}

pub(crate) fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::Invalid(diags) => {
            let errors: Vec<Diagnostic> = diags.iter().filter(|d| d.is_error()).cloned().collect();
            let warnings: Vec<Diagnostic> = diags.iter().filter(|d| !d.is_error()).cloned().collect();
            ApiError::with_detail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_ckp",
                json!({
                    "message": format!("CKP validation failed with {} error(s)", errors.len()),
                    "errors": diagnostics_json(&errors),
                    "warnings": diagnostics_json(&warnings),
                }),
            )
        }
        ImportError::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "procedure_too_large", m),
        ImportError::Conflict(m) => ApiError::conflict(m),
        ImportError::Mismatch(m) => ApiError::invalid("ckp_mismatch", m),
        ImportError::Refused(m) => ApiError::invalid("refused_by_settings", m),
        ImportError::Store(e) => e.into(),
    }
}

/// A version the caller may act on with `role` (404 when it may not even see it, as if absent).
pub(crate) async fn record(
    state: &AppState,
    who: &Principal,
    role: Role,
    id: &str,
    version: &str,
) -> ApiResult<ProcedureRecord> {
    let r = state.store.get_procedure(id, Some(version)).await?.ok_or_else(|| ApiError::not_found("Procedure"))?;
    who.require(role, r.project_id.as_deref(), "Procedure")?;
    Ok(r)
}

/// Imports a CKP document: it is compiled and validated first (422 with every error and its JSON pointer);
/// warnings are returned beside the created procedure. A duplicate id + version is 409; a document over the
/// server's `max_procedure_bytes` or `max_procedure_nodes` is 413 `procedure_too_large`, and nothing is stored. A
/// stdio MCP server the document declares whose command the setting `mcp_stdio_allow` does not list is 422
/// `refused_by_settings`. An unknown `project_id` is 404.
#[utoipa::path(post, path = "/api/procedures", tag = "procedures", request_body = ProcedureIn,
    responses((status = 201, body = ProcedureImported), (status = 404, body = ErrorBody, description = "No such project_id"),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody, description = TOO_LARGE),
              (status = 422, body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<ProcedureIn>,
) -> ApiResult<(StatusCode, Json<ProcedureImported>)> {
    who.require(Role::Operator, body.project_id.as_deref(), "Project")?;
    let text = ckp_text(&body.ckp_json)?;
    refuse_test_version(&text)?;
    if let Some(project) = &body.project_id
        && state.store.get_project(project).await?.is_none()
    {
        return Err(ApiError::not_found("Project"));
    }
    let (stored, warnings) = state.catalog.import(&text, body.project_id).await.map_err(import_error)?;
    crate::triggers::sync_version(&state, &stored.procedure_id, &stored.version).await?;
    Ok((
        StatusCode::CREATED,
        Json(ProcedureImported { summary: (&stored).into(), warnings: diagnostics_json(&warnings) }),
    ))
}

/// Filters of `GET /api/procedures`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Project.
    pub project_id: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Comma-separated tags; all must be in `retrieval_metadata.tags`.
    pub tags: Option<String>,
    /// Case-insensitive text in id, name, description or retrieval metadata.
    pub search: Option<String>,
    /// Case-insensitive text in the retrieval metadata JSON.
    pub metadata_search: Option<String>,
}

fn matches(r: &ProcedureRecord, q: &ListParams) -> bool {
    let meta: Value = r.retrieval_metadata.as_deref().and_then(|m| serde_json::from_str(m).ok()).unwrap_or_default();
    if let Some(tags) = q.tags.as_deref().filter(|t| !t.trim().is_empty()) {
        let have: Vec<String> = meta
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_lowercase).collect())
            .unwrap_or_default();
        if !tags.split(',').map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).all(|t| have.contains(&t)) {
            return false;
        }
    }
    if let Some(s) = q.search.as_deref().map(str::to_lowercase).filter(|s| !s.is_empty()) {
        let haystack = [
            r.procedure_id.clone(),
            r.name.clone(),
            r.description.clone().unwrap_or_default(),
            r.retrieval_metadata.clone().unwrap_or_default(),
        ]
        .join("\n")
        .to_lowercase();
        if !haystack.contains(&s) {
            return false;
        }
    }
    if let Some(s) = q.metadata_search.as_deref().map(str::to_lowercase).filter(|s| !s.is_empty())
        && !r.retrieval_metadata.as_deref().unwrap_or_default().to_lowercase().contains(&s)
    {
        return false;
    }
    true
}

/// Procedure versions, newest first, filtered.
#[utoipa::path(get, path = "/api/procedures", tag = "procedures", params(ListParams),
    responses((status = 200, body = Vec<ProcedureOut>)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<Vec<ProcedureOut>>> {
    // A status no version can have matches none.
    let status = match q.status.as_deref().map(str::parse::<ProcedureStatus>).transpose() {
        Ok(status) => status,
        Err(_) => return Ok(Json(Vec::new())),
    };
    let rows = state
        .store
        .list_procedures(ProcedureFilter {
            project_id: q.project_id.clone(),
            status,
            procedure_id: None,
            projects: who.visible_projects(Role::Viewer),
        })
        .await?;
    Ok(Json(rows.iter().filter(|r| matches(r, &q)).map(ProcedureOut::from).collect()))
}

/// Every version of a procedure, newest first (404 when it has none).
#[utoipa::path(get, path = "/api/procedures/{procedure_id}/versions", tag = "procedures",
    params(("procedure_id" = String, Path)),
    responses((status = 200, body = Vec<ProcedureOut>), (status = 404, body = ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ProcedureOut>>> {
    let filter = ProcedureFilter {
        procedure_id: Some(id),
        projects: who.visible_projects(Role::Viewer),
        ..ProcedureFilter::default()
    };
    let rows = state.store.list_procedures(filter).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found("Procedure"));
    }
    Ok(Json(rows.iter().map(ProcedureOut::from).collect()))
}

/// One version (`latest`: the newest imported) with its document.
#[utoipa::path(get, path = "/api/procedures/{procedure_id}/{version}", tag = "procedures",
    params(("procedure_id" = String, Path), ("version" = String, Path, description = "a version or `latest`")),
    responses((status = 200, body = ProcedureDetail), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<ProcedureDetail>> {
    Ok(Json((&record(&state, &who, Role::Viewer, &id, &version).await?).into()))
}

/// Replaces a version's document (compiled and validated, within the same limits as an import; its id and
/// version must match the path). A version that has any run is never replaced (409 `version_has_runs`): its runs
/// ran that document, and a waiting one would resume on another; save the change as a new version.
#[utoipa::path(put, path = "/api/procedures/{procedure_id}/{version}", tag = "procedures",
    params(("procedure_id" = String, Path), ("version" = String, Path)), request_body = ProcedureIn,
    responses((status = 200, body = ProcedureImported), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "version_has_runs"), (status = 413, body = ErrorBody, description = TOO_LARGE),
              (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path((id, version)): Path<(String, String)>,
    Json(body): Json<ProcedureIn>,
) -> ApiResult<Json<ProcedureImported>> {
    let existing = record(&state, &who, Role::Operator, &id, &version).await?;
    let text = ckp_text(&body.ckp_json)?;
    let (stored, warnings) =
        state.catalog.update(&existing.procedure_id, &existing.version, &text).await.map_err(|e| match e {
            ImportError::Store(ckp_store::StoreError::Conflict(m)) => {
                ApiError::new(StatusCode::CONFLICT, "version_has_runs", m)
            }
            other => import_error(other),
        })?;
    crate::triggers::sync_version(&state, &stored.procedure_id, &stored.version).await?;
    Ok(Json(ProcedureImported { summary: (&stored).into(), warnings: diagnostics_json(&warnings) }))
}

/// Deletes one version (`latest` is refused: name the version). Runs keep their history; a version with runs
/// in progress is 409.
#[utoipa::path(delete, path = "/api/procedures/{procedure_id}/{version}", tag = "procedures",
    params(("procedure_id" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Deleted>> {
    if version == "latest" {
        return Err(ApiError::invalid("version_required", "Name the version to delete; `latest` is not accepted here"));
    }
    record(&state, &who, Role::Operator, &id, &version).await?;
    state.store.delete_procedure(&id, &version).await?;
    crate::triggers::sync_version(&state, &id, &version).await?;
    Ok(Json(Deleted { deleted: true, procedure_id: Some(id), version: Some(version), run_id: None }))
}

/// Sets the lifecycle status (draft, active, deprecated, archived), mirrored into the stored document.
#[utoipa::path(patch, path = "/api/procedures/{procedure_id}/{version}/status", tag = "procedures",
    params(("procedure_id" = String, Path), ("version" = String, Path)), request_body = StatusIn,
    responses((status = 200, body = ProcedureOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_status(
    State(state): State<AppState>,
    who: Principal,
    Path((id, version)): Path<(String, String)>,
    Json(body): Json<StatusIn>,
) -> ApiResult<Json<ProcedureOut>> {
    let Some(status) = STATUSES.into_iter().find(|s| s.as_str() == body.status) else {
        let names: Vec<&str> = STATUSES.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::invalid(
            "invalid_status",
            format!("Invalid status '{}'. Must be one of: {}", body.status, names.join(", ")),
        ));
    };
    let existing = record(&state, &who, Role::Operator, &id, &version).await?;
    let mut doc: Value = serde_json::from_str(&existing.ckp_json).unwrap_or_else(|_| json!({}));
    if let Some(o) = doc.as_object_mut() {
        o.insert("status".into(), Value::from(status.as_str()));
    }
    let stored =
        state.store.set_procedure_status(&existing.procedure_id, &existing.version, status, doc.to_string()).await?;
    crate::triggers::sync_version(&state, &stored.procedure_id, &stored.version).await?;
    Ok(Json((&stored).into()))
}

async fn compiled(
    state: &AppState,
    who: &Principal,
    id: &str,
    version: &str,
) -> ApiResult<std::sync::Arc<ckp_core::Procedure>> {
    let r = record(state, who, Role::Viewer, id, version).await?;
    state
        .catalog
        .get(&r.procedure_id, Some(&r.version))
        .await?
        .ok_or_else(|| ApiError::invalid("invalid_ckp", "The stored procedure no longer compiles"))
}

/// The graph as LangOrch's UI draws it: `{nodes, edges}`.
#[utoipa::path(get, path = "/api/procedures/{procedure_id}/{version}/graph", tag = "procedures",
    params(("procedure_id" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn graph(
    State(state): State<AppState>,
    who: Principal,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let p = compiled(&state, &who, &id, &version).await?;
    Ok(Json(ckp_core::graph::ui_json(&p)))
}

/// Static analysis of a procedure in LangOrch's report shape (nodes, edges, variables, route trace, external
/// calls, policy summary), with `input_check` when inputs are given and ckp's own analysis under `ckp`. A
/// `ckp_json` in the body is explained instead of the stored document.
#[utoipa::path(post, path = "/api/procedures/{procedure_id}/{version}/explain", tag = "procedures",
    params(("procedure_id" = String, Path), ("version" = String, Path)), request_body(content = ExplainIn),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody, description = TOO_LARGE),
              (status = 422, body = ErrorBody)))]
pub async fn explain(
    State(state): State<AppState>,
    who: Principal,
    Path((id, version)): Path<(String, String)>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::body_too_large()
        } else {
            ApiError::new(e.status(), "bad_request", e.body_text())
        }
    })?;
    // The body is optional: empty means "explain the stored document".
    let body: ExplainIn = if body.iter().all(u8::is_ascii_whitespace) {
        ExplainIn::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => {
                ApiError::invalid("invalid_body", format!("The body does not match the expected shape: {e}"))
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("The body is not valid JSON: {e}")),
        })?
    };
    let r = record(&state, &who, Role::Viewer, &id, &version).await?;
    // A document in the body is held to the import's limits; the stored one was when it was imported.
    let (text, limits) = match &body.ckp_json {
        Some(v) => (ckp_text(v)?, state.catalog.limits()),
        None => (r.ckp_json.clone(), ckp_core::Limits::NONE),
    };
    let compilation = crate::catalog::compile(text.clone(), limits).await;
    let Some(p) = compilation.procedure else {
        return Err(import_error(ImportError::from_diagnostics(compilation.diagnostics)));
    };
    if p.id != r.procedure_id || p.version != r.version {
        return Err(ApiError::invalid("ckp_mismatch", "The CKP in the body names another procedure or version"));
    }
    let doc: Value = serde_json::from_str(&text).unwrap_or_default();
    Ok(Json(crate::explain::report(&doc, &p, &compilation.uses, body.input_vars.as_ref())))
}
