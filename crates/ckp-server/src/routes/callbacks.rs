//! `POST /api/runs/{run_id}/callback?token=…`: an async workflow reports its outcome (CKP.md A.2.6,
//! langorch.md B §6.4).
//!
//! Checks in LangOrch's order: the token (403), the run (404), a duplicate (200 `duplicate`), a finished run (200
//! with its status), a run that does not wait for a callback (409), a callback for another step (400). Then one
//! guarded store transition records the outcome as the delegated step's result and queues the run, so of many
//! concurrent callbacks exactly one resumes it. Unlike LangOrch, a failure does not fail the run on the spot: it
//! is the step's error, so the step's retries and the node's error handlers apply (with none, the run fails with
//! the workflow's error message).

use std::time::Duration;

use axum::extract::{Path, State};
use ckp_engine::callback::{Callback, CallbackOutcome, find_pending};
use ckp_store::{RunStatus, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Query};

/// How long a callback that overtakes its run's pause (the agent answered before the run committed its pause)
/// waits for it.
const PAUSE_WAIT: Duration = Duration::from_secs(30);

/// The callback's signature.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// Hex HMAC-SHA256 of the run id under the server's `callback_secret` (part of the `callback_url` the
    /// workflow was given).
    pub token: Option<String>,
}

/// A workflow's outcome.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CallbackIn {
    /// `success` (default) or `failure`.
    pub status: Option<String>,
    /// Outputs: merged into the run's variables, and the step's result (its `output_variable`).
    pub output: Option<Map<String, Value>>,
    /// Outputs (LangOrch's other name for `output`).
    pub output_vars: Option<Map<String, Value>>,
    /// The delegated node (needed only when several steps wait).
    pub node_id: Option<String>,
    /// The delegated step.
    pub step_id: Option<String>,
    /// Why it failed (text or an object with `message`).
    pub error: Option<Value>,
}

/// What the callback did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackOut {
    /// True when the run was queued to continue.
    pub resumed: bool,
    /// `queued`, `duplicate`, `paused` (other callbacks pending), or the status of a finished run.
    pub status: String,
    /// The run.
    pub run_id: String,
    /// Why, for anything but a resumption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn out(resumed: bool, status: &str, run_id: &str, message: Option<String>) -> Json<CallbackOut> {
    Json(CallbackOut { resumed, status: status.to_owned(), run_id: run_id.to_owned(), message })
}

fn duplicate(run_id: &str) -> Json<CallbackOut> {
    out(false, "duplicate", run_id, Some("Callback already processed for this step".into()))
}

/// Receives an async workflow's outcome. The token in the query must be the one of the `callback_url` the
/// workflow was given (403 otherwise). A success merges `output` into the run's variables and resumes the run
/// after the delegated step, which is never dispatched again; a failure becomes that step's error (its retries
/// and error handlers apply). A second callback for the same step is answered `duplicate` and changes nothing.
#[utoipa::path(post, path = "/api/runs/{run_id}/callback", tag = "runs",
    params(("run_id" = String, Path), CallbackParams), request_body = CallbackIn,
    responses((status = 200, body = CallbackOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn callback(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    Query(q): Query<CallbackParams>,
    Json(body): Json<CallbackIn>,
) -> ApiResult<Json<CallbackOut>> {
    if !q.token.as_deref().is_some_and(|t| state.callbacks.verify(&run_id, t)) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "invalid_callback_token",
            "Invalid or missing webhook callback token",
        ));
    }
    let outcome = match body.status.as_deref().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "success" | "succeeded" | "completed") => {
            CallbackOutcome::Success { output: body.output.or(body.output_vars).unwrap_or_default() }
        }
        Some("failure" | "failed" | "error") => CallbackOutcome::Failure {
            error: body.error.map(|e| match e {
                Value::String(s) => s,
                Value::Object(o) if o.get("message").is_some_and(Value::is_string) => {
                    o.get("message").and_then(Value::as_str).unwrap_or_default().to_owned()
                }
                other => other.to_string(),
            }),
        },
        Some(other) => {
            return Err(ApiError::invalid(
                "invalid_callback_status",
                format!("status must be \"success\" or \"failure\", not {other:?}"),
            ));
        }
    };
    let mut status = state.store.run_status(&run_id).await?.ok_or_else(|| ApiError::not_found("Run"))?;
    if already_answered(&state, &run_id, body.node_id.as_deref(), body.step_id.as_deref()).await? {
        return Ok(duplicate(&run_id));
    }
    if matches!(status, RunStatus::Created | RunStatus::Running) {
        status = wait_for_pause(&state, &run_id).await?;
    }
    if status.is_terminal() {
        return Ok(out(false, status.as_str(), &run_id, Some(format!("Run already in terminal state: {status}"))));
    }
    let cp = state.store.checkpoint(&run_id).await?.ok_or_else(|| ApiError::not_found("Run"))?;
    if status != RunStatus::Paused || cp.callbacks.is_empty() {
        // A concurrent callback for this step may have won between the reads above.
        if already_answered(&state, &run_id, body.node_id.as_deref(), body.step_id.as_deref()).await? {
            return Ok(duplicate(&run_id));
        }
        return Err(ApiError::conflict(format!("Run {run_id} is not paused (status={status}). Callback ignored.")));
    }
    let Some(pending) = find_pending(&cp, body.node_id.as_deref(), body.step_id.as_deref()) else {
        let waiting: Vec<String> = cp.callbacks.iter().map(|c| format!("{}/{}", c.node_id, c.step_id)).collect();
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "callback_step_mismatch",
            format!(
                "The callback's node_id/step_id match no step waiting for a callback (waiting: {})",
                waiting.join(", ")
            ),
        ));
    };
    let callback = Callback {
        node_id: Some(pending.node_id.clone()),
        step_id: Some(pending.step_id.clone()),
        outcome: outcome.clone(),
    };
    match state.store.workflow_callback(&run_id, callback).await {
        Ok(true) => Ok(out(true, "queued", &run_id, match outcome {
            CallbackOutcome::Failure { .. } => Some(
                "The workflow reported a failure: it is the step's error, handled by its retries and error handlers"
                    .into(),
            ),
            _ => None,
        })),
        Ok(false) => Ok(out(false, "paused", &run_id, Some("Recorded; the run waits for other callbacks".into()))),
        // Another callback for this step won the race.
        Err(StoreError::Conflict(_)) => Ok(duplicate(&run_id)),
        Err(e) => Err(e.into()),
    }
}

/// Whether a callback for this step (the latest delegated one when the body names none) was already received
/// since the step was delegated (a later visit of the same step is a new delegation).
async fn already_answered(
    state: &AppState,
    run_id: &str,
    node_id: Option<&str>,
    step_id: Option<&str>,
) -> ApiResult<bool> {
    let events = state.store.events_after(run_id, 0, i64::MAX).await?;
    let matches = |e: &&ckp_store::EventRow, n: Option<&str>, s: Option<&str>| {
        n.is_none_or(|n| e.node_id.as_deref() == Some(n)) && s.is_none_or(|s| e.step_id.as_deref().unwrap_or("") == s)
    };
    let Some(delegated) =
        events.iter().rev().find(|e| e.event_type == "workflow_delegated" && matches(e, node_id, step_id))
    else {
        return Ok(false);
    };
    let (node, step) = (delegated.node_id.as_deref(), Some(delegated.step_id.as_deref().unwrap_or("")));
    Ok(events.iter().any(|e| {
        e.event_id > delegated.event_id && e.event_type == "workflow_callback_received" && matches(&e, node, step)
    }))
}

/// Waits (up to [`PAUSE_WAIT`]) while the run executes, for a callback that arrived before the run committed its
/// pause; returns the status then.
async fn wait_for_pause(state: &AppState, run_id: &str) -> ApiResult<RunStatus> {
    let mut changes = state.store.watch_run(run_id);
    let deadline = tokio::time::Instant::now() + PAUSE_WAIT;
    loop {
        let status = state.store.run_status(run_id).await?.ok_or_else(|| ApiError::not_found("Run"))?;
        if !matches!(status, RunStatus::Created | RunStatus::Running) {
            return Ok(status);
        }
        if !matches!(tokio::time::timeout_at(deadline, changes.changed()).await, Ok(Ok(()))) {
            return Ok(status);
        }
    }
}
