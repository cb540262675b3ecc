//! Agents, leases, projects and artifact files.

use std::path::{Component, PathBuf};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use ckp_store::{AgentRow, AgentStatus, AgentUpdate};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use crate::api::{AgentCapability, AgentIn, AgentOut, AgentUpdateIn, CostSummaryOut, LeaseOut, ProjectIn, ProjectOut};
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Query};

fn caps(list: Vec<AgentCapability>) -> Value {
    serde_json::to_value(list).unwrap_or_else(|_| Value::Array(Vec::new()))
}

fn non_empty(field: &str, v: &str) -> ApiResult<()> {
    if v.trim().is_empty() {
        return Err(ApiError::invalid("invalid_body", format!("{field} must not be empty")));
    }
    Ok(())
}

/// An agent's URL: http(s), and a destination the egress policy opens (resolved now: a name reaching a closed
/// address is refused here rather than at every call).
async fn check_url(state: &AppState, url: &str) -> ApiResult<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ApiError::invalid("invalid_body", "base_url must be an http:// or https:// URL"));
    }
    state.egress.check_destination(url).await.map_err(|r| ApiError::invalid("egress_refused", format!("base_url: {r}")))
}

/// Registered agents by name.
#[utoipa::path(get, path = "/api/agents", tag = "agents", responses((status = 200, body = Vec<AgentOut>)))]
pub async fn list_agents(State(state): State<AppState>) -> ApiResult<Json<Vec<AgentOut>>> {
    Ok(Json(state.store.list_agents().await?.into_iter().map(AgentOut::from).collect()))
}

/// Registers an agent (channel stored lower-case: matching is case-insensitive). The agent is probed first (`GET
/// {base_url}/health`, any HTTP answer counts): one that does not answer is stored `offline`, and the health checks
/// bring it online (and ask its capabilities) once it answers them. Without capabilities, a reachable agent's are
/// probed from `GET {base_url}/capabilities`. A taken id is 409; a `base_url` the egress policy refuses (a
/// loopback, link-local or private address not listed in the setting `egress_allow`) is 422 `egress_refused`.
#[utoipa::path(post, path = "/api/agents", tag = "agents", request_body = AgentIn,
    responses((status = 201, body = AgentOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_agent(
    State(state): State<AppState>,
    Json(body): Json<AgentIn>,
) -> ApiResult<(StatusCode, Json<AgentOut>)> {
    non_empty("name", &body.name)?;
    non_empty("channel", &body.channel)?;
    check_url(&state, &body.base_url).await?;
    let channel = body.channel.trim().to_lowercase();
    let limit = body.concurrency_limit.unwrap_or(1);
    if limit < 1 {
        return Err(ApiError::invalid("invalid_body", "concurrency_limit must be at least 1"));
    }
    let reachable = ckp_connectors::agents::probe_reachable(&state.egress, &body.base_url).await;
    // No capabilities given: ask the agent (`GET {base_url}/capabilities`); an agent that cannot say is registered
    // without any and receives no step until its capabilities are set (or probed when it comes back online).
    let capabilities = match body.capabilities.filter(|c| !c.is_empty()) {
        Some(list) => caps(list),
        None if reachable => Value::Array(
            ckp_connectors::agents::probe_capabilities(&state.egress, &body.base_url).await.unwrap_or_default(),
        ),
        None => Value::Array(Vec::new()),
    };
    let agent = AgentRow {
        agent_id: body
            .agent_id
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| format!("{channel}_{}", body.name.trim().replace(' ', "_").to_lowercase())),
        name: body.name,
        resource_key: body.resource_key.unwrap_or_else(|| format!("{channel}_default")),
        channel,
        base_url: body.base_url.trim_end_matches('/').to_owned(),
        status: if reachable { AgentStatus::Online } else { AgentStatus::Offline },
        concurrency_limit: limit,
        pool_id: body.pool_id,
        capabilities,
        consecutive_failures: 0,
        circuit_open_at: None,
        last_heartbeat_at: None,
        updated_at: String::new(),
    };
    let stored = state.store.insert_agent(agent).await?;
    Ok((StatusCode::CREATED, Json(stored.into())))
}

/// One agent.
#[utoipa::path(get, path = "/api/agents/{agent_id}", tag = "agents", params(("agent_id" = String, Path)),
    responses((status = 200, body = AgentOut), (status = 404, body = ErrorBody)))]
pub async fn get_agent(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<AgentOut>> {
    Ok(Json(state.store.get_agent(&id).await?.ok_or_else(|| ApiError::not_found("Agent"))?.into()))
}

/// Updates an agent (null leaves a field unchanged; `[]` clears the capabilities; `online` resets its circuit).
#[utoipa::path(put, path = "/api/agents/{agent_id}", tag = "agents", params(("agent_id" = String, Path)),
    request_body = AgentUpdateIn,
    responses((status = 200, body = AgentOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_agent(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<AgentUpdateIn>,
) -> ApiResult<Json<AgentOut>> {
    if let Some(url) = &body.base_url {
        check_url(&state, url).await?;
    }
    if body.concurrency_limit.is_some_and(|l| l < 1) {
        return Err(ApiError::invalid("invalid_body", "concurrency_limit must be at least 1"));
    }
    let status = body
        .status
        .as_deref()
        .map(|s| {
            s.parse::<AgentStatus>()
                .map_err(|e| ApiError::invalid("invalid_body", format!("{e}: use online or offline")))
        })
        .transpose()?;
    let update = AgentUpdate {
        status,
        base_url: body.base_url.map(|u| u.trim_end_matches('/').to_owned()),
        concurrency_limit: body.concurrency_limit,
        capabilities: body.capabilities.map(caps),
        pool_id: body.pool_id,
    };
    Ok(Json(state.store.update_agent(&id, update).await?.into()))
}

/// Removes an agent.
#[utoipa::path(delete, path = "/api/agents/{agent_id}", tag = "agents", params(("agent_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_agent(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_agent(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Filters of `GET /api/leases`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeaseParams {
    /// Only this resource.
    pub resource_key: Option<String>,
}

/// Resource leases, newest first.
#[utoipa::path(get, path = "/api/leases", tag = "leases", params(LeaseParams),
    responses((status = 200, body = Vec<LeaseOut>)))]
pub async fn list_leases(
    State(state): State<AppState>,
    Query(q): Query<LeaseParams>,
) -> ApiResult<Json<Vec<LeaseOut>>> {
    let now = Utc::now();
    Ok(Json(state.store.list_leases(q.resource_key).await?.into_iter().map(|l| LeaseOut::new(l, now)).collect()))
}

/// Releases a lease (idempotent: 204 for an unknown or released lease too).
#[utoipa::path(delete, path = "/api/leases/{lease_id}", tag = "leases", params(("lease_id" = String, Path)),
    responses((status = 204)))]
pub async fn revoke_lease(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.release_lease(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Projects by name.
#[utoipa::path(get, path = "/api/projects", tag = "projects", responses((status = 200, body = Vec<ProjectOut>)))]
pub async fn list_projects(State(state): State<AppState>, who: Principal) -> ApiResult<Json<Vec<ProjectOut>>> {
    let visible = who.visible_projects(Role::Viewer);
    let rows = state.store.list_projects().await?.into_iter();
    let rows = rows.filter(|p| visible.as_ref().is_none_or(|v| v.contains(&p.project_id)));
    Ok(Json(rows.map(ProjectOut::from).collect()))
}

/// Creates a project.
#[utoipa::path(post, path = "/api/projects", tag = "projects", request_body = ProjectIn,
    responses((status = 201, body = ProjectOut), (status = 422, body = ErrorBody)))]
pub async fn create_project(
    State(state): State<AppState>,
    Json(body): Json<ProjectIn>,
) -> ApiResult<(StatusCode, Json<ProjectOut>)> {
    let name = body
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("invalid_body", "name is required"))?;
    Ok((StatusCode::CREATED, Json(state.store.create_project(&name, body.description).await?.into())))
}

/// One project.
#[utoipa::path(get, path = "/api/projects/{project_id}", tag = "projects", params(("project_id" = String, Path)),
    responses((status = 200, body = ProjectOut), (status = 404, body = ErrorBody)))]
pub async fn get_project(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ProjectOut>> {
    who.require(Role::Viewer, Some(&id), "Project")?;
    Ok(Json(state.store.get_project(&id).await?.ok_or_else(|| ApiError::not_found("Project"))?.into()))
}

/// Renames or redescribes a project.
#[utoipa::path(put, path = "/api/projects/{project_id}", tag = "projects", params(("project_id" = String, Path)),
    request_body = ProjectIn, responses((status = 200, body = ProjectOut), (status = 404, body = ErrorBody)))]
pub async fn update_project(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(body): Json<ProjectIn>,
) -> ApiResult<Json<ProjectOut>> {
    who.require(Role::Manager, Some(&id), "Project")?;
    if body.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid("invalid_body", "name must not be empty"));
    }
    Ok(Json(state.store.update_project(&id, body.name, body.description).await?.into()))
}

/// Deletes a project (409 while procedures or runs refer to it).
#[utoipa::path(delete, path = "/api/projects/{project_id}", tag = "projects", params(("project_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_project(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_project(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Parameters of the cost summary.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CostParams {
    /// Days back (1..=365, default 30).
    pub period_days: Option<i64>,
}

/// LLM tokens and cost of the project's runs created in the last `period_days` days.
#[utoipa::path(get, path = "/api/projects/{project_id}/cost-summary", tag = "projects",
    params(("project_id" = String, Path), CostParams),
    responses((status = 200, body = CostSummaryOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn cost_summary(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Query(q): Query<CostParams>,
) -> ApiResult<Json<CostSummaryOut>> {
    who.require(Role::Viewer, Some(&id), "Project")?;
    let days = q.period_days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid("invalid_query", "period_days must be between 1 and 365"));
    }
    state.store.get_project(&id).await?.ok_or_else(|| ApiError::not_found("Project"))?;
    let c = state.store.project_costs(&id, Utc::now() - chrono::Duration::days(days)).await?;
    Ok(Json(CostSummaryOut {
        project_id: id,
        period_days: days,
        run_count: c.run_count,
        total_prompt_tokens: c.prompt_tokens,
        total_completion_tokens: c.completion_tokens,
        estimated_cost_usd: (c.cost_usd * 1e6).round() / 1e6,
    }))
}

/// A run-scoped artifact file (`<data_dir>/artifacts/<run_id>/...`). Paths that leave the directory are 404.
/// The caller must be able to see the run the file belongs to (its first path segment). The answer is sandboxed
/// (`Content-Security-Policy: sandbox`): a page a procedure saved cannot run script as the console's origin.
pub async fn artifact_file(
    State(state): State<AppState>,
    who: Principal,
    Path(path): Path<String>,
) -> ApiResult<Response> {
    let rel = PathBuf::from(&path);
    if path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(ApiError::not_found("Artifact"));
    }
    let run_id = path.split('/').next().unwrap_or_default();
    match state.store.get_run(run_id).await? {
        Some(run) if who.may(Role::Viewer, run.project_id.as_deref()) => {}
        // Files of a deleted run remain readable to those who could read every run.
        None if who.visible_projects(Role::Viewer).is_none() => {}
        _ => return Err(ApiError::not_found("Artifact")),
    }
    let full = state.artifacts_dir.join(rel);
    // A symbolic link inside the folder must not lead out of it either.
    let (real, root) = (tokio::fs::canonicalize(&full).await, tokio::fs::canonicalize(&state.artifacts_dir).await);
    if !matches!((&real, &root), (Ok(real), Ok(root)) if real.starts_with(root)) {
        return Err(ApiError::not_found("Artifact"));
    }
    let bytes = tokio::fs::read(&full).await.map_err(|_| ApiError::not_found("Artifact"))?;
    let mime = match full.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("json") => "application/json",
        Some("txt" | "log") => "text/plain; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("pdf") => "application/pdf",
        Some("csv") => "text/csv",
        _ => "application/octet-stream",
    };
    Response::builder()
        .header(header::CONTENT_TYPE, mime)
        .header(header::CONTENT_SECURITY_POLICY, "sandbox")
        .body(Body::from(bytes))
        .map_err(|e| ApiError::internal(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e))
}
