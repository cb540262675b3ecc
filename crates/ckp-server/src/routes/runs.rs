//! `/api/runs`: create (inputs validated first; one function, `start`, also serves reruns), list with filters and
//! pagination, get, events, artifacts, diagnostics, checkpoints, cancel, retry (in place, or a rerun with other
//! inputs), delete, history cleanup, metrics summary, queue.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use ckp_core::procedure::Procedure;
use ckp_engine::Engine;
use ckp_engine::engine::{Origin as EngineOrigin, first_commit};
use ckp_engine::journal::Commit;
use ckp_engine::journal::StepRecord;
use ckp_store::{JobState, NewRun, ProcedureRecord, RunChange, RunFilter, RunRow, RunStatus, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use crate::api::{ArtifactOut, Deleted, RetryIn, RunEventOut, RunIn, RunOut};
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, OptionalJson, Query};

/// How long a cancel waits for the worker executing the run to stop it.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

async fn run(state: &AppState, id: &str) -> ApiResult<RunRow> {
    state.store.get_run(id).await?.ok_or_else(|| ApiError::not_found("Run"))
}

/// A run the caller may act on with `role` (404 when it may not even see it, as if absent).
pub(crate) async fn visible_run(state: &AppState, who: &Principal, role: Role, id: &str) -> ApiResult<RunRow> {
    let r = run(state, id).await?;
    who.require(role, r.project_id.as_deref(), "Run")?;
    Ok(r)
}

fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}

/// The compiled procedure of a stored version that may start runs now: not deprecated or archived (422
/// `procedure_not_runnable`), effective (422 `procedure_not_effective`), still compiling.
pub(crate) async fn runnable(state: &AppState, record: &ProcedureRecord) -> ApiResult<Arc<Procedure>> {
    if !record.status.is_runnable() {
        return Err(ApiError::invalid(
            "procedure_not_runnable",
            format!("Procedure is {} and cannot be executed", record.status),
        ));
    }
    if let Some(date) = record.effective_date.as_deref().filter(|d| d.get(..10).is_some_and(|d| d > today().as_str())) {
        return Err(ApiError::invalid(
            "procedure_not_effective",
            format!("Procedure is not yet effective until {date}"),
        ));
    }
    state
        .catalog
        .get(&record.procedure_id, Some(&record.version))
        .await?
        .ok_or_else(|| ApiError::invalid("invalid_ckp", "The stored procedure no longer compiles"))
}

/// Inputs against the procedure's `variables_schema`: 422 `{message, errors}` otherwise.
pub(crate) fn check_inputs(p: &Procedure, inputs: &Map<String, Value>) -> ApiResult<()> {
    ckp_core::inputs::check_inputs(p, inputs).map_err(|errors| {
        ApiError::with_detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input_vars",
            json!({"message": "Invalid input_vars", "errors": errors}),
        )
    })
}

/// What started a run, recorded on it.
pub(crate) struct Origin {
    /// `schedule`, `webhook`, `manual`; None for `POST /api/runs`.
    pub trigger_type: Option<String>,
    /// Who or what.
    pub triggered_by: Option<String>,
    /// The W3C trace context of the request that created it (kept in `run_created`: the run's first trace
    /// joins it).
    pub traceparent: Option<crate::otel::Context>,
}

/// A new run of `p` with checked `inputs`: its columns and its first commit (`run_created`), for the store to
/// create in one transaction — the one builder of runs the API and triggers start.
pub(crate) fn new_run(
    p: &Procedure,
    inputs: Map<String, Value>,
    project_id: Option<String>,
    case_id: Option<String>,
    origin: Origin,
    rerun_of: Option<String>,
) -> (NewRun, Commit) {
    // Time-ordered (UUIDv7): new runs land at the end of every index keyed by run id instead of at random pages.
    let run_id = uuid::Uuid::now_v7().to_string();
    let mut commit = first_commit(p, &run_id, &inputs, EngineOrigin::Top, Utc::now());
    if let (Some(tp), Some(Value::Object(payload))) =
        (origin.traceparent, commit.events.first_mut().map(|e| &mut e.payload))
    {
        payload.insert("traceparent".into(), Value::from(tp.header()));
    }
    let meta = NewRun {
        run_id,
        input_vars: (!inputs.is_empty()).then(|| Value::Object(inputs)),
        project_id,
        case_id,
        trigger_type: origin.trigger_type,
        // Who started it (the four-eyes rule of approvals reads it); nobody is named for anonymous local use.
        triggered_by: origin.triggered_by,
        rerun_of,
    };
    (meta, commit)
}

/// What starts a run through the API: a `POST /api/runs` body, or a finished run started again with other inputs.
pub(crate) struct Start {
    pub(crate) procedure_id: String,
    /// The latest version when absent.
    pub(crate) version: Option<String>,
    pub(crate) inputs: Map<String, Value>,
    /// The procedure's when absent.
    pub(crate) project_id: Option<String>,
    pub(crate) case_id: Option<String>,
    pub(crate) rerun_of: Option<String>,
    /// The caller's W3C trace context.
    pub(crate) traceparent: Option<crate::otel::Context>,
}

/// Starts a run, the one path of run creation through the API: the procedure must exist and be runnable (not
/// deprecated or archived, effective), the caller an operator of its project (and of the run's, when another), the
/// inputs must satisfy `variables_schema` (422 `{message, errors}` otherwise, nothing stored). The run, its
/// `run_created` event and its job are committed in one transaction before it returns.
pub(crate) async fn start(state: &AppState, who: &Principal, s: Start) -> ApiResult<RunRow> {
    let record = state
        .catalog
        .record(&s.procedure_id, s.version.as_deref())
        .await?
        .ok_or_else(|| ApiError::not_found("Procedure"))?;
    who.require(Role::Operator, record.project_id.as_deref(), "Procedure")?;
    if let Some(project) = s.project_id.as_deref().filter(|p| Some(*p) != record.project_id.as_deref()) {
        who.require(Role::Operator, Some(project), "Project")?;
    }
    let p = runnable(state, &record).await?;
    let inputs = s.inputs;
    check_inputs(&p, &inputs)?;
    let project_id = s.project_id.or_else(|| record.project_id.clone());
    if let Some(project) = &project_id
        && state.store.get_project(project).await?.is_none()
    {
        return Err(ApiError::not_found("Project"));
    }
    let origin = Origin {
        trigger_type: None,
        triggered_by: who.credential.is_some().then(|| who.identity.clone()),
        traceparent: s.traceparent,
    };
    let (meta, commit) = new_run(&p, inputs, project_id, s.case_id, origin, s.rerun_of);
    let run = state.store.create_run(meta, commit, true).await?;
    state.metrics.run_created(&run.procedure_id, None);
    Ok(run)
}

/// Starts a run: the procedure must exist and be runnable (not deprecated or archived, effective), the inputs
/// must satisfy `variables_schema` (422 `{message, errors}` otherwise, nothing stored). The run, its
/// `run_created` event and its job are committed before the 201.
#[utoipa::path(post, path = "/api/runs", tag = "runs", request_body = RunIn,
    responses((status = 201, body = RunOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    headers: axum::http::HeaderMap,
    Json(body): Json<RunIn>,
) -> ApiResult<(StatusCode, Json<RunOut>)> {
    let s = Start {
        procedure_id: body.procedure_id,
        version: body.procedure_version,
        inputs: body.input_vars.unwrap_or_default(),
        project_id: body.project_id,
        case_id: body.case_id,
        rerun_of: None,
        traceparent: traceparent_of(&headers),
    };
    let row = start(&state, &who, s).await?;
    Ok((StatusCode::CREATED, Json((&row).into())))
}

/// A request's W3C `traceparent`, when valid (an invalid one is ignored, as the W3C recommendation says).
pub(crate) fn traceparent_of(headers: &axum::http::HeaderMap) -> Option<crate::otel::Context> {
    headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(crate::otel::Context::parse)
}

/// Filters of `GET /api/runs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Procedure id.
    pub procedure_id: Option<String>,
    /// Project.
    pub project_id: Option<String>,
    /// Case.
    pub case_id: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Created at or after (RFC 3339, or a naive UTC date-time).
    pub created_from: Option<String>,
    /// Created at or before.
    pub created_to: Option<String>,
    /// `asc` for oldest first (default newest first).
    pub order: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
    /// Only the runs started again from this run with other inputs (their `rerun_of`).
    pub rerun_of: Option<String>,
    /// `true`: `input_vars` and `output_vars` whole, however large. By default a page stays within
    /// [`PAGE_BYTES`]: each of those fields over its share of it (64 KiB at most) reads
    /// `{"_omitted": {"bytes": N}}`, and `GET /api/runs/{run_id}` returns it whole.
    pub full: Option<bool>,
}

/// The size budget of a page of `GET /api/runs` for its two variable fields, unless `full=true`.
pub const PAGE_BYTES: i64 = 8 << 20;

/// The most bytes one `input_vars` or `output_vars` may take in a page of `limit` runs.
fn field_budget(limit: i64) -> i64 {
    (PAGE_BYTES / (2 * limit.max(1))).min(64 << 10)
}

/// A timestamp from a query: RFC 3339, a naive date-time (UTC) or a date.
fn query_time(name: &str, text: &str) -> ApiResult<String> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc()))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| ApiError::invalid("invalid_query", format!("{name} is not a date-time: {text:?}")))?;
    Ok(parsed.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// Runs by creation time (newest first unless `order=asc`), filtered and paginated. A page has a size budget: large
/// `input_vars` / `output_vars` read `{"_omitted": {"bytes": N}}` unless `full=true`.
#[utoipa::path(get, path = "/api/runs", tag = "runs", params(ListParams),
    responses((status = 200, body = Vec<RunOut>), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<Vec<RunOut>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("invalid_query", "limit must be between 1 and 1000"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid("invalid_query", "offset must not be negative"));
    }
    // A status no run can have matches none (the other parameters are still checked first).
    let status = q.status.as_deref().map(str::parse::<RunStatus>).transpose();
    let filter = RunFilter {
        procedure_id: q.procedure_id,
        project_id: q.project_id,
        case_id: q.case_id,
        status: status.as_ref().ok().copied().flatten(),
        created_from: q.created_from.as_deref().map(|t| query_time("created_from", t)).transpose()?,
        created_to: q.created_to.as_deref().map(|t| query_time("created_to", t)).transpose()?,
        ascending: q.order.as_deref() == Some("asc"),
        limit,
        offset,
        field_bytes: (q.full != Some(true)).then(|| field_budget(limit)),
        projects: who.visible_projects(Role::Viewer),
        rerun_of: crate::routes::insights::text_param("rerun_of", q.rerun_of)?,
    };
    if status.is_err() {
        return Ok(Json(Vec::new()));
    }
    Ok(Json(state.store.list_runs(filter).await?.iter().map(RunOut::from).collect()))
}

/// Counters and gauges from the store: runs per status and the queue depth.
#[utoipa::path(get, path = "/api/runs/metrics/summary", tag = "runs", responses((status = 200, body = Object)))]
pub async fn metrics_summary(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let mut counters = Map::new();
    for (status, n) in state.store.run_counts().await? {
        counters.insert(format!("runs_total{{status={status}}}"), Value::from(n));
    }
    let stats = state.store.queue_stats().await?;
    let mut gauges = Map::new();
    for (s, n) in &stats.depth_by_status {
        gauges.insert(format!("queue_jobs{{state={s}}}"), Value::from(*n as f64));
    }
    Ok(Json(json!({"counters": counters, "gauges": gauges, "histograms": {}})))
}

/// The job queue: depth per state and the next 20 queued jobs.
#[utoipa::path(get, path = "/api/runs/queue", tag = "runs", responses((status = 200, body = Object)))]
pub async fn queue(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let stats = state.store.queue_stats().await?;
    let count = |s: JobState| stats.depth_by_status.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    let depth: Map<String, Value> =
        stats.depth_by_status.iter().map(|(k, n)| (k.as_str().to_owned(), Value::from(*n))).collect();
    let next: Vec<Value> = stats
        .next_jobs
        .iter()
        .map(|j| {
            json!({"job_id": j.job_id.to_string(), "run_id": j.run_id, "status": j.state, "priority": j.priority,
                   "attempts": j.attempts, "available_at": j.available_at, "locked_by": j.locked_by})
        })
        .collect();
    Ok(Json(json!({
        "depth_by_status": depth,
        "total_pending": count(JobState::Queued),
        "total_running": count(JobState::Running),
        "total_done": count(JobState::Done),
        "total_failed": 0,
        "next_jobs": next,
    })))
}

/// Parameters of the history cleanup.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CleanupParams {
    /// Delete runs created before this time (required).
    pub before: Option<String>,
    /// Only runs with this status (a status of a run that has not ended matches none).
    pub status: Option<String>,
    /// `true`: count the runs that would be deleted, and delete nothing.
    pub dry_run: Option<bool>,
}

/// Deletes the ended runs (completed, failed, canceled) created before `before` (and with `status`), with
/// everything they own and their subflow children. A run that has not ended (created, running, paused, waiting for
/// an approval) is never deleted, nor one whose job is queued or executing, nor one with a child that has not
/// ended. With `dry_run=true`, `deleted_count` is how many the same call without it would delete now, and nothing
/// is deleted.
#[utoipa::path(delete, path = "/api/runs/cleanup/history", tag = "runs", params(CleanupParams),
    responses((status = 200, body = Object), (status = 422, body = ErrorBody)))]
pub async fn cleanup(State(state): State<AppState>, Query(q): Query<CleanupParams>) -> ApiResult<Json<Value>> {
    let before = q.before.as_deref().ok_or_else(|| ApiError::invalid("invalid_query", "before is required"))?;
    let before = query_time("before", before)?;
    let dry_run = q.dry_run.unwrap_or(false);
    // A status no run can have matches none.
    let n = match q.status.as_deref().map(str::parse::<RunStatus>).transpose() {
        Ok(status) => state.store.cleanup_runs(&before, status, dry_run).await?,
        Err(_) => 0,
    };
    Ok(Json(json!({"deleted_count": n, "before": before, "status": q.status, "dry_run": dry_run})))
}

/// One run.
#[utoipa::path(get, path = "/api/runs/{run_id}", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, body = RunOut), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, who: Principal, Path(id): Path<String>) -> ApiResult<Json<RunOut>> {
    Ok(Json((&visible_run(&state, &who, Role::Viewer, &id).await?).into()))
}

/// Deletes a run with its events, approvals, step records, artifacts metadata, leases and subflow children (409
/// while a worker executes it).
#[utoipa::path(delete, path = "/api/runs/{run_id}", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, who: Principal, Path(id): Path<String>) -> ApiResult<Json<Deleted>> {
    visible_run(&state, &who, Role::Operator, &id).await?;
    state.store.delete_run(&id).await?;
    Ok(Json(Deleted { deleted: true, procedure_id: None, version: None, run_id: Some(id) }))
}

/// Parameters of the event list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events with a larger id.
    pub after: Option<i64>,
    /// At most this many (default 10000).
    pub limit: Option<i64>,
}

/// A run's events in order (`event_id` is monotonic).
#[utoipa::path(get, path = "/api/runs/{run_id}/events", tag = "runs", params(("run_id" = String, Path), EventParams),
    responses((status = 200, body = Vec<RunEventOut>), (status = 404, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Query(q): Query<EventParams>,
) -> ApiResult<Json<Vec<RunEventOut>>> {
    visible_run(&state, &who, Role::Viewer, &id).await?;
    let rows = state.store.events_after(&id, q.after.unwrap_or(0), q.limit.unwrap_or(10_000).clamp(1, 100_000)).await?;
    Ok(Json(rows.into_iter().map(RunEventOut::from).collect()))
}

/// Artifacts recorded for a run, oldest first.
#[utoipa::path(get, path = "/api/runs/{run_id}/artifacts", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, body = Vec<ArtifactOut>), (status = 404, body = ErrorBody)))]
pub async fn artifacts(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ArtifactOut>>> {
    visible_run(&state, &who, Role::Viewer, &id).await?;
    Ok(Json(state.store.run_artifacts(&id).await?.into_iter().map(ArtifactOut::from).collect()))
}

/// Splits a step-record key (`thread|node#visit[.attempt]|[index:]step`) into node and step ids.
fn key_parts(key: &str) -> (Option<String>, Option<String>) {
    let mut parts = key.split('|');
    let _thread = parts.next();
    let node = parts.next().and_then(|n| n.split('#').next()).map(str::to_owned);
    let step = parts.next().map(|s| s.split_once(':').map_or(s, |(_, id)| id).to_owned());
    (node, step)
}

/// Execution diagnostics: status, idempotency entries (the step records), active leases, event counts.
#[utoipa::path(get, path = "/api/runs/{run_id}/diagnostics", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn diagnostics(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = visible_run(&state, &who, Role::Viewer, &id).await?;
    let entries: Vec<Value> = state
        .store
        .step_rows(&id)
        .await?
        .into_iter()
        .map(|s| {
            let (node_id, step_id) = key_parts(&s.key);
            let (status, key, cached) = match &s.record {
                StepRecord::Started { idempotency_key } => ("started", Some(idempotency_key.clone()), false),
                StepRecord::Completed { .. } => ("completed", None, true),
                StepRecord::Failed { .. } => ("failed", None, false),
            };
            json!({"node_id": node_id, "step_id": step_id, "idempotency_key": key, "status": status,
                   "has_cached_result": cached, "updated_at": s.updated_at, "key": s.key})
        })
        .collect();
    let now = Utc::now();
    let leases: Vec<Value> = state
        .store
        .run_leases(&id)
        .await?
        .into_iter()
        .map(|l| serde_json::to_value(crate::api::LeaseOut::new(l, now)).unwrap_or_default())
        .collect();
    let (total, errors, retries) = state.store.event_counts(&id).await?;
    Ok(Json(json!({
        "run_id": r.run_id, "thread_id": r.run_id, "status": r.status, "last_node_id": r.last_node_id,
        "last_step_id": null, "has_retry_event": retries > 0, "idempotency_entries": entries,
        "active_leases": leases, "total_events": total, "error_events": errors,
    })))
}

fn checkpoint_meta(r: &RunRow, cp: &ckp_engine::journal::Checkpoint) -> Value {
    json!({
        "checkpoint_id": r.commits.to_string(),
        "thread_id": r.run_id,
        "parent_checkpoint_id": (r.commits > 1).then(|| (r.commits - 1).to_string()),
        "step": r.commits,
        "writes": {"node": cp.node, "status": r.status},
        "created_at": r.updated_at,
    })
}

/// The run's checkpoints. ckp keeps only the current one (the journal replaces it at every commit); its id is
/// the number of commits so far.
#[utoipa::path(get, path = "/api/runs/{run_id}/checkpoints", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, body = Vec<Object>), (status = 404, body = ErrorBody)))]
pub async fn checkpoints(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    let r = visible_run(&state, &who, Role::Viewer, &id).await?;
    let cp = state.store.checkpoint(&id).await?.ok_or_else(|| ApiError::not_found("Run"))?;
    Ok(Json(vec![checkpoint_meta(&r, &cp)]))
}

/// One checkpoint's state: variables, cursor, decisions, pending approvals.
#[utoipa::path(get, path = "/api/runs/{run_id}/checkpoints/{checkpoint_id}", tag = "runs",
    params(("run_id" = String, Path), ("checkpoint_id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn checkpoint(
    State(state): State<AppState>,
    who: Principal,
    Path((id, cpid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let r = visible_run(&state, &who, Role::Viewer, &id).await?;
    let cp = state.store.checkpoint(&id).await?.ok_or_else(|| ApiError::not_found("Run"))?;
    if cpid != r.commits.to_string() {
        return Err(ApiError::not_found("Checkpoint"));
    }
    let meta = checkpoint_meta(&r, &cp);
    Ok(Json(json!({
        "checkpoint_id": cpid,
        "thread_id": r.run_id,
        "channel_values": cp.vars,
        "metadata": meta,
        "pending_writes": cp.pending,
        "versions_seen": cp.visits,
        "checkpoint": cp,
    })))
}

/// Cancels a run. One that is queued, sleeping or waiting for approval is canceled at once (its approvals become
/// `canceled`); one being executed stops at its next step. A finished run is 409.
#[utoipa::path(post, path = "/api/runs/{run_id}/cancel", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, body = RunOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(State(state): State<AppState>, who: Principal, Path(id): Path<String>) -> ApiResult<Json<RunOut>> {
    visible_run(&state, &who, Role::Operator, &id).await?;
    let mut changes = state.store.watch_run(&id);
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    // A worker holding the run stops it at its next step; if it pauses or sleeps first, the cancel lands then.
    let mut asked = false;
    loop {
        if asked {
            let r = run(&state, &id).await?;
            if r.status == RunStatus::Canceled {
                return Ok(Json((&r).into()));
            }
            if r.status.is_terminal() {
                return Err(ApiError::conflict(format!("Run {id} is already {}", r.status)));
            }
        }
        match state.store.cancel_run(&id, "cancel_requested").await {
            Ok(RunChange::Done) => {
                let r = run(&state, &id).await?;
                state.metrics.run_canceled(&r.procedure_id);
                return Ok(Json((&r).into()));
            }
            Ok(RunChange::Executing) => {}
            // The worker stopped the run between our read and this request.
            Err(StoreError::Conflict(m)) if asked => {
                let r = run(&state, &id).await?;
                return if r.status == RunStatus::Canceled {
                    Ok(Json((&r).into()))
                } else {
                    Err(ApiError::conflict(m))
                };
            }
            Err(e) => return Err(e.into()),
        }
        asked = true;
        state.engine.cancel(&id);
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            // Still inside a long step: the request is recorded and lands at the next step boundary.
            return Ok(Json((&run(&state, &id).await?).into()));
        }
    }
}

/// Without a body (LangOrch's retry): runs a failed or canceled run again, in place, from its start node with its
/// original inputs; external calls that had completed are not repeated (their results are kept); other statuses are
/// 409. With a JSON body `{"input_vars": {...}}`: starts a new run of the same procedure version with those inputs
/// (checked as `POST /api/runs` checks them: 422 with the errors), in the original's project and case, its
/// `rerun_of` naming the original; the original must have ended (completed, failed or canceled; 409 otherwise) and
/// is left as it is. Either way the answer is the run that will execute.
#[utoipa::path(post, path = "/api/runs/{run_id}/retry", tag = "runs", params(("run_id" = String, Path)),
    request_body(content = Option<RetryIn>, description = "Absent: retry in place. Present: a new run with these inputs."),
    responses((status = 200, body = RunOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RetryIn>,
) -> ApiResult<Json<RunOut>> {
    let r = visible_run(&state, &who, Role::Operator, &id).await?;
    if let Some(body) = body {
        if !r.status.is_terminal() {
            return Err(ApiError::conflict(format!(
                "Run {id} is {}; only a completed, failed or canceled run can be run again with other inputs",
                r.status
            )));
        }
        let s = Start {
            procedure_id: r.procedure_id,
            version: Some(r.procedure_version),
            inputs: body.input_vars,
            project_id: r.project_id,
            case_id: r.case_id,
            rerun_of: Some(r.run_id),
            traceparent: None,
        };
        return Ok(Json((&start(&state, &who, s).await?).into()));
    }
    if !matches!(r.status, RunStatus::Failed | RunStatus::Canceled) {
        return Err(ApiError::conflict(format!(
            "Run {id} is {}; only failed or canceled runs can be retried",
            r.status
        )));
    }
    let p = state
        .catalog
        .get(&r.procedure_id, Some(&r.procedure_version))
        .await?
        .ok_or_else(|| ApiError::conflict("The run's procedure version no longer exists"))?;
    let inputs = r.input_vars.as_ref().and_then(Value::as_object).cloned().unwrap_or_default();
    let fresh = Engine::new_checkpoint(&p, &id, &inputs);
    let row = state.store.retry_run(&id, fresh).await?;
    Ok(Json((&row).into()))
}
