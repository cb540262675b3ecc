//! Prometheus metrics (`GET /api/metrics`): LangOrch's families under their names and labels, so its dashboards
//! keep working, and ckp's own (`ckp_*`). User guide: `docs/observability.md`.
//!
//! Where the numbers come from:
//! * the run path is observed at its commits ([`journal::Metered`] wraps the engine's journal): a committed event
//!   is counted once, after the commit that made it durable, and a commit that fails counts nothing (the engine
//!   re-executes from the last commit and emits the same events again);
//! * run creation, cancellation by the store, approval decisions, trigger fires, claims, HTTP requests and SSE
//!   streams at their one place in the server;
//! * gauges of the whole system (runs by status, queue depth, agents) from the database at scrape time, by the
//!   leader only, so summing every process's scrape counts each once.
//!
//! Each process exposes its own counters; Prometheus's `instance` target label tells them apart (and the push
//! gateway's grouping key carries the process, so processes do not overwrite each other). Memory is bounded
//! ([`registry`]): fixed histogram buckets, summary windows, a cap on label sets per family; no run id is a label.

pub mod journal;
pub mod push;
pub mod registry;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ckp_engine::events::Event;
use ckp_engine::journal::RunStatus;
use ckp_store::Store;
use registry::{Counter, Family, Gauge, Histogram, Summary};
use serde_json::Value;

/// Custom metric names (`telemetry.custom_metrics`) kept before new ones are dropped.
pub const MAX_CUSTOM: usize = 100;

/// How long the database gauges of one scrape are reused by the next (a scrape storm costs one query set).
const DB_GAUGES_TTL: Duration = Duration::from_secs(2);

/// Every metric of a process.
#[derive(Debug)]
pub struct Metrics {
    /// This process's id (its workers' id prefix).
    pub process: String,
    started: DateTime<Utc>,

    // LangOrch's families.
    lo_run_started: Family<Counter>,
    lo_run_completed: Family<Counter>,
    lo_run_failures: Family<Counter>,
    lo_run_duration: Family<Summary>,
    lo_retry_attempts: Family<Counter>,
    lo_step_execution: Family<Counter>,
    lo_step_timeout: Family<Counter>,
    lo_queue_depth: Family<Gauge>,
    lo_callback_timeout: Family<Counter>,
    lo_sla_breach: Family<Counter>,
    lo_trigger_lag: Family<Summary>,
    /// `telemetry.custom_metrics`: `langorch_<name>` counters, names sanitized.
    custom: Mutex<BTreeMap<String, f64>>,

    // ckp's own.
    runs_created: Family<Counter>,
    runs_finished: Family<Counter>,
    run_duration: Family<Histogram>,
    node_duration: Family<Histogram>,
    steps: Family<Counter>,
    step_retries: Family<Counter>,
    llm_tokens: Family<Counter>,
    llm_cost: Family<Counter>,
    approvals_requested: Family<Counter>,
    approval_decisions: Family<Counter>,
    approval_wait: Family<Histogram>,
    trigger_fires: Family<Counter>,
    trigger_lag: Family<Histogram>,
    executions: Family<Counter>,
    claim_duration: Family<Histogram>,
    jobs_claimed: Family<Counter>,
    commit_duration: Family<Histogram>,
    commit_errors: Family<Counter>,
    workers: Family<Gauge>,
    workers_busy: Family<Gauge>,
    sse_streams: Family<Gauge>,
    http_requests: Family<Counter>,
    http_duration: Family<Histogram>,
    alerts: Family<Counter>,
    db_gauges: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new("local")
    }
}

impl Metrics {
    /// The metrics of process `process`, all at zero.
    pub fn new(process: &str) -> Self {
        use registry::buckets::{LATENCY, LONG};
        Metrics {
            process: process.to_owned(),
            started: Utc::now(),
            lo_run_started: Family::counter(
                "langorch_run_started_total",
                "Run executions started (LangOrch: resumes included).",
                &[],
            ),
            lo_run_completed: Family::counter(
                "langorch_run_completed_total",
                "Runs that ended, by status (completed, failed).",
                &["status"],
            ),
            lo_run_failures: Family::counter("langorch_run_failures_total", "Runs that failed.", &[]),
            lo_run_duration: Family::summary(
                "langorch_run_duration_seconds",
                "Run duration from its first execution to its end, by status; quantiles over the last 1024 runs.",
                &["status"],
            ),
            lo_retry_attempts: Family::counter(
                "langorch_retry_attempts_total",
                "Step retries, by node and step.",
                &["node_id", "step_id"],
            ),
            lo_step_execution: Family::counter(
                "langorch_step_execution_total",
                "Steps ended, by node and status (completed, failed, cached).",
                &["node_id", "status"],
            ),
            lo_step_timeout: Family::counter(
                "langorch_step_timeout_total",
                "Step attempts that timed out, by node and step.",
                &["node_id", "step_id"],
            ),
            lo_queue_depth: Family::gauge(
                "langorch_queue_depth",
                "Jobs waiting in the run queue (reported by the leader).",
                &["queue_type"],
            ),
            lo_callback_timeout: Family::counter(
                "langorch_callback_timeout_total",
                "Waits that timed out, by kind (approval, workflow).",
                &["callback_type"],
            ),
            lo_sla_breach: Family::counter("langorch_sla_breach_total", "Node SLA breaches.", &[]),
            lo_trigger_lag: Family::summary(
                "langorch_trigger_lag_seconds",
                "Delay from a trigger's due time to its run's creation, by trigger type; quantiles over the last 1024.",
                &["trigger_type"],
            ),
            custom: Mutex::new(BTreeMap::new()),
            runs_created: Family::counter(
                "ckp_runs_created_total",
                "Runs created, by procedure and trigger (api, schedule, webhook, file, event, manual, subflow).",
                &["procedure", "trigger"],
            ),
            runs_finished: Family::counter(
                "ckp_runs_finished_total",
                "Runs that ended, by procedure and status (completed, failed, canceled).",
                &["procedure", "status"],
            ),
            run_duration: Family::histogram(
                "ckp_run_duration_seconds",
                "Run duration from its first execution to its end (waits included), by status.",
                &["status"],
                LONG,
            ),
            node_duration: Family::histogram(
                "ckp_node_duration_seconds",
                "Node execution time, by node type.",
                &["node_type"],
                LONG,
            ),
            steps: Family::counter(
                "ckp_steps_total",
                "Steps ended, by action and result (completed, cached, failed).",
                &["action", "result"],
            ),
            step_retries: Family::counter("ckp_step_retries_total", "Step retries, by action.", &["action"]),
            llm_tokens: Family::counter(
                "ckp_llm_tokens_total",
                "LLM tokens, by model and type (prompt, completion).",
                &["model", "type"],
            ),
            llm_cost: Family::counter("ckp_llm_cost_usd_total", "LLM cost in US dollars, by model.", &["model"]),
            approvals_requested: Family::counter("ckp_approvals_requested_total", "Approvals requested.", &[]),
            approval_decisions: Family::counter(
                "ckp_approval_decisions_total",
                "Approval decisions, by decision (approved, rejected, ..., expired).",
                &["decision"],
            ),
            approval_wait: Family::histogram(
                "ckp_approval_wait_seconds",
                "Time from an approval's request to its decision.",
                &[],
                LONG,
            ),
            trigger_fires: Family::counter(
                "ckp_trigger_fires_total",
                "Trigger causes, by trigger type and outcome (started, skipped, duplicate, busy, disabled, \
                 rejected).",
                &["trigger_type", "outcome"],
            ),
            trigger_lag: Family::histogram(
                "ckp_trigger_lag_seconds",
                "Delay from a trigger's due time to its run's creation, by trigger type.",
                &["trigger_type"],
                LONG,
            ),
            executions: Family::counter(
                "ckp_executions_total",
                "Run executions by this process's workers, by how they stopped (completed, failed, canceled, \
                 waiting, sleeping, error).",
                &["outcome"],
            ),
            claim_duration: Family::histogram(
                "ckp_claim_duration_seconds",
                "Time a claim of queued jobs took.",
                &[],
                LATENCY,
            ),
            jobs_claimed: Family::counter("ckp_jobs_claimed_total", "Jobs claimed by this process.", &[]),
            commit_duration: Family::histogram(
                "ckp_commit_duration_seconds",
                "Time a run's commit took (write and, on SQLite, its group's fsync).",
                &[],
                LATENCY,
            ),
            commit_errors: Family::counter("ckp_commit_errors_total", "Run commits that failed.", &[]),
            workers: Family::gauge("ckp_workers", "Workers of this process.", &[]),
            workers_busy: Family::gauge("ckp_workers_busy", "Workers executing a run now.", &[]),
            sse_streams: Family::gauge("ckp_sse_streams_open", "Server-sent event streams open.", &[]),
            http_requests: Family::counter(
                "ckp_http_requests_total",
                "HTTP requests, by method, route (as declared, never the raw path) and status code.",
                &["method", "route", "status"],
            ),
            http_duration: Family::histogram(
                "ckp_http_request_duration_seconds",
                "HTTP request handling time (to the response head; streams end later), by route.",
                &["route"],
                LATENCY,
            ),
            alerts: Family::counter(
                "ckp_alerts_total",
                "Alert webhooks, by event and outcome (sent, failed, deduplicated, rate_limited, dropped).",
                &["event", "outcome"],
            ),
            db_gauges: tokio::sync::Mutex::new(None),
        }
    }

    /// A run was created (not a subflow child: those are seen at their commit).
    pub fn run_created(&self, procedure: &str, trigger: Option<&str>) {
        self.runs_created.with(&[procedure, trigger.unwrap_or("api")]).inc();
    }

    /// A run ended outside the engine (canceled by the store while no worker executed it).
    pub fn run_canceled(&self, procedure: &str) {
        self.runs_finished.with(&[procedure, "canceled"]).inc();
    }

    /// A worker starts executing a run.
    pub fn execution_started(&self) -> Busy<'_> {
        self.lo_run_started.with(&[]).inc();
        self.workers_busy.with(&[]).add(1.0);
        Busy(self)
    }

    /// A worker's execution stopped: `outcome` is how.
    pub fn execution_ended(&self, outcome: &str) {
        self.executions.with(&[outcome]).inc();
    }

    /// The process has `n` workers.
    pub fn set_workers(&self, n: usize) {
        self.workers.with(&[]).set(n as f64);
    }

    /// A claim took `took` and got `jobs`.
    pub fn claimed(&self, took: Duration, jobs: usize) {
        self.claim_duration.with(&[]).observe(took.as_secs_f64());
        self.jobs_claimed.with(&[]).add(jobs as f64);
    }

    /// A waiting approval (`approval`) or workflow callback (`workflow`) timed out.
    pub fn callback_timed_out(&self, kind: &str) {
        self.lo_callback_timeout.with(&[kind]).inc();
        if kind == "approval" {
            self.approval_decisions.with(&["expired"]).inc();
        }
    }

    /// An approval was decided `wait` after it was requested.
    pub fn approval_decided(&self, decision: &str, wait: Option<Duration>) {
        self.approval_decisions.with(&[decision]).inc();
        if let Some(wait) = wait {
            self.approval_wait.with(&[]).observe(wait.as_secs_f64());
        }
    }

    /// A trigger's cause ended as `outcome`; `lag` from its due time to the run's creation when it started one.
    pub fn trigger_fired(&self, trigger_type: &str, outcome: &str, lag: Option<Duration>) {
        self.trigger_fires.with(&[trigger_type, outcome]).inc();
        if let Some(lag) = lag {
            self.trigger_lag.with(&[trigger_type]).observe(lag.as_secs_f64());
            self.lo_trigger_lag.with(&[trigger_type]).observe(lag.as_secs_f64());
        }
    }

    /// An HTTP request to `route` answered `status` after `took`.
    pub fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.http_requests.with(&[method, route, &status.to_string()]).inc();
        self.http_duration.with(&[route]).observe(took.as_secs_f64());
    }

    /// An alert of `event` ended as `outcome`.
    pub fn alert(&self, event: &str, outcome: &str) {
        self.alerts.with(&[event, outcome]).inc();
    }

    /// An SSE stream opened; it counts as open until the guard drops.
    pub fn sse_opened(self: &Arc<Self>) -> SseOpen {
        self.sse_streams.with(&[]).add(1.0);
        SseOpen(self.clone())
    }

    /// Adds `value` to the custom metric `name` (capped at [`MAX_CUSTOM`] names).
    pub(super) fn custom(&self, name: &str, value: f64) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        let name = registry::sanitize_name(name);
        if let Ok(mut custom) = self.custom.lock() {
            if custom.len() >= MAX_CUSTOM && !custom.contains_key(&name) {
                return;
            }
            *custom.entry(name).or_default() += value;
        }
    }

    /// The exposition: every family of this process, and, when `store` says this process leads, the database
    /// gauges.
    pub async fn render(&self, store: &dyn Store) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let (leader, db) = match store.is_leader() {
            true => (true, self.db_gauges(store).await),
            false => (false, String::new()),
        };
        out.push_str("# HELP ckp_process_info This process: its id, version and whether it leads.\n");
        out.push_str("# TYPE ckp_process_info gauge\n");
        out.push_str(&format!(
            "ckp_process_info{{process=\"{}\",version=\"{}\",leader=\"{leader}\"}} 1\n",
            self.process,
            env!("CARGO_PKG_VERSION")
        ));
        out.push_str("# HELP ckp_process_start_time_seconds When this process started (Unix time).\n");
        out.push_str("# TYPE ckp_process_start_time_seconds gauge\n");
        out.push_str(&format!("ckp_process_start_time_seconds {}\n", self.started.timestamp()));
        for f in [
            &self.lo_run_started,
            &self.lo_run_completed,
            &self.lo_run_failures,
            &self.lo_retry_attempts,
            &self.lo_step_execution,
            &self.lo_step_timeout,
            &self.lo_callback_timeout,
            &self.lo_sla_breach,
        ] {
            f.render(&mut out);
        }
        self.lo_run_duration.render(&mut out);
        self.lo_trigger_lag.render(&mut out);
        if leader {
            self.lo_queue_depth.render(&mut out);
        }
        if let Ok(custom) = self.custom.lock() {
            for (name, value) in custom.iter() {
                out.push_str(&format!(
                    "# HELP langorch_{name} Custom metric (telemetry.custom_metrics).\n# TYPE langorch_{name} counter\n\
                     langorch_{name} {}\n",
                    registry::number(*value)
                ));
            }
        }
        for f in [
            &self.runs_created,
            &self.runs_finished,
            &self.steps,
            &self.step_retries,
            &self.llm_tokens,
            &self.llm_cost,
            &self.approvals_requested,
            &self.approval_decisions,
            &self.trigger_fires,
            &self.executions,
            &self.jobs_claimed,
            &self.commit_errors,
            &self.http_requests,
            &self.alerts,
        ] {
            f.render(&mut out);
        }
        for f in [
            &self.run_duration,
            &self.node_duration,
            &self.approval_wait,
            &self.trigger_lag,
            &self.claim_duration,
            &self.commit_duration,
            &self.http_duration,
        ] {
            f.render(&mut out);
        }
        for f in [&self.workers, &self.workers_busy, &self.sse_streams] {
            f.render(&mut out);
        }
        out.push_str(&db);
        out
    }

    /// The leader's gauges of the whole system, read from the database (reused for [`DB_GAUGES_TTL`]).
    async fn db_gauges(&self, store: &dyn Store) -> String {
        let mut cached = self.db_gauges.lock().await;
        if let Some((at, text)) = cached.as_ref()
            && at.elapsed() < DB_GAUGES_TTL
        {
            return text.clone();
        }
        let text = read_db_gauges(store, &self.lo_queue_depth).await;
        *cached = Some((Instant::now(), text.clone()));
        text
    }
}

/// Reads the system gauges; a query that fails leaves its family out of this scrape (and logs why).
async fn read_db_gauges(store: &dyn Store, lo_queue_depth: &Family<Gauge>) -> String {
    let mut out = String::new();
    let runs = Family::gauge("ckp_runs", "Runs by status, in the database (reported by the leader).", &["status"]);
    match store.run_counts().await {
        Ok(counts) => {
            for status in RunStatus::ALL {
                runs.with(&[status.as_str()]).set(0.0);
            }
            for (status, n) in counts {
                runs.with(&[status.as_str()]).set(n as f64);
            }
            runs.render(&mut out);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: reading run counts failed"),
    }
    match store.queue_stats().await {
        Ok(q) => {
            let jobs = Family::gauge(
                "ckp_queue_jobs",
                "Jobs of the run queue by state (queued: waiting for a worker or a timer; running: leased).",
                &["state"],
            );
            let mut queued = 0;
            for state in ["queued", "running"] {
                jobs.with(&[state]).set(0.0);
            }
            for (state, n) in q.depth_by_status {
                if state.as_str() != "done" {
                    jobs.with(&[state.as_str()]).set(n as f64);
                }
                if state.as_str() == "queued" {
                    queued = n;
                }
            }
            jobs.render(&mut out);
            lo_queue_depth.with(&["run_queue"]).set(queued as f64);
            let now = Utc::now();
            let ready: Vec<f64> = q
                .next_jobs
                .iter()
                .filter_map(|j| DateTime::parse_from_rfc3339(&j.available_at).ok())
                .map(|at| (now - at.with_timezone(&Utc)).num_milliseconds() as f64 / 1000.0)
                .filter(|age| *age >= 0.0)
                .collect();
            let wait = Family::gauge(
                "ckp_queue_ready_wait_seconds",
                "How long the longest-waiting ready job among the next 20 to be claimed has been ready (0 when \
                 none is ready).",
                &[],
            );
            wait.with(&[]).set(ready.iter().copied().fold(0.0, f64::max));
            wait.render(&mut out);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: reading the queue failed"),
    }
    match store.list_agents().await {
        Ok(agents) => {
            let by = Family::gauge(
                "ckp_agents",
                "Registered agents by channel and status (online, offline, busy, circuit_open).",
                &["channel", "status"],
            );
            for a in &agents {
                let status = if a.circuit_open_at.is_some() { "circuit_open" } else { a.status.as_str() };
                by.with(&[&a.channel, status]).add(1.0);
            }
            by.render(&mut out);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: reading agents failed"),
    }
    out
}

/// A worker busy with a run; not busy once dropped.
#[derive(Debug)]
pub struct Busy<'a>(&'a Metrics);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.workers_busy.with(&[]).add(-1.0);
    }
}

/// An open SSE stream; closed once dropped.
#[derive(Debug)]
pub struct SseOpen(Arc<Metrics>);

impl Drop for SseOpen {
    fn drop(&mut self) {
        self.0.sse_streams.with(&[]).add(-1.0);
    }
}

impl Metrics {
    /// Adds to `out` what event `e` of a run of `procedure` counts for once committed (the series resolved now).
    fn resolve(
        &self,
        procedure: &str,
        e: &Event,
        started_at: Option<chrono::DateTime<chrono::Utc>>,
        out: &mut Vec<journal::Counted>,
    ) {
        use journal::Counted::{Add, Custom, Histogram as Observe, Summary as Quantile};
        let text = |key: &str| e.get(key).as_str().unwrap_or_default();
        let num = |key: &str| e.get(key).as_f64().unwrap_or_default();
        let node_id = e.node_id.as_deref().unwrap_or_default();
        let step_id = e.step_id.as_deref().unwrap_or_default();
        let mut ended = |status: &'static str| {
            let seconds = started_at.map(|at| ((e.created_at - at).num_milliseconds().max(0) as f64) / 1000.0);
            out.push(Add(self.runs_finished.with(&[procedure, status]), 1.0));
            if let Some(secs) = seconds {
                out.push(Observe(self.run_duration.with(&[status]), secs));
            }
            if status != "canceled" {
                out.push(Add(self.lo_run_completed.with(&[status]), 1.0));
                if let Some(secs) = seconds {
                    out.push(Quantile(self.lo_run_duration.with(&[status]), secs));
                }
            }
            if status == "failed" {
                out.push(Add(self.lo_run_failures.with(&[]), 1.0));
            }
        };
        match e.event_type.as_str() {
            "run_created" if !e.get("parent_run_id").is_null() => {
                out.push(Add(self.runs_created.with(&[procedure, "subflow"]), 1.0));
            }
            "run_completed" => ended("completed"),
            "run_failed" => ended("failed"),
            "run_canceled" => ended("canceled"),
            "node_completed" => {
                if let Some(custom) = e.get("custom_metrics").as_object() {
                    for (name, v) in custom {
                        out.push(Custom(name.clone(), v.as_f64().unwrap_or(1.0)));
                    }
                }
                let node_type = journal::node_type(e.get("node_type"));
                out.push(Observe(self.node_duration.with(&[node_type]), num("duration_ms") / 1000.0));
            }
            "step_completed" => {
                let result = if e.get("cached") == &Value::Bool(true) { "cached" } else { "completed" };
                out.push(Add(self.steps.with(&[text("action"), result]), 1.0));
                out.push(Add(self.lo_step_execution.with(&[node_id, result]), 1.0));
            }
            "node_error" if !e.get("step_id").is_null() => {
                out.push(Add(self.steps.with(&[text("action"), "failed"]), 1.0));
                out.push(Add(self.lo_step_execution.with(&[node_id, "failed"]), 1.0));
            }
            "step_retrying" => {
                out.push(Add(self.lo_retry_attempts.with(&[node_id, step_id]), 1.0));
                out.push(Add(self.step_retries.with(&[text("action")]), 1.0));
            }
            "step_timeout" => out.push(Add(self.lo_step_timeout.with(&[node_id, step_id]), 1.0)),
            "llm_usage" => {
                let model = text("model");
                out.push(Add(self.llm_tokens.with(&[model, "prompt"]), num("prompt_tokens")));
                out.push(Add(self.llm_tokens.with(&[model, "completion"]), num("completion_tokens")));
                out.push(Add(self.llm_cost.with(&[model]), num("cost_usd")));
            }
            "sla_breached" => out.push(Add(self.lo_sla_breach.with(&[]), 1.0)),
            "approval_requested" => out.push(Add(self.approvals_requested.with(&[]), 1.0)),
            _ => {}
        }
    }

    /// A commit took `took`; whether it succeeded.
    fn committed(&self, took: Duration, ok: bool) {
        self.commit_duration.with(&[]).observe(took.as_secs_f64());
        if !ok {
            self.commit_errors.with(&[]).inc();
        }
    }
}
