//! `/api/approvals`: list (status and run filters), get, decide. A decision is one transaction: exactly one of
//! concurrent decisions on an approval wins (200), the others are 409.

use axum::extract::{Path, State};
use ckp_store::{ApprovalDecision, ApprovalRow, ApprovalStatus};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use crate::api::{ApprovalOut, DecisionIn};
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Query};

/// Filters of `GET /api/approvals`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// pending, approved, rejected, timeout, canceled, ...
    pub status: Option<String>,
    /// Only this run's approvals.
    pub run_id: Option<String>,
}

/// Approvals, newest first, each with its run's status.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals", params(ListParams),
    responses((status = 200, body = Vec<ApprovalOut>)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<Vec<ApprovalOut>>> {
    // Any text is an approval status (an option chosen is one), so every filter is answered.
    let status = q.status.as_deref().map(|s| s.parse::<ApprovalStatus>().unwrap_or_else(|never| match never {}));
    Ok(Json(
        state
            .store
            .list_approvals(status, q.run_id, who.visible_projects(Role::Viewer))
            .await?
            .iter()
            .map(ApprovalOut::from)
            .collect(),
    ))
}

/// One approval, with its run's status.
#[utoipa::path(get, path = "/api/approvals/{approval_id}", tag = "approvals", params(("approval_id" = String, Path)),
    responses((status = 200, body = ApprovalOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ApprovalOut>> {
    let a = state.store.get_approval(&id).await?.ok_or_else(|| ApiError::not_found("Approval"))?;
    who.require(Role::Viewer, a.run_project_id.as_deref(), "Approval")?;
    Ok(Json((&a).into()))
}

/// Decides a pending approval: `status`, else `decision`, else `resolved_decision` (`approve`/`approved`,
/// `reject`/`rejected`, an option, or an input value). A body without a decision is 422 (it never rejects
/// silently); a decided, expired or canceled approval is 409. The run resumes at once.
#[utoipa::path(post, path = "/api/approvals/{approval_id}/decision", tag = "approvals",
    params(("approval_id" = String, Path)), request_body = DecisionIn,
    responses((status = 200, body = ApprovalOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn decide(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(body): Json<DecisionIn>,
) -> ApiResult<Json<ApprovalOut>> {
    let approval = state.store.get_approval(&id).await?.ok_or_else(|| ApiError::not_found("Approval"))?;
    authorize_decision(&state, &who, &approval).await?;
    let value = [body.status, body.decision, body.resolved_decision]
        .into_iter()
        .flatten()
        .find(|v| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()))
        .ok_or_else(|| {
            ApiError::invalid(
                "decision_required",
                "The body must give the decision in `status`, `decision` or `resolved_decision`",
            )
        })?;
    let value = match value {
        Value::String(s) => Value::String(s.trim().to_owned()),
        other => other,
    };
    let decision = ApprovalDecision {
        value,
        // The authenticated caller decides; a name in the body counts only for anonymous local use.
        decided_by: Some(match who.credential {
            Some(_) => who.identity.clone(),
            None => body.decided_by.filter(|d| !d.trim().is_empty()).unwrap_or_else(|| "anonymous".into()),
        }),
        comment: body.comment.filter(|c| !c.is_empty()),
        payload: body.payload.unwrap_or_default(),
    };
    let row = state.store.decide_approval(&id, decision).await?;
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let wait = match (parse(&row.created_at), row.decided_at.as_deref().and_then(parse)) {
        (Some(asked), Some(decided)) => (decided - asked).to_std().ok(),
        _ => None,
    };
    state.metrics.approval_decided(row.status.as_str(), wait);
    Ok(Json((&row).into()))
}

/// The role an approval's `approval_level` asks of whoever decides it: `manager` a manager, `executive` an
/// administrator, anything else (`standard`, none) an approver, always on the run's project.
fn level_role(level: Option<&str>) -> Role {
    match level.map(str::trim) {
        Some(l) if l.eq_ignore_ascii_case("manager") => Role::Manager,
        Some(l) if l.eq_ignore_ascii_case("executive") => Role::Admin,
        _ => Role::Approver,
    }
}

/// Who may decide: the role the approval's level asks on the run's project, and, with the four-eyes rule on
/// (`approval_four_eyes`), never the one who started the run.
async fn authorize_decision(state: &AppState, who: &Principal, approval: &ApprovalRow) -> ApiResult<()> {
    let project = approval.run_project_id.as_deref();
    who.require(Role::Approver, project, "Approval")?;
    let checkpoint = state.store.checkpoint(&approval.run_id).await?;
    let pending = checkpoint.as_ref().and_then(|cp| cp.pending.iter().find(|p| p.key == approval.approval_key));
    who.require(level_role(pending.and_then(|p| p.approval_level.as_deref())), project, "Approval")?;
    let approvers = pending.map(|p| p.approvers.as_slice()).unwrap_or_default();
    let named = |entry: &String| match entry.split_once(':') {
        Some(("user", u)) => who.credential.is_some() && who.identity == u,
        Some(("role", r)) => Role::parse(r).is_some_and(|r| who.may(r, project)),
        _ => false,
    };
    if !approvers.is_empty() && !approvers.iter().any(named) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "not_an_approver",
            format!("Only {} may decide this approval", approvers.join(", ")),
        ));
    }
    let starter = approval.run_triggered_by.as_deref();
    if state.auth.config.four_eyes && who.credential.is_some() && starter == Some(who.identity.as_str()) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "four_eyes",
            "The one who started a run cannot decide its approvals (the four-eyes rule, approval_four_eyes)",
        ));
    }
    Ok(())
}
