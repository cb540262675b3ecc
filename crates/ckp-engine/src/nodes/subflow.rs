//! `subflow`: another procedure as a child run (A.2.12). The child's run id is derived from the parent's run, thread,
//! node and visit, so re-execution finds the same child; its result is recorded as a step record of the parent.
//! A child that pauses for approval pauses the parent (decisions are routed to the child by key); the child
//! emits its events under its own run id, the parent `subflow_started/completed/failed` with the child's run id.

use ckp_core::procedure::{InputSource, Node, Subflow, SubflowFailure};
use serde_json::{Map, Value, json};

use crate::engine::RunOutcome;
use crate::error::{EngineError, ErrorKind, RunError, StepError};
use crate::journal::{PendingApproval, StepRecord};
use crate::run::{Ctx, Flow, Runner};

impl Runner<'_> {
    pub(crate) async fn exec_subflow(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        node: &Node,
        visit: u32,
        s: &Subflow,
    ) -> Result<Flow, EngineError> {
        let key = format!("{}|{}#{}|subflow", ctx.thread, node.id, visit);
        let child_run = format!("{}:{}{}#{}", self.run_id, ctx.thread.replace(['|', '>'], "_"), node.id, visit);
        let version = s.version.as_deref();
        let fail = |message: String, kind: ErrorKind| {
            Flow::Fail(RunError { message, node_id: Some(node.id.clone()), step_id: None, kind })
        };
        let outcome = match self.step_record(&key) {
            Some(StepRecord::Completed { result }) => Ok(result),
            Some(StepRecord::Failed { error }) => Err(error),
            _ => {
                let mut stack = self.core().base.call_stack.clone();
                stack.push(self.p.id.clone());
                if stack.contains(&s.procedure_id) {
                    return Ok(fail(
                        format!("Recursive subflow detected: '{}' is already in the call stack", s.procedure_id),
                        ErrorKind::ValidationError,
                    ));
                }
                let Some(child) = self.engine.find_procedure(&s.procedure_id, version).await else {
                    return Ok(fail(
                        format!("Subflow procedure not found: {}:{}", s.procedure_id, version.unwrap_or("latest")),
                        ErrorKind::ValidationError,
                    ));
                };
                let mut inputs = if s.inherit_context { vars.clone() } else { Map::new() };
                for (name, source) in &s.input_mapping {
                    let value = match source {
                        InputSource::VarOrTemplate(text, t) => {
                            vars.get(text).cloned().unwrap_or_else(|| t.render(vars))
                        }
                        InputSource::Literal(v) => v.clone(),
                    };
                    inputs.insert(name.clone(), value);
                }
                self.emit(
                    ctx,
                    "subflow_started",
                    Some(&node.id),
                    None,
                    json!({"procedure_id": s.procedure_id, "version": child.version, "child_run_id": child_run}),
                );
                let mut first =
                    self.engine.run_child(child.clone(), child_run.clone(), inputs.clone(), stack.clone()).await?;
                if s.on_failure == SubflowFailure::Retry && matches!(first, RunOutcome::Failed { .. }) {
                    // `retry`: one more child run (a fresh run id), then the parent fails if it fails again.
                    first = self.engine.run_child(child.clone(), format!("{child_run}~retry"), inputs, stack).await?;
                }
                match first {
                    RunOutcome::Completed { outputs } => {
                        let result = Value::Object(outputs);
                        self.record_step(key.clone(), StepRecord::Completed { result: result.clone() });
                        self.commit_mid_node().await?;
                        Ok(result)
                    }
                    RunOutcome::Failed { error } => {
                        let e = StepError::new(error.kind, error.message);
                        self.record_step(key.clone(), StepRecord::Failed { error: e.clone() });
                        self.commit_mid_node().await?;
                        Err(e)
                    }
                    RunOutcome::WaitingApproval(pending) => {
                        let mapped = pending
                            .into_iter()
                            .map(|a| PendingApproval { key: format!("{child_run}>{}", a.key), ..a })
                            .collect();
                        self.mark_pause(ctx);
                        return Ok(Flow::Pause(mapped));
                    }
                    RunOutcome::Sleeping { until } => return Ok(Flow::Sleep(until)),
                    RunOutcome::Cancelled => return Ok(Flow::Cancelled),
                    // Agents refuse async workflow dispatch in child runs, so a child never waits for a callback.
                    RunOutcome::AwaitingCallback(_) => Err(StepError::new(
                        ErrorKind::ValidationError,
                        "a subflow's child run cannot wait for a workflow callback; use workflow_dispatch_mode: sync",
                    )),
                }
            }
        };
        match outcome {
            Ok(Value::Object(child_vars)) => {
                self.emit(
                    ctx,
                    "subflow_completed",
                    Some(&node.id),
                    None,
                    json!({"procedure_id": s.procedure_id, "version": version, "child_run_id": child_run}),
                );
                let outputs: Vec<(String, Value)> = if s.output_mapping.is_empty() {
                    vec![("subflow_output".into(), Value::Object(child_vars))]
                } else {
                    s.output_mapping
                        .iter()
                        .map(|(parent_var, child_var)| {
                            let value = match child_var {
                                Value::String(name) => child_vars.get(name).cloned().unwrap_or(Value::Null),
                                other => other.clone(),
                            };
                            (parent_var.clone(), value)
                        })
                        .collect()
                };
                if let Some(message) = outputs.iter().find_map(|(name, v)| self.var_fits(name, v).err()) {
                    return Ok(fail(message, ErrorKind::ValidationError));
                }
                vars.extend(outputs);
                Ok(Flow::Next(node.next))
            }
            Ok(_) => Ok(Flow::Next(node.next)),
            Err(e) => {
                let on_failure = match s.on_failure {
                    SubflowFailure::FailParent => "fail_parent",
                    SubflowFailure::Continue => "continue",
                    SubflowFailure::Retry => "retry",
                };
                self.emit(
                    ctx,
                    "subflow_failed",
                    Some(&node.id),
                    None,
                    json!({"procedure_id": s.procedure_id, "version": version, "on_failure": on_failure, "error": e.message, "child_run_id": child_run}),
                );
                if s.on_failure == SubflowFailure::Continue {
                    return Ok(Flow::Next(node.next));
                }
                Ok(fail(format!("Subflow execution failed: {}", e.message), e.kind))
            }
        }
    }
}
