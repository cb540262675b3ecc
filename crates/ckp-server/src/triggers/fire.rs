//! The one path from a trigger's cause to a run: the version to run (the registration's, or the newest `active`
//! one when it follows), the checks of `POST /api/runs` (runnable, effective, inputs against
//! `variables_schema`), and the store's fire, which records the cause and creates the run in one transaction.
//! Schedules, webhooks, file drops and fires through the API call it; brokers are to call it the same way with
//! their own cause keys (a message id). A key dedupes as long as its row is kept unless the fire says until when
//! ([`Keys`]): only keys that dedupe nothing any more are pruned (`prune.rs`).

use chrono::{DateTime, Utc};
use ckp_store::{FireOutcome, ProcedureFilter, ProcedureStatus, TriggerFire, TriggerRow};
use serde_json::{Map, Value};

use super::TriggerConfig;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::routes::runs::{Origin, check_inputs, new_run, runnable};

/// A cause of a trigger.
#[derive(Debug, Clone)]
pub struct Cause {
    /// Unique per registration: a cause with a known key starts nothing.
    pub key: String,
    /// Other keys of the same cause ([`ckp_store::TriggerFire::aliases`]).
    pub aliases: Vec<String>,
    /// What the run records as `trigger_type`: `schedule`, `webhook`, `manual`.
    pub kind: &'static str,
    /// What the run records as `triggered_by`.
    pub by: String,
    /// A schedule's tick.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The run's inputs.
    pub inputs: Map<String, Value>,
    /// Refuse when this many of the trigger's runs have not ended (None: no limit).
    pub max_active: Option<i64>,
    /// The W3C trace context of the request that caused it (a webhook's `traceparent`).
    pub traceparent: Option<crate::otel::Context>,
}

/// How long a cause's keys dedupe, and the keys it supersedes ([`ckp_store::TriggerFire::dedupe_until`],
/// [`ckp_store::TriggerFire::retire`]). The default: every key dedupes as long as its row is kept, nothing retired.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// Keys that dedupe only until a time.
    pub until: Vec<(String, DateTime<Utc>)>,
    /// Keys of earlier causes this one supersedes (a file's previous version).
    pub retire: Vec<String>,
}

impl Keys {
    /// `key` dedupes until `at`.
    pub fn until(mut self, key: &str, at: DateTime<Utc>) -> Keys {
        self.until.push((key.to_owned(), at));
        self
    }

    fn until_text(&self) -> Vec<(String, String)> {
        self.until.iter().map(|(k, t)| (k.clone(), t.to_rfc3339())).collect()
    }
}

/// Fires `reg` for `cause`. A version that cannot run (deleted, deprecated, not effective, no active version to
/// follow) or inputs that do not satisfy its schema are the error (4xx) and nothing is recorded.
pub async fn fire(state: &AppState, reg: &TriggerRow, cause: Cause) -> ApiResult<FireOutcome> {
    fire_keyed(state, reg, cause, Keys::default()).await
}

/// [`fire`], with how long its keys dedupe and what it supersedes. Every outcome is counted
/// (`ckp_trigger_fires_total`), a schedule's lag from its tick to its run's creation too.
pub async fn fire_keyed(state: &AppState, reg: &TriggerRow, cause: Cause, keys: Keys) -> ApiResult<FireOutcome> {
    let (kind, scheduled_at) = (cause.kind, cause.scheduled_at);
    let outcome = start_keyed(state, reg, cause, keys).await;
    let (name, lag) = match &outcome {
        Ok(FireOutcome::Started(run)) => {
            state.metrics.run_created(&run.procedure_id, Some(kind));
            ("started", scheduled_at.and_then(|at| (Utc::now() - at).to_std().ok()))
        }
        Ok(o) => (outcome_name(o), None),
        Err(e) => {
            if let Some(alerts) = &state.alerts {
                let fields = serde_json::json!({"procedure_id": reg.procedure_id, "procedure_version": reg.version,
                    "trigger_type": kind, "error": {"code": e.code, "detail": e.detail}});
                alerts.raise("trigger_failed", &format!("{}/{}/{kind}", reg.procedure_id, reg.version), fields);
            }
            ("rejected", None)
        }
    };
    // A schedule's busy tick is counted when it is recorded as skipped (or, buffered, when it fires).
    if !(kind == "schedule" && name == "busy") {
        state.metrics.trigger_fired(kind, name, lag);
    }
    outcome
}

/// The metric label of an outcome.
fn outcome_name(o: &FireOutcome) -> &'static str {
    match o {
        FireOutcome::Started(_) => "started",
        FireOutcome::Skipped => "skipped",
        FireOutcome::Duplicate { .. } => "duplicate",
        FireOutcome::Disabled => "disabled",
        FireOutcome::Busy { .. } => "busy",
    }
}

async fn start_keyed(state: &AppState, reg: &TriggerRow, cause: Cause, keys: Keys) -> ApiResult<FireOutcome> {
    let config = TriggerConfig::of(reg);
    let record = match config.follow_active {
        false => {
            state.store.get_procedure(&reg.procedure_id, Some(&reg.version)).await?.filter(|r| r.version == reg.version)
        }
        true => {
            let filter = ProcedureFilter {
                procedure_id: Some(reg.procedure_id.clone()),
                status: Some(ProcedureStatus::Active),
                ..ProcedureFilter::default()
            };
            state.store.list_procedures(filter).await?.into_iter().next()
        }
    };
    let record = record.ok_or_else(|| ApiError::not_found("Procedure"))?;
    let p = runnable(state, &record).await?;
    check_inputs(&p, &cause.inputs)?;
    let origin = Origin {
        trigger_type: Some(cause.kind.to_owned()),
        triggered_by: Some(cause.by),
        traceparent: cause.traceparent,
    };
    let (run, commit) = new_run(&p, cause.inputs, record.project_id.clone(), None, origin, None);
    let fire = TriggerFire {
        procedure_id: reg.procedure_id.clone(),
        version: reg.version.clone(),
        cause_key: cause.key,
        aliases: cause.aliases,
        scheduled_at: cause.scheduled_at.map(|t| t.to_rfc3339()),
        max_active: cause.max_active,
        start: Some((run, commit)),
        skip_reason: None,
        dedupe_until: keys.until_text(),
        retire: keys.retire,
    };
    Ok(state.store.fire_trigger(fire).await?)
}

/// Records a cause that starts no run, with why (never silent).
pub async fn skip(
    state: &AppState,
    reg: &TriggerRow,
    key: String,
    scheduled_at: Option<DateTime<Utc>>,
    reason: String,
) -> ApiResult<FireOutcome> {
    skip_keyed(state, reg, key, scheduled_at, reason, Keys::default()).await
}

/// [`skip`], with how long its key dedupes and what it supersedes.
pub async fn skip_keyed(
    state: &AppState,
    reg: &TriggerRow,
    key: String,
    scheduled_at: Option<DateTime<Utc>>,
    reason: String,
    keys: Keys,
) -> ApiResult<FireOutcome> {
    let fire = TriggerFire {
        procedure_id: reg.procedure_id.clone(),
        version: reg.version.clone(),
        cause_key: key,
        aliases: Vec::new(),
        scheduled_at: scheduled_at.map(|t| t.to_rfc3339()),
        max_active: None,
        start: None,
        skip_reason: Some(reason),
        dedupe_until: keys.until_text(),
        retire: keys.retire,
    };
    let outcome = state.store.fire_trigger(fire).await?;
    state.metrics.trigger_fired(cause_kind(&reg.trigger_type), outcome_name(&outcome), None);
    Ok(outcome)
}

/// The run's `trigger_type` for a registration's type (as [`Cause::kind`] names it).
fn cause_kind(trigger_type: &str) -> &'static str {
    match trigger_type {
        "scheduled" => "schedule",
        "webhook" => "webhook",
        "event" => "event",
        "file_watch" => "file_watch",
        _ => "manual",
    }
}
