//! `GET /api/audit`: the audit log in LangOrch's shape (`{events, limit, offset}`, newest first), with its
//! filters. Events queued by this process are stored before the query runs.

use axum::extract::State;
use ckp_store::{AuditFilter, AuditRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Json, Query};

/// Filters of `GET /api/audit`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// `auth`, `runs`, `procedures`, `approvals`, `users`, ...
    pub category: Option<String>,
    /// Who (exact).
    pub actor: Option<String>,
    /// What (exact: `login`, `create`, `decide`, ...).
    pub action: Option<String>,
    /// Text in the description.
    pub search: Option<String>,
    /// At or after (RFC 3339).
    pub since: Option<String>,
    /// At or before (RFC 3339).
    pub until: Option<String>,
    /// Page size, 1 to 1000 (200).
    pub limit: Option<i64>,
    /// Events skipped.
    pub offset: Option<i64>,
}

/// An audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventOut {
    /// Increasing id.
    pub event_id: i64,
    /// When.
    pub ts: String,
    /// Category.
    pub category: String,
    /// Action.
    pub action: String,
    /// Who.
    pub actor: String,
    /// Which credential (`key:<id>`, `session:<id>`).
    pub credential: Option<String>,
    /// From where.
    pub source_ip: Option<String>,
    /// A sentence.
    pub description: String,
    /// Object type.
    pub resource_type: Option<String>,
    /// Object id.
    pub resource_id: Option<String>,
    /// HTTP status answered.
    pub outcome: i64,
    /// Method, path, ...
    pub meta: Value,
}

impl From<AuditRow> for AuditEventOut {
    fn from(r: AuditRow) -> Self {
        AuditEventOut {
            event_id: r.event_id,
            ts: r.ts,
            category: r.category,
            action: r.action,
            actor: r.actor,
            credential: r.credential,
            source_ip: r.source_ip,
            description: r.description,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            outcome: r.outcome,
            meta: r.meta,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Events, newest first.
    pub events: Vec<AuditEventOut>,
    /// Page size.
    pub limit: i64,
    /// Events skipped.
    pub offset: i64,
}

fn instant(name: &str, v: Option<String>) -> ApiResult<Option<String>> {
    v.map(|s| {
        crate::auth::principal::parse_time(&s)
            .map(crate::auth::principal::stamp)
            .ok_or_else(|| ApiError::invalid("invalid_query", format!("{name} must be an RFC 3339 instant, not {s:?}")))
    })
    .transpose()
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditPage)))]
pub async fn list(State(state): State<AppState>, Query(q): Query<AuditParams>) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(200);
    let offset = q.offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(ApiError::invalid("invalid_query", "limit must be 1 to 1000 and offset 0 or more"));
    }
    let filter = AuditFilter {
        category: q.category,
        actor: q.actor,
        action: q.action,
        search: q.search,
        since: instant("since", q.since)?,
        until: instant("until", q.until)?,
        limit,
        offset,
    };
    state.audit.flush().await;
    let events = state.store.list_audit(filter).await?.into_iter().map(AuditEventOut::from).collect();
    Ok(Json(AuditPage { events, limit, offset }))
}
