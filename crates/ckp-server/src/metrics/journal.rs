//! The engine's journal, metered: each commit is timed, and what its events made durable is counted once the
//! commit succeeded (an event the engine emits again after a failed commit is counted when it finally commits).

use std::sync::Arc;
use std::time::Instant;

use ckp_engine::EngineError;
use ckp_engine::events::Event;
use ckp_engine::journal::{Commit, Journal, Stored};
use ckp_store::Store;
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::Metrics;

/// A journal that meters the store's.
#[derive(Debug, Clone)]
pub struct Metered {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    tracer: Option<Arc<crate::otel::Tracer>>,
    alerts: Option<Arc<crate::alerts::Alerts>>,
}

impl Metered {
    /// Meters `store`'s commits into `metrics`.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Metered { store, metrics, tracer: None, alerts: None }
    }

    /// Also raises the alerts each successful commit's events call for (a run failed, an SLA breached, ...).
    pub fn with_alerts(mut self, alerts: Option<Arc<crate::alerts::Alerts>>) -> Self {
        self.alerts = alerts;
        self
    }

    /// Also hands each successful commit's events to `tracer` (spans are built from them).
    pub fn with_tracer(mut self, tracer: Option<Arc<crate::otel::Tracer>>) -> Self {
        self.tracer = tracer;
        self
    }
}

impl Journal for Metered {
    fn load(&self, run_id: &str) -> BoxFuture<'_, Result<Option<Stored>, EngineError>> {
        self.store.load(run_id)
    }

    fn commit(&self, run_id: &str, commit: Commit) -> BoxFuture<'_, Result<(), EngineError>> {
        let started_at = commit.checkpoint.started_at;
        let mut seen = Vec::new();
        for e in &commit.events {
            Seen::collect(e, started_at, &mut seen);
        }
        let procedure = (!seen.is_empty() || self.tracer.is_some() || self.alerts.is_some())
            .then(|| commit.checkpoint.procedure_id.clone());
        // Only when tracing: the spans need the events themselves after the store took them.
        let traced = self.tracer.as_ref().map(|t| (t.clone(), run_id.to_owned(), commit.events.clone()));
        // Only the events an alert is about, and only when alerts are on.
        let alerting = self.alerts.as_ref().and_then(|a| {
            let wanted: Vec<Event> =
                commit.events.iter().filter(|e| crate::alerts::wanted(&e.event_type)).cloned().collect();
            (!wanted.is_empty())
                .then(|| (a.clone(), run_id.to_owned(), commit.checkpoint.procedure_version.clone(), wanted))
        });
        let write = self.store.commit(run_id, commit);
        Box::pin(async move {
            let t = Instant::now();
            let result = write.await;
            self.metrics.committed(t.elapsed(), result.is_ok());
            if let (Ok(()), Some(procedure)) = (&result, procedure) {
                self.metrics.observe(&procedure, &seen);
                if let Some((tracer, run_id, events)) = traced {
                    tracer.committed(&run_id, &procedure, &events);
                }
                if let Some((alerts, run_id, version, events)) = alerting {
                    alerts.committed(&run_id, &procedure, &version, &events);
                }
            }
            result
        })
    }
}

/// What an event counts for.
#[derive(Debug)]
pub(super) enum Seen {
    /// A subflow child's first commit.
    ChildCreated,
    /// The run ended; `seconds` since its first execution.
    RunEnded { status: &'static str, seconds: Option<f64> },
    /// A node completed.
    Node { node_type: &'static str, seconds: f64 },
    /// A step ended (`completed` or `cached`).
    Step { node_id: String, action: String, result: &'static str },
    /// A step failed its node.
    StepFailed { node_id: String, action: String },
    /// A step is retried.
    Retry { node_id: String, step_id: String, action: String },
    /// A step attempt timed out.
    StepTimeout { node_id: String, step_id: String },
    /// An LLM call's usage.
    Llm { model: String, prompt: f64, completion: f64, cost: f64 },
    /// A node's SLA was breached.
    Sla,
    /// An approval was requested.
    ApprovalRequested,
    /// A node's `telemetry.custom_metrics` entry.
    Custom { name: String, value: f64 },
}

impl Seen {
    /// Adds what `e` counts for to `out`.
    fn collect(e: &Event, started_at: Option<chrono::DateTime<chrono::Utc>>, out: &mut Vec<Seen>) {
        if let Some(seen) = Seen::of(e, started_at, out) {
            out.push(seen);
        }
    }

    fn of(e: &Event, started_at: Option<chrono::DateTime<chrono::Utc>>, out: &mut Vec<Seen>) -> Option<Seen> {
        let text = |key: &str| e.get(key).as_str().unwrap_or_default().to_owned();
        let num = |key: &str| e.get(key).as_f64().unwrap_or_default();
        let node_id = || e.node_id.clone().unwrap_or_default();
        let step_id = || e.step_id.clone().unwrap_or_default();
        let ended = |status| {
            let seconds = started_at.map(|at| ((e.created_at - at).num_milliseconds().max(0) as f64) / 1000.0);
            Some(Seen::RunEnded { status, seconds })
        };
        match e.event_type.as_str() {
            "run_created" if !e.get("parent_run_id").is_null() => Some(Seen::ChildCreated),
            "run_completed" => ended("completed"),
            "run_failed" => ended("failed"),
            "run_canceled" => ended("canceled"),
            "node_completed" => {
                if let Some(custom) = e.get("custom_metrics").as_object() {
                    for (name, v) in custom {
                        out.push(Seen::Custom { name: name.clone(), value: v.as_f64().unwrap_or(1.0) });
                    }
                }
                Some(Seen::Node { node_type: node_type(e.get("node_type")), seconds: num("duration_ms") / 1000.0 })
            }
            "step_completed" => {
                let result = if e.get("cached") == &Value::Bool(true) { "cached" } else { "completed" };
                Some(Seen::Step { node_id: node_id(), action: text("action"), result })
            }
            "node_error" if !e.get("step_id").is_null() => {
                Some(Seen::StepFailed { node_id: node_id(), action: text("action") })
            }
            "step_retrying" => Some(Seen::Retry { node_id: node_id(), step_id: step_id(), action: text("action") }),
            "step_timeout" => Some(Seen::StepTimeout { node_id: node_id(), step_id: step_id() }),
            "llm_usage" => Some(Seen::Llm {
                model: text("model"),
                prompt: num("prompt_tokens"),
                completion: num("completion_tokens"),
                cost: num("cost_usd"),
            }),
            "sla_breached" => Some(Seen::Sla),
            "approval_requested" => Some(Seen::ApprovalRequested),
            _ => None,
        }
    }
}

/// A node type name as a static label (no allocation per event); an unknown one is `other`.
fn node_type(v: &Value) -> &'static str {
    let name = v.as_str().unwrap_or_default();
    ckp_core::model::NODE_TYPES.into_iter().find(|t| *t == name).unwrap_or("other")
}
