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
use super::registry::{Counter, Histogram, Summary};

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
        // The series each event counts in are found before the store takes the events (no copy of their
        // strings); they are counted only once the commit succeeded.
        let mut counted = Vec::new();
        let procedure = &commit.checkpoint.procedure_id;
        for e in &commit.events {
            self.metrics.resolve(procedure, e, started_at, &mut counted);
        }
        // Only when tracing: the spans need the events themselves after the store took them.
        let traced = self.tracer.as_ref().map(|t| (t.clone(), run_id.to_owned(), commit.events.clone()));
        // Only the events an alert is about, and only when alerts are on.
        let alerting = self.alerts.as_ref().and_then(|a| {
            let wanted: Vec<Event> =
                commit.events.iter().filter(|e| crate::alerts::wanted(&e.event_type)).cloned().collect();
            (!wanted.is_empty())
                .then(|| (a.clone(), run_id.to_owned(), commit.checkpoint.procedure_version.clone(), wanted))
        });
        let procedure = (traced.is_some() || alerting.is_some()).then(|| procedure.clone());
        let write = self.store.commit(run_id, commit);
        Box::pin(async move {
            let t = Instant::now();
            let result = write.await;
            self.metrics.committed(t.elapsed(), result.is_ok());
            if result.is_ok() {
                for c in counted {
                    c.apply(&self.metrics);
                }
                if let (Some((tracer, run_id, events)), Some(procedure)) = (traced, &procedure) {
                    tracer.committed(&run_id, procedure, &events);
                }
                if let (Some((alerts, run_id, version, events)), Some(procedure)) = (alerting, &procedure) {
                    alerts.committed(&run_id, procedure, &version, &events);
                }
            }
            result
        })
    }
}

/// A count a committed event makes: the series is found before the commit, the value added after it.
#[derive(Debug)]
pub(super) enum Counted {
    /// Add to a counter.
    Add(Arc<Counter>, f64),
    /// Observe in a histogram.
    Histogram(Arc<Histogram>, f64),
    /// Observe in a summary.
    Summary(Arc<Summary>, f64),
    /// A node's `telemetry.custom_metrics` entry.
    Custom(String, f64),
}

impl Counted {
    fn apply(self, metrics: &Metrics) {
        match self {
            Counted::Add(c, v) => c.add(v),
            Counted::Histogram(h, v) => h.observe(v),
            Counted::Summary(s, v) => s.observe(v),
            Counted::Custom(name, v) => metrics.custom(&name, v),
        }
    }
}

/// A node type name as a static label (no allocation per event); an unknown one is `other`.
pub(super) fn node_type(v: &Value) -> &'static str {
    let name = v.as_str().unwrap_or_default();
    ckp_core::model::NODE_TYPES.into_iter().find(|t| *t == name).unwrap_or("other")
}
