//! Workflow callbacks (CKP.md A.2.6, langorch.md B §6.4), as a pure transition on a paused run's checkpoint, so a store
//! can apply it inside one guarded transaction as it does approval decisions: the callback's outcome becomes the
//! delegated step's record (the step is never dispatched again), its output is merged into the variables, and the
//! run is runnable again once no callback is pending. A failure or a timeout becomes the step's error, which goes
//! through the step's retries and the node's error handlers like any other step error.

use serde_json::{Map, Value, json};

use crate::error::{EngineError, ErrorKind, StepError};
use crate::events::Event;
use crate::journal::{Checkpoint, PendingCallback, RunStatus, StepRecord};

/// What the workflow reported.
#[derive(Debug, Clone, PartialEq)]
pub enum CallbackOutcome {
    /// It succeeded with these outputs (merged into the variables; the step's result).
    Success {
        /// `output` or `output_vars` of the callback body.
        output: Map<String, Value>,
    },
    /// It failed.
    Failure {
        /// Why (default `Workflow callback reported failure`).
        error: Option<String>,
    },
    /// No callback came in time (applied by the server's timer, not by a request).
    TimedOut,
}

/// A callback for a paused run.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    /// The delegated node (None: the only pending callback).
    pub node_id: Option<String>,
    /// The delegated step (None: the only pending callback of the node).
    pub step_id: Option<String>,
    /// The outcome.
    pub outcome: CallbackOutcome,
}

/// What [`apply_callback`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackApplied {
    /// Events to commit with the new checkpoint.
    pub events: Vec<Event>,
    /// The delegated step's record, with its result or error.
    pub steps: Vec<(String, StepRecord)>,
    /// True when no other callback is pending: the run must be queued.
    pub runnable: bool,
}

/// The error of a callback that never came.
pub fn timeout_message(minutes: f64) -> String {
    format!("Workflow webhook callback timed out after {minutes} minutes.")
}

/// The pending callback a callback for `node_id`/`step_id` answers: the one with those ids, or the only one when
/// they are not given.
pub fn find_pending<'a>(
    cp: &'a Checkpoint,
    node_id: Option<&str>,
    step_id: Option<&str>,
) -> Option<&'a PendingCallback> {
    let mut matching = cp
        .callbacks
        .iter()
        .filter(|c| node_id.is_none_or(|n| n == c.node_id) && step_id.is_none_or(|s| s == c.step_id));
    let first = matching.next()?;
    matching.next().is_none().then_some(first)
}

/// Applies `callback` to a paused run's checkpoint. Errors when the run waits for no callback, or none matches
/// (a second callback for the same step is such an error: exactly one of concurrent callbacks wins).
pub fn apply_callback(
    cp: &mut Checkpoint,
    run_id: &str,
    callback: Callback,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<CallbackApplied, EngineError> {
    let invalid = |message: &str| EngineError::InvalidState { run_id: run_id.to_owned(), message: message.to_owned() };
    if cp.status != RunStatus::Paused || cp.callbacks.is_empty() {
        return Err(invalid("the run is not waiting for a workflow callback"));
    }
    let pending = find_pending(cp, callback.node_id.as_deref(), callback.step_id.as_deref())
        .cloned()
        .ok_or_else(|| invalid("no pending workflow step matches this callback"))?;
    cp.callbacks.retain(|c| c.key != pending.key);
    let event = |event_type: &str, payload: Value| Event {
        event_type: event_type.to_owned(),
        node_id: Some(pending.node_id.clone()),
        step_id: Some(pending.step_id.clone()).filter(|s| !s.is_empty()),
        payload,
        created_at: now,
    };
    let mut events = Vec::new();
    let record = match callback.outcome {
        CallbackOutcome::Success { output } => {
            events.push(event(
                "workflow_callback_received",
                json!({"status": "success", "output": output, "error": null}),
            ));
            if !output.is_empty() {
                events.push(event("workflow_output_ready", json!({"output": output, "output_vars": output})));
            }
            // LangOrch merges the outputs into the variables; the step's output_variable gets them too.
            cp.vars.extend(output.clone());
            StepRecord::Completed { result: Value::Object(output) }
        }
        CallbackOutcome::Failure { error } => {
            let message =
                error.filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "Workflow callback reported failure".into());
            events.push(event(
                "workflow_callback_received",
                json!({"status": "failure", "output": null, "error": message}),
            ));
            StepRecord::Failed { error: StepError::new(ErrorKind::AgentError, message) }
        }
        CallbackOutcome::TimedOut => {
            let message = timeout_message(pending.timeout_minutes);
            events.push(event(
                "workflow_callback_timeout",
                json!({"error": message, "timeout_minutes": pending.timeout_minutes}),
            ));
            StepRecord::Failed { error: StepError::new(ErrorKind::Timeout, message) }
        }
    };
    let runnable = cp.callbacks.is_empty();
    if runnable {
        cp.status = RunStatus::Running;
        cp.resume_reason = Some("workflow_callback".into());
    }
    Ok(CallbackApplied { events, steps: vec![(pending.key, record)], runnable })
}
