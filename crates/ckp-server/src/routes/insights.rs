//! What the web console reads across resources, with its bodies beside it: `GET /api/runs/stats` (run counts per
//! time bucket, gauges and the busiest procedures, for the dashboard and the metrics page) and `GET /api/search`
//! (procedures, runs and agents matching a text). Both read through the store's `InsightStore`, which aggregates
//! and limits in the database, and both see only the caller's projects. Nothing here writes.

use axum::extract::State;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ckp_store::{SearchQuery, StatsQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, Json, Query};

/// The longest statistics window: 90 days.
const MAX_HOURS: i64 = 2160;
/// Windows up to this many hours have hour buckets; longer ones day buckets.
const HOUR_BUCKETS_UP_TO: i64 = 72;
/// How many procedures `by_procedure` lists.
const TOP_PROCEDURES: i64 = 20;
/// The longest search text, in characters.
const MAX_SEARCH_CHARS: usize = 200;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Refuses a text parameter holding U+0000 (PostgreSQL cannot compare with it; refused on every backend alike).
pub(crate) fn text_param(name: &str, value: Option<String>) -> ApiResult<Option<String>> {
    match value {
        Some(v) if v.contains('\0') => {
            Err(ApiError::invalid("invalid_query", format!("{name} must not contain the NUL character (U+0000)")))
        }
        v => Ok(v),
    }
}

/// Parameters of `GET /api/runs/stats`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// The window in hours, 1 to 2160 (default 24): hour buckets up to 72 hours, day buckets beyond.
    #[param(minimum = 1, maximum = 2160)]
    pub hours: Option<i64>,
    /// Only runs of this project.
    pub project_id: Option<String>,
    /// Only runs of this procedure.
    pub procedure_id: Option<String>,
}

/// Runs created and ended in one bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketOut {
    /// The bucket's start (it lasts `bucket_seconds`).
    pub start: String,
    /// Runs created in the bucket.
    pub created: i64,
    /// Runs that completed in the bucket (by their end time).
    pub completed: i64,
    /// Runs that failed in the bucket.
    pub failed: i64,
    /// Runs canceled in the bucket.
    pub canceled: i64,
}

/// The window's sums, and what is running or waiting now.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotalsOut {
    /// Runs created in the window.
    pub created: i64,
    /// Runs that completed in the window.
    pub completed: i64,
    /// Runs that failed in the window.
    pub failed: i64,
    /// Runs canceled in the window.
    pub canceled: i64,
    /// Runs running now, whenever they were created.
    pub running: i64,
    /// Runs waiting for a decision now, whenever they were created.
    pub waiting_approval: i64,
}

/// One of the busiest procedures of the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcedureStatsOut {
    /// The procedure.
    pub procedure_id: String,
    /// Its runs created in the window (the ranking).
    pub total: i64,
    /// Its runs that completed in the window.
    pub completed: i64,
    /// Its runs that failed in the window.
    pub failed: i64,
    /// failed / (completed + failed); null when none of its runs completed or failed in the window.
    pub failure_rate: Option<f64>,
    /// Median duration (`ended_at - started_at`) of its runs that ended in the window; null when none did after
    /// starting.
    pub p50_seconds: Option<f64>,
    /// 95th percentile (nearest rank) of the same durations.
    pub p95_seconds: Option<f64>,
    /// LLM cost of its runs created in the window.
    pub cost_usd: f64,
}

/// `GET /api/runs/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunStatsOut {
    /// Start of the first bucket: the window is `hours` in whole buckets, the last one holding `to`.
    pub from: String,
    /// When the statistics were read.
    pub to: String,
    /// 3600 (hour buckets, windows up to 72 hours) or 86400 (day buckets).
    pub bucket_seconds: i64,
    /// Every bucket of the window in time order, zeros included.
    pub buckets: Vec<BucketOut>,
    /// Sums over the buckets, and the current gauges.
    pub totals: TotalsOut,
    /// The (at most 20) procedures with the most runs created in the window, most first.
    pub by_procedure: Vec<ProcedureStatsOut>,
}

/// Run statistics for the dashboard and the metrics page, over the caller's projects: runs created, completed,
/// failed and canceled per hour (windows up to 72 hours) or per day (beyond), the runs running or waiting for a
/// decision now, and the 20 procedures with the most runs created in the window with their completions, failures,
/// cost and duration percentiles. Computed in SQL: counts with `GROUP BY` per bucket, the percentiles with window
/// functions (`row_number()` over each procedure's durations, the row at the nearest rank): the answer's size and
/// the memory it takes depend on the number of buckets and procedures, never on the number of runs.
#[utoipa::path(get, path = "/api/runs/stats", tag = "runs", params(StatsParams),
    responses((status = 200, body = RunStatsOut), (status = 422, body = crate::error::ErrorBody)))]
pub async fn stats(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<StatsParams>,
) -> ApiResult<Json<RunStatsOut>> {
    let hours = q.hours.unwrap_or(24);
    if !(1..=MAX_HOURS).contains(&hours) {
        return Err(ApiError::invalid("invalid_query", format!("hours must be between 1 and {MAX_HOURS}")));
    }
    let project_id = text_param("project_id", q.project_id)?;
    let procedure_id = text_param("procedure_id", q.procedure_id)?;
    let width = if hours <= HOUR_BUCKETS_UP_TO { 3600 } else { 86_400 };
    let count = (hours * 3600 + width - 1) / width;
    let now = Utc::now();
    let last = now.timestamp().div_euclid(width) * width;
    let from = DateTime::from_timestamp(last - (count - 1) * width, 0)
        .ok_or_else(|| ApiError::invalid("invalid_query", "hours reaches before the representable times"))?;
    let query = StatsQuery {
        from,
        to: from + Duration::seconds(count * width),
        bucket_seconds: width,
        project_id,
        procedure_id,
        projects: who.visible_projects(Role::Viewer),
        top: TOP_PROCEDURES,
    };
    let stats = state.store.run_stats(query).await?;
    let mut totals = TotalsOut {
        created: 0,
        completed: 0,
        failed: 0,
        canceled: 0,
        running: stats.running,
        waiting_approval: stats.waiting_approval,
    };
    let mut buckets = Vec::with_capacity(stats.buckets.len());
    for (start, b) in (0..).map(|i| from + Duration::seconds(i * width)).zip(&stats.buckets) {
        totals.created += b.created;
        totals.completed += b.completed;
        totals.failed += b.failed;
        totals.canceled += b.canceled;
        buckets.push(BucketOut {
            start: rfc3339(start),
            created: b.created,
            completed: b.completed,
            failed: b.failed,
            canceled: b.canceled,
        });
    }
    let by_procedure = stats
        .by_procedure
        .into_iter()
        .map(|p| ProcedureStatsOut {
            failure_rate: (p.completed + p.failed > 0).then(|| p.failed as f64 / (p.completed + p.failed) as f64),
            procedure_id: p.procedure_id,
            total: p.total,
            completed: p.completed,
            failed: p.failed,
            p50_seconds: p.p50_seconds,
            p95_seconds: p.p95_seconds,
            cost_usd: p.cost_usd,
        })
        .collect();
    Ok(Json(RunStatsOut {
        from: rfc3339(from),
        to: rfc3339(now),
        bucket_seconds: width,
        buckets,
        totals,
        by_procedure,
    }))
}

/// Parameters of `GET /api/search`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The text (required, 1 to 200 characters): matched case-insensitively as a substring of procedure ids and
    /// names, run procedure ids, agent ids and names, and as a prefix of run ids; `%` and `_` match themselves.
    #[param(required = true, min_length = 1, max_length = 200)]
    pub q: Option<String>,
    /// At most this many results of each kind, 1 to 50 (default 5).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<i64>,
}

/// A procedure found (its latest version).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcedureHitOut {
    /// The procedure.
    pub procedure_id: String,
    /// Its latest version.
    pub version: String,
    /// That version's name.
    pub name: String,
    /// That version's status.
    pub status: String,
    /// Its project.
    pub project_id: Option<String>,
}

/// A run found.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunHitOut {
    /// The run.
    pub run_id: String,
    /// Its procedure.
    pub procedure_id: String,
    /// The version it runs.
    pub procedure_version: String,
    /// created, running, waiting_approval, paused, completed, failed, canceled.
    pub status: String,
    /// When it was created.
    pub created_at: String,
}

/// An agent found.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentHitOut {
    /// The agent.
    pub agent_id: String,
    /// Its name.
    pub name: String,
    /// online, offline, ...
    pub status: String,
    /// Its channel.
    pub channel: String,
}

/// `GET /api/search`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchOut {
    /// Procedures by id.
    pub procedures: Vec<ProcedureHitOut>,
    /// Runs, newest first.
    pub runs: Vec<RunHitOut>,
    /// Agents by name.
    pub agents: Vec<AgentHitOut>,
}

/// The console's global search: procedures (latest version; by id or name), runs (by id prefix or procedure id,
/// newest first) and agents (by id or name), case-insensitive, at most `limit` of each, procedures and runs only
/// of the caller's projects (agents belong to none: every caller may list them).
#[utoipa::path(get, path = "/api/search", tag = "search", params(SearchParams),
    responses((status = 200, body = SearchOut), (status = 422, body = crate::error::ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<SearchParams>,
) -> ApiResult<Json<SearchOut>> {
    let text = text_param("q", q.q)?.ok_or_else(|| ApiError::invalid("invalid_query", "q is required"))?;
    if !(1..=MAX_SEARCH_CHARS).contains(&text.chars().count()) {
        return Err(ApiError::invalid("invalid_query", format!("q must be 1 to {MAX_SEARCH_CHARS} characters")));
    }
    let limit = q.limit.unwrap_or(5);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::invalid("invalid_query", "limit must be between 1 and 50"));
    }
    let hits = state.store.search(SearchQuery { text, limit, projects: who.visible_projects(Role::Viewer) }).await?;
    Ok(Json(SearchOut {
        procedures: hits
            .procedures
            .into_iter()
            .map(|p| ProcedureHitOut {
                procedure_id: p.procedure_id,
                version: p.version,
                name: p.name,
                status: p.status.as_str().to_owned(),
                project_id: p.project_id,
            })
            .collect(),
        runs: hits
            .runs
            .into_iter()
            .map(|r| RunHitOut {
                run_id: r.run_id,
                procedure_id: r.procedure_id,
                procedure_version: r.procedure_version,
                status: r.status.as_str().to_owned(),
                created_at: r.created_at,
            })
            .collect(),
        agents: hits
            .agents
            .into_iter()
            .map(|a| AgentHitOut {
                agent_id: a.agent_id,
                name: a.name,
                status: a.status.as_str().to_owned(),
                channel: a.channel,
            })
            .collect(),
    }))
}
