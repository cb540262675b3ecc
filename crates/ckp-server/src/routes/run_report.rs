//! A run's timeline (`GET /api/runs/{id}/timeline`: each node's start, end, duration, retries and the waits) and
//! its cost (`GET /api/runs/{id}/cost`: LLM tokens and dollars by node and model), both read from its committed
//! events, so they say what happened even across crashes and resumes.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use ckp_store::EventRow;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::{ApiResult, ErrorBody, Json};
use crate::routes::runs::visible_run;

/// Events read per page while building a report.
const PAGE: i64 = 10_000;

/// One execution of a node.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeSpan {
    /// Node id.
    pub node_id: String,
    /// Node name, when it has one.
    pub node_name: Option<String>,
    /// CKP node type (known once the node ended).
    pub node_type: Option<String>,
    /// `completed`, `failed`, `waiting` (paused at an approval or a callback) or `running`.
    pub status: String,
    /// When it started (UTC, RFC 3339).
    pub started_at: String,
    /// When it ended, if it did.
    pub ended_at: Option<String>,
    /// From start to end (or to now), waits included, in milliseconds.
    pub elapsed_ms: i64,
    /// Its last execution's own time (without the waits before it), in milliseconds, once it ended.
    pub execution_ms: Option<i64>,
    /// Step retries inside it.
    pub retries: u32,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// A wait for something outside the run.
#[derive(Debug, Serialize, ToSchema)]
pub struct Wait {
    /// `approval` or `workflow_callback`.
    pub kind: String,
    /// The node that waits.
    pub node_id: Option<String>,
    /// From.
    pub started_at: String,
    /// To, when it ended.
    pub ended_at: Option<String>,
    /// Its length so far, in milliseconds.
    pub elapsed_ms: i64,
}

/// `GET /api/runs/{run_id}/timeline`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    /// Run id.
    pub run_id: String,
    /// Run status.
    pub status: String,
    /// Created.
    pub created_at: String,
    /// First executed.
    pub started_at: Option<String>,
    /// Ended.
    pub ended_at: Option<String>,
    /// From creation to end (or to now), in milliseconds.
    pub elapsed_ms: i64,
    /// Node executions in the order they started (loop bodies and parallel branches included).
    pub nodes: Vec<NodeSpan>,
    /// Waits, in the order they started.
    pub waits: Vec<Wait>,
    /// Step retries in the whole run.
    pub retries: u32,
}

/// Each node's start, end and duration, its retries, and the run's waits, from the run's events.
#[utoipa::path(get, path = "/api/runs/{run_id}/timeline", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, body = Timeline), (status = 404, body = ErrorBody)))]
pub async fn timeline(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Timeline>> {
    let run = visible_run(&state, &who, Role::Viewer, &id).await?;
    let events = all_events(&state, &id).await?;
    let now = Utc::now();
    let mut t = Timeline {
        run_id: run.run_id.clone(),
        status: run.status.as_str().to_owned(),
        created_at: run.created_at.clone(),
        started_at: run.started_at.clone(),
        ended_at: run.ended_at.clone(),
        elapsed_ms: between(&run.created_at, run.ended_at.as_deref(), now),
        nodes: Vec::new(),
        waits: Vec::new(),
        retries: 0,
    };
    // Open executions by node id (a stack: a node inside a loop body runs again after it ended).
    let mut open: HashMap<String, Vec<usize>> = HashMap::new();
    let mut open_waits: HashMap<(String, String), usize> = HashMap::new();
    for e in &events {
        let node = e.node_id.clone().unwrap_or_default();
        let payload = payload(e);
        let text = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_owned);
        let last_open = |open: &HashMap<String, Vec<usize>>| open.get(&node).and_then(|v| v.last().copied());
        match e.event_type.as_str() {
            "node_started" => {
                t.nodes.push(NodeSpan {
                    node_id: node.clone(),
                    node_name: text("node_name"),
                    node_type: None,
                    status: "running".into(),
                    started_at: e.created_at.clone(),
                    ended_at: None,
                    elapsed_ms: 0,
                    execution_ms: None,
                    retries: 0,
                    error: None,
                });
                open.entry(node).or_default().push(t.nodes.len() - 1);
            }
            "node_completed" | "node_error" => {
                if let Some(i) = open.get_mut(&node).and_then(Vec::pop)
                    && let Some(span) = t.nodes.get_mut(i)
                {
                    span.ended_at = Some(e.created_at.clone());
                    span.node_type = text("node_type");
                    span.execution_ms = payload.get("duration_ms").and_then(Value::as_i64);
                    if e.event_type == "node_error" {
                        span.status = "failed".into();
                        span.error = text("error");
                    } else {
                        span.status = "completed".into();
                    }
                }
            }
            "node_paused" => {
                if let Some(span) = last_open(&open).and_then(|i| t.nodes.get_mut(i)) {
                    span.status = "waiting".into();
                }
            }
            "step_retrying" => {
                t.retries += 1;
                if let Some(span) = last_open(&open).and_then(|i| t.nodes.get_mut(i)) {
                    span.retries += 1;
                }
            }
            kind @ ("approval_requested" | "workflow_delegated") => {
                let kind = if kind == "approval_requested" { "approval" } else { "workflow_callback" };
                t.waits.push(Wait {
                    kind: kind.into(),
                    node_id: e.node_id.clone(),
                    started_at: e.created_at.clone(),
                    ended_at: None,
                    elapsed_ms: 0,
                });
                open_waits.insert((kind.to_owned(), node), t.waits.len() - 1);
            }
            kind @ ("approval_decision_received" | "workflow_callback_received" | "workflow_callback_timeout") => {
                let kind = if kind == "approval_decision_received" { "approval" } else { "workflow_callback" };
                if let Some(w) = open_waits.remove(&(kind.to_owned(), node)).and_then(|i| t.waits.get_mut(i)) {
                    w.ended_at = Some(e.created_at.clone());
                }
            }
            _ => {}
        }
    }
    for span in &mut t.nodes {
        span.elapsed_ms = between(&span.started_at, span.ended_at.as_deref(), now);
        if span.status == "running" && run.status.is_terminal() {
            // A node the run left without an end event (canceled while in it).
            span.status = run.status.as_str().to_owned();
        }
    }
    for w in &mut t.waits {
        w.elapsed_ms = between(&w.started_at, w.ended_at.as_deref(), now);
    }
    Ok(Json(t))
}

/// LLM usage of a node with one model.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Usage {
    /// LLM calls.
    pub calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost in US dollars (the server's price table).
    pub cost_usd: f64,
}

impl Usage {
    fn add(&mut self, prompt: u64, completion: u64, cost: f64) {
        self.calls += 1;
        self.prompt_tokens += prompt;
        self.completion_tokens += completion;
        self.cost_usd += cost;
    }
}

/// A node's usage with one model.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeCost {
    /// Node id.
    pub node_id: String,
    /// Model.
    pub model: String,
    /// Usage.
    #[serde(flatten)]
    pub usage: Usage,
}

/// A model's usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelCost {
    /// Model.
    pub model: String,
    /// Usage.
    #[serde(flatten)]
    pub usage: Usage,
}

/// `GET /api/runs/{run_id}/cost`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cost {
    /// Run id.
    pub run_id: String,
    /// The whole run.
    pub total: Usage,
    /// By node and model, in the order first used.
    pub by_node: Vec<NodeCost>,
    /// By model, most expensive first.
    pub by_model: Vec<ModelCost>,
}

/// LLM tokens and cost of a run, in total, by node and model, and by model (subflow children are runs of their
/// own: ask for theirs).
#[utoipa::path(get, path = "/api/runs/{run_id}/cost", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, body = Cost), (status = 404, body = ErrorBody)))]
pub async fn cost(State(state): State<AppState>, who: Principal, Path(id): Path<String>) -> ApiResult<Json<Cost>> {
    let run = visible_run(&state, &who, Role::Viewer, &id).await?;
    let mut total = Usage::default();
    let mut by_node: Vec<NodeCost> = Vec::new();
    let mut by_model: BTreeMap<String, Usage> = BTreeMap::new();
    for e in all_events(&state, &id).await?.iter().filter(|e| e.event_type == "llm_usage") {
        let p = payload(e);
        let model = p.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
        let tokens = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or_default();
        let (prompt, completion) = (tokens("prompt_tokens"), tokens("completion_tokens"));
        let dollars = p.get("cost_usd").and_then(Value::as_f64).unwrap_or_default();
        total.add(prompt, completion, dollars);
        by_model.entry(model.clone()).or_default().add(prompt, completion, dollars);
        let node_id = e.node_id.clone().unwrap_or_default();
        match by_node.iter_mut().find(|n| n.node_id == node_id && n.model == model) {
            Some(n) => n.usage.add(prompt, completion, dollars),
            None => {
                let mut usage = Usage::default();
                usage.add(prompt, completion, dollars);
                by_node.push(NodeCost { node_id, model, usage });
            }
        }
    }
    let mut by_model: Vec<ModelCost> = by_model.into_iter().map(|(model, usage)| ModelCost { model, usage }).collect();
    by_model.sort_by(|a, b| b.usage.cost_usd.total_cmp(&a.usage.cost_usd));
    Ok(Json(Cost { run_id: run.run_id, total, by_node, by_model }))
}

/// Every event of the run, oldest first (bounded by the server's `max_events_per_run`).
async fn all_events(state: &AppState, run_id: &str) -> ApiResult<Vec<EventRow>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = state.store.events_after(run_id, after, PAGE).await?;
        let full = page.len() as i64 == PAGE;
        after = page.last().map_or(after, |e| e.event_id);
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

fn payload(e: &EventRow) -> serde_json::Map<String, Value> {
    e.payload.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default()
}

/// Milliseconds from `from` to `to` (or to `now`); 0 when a time does not parse.
fn between(from: &str, to: Option<&str>, now: DateTime<Utc>) -> i64 {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|d| d.with_timezone(&Utc));
    let Some(from) = parse(from) else { return 0 };
    let to = to.and_then(parse).unwrap_or(now);
    (to - from).num_milliseconds().max(0)
}
