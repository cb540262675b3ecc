//! Authoring: checking a CKP document as it is typed (`POST /api/procedures/validate`), the console's builder
//! drafts with a revision check (`GET|PUT|DELETE /api/procedures/{id}/{version}/builder-draft`), and test runs of a
//! draft (`POST /api/procedures/{id}/{version}/test-runs`), which execute a hidden snapshot version
//! (`<version>+test.<hash>`) so that they resume like any run and never change a version that has run.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ckp_store::{DraftRecord, DraftWrite, StoreError, TEST_VERSION_MARK};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::api::{DraftIn, DraftOut, RunOut, TestRunIn, ValidateIn, Validation};
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, ErrorBody, Json};
use crate::routes::procedures::{ckp_text, diagnostics_json, import_error, record};
use crate::routes::runs::{Start, start, traceparent_of};

/// Compiles a document without storing anything and answers every diagnostic at its JSON pointer, line and
/// column (of the text as sent when `ckp_json` is a string). An invalid document is a 200 with `valid: false`: the
/// answer is the check. Over the import's size limits: 413.
#[utoipa::path(post, path = "/api/procedures/validate", tag = "procedures", request_body = ValidateIn,
    responses((status = 200, body = Validation), (status = 413, body = ErrorBody, description = "The document is over max_procedure_bytes or max_procedure_nodes"),
              (status = 422, body = ErrorBody)))]
pub async fn validate(
    State(state): State<AppState>,
    _who: Principal,
    Json(body): Json<ValidateIn>,
) -> ApiResult<Json<Validation>> {
    let text = match &body.ckp_json {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let compilation = crate::catalog::compile(text, state.catalog.limits()).await;
    if let Some(d) = compilation.diagnostics.iter().find(|d| d.code == ckp_core::Code::TooLarge) {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "procedure_too_large", d.message.clone()));
    }
    let (errors, warnings): (Vec<_>, Vec<_>) = compilation.diagnostics.iter().cloned().partition(|d| d.is_error());
    Ok(Json(Validation {
        valid: compilation.procedure.is_some(),
        procedure_id: compilation.procedure.as_ref().map(|p| p.id.clone()),
        version: compilation.procedure.as_ref().map(|p| p.version.clone()),
        errors: diagnostics_json(&errors),
        warnings: diagnostics_json(&warnings),
    }))
}

fn draft_out(id: &str, version: &str, d: Option<DraftRecord>) -> DraftOut {
    match d {
        Some(d) => DraftOut {
            procedure_id: d.procedure_id,
            version: d.version,
            // Written by PUT, which takes only objects; anything else is not a draft this server wrote.
            draft: serde_json::from_str(&d.draft_json).ok(),
            updated_at: Some(d.updated_at),
            updated_by: d.updated_by,
            revision: d.revision,
        },
        None => DraftOut {
            procedure_id: id.to_owned(),
            version: version.to_owned(),
            draft: None,
            updated_at: None,
            updated_by: None,
            revision: 0,
        },
    }
}

/// The builder draft of a version (`draft: null` and revision 0 when none is stored).
#[utoipa::path(get, path = "/api/procedures/{procedure_id}/{version}/builder-draft", tag = "procedures",
    params(("procedure_id" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = DraftOut), (status = 404, body = ErrorBody)))]
pub async fn get_draft(
    State(state): State<AppState>,
    who: Principal,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<DraftOut>> {
    let r = record(&state, &who, Role::Viewer, &id, &version).await?;
    let d = state.store.get_draft(&r.procedure_id, &r.version).await?;
    Ok(Json(draft_out(&r.procedure_id, &r.version, d)))
}

/// Stores the builder draft of a version (a JSON object the server keeps as is) with the next revision. With
/// `revision` (the one the editor read), a draft changed since by someone else is 409 `draft_conflict` whose detail
/// holds the stored draft under `current`; without it the write is unconditional (LangOrch's clients).
#[utoipa::path(put, path = "/api/procedures/{procedure_id}/{version}/builder-draft", tag = "procedures",
    params(("procedure_id" = String, Path), ("version" = String, Path)), request_body = DraftIn,
    responses((status = 200, body = DraftOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "draft_conflict: detail.current is the stored draft"),
              (status = 422, body = ErrorBody)))]
pub async fn put_draft(
    State(state): State<AppState>,
    who: Principal,
    Path((id, version)): Path<(String, String)>,
    Json(body): Json<DraftIn>,
) -> ApiResult<Json<DraftOut>> {
    let r = record(&state, &who, Role::Operator, &id, &version).await?;
    if !body.draft.is_object() {
        return Err(ApiError::invalid("invalid_body", "draft must be a JSON object"));
    }
    if body.revision.is_some_and(|r| r < 0) {
        return Err(ApiError::invalid("invalid_body", "revision must be 0 or more"));
    }
    let write = DraftWrite {
        procedure_id: r.procedure_id.clone(),
        version: r.version.clone(),
        draft_json: body.draft.to_string(),
        expected_revision: body.revision,
        updated_by: who.credential.is_some().then(|| who.identity.clone()),
    };
    match state.store.put_draft(write).await {
        Ok(d) => Ok(Json(draft_out(&id, &version, Some(d)))),
        Err(StoreError::Conflict(message)) => {
            let current = state.store.get_draft(&r.procedure_id, &r.version).await?;
            Err(ApiError::with_detail(
                StatusCode::CONFLICT,
                "draft_conflict",
                json!({"message": message, "current": draft_out(&r.procedure_id, &r.version, current)}),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Discards the builder draft of a version.
#[utoipa::path(delete, path = "/api/procedures/{procedure_id}/{version}/builder-draft", tag = "procedures",
    params(("procedure_id" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn delete_draft(
    State(state): State<AppState>,
    who: Principal,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let r = record(&state, &who, Role::Operator, &id, &version).await?;
    let deleted = state.store.delete_draft(&r.procedure_id, &r.version).await?;
    Ok(Json(json!({"deleted": deleted, "procedure_id": r.procedure_id, "version": r.version})))
}

/// The document a test run executes: the draft with its version renamed to the snapshot's, status `draft` (always
/// runnable), no trigger, the test's mocks and overrides in `global_config`, and the node to stop at replaced by a
/// `terminate`. Returns it with the snapshot version.
fn test_document(base_version: &str, body: &TestRunIn) -> ApiResult<(Value, String)> {
    let mut doc = body.ckp_json.clone();
    if let Value::String(s) = &doc {
        doc = serde_json::from_str(s)
            .map_err(|e| ApiError::invalid("invalid_ckp", format!("ckp_json is not a JSON document: {e}")))?;
    }
    let Some(o) = doc.as_object_mut() else {
        return Err(ApiError::invalid("invalid_body", "ckp_json must be a JSON object (or a string holding one)"));
    };
    o.insert("status".into(), Value::from("draft"));
    o.remove("effective_date");
    o.remove("trigger");
    let config = o.entry("global_config").or_insert_with(|| Value::Object(Map::new()));
    let Some(config) = config.as_object_mut() else {
        return Err(ApiError::invalid("invalid_ckp", "global_config must be an object"));
    };
    config.insert("mock_external_calls".into(), Value::Bool(body.mock_external_calls.unwrap_or(true)));
    if let Some(overrides) = &body.test_data_overrides {
        let merged = config.entry("test_data_overrides").or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = merged.as_object_mut() {
            m.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        } else {
            *merged = Value::Object(overrides.clone());
        }
    }
    if let Some(stop) = &body.stop_at_node {
        let node = o.get_mut("workflow_graph").and_then(|g| g.get_mut("nodes")).and_then(|n| n.get_mut(stop));
        let Some(node) = node else {
            return Err(ApiError::invalid("unknown_node", format!("stop_at_node: the document has no node {stop:?}")));
        };
        *node = json!({
            "type": "terminate",
            "status": "success",
            "description": format!("A test run stops here: node {stop} is not executed"),
        });
    }
    // The snapshot's name is the content's: the same test twice runs the same stored snapshot.
    o.insert("version".into(), Value::from(base_version));
    let digest = Sha256::digest(doc.to_string().as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let version = format!("{base_version}{TEST_VERSION_MARK}{hex}");
    if let Some(o) = doc.as_object_mut() {
        o.insert("version".into(), Value::from(version.clone()));
    }
    Ok((doc, version))
}

/// Runs a draft of this version as a test: the document in the body (it must name this procedure), with external
/// calls mocked unless `mock_external_calls` is false, `test_data_overrides` answering steps by id, and an optional
/// node to stop at (the run completes on reaching it; the node does not execute). The document is stored as a
/// hidden snapshot version `<version>+test.<8 hex>` (never listed, never the latest) so the run can wait and
/// resume like any other; the run is created exactly like `POST /api/runs`.
#[utoipa::path(post, path = "/api/procedures/{procedure_id}/{version}/test-runs", tag = "procedures",
    params(("procedure_id" = String, Path), ("version" = String, Path)), request_body = TestRunIn,
    responses((status = 201, body = RunOut), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody, description = "The document is over max_procedure_bytes or max_procedure_nodes"),
              (status = 422, body = ErrorBody)))]
pub async fn test_run(
    State(state): State<AppState>,
    who: Principal,
    headers: axum::http::HeaderMap,
    Path((id, version)): Path<(String, String)>,
    Json(body): Json<TestRunIn>,
) -> ApiResult<(StatusCode, Json<RunOut>)> {
    let base = record(&state, &who, Role::Operator, &id, &version).await?;
    if base.version.contains(TEST_VERSION_MARK) {
        return Err(ApiError::invalid("invalid_version", "A test snapshot cannot be the base of a test run"));
    }
    let (doc, snapshot) = test_document(&base.version, &body)?;
    if doc.get("procedure_id").and_then(Value::as_str) != Some(base.procedure_id.as_str()) {
        return Err(ApiError::invalid("ckp_mismatch", "The CKP in the body must name this procedure (procedure_id)"));
    }
    let text = ckp_text(&doc)?;
    match state.catalog.import(&text, base.project_id.clone()).await {
        Ok(_) => {}
        // The same document was tested before: its snapshot is stored.
        Err(crate::catalog::ImportError::Conflict(_)) => {}
        Err(e) => return Err(import_error(e)),
    }
    let s = Start {
        procedure_id: base.procedure_id.clone(),
        version: Some(snapshot),
        inputs: body.input_vars.unwrap_or_default(),
        project_id: None,
        case_id: None,
        rerun_of: None,
        traceparent: traceparent_of(&headers),
    };
    let row = start(&state, &who, s).await?;
    Ok((StatusCode::CREATED, Json((&row).into())))
}
