//! Node execution: the wrapper every node goes through (lifecycle events, SLA, checkpoint marker) and one module
//! per node type. Nodes never commit directly except around external effects (`dispatch.rs`).

mod approval;
mod dispatch;
mod llm;
mod logic;
mod loop_;
mod parallel;
mod processing;
mod sequence;
mod subflow;
mod terminate;
mod transform;
mod verification;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ckp_core::procedure::{Kind, NodeIdx, OnBreach};
use serde_json::{Map, Value, json};

use crate::error::{ErrorKind, RunError};
use crate::events::payload;
use crate::journal::StepRecord;
use crate::ops::OpEnv;
use crate::run::{BoxFlow, Ctx, Flow, Runner};

impl Runner<'_> {
    /// Executes one node with its lifecycle events (langorch.md B §4.0; in loop bodies and parallel branches too,
    /// with `loop_index` / `branch_id`, A.2.7).
    pub(crate) fn exec_node<'a>(&'a self, ctx: &'a Ctx, vars: &'a mut Map<String, Value>, idx: NodeIdx) -> BoxFlow<'a> {
        Box::pin(async move {
            let node = self.p.node(idx);
            let (visit, entries, events) = self.visit(ctx, &node.id);
            let budget = self.entry_budget();
            if entries > budget {
                return Ok(Flow::Fail(RunError {
                    message: format!(
                        "the run entered {budget} nodes without ending (max_node_entries); check for a cycle that \
                         never exits, or raise global_config.max_node_entries (up to the server's max_node_entries)"
                    ),
                    node_id: Some(node.id.clone()),
                    step_id: None,
                    kind: ErrorKind::InternalError,
                }));
            }
            if events > self.config.max_events_per_run {
                return Ok(Flow::Fail(RunError {
                    message: format!(
                        "the run recorded {events} events, over the server's max_events_per_run ({}); check for a \
                         loop or cycle that never ends",
                        self.config.max_events_per_run
                    ),
                    node_id: Some(node.id.clone()),
                    step_id: None,
                    kind: ErrorKind::InternalError,
                }));
            }
            self.emit(
                ctx,
                "node_started",
                Some(&node.id),
                None,
                payload([("node_name", node.name.clone().into()), ("node_type", node.kind.type_name().into())]),
            );
            let started = self.effects.clock.now();
            if let (Some(rate), Kind::Sequence(_) | Kind::Llm(_) | Kind::Loop(_) | Kind::Parallel(_) | Kind::Subflow(_)) =
                (self.p.config.rate_limit, &node.kind)
                && let Some(per_minute) = rate.per_minute
            {
                match self.limiter.acquire(&self.p.id, per_minute, started) {
                    Some(0) => {}
                    Some(ms) => self.effects.clock.sleep(std::time::Duration::from_millis(ms)).await,
                    None => {
                        let e = RunError {
                            message: "Rate limit exceeded: max_requests_per_minute reached. Retry after a moment or increase global_config.rate_limiting.max_requests_per_minute.".into(),
                            node_id: Some(node.id.clone()),
                            step_id: None,
                            kind: ErrorKind::InternalError,
                        };
                        self.emit(
                            ctx,
                            "node_error",
                            Some(&node.id),
                            None,
                            json!({"error": e.message, "node_name": node.name}),
                        );
                        return Ok(Flow::Fail(e));
                    }
                }
            }
            let mut flow = match &node.kind {
                Kind::Sequence(s) => self.exec_sequence(ctx, vars, node, visit, s).await?,
                Kind::Logic(l) => self.exec_logic(vars, l),
                Kind::Loop(l) => self.exec_loop(ctx, vars, idx, node, l).await?,
                Kind::Parallel(par) => self.exec_parallel(ctx, vars, node, visit, par).await?,
                Kind::Processing(ops) => self.exec_processing(ctx, vars, node, visit, ops).await?,
                Kind::Verification(checks) => self.exec_verification(ctx, vars, node, checks),
                Kind::Transform(ts) => self.exec_transform(vars, node, ts),
                Kind::Llm(l) => self.exec_llm(ctx, vars, node, visit, l).await?,
                Kind::Terminate(t) => self.exec_terminate(ctx, vars, node, visit, t).await?,
                Kind::Approval(a) => self.exec_approval(ctx, vars, node, visit, a),
                Kind::Subflow(s) => self.exec_subflow(ctx, vars, node, visit, s).await?,
            };
            if let (Some(sla), Flow::Next(_) | Flow::End(_)) = (&node.sla, &flow) {
                let elapsed = (self.effects.clock.now() - started).num_milliseconds().max(0) as u64;
                if elapsed > sla.max_duration_ms {
                    let on_breach = match sla.on_breach {
                        OnBreach::Warn => "warn",
                        OnBreach::Fail => "fail",
                        OnBreach::Escalate => "escalate",
                    };
                    let handler = sla.escalation.map(|e| self.p.node(e).id.clone());
                    self.emit(
                        ctx,
                        "sla_breached",
                        Some(&node.id),
                        None,
                        json!({"elapsed_ms": elapsed, "limit_ms": sla.max_duration_ms, "on_breach": on_breach, "escalation_handler": handler}),
                    );
                    match sla.on_breach {
                        OnBreach::Warn => {}
                        OnBreach::Fail => {
                            flow = Flow::Fail(RunError {
                                message: format!(
                                    "SLA breach: node '{}' exceeded {}ms limit (took {elapsed}ms)",
                                    node.id, sla.max_duration_ms
                                ),
                                node_id: Some(node.id.clone()),
                                step_id: None,
                                kind: ErrorKind::Timeout,
                            });
                        }
                        OnBreach::Escalate => flow = Flow::Next(sla.escalation),
                    }
                }
            }
            match &flow {
                Flow::Next(_) | Flow::End(_) => {
                    // `node_type` and `duration_ms` (this execution's) feed metrics and the run's timeline.
                    let ms = (self.effects.clock.now() - started).num_milliseconds().max(0);
                    let mut done =
                        json!({"node_name": node.name, "node_type": node.kind.type_name(), "duration_ms": ms});
                    if !node.telemetry.custom_metrics.is_empty()
                        && let Value::Object(m) = &mut done
                    {
                        let custom: Map<String, Value> = node
                            .telemetry
                            .custom_metrics
                            .iter()
                            .map(|(name, v)| {
                                (name.clone(), v.clone().filter(Value::is_number).unwrap_or(Value::from(1)))
                            })
                            .collect();
                        m.insert("custom_metrics".into(), Value::Object(custom));
                    }
                    self.emit(ctx, "node_completed", Some(&node.id), None, done);
                    if node.is_checkpoint {
                        self.emit(
                            ctx,
                            "checkpoint_saved",
                            Some(&node.id),
                            None,
                            json!({"reason": "is_checkpoint", "node_id": node.id}),
                        );
                    }
                }
                Flow::Pause(_) => {
                    self.mark_pause(ctx);
                    self.emit(
                        ctx,
                        "node_paused",
                        Some(&node.id),
                        None,
                        json!({"reason": "awaiting_approval", "node_name": node.name}),
                    );
                }
                Flow::Fail(e) => {
                    let text: String = e.message.chars().take(500).collect();
                    let mut error = json!({"error": text, "node_name": node.name, "error_type": e.kind.as_str()});
                    // The step that failed the node, with its action (metrics count failed steps by action).
                    if let (Some(step_id), Kind::Sequence(seq), Value::Object(m)) = (&e.step_id, &node.kind, &mut error)
                        && let Some(step) = seq.steps.iter().find(|s| &s.id == step_id)
                    {
                        m.insert("step_id".into(), Value::from(step_id.as_str()));
                        m.insert("action".into(), Value::from(step.action_name.as_str()));
                    }
                    self.emit(ctx, "node_error", Some(&node.id), None, error);
                }
                Flow::Delegated(_) => {
                    self.mark_pause(ctx);
                    self.emit(
                        ctx,
                        "node_paused",
                        Some(&node.id),
                        None,
                        json!({"reason": "awaiting_workflow_callback", "node_name": node.name}),
                    );
                }
                Flow::Cancelled | Flow::Sleep(_) => {}
            }
            Ok(flow)
        })
    }

    /// The environment internal actions see: time and ids recorded as step records so that re-execution
    /// replays the same values; secrets prefetched by the caller.
    pub(crate) fn op_env<'s>(&'s self, key: String, secrets: HashMap<String, Option<String>>) -> RecordingEnv<'s> {
        RecordingEnv { runner: self, key, n: 0, secrets }
    }
}

/// See [`Runner::op_env`].
pub(crate) struct RecordingEnv<'s> {
    runner: &'s Runner<'s>,
    key: String,
    n: u32,
    secrets: HashMap<String, Option<String>>,
}

impl RecordingEnv<'_> {
    fn recorded(&mut self, make: impl FnOnce() -> Value) -> Value {
        self.n += 1;
        let key = format!("{}|env#{}", self.key, self.n);
        if let Some(StepRecord::Completed { result }) = self.runner.step_record(&key) {
            return result;
        }
        let value = make();
        self.runner.record_step(key, StepRecord::Completed { result: value.clone() });
        value
    }
}

impl OpEnv for RecordingEnv<'_> {
    fn now(&mut self) -> DateTime<Utc> {
        let clock = self.runner.effects.clock.clone();
        let v = self.recorded(|| Value::from(clock.now().to_rfc3339()));
        v.as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map_or_else(|| clock.now(), |d| d.with_timezone(&Utc))
    }

    fn new_id(&mut self) -> String {
        let v = self.recorded(|| Value::from(uuid::Uuid::new_v4().to_string()));
        v.as_str().map(str::to_owned).unwrap_or_default()
    }

    fn secret(&mut self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned().flatten()
    }

    fn max_variable_bytes(&self) -> usize {
        self.runner.config.max_variable_bytes
    }
}
