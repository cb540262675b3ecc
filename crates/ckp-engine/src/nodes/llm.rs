//! `llm_action`: one chat completion through the [`crate::effects::Llm`] effect, with retries, usage and cost
//! (`llm_usage` with readable token counts), the `max_cost_usd` budget, output mappings (A.2.9) and orchestration
//! mode (the model picks the next node among `branches`). The call is an external effect: intent and result are
//! committed around it.

use ckp_core::path::Scope;
use ckp_core::procedure::{AttachmentKind, Llm, Node, OutputMapping};
use serde_json::{Map, Value, json};

use crate::effects::{LlmAttachmentData, LlmRequest, LlmResponse};
use crate::error::{EngineError, ErrorKind, RunError, StepError};
use crate::journal::StepRecord;
use crate::nodes::dispatch::text_of;
use crate::run::{Ctx, Flow, Runner};

const ORCHESTRATION_INSTRUCTION: &str = "You are acting as a workflow orchestrator. Based on your analysis you MUST include a JSON field \"_next_node\" whose value is exactly one of: ";

impl Runner<'_> {
    pub(crate) async fn exec_llm(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        node: &Node,
        visit: u32,
        l: &Llm,
    ) -> Result<Flow, EngineError> {
        let fail = |e: StepError| {
            Flow::Fail(RunError { message: e.message, node_id: Some(node.id.clone()), step_id: None, kind: e.kind })
        };
        let mut system = l.system_prompt.as_ref().map(|t| t.render_text(vars));
        if let Some(branches) = &l.branches {
            let ids: Vec<&str> = branches.iter().map(|(id, _)| id.as_str()).collect();
            let instruction = format!(
                "{ORCHESTRATION_INSTRUCTION}{}. This field tells the runtime which step to execute next. Choose the most appropriate branch. Do not invent other branch names.",
                serde_json::to_string(&ids).unwrap_or_default()
            );
            system = Some(match system {
                Some(s) if !s.trim().is_empty() => format!("{s}\n\n{instruction}").trim().to_owned(),
                _ => instruction,
            });
        }
        let attachments = l
            .attachments
            .iter()
            .map(|a| LlmAttachmentData {
                kind: match a.kind {
                    AttachmentKind::Image => "image",
                    AttachmentKind::Csv => "csv",
                    AttachmentKind::Text => "text",
                    AttachmentKind::Json => "json",
                }
                .to_owned(),
                description: a.description.clone(),
                content: text_of(&a.source.render(vars as &dyn Scope)),
            })
            .collect();
        let request = LlmRequest {
            model: l.model.clone(),
            system_prompt: system,
            prompt: l.prompt.render_text(vars),
            temperature: l.temperature,
            max_tokens: l.max_tokens,
            json_mode: l.json_mode,
            attachments,
            run_id: self.run_id.clone(),
            node_id: node.id.clone(),
            traceparent: None,
        };
        let defaults = self.p.config.retry;
        let max_retries = l.retry.and_then(|r| r.max_retries).or(defaults.max_retries).unwrap_or(3);
        let delay = l.retry.and_then(|r| r.delay_ms).or(defaults.delay_ms).unwrap_or(1000);
        let multiplier = l.retry.and_then(|r| r.multiplier).or(defaults.multiplier).unwrap_or(2.0);
        let mut attempt = 0u32;
        let response = loop {
            let key = format!("{}|{}#{}|llm#{attempt}", ctx.thread, node.id, visit);
            let result = self.llm_call(&key, &request).await?;
            match result {
                Ok(r) => break r,
                Err(e) if attempt < max_retries => {
                    let wait = (delay as f64 * multiplier.powi(i32::try_from(attempt).unwrap_or(i32::MAX))) as u64;
                    attempt += 1;
                    self.emit(
                        ctx,
                        "step_retrying",
                        Some(&node.id),
                        None,
                        json!({"action": "llm_action", "attempt": attempt, "delay_ms": wait, "error": e.message}),
                    );
                    if let Some(until) = self.wait(&key, "backoff", wait).await {
                        return Ok(Flow::Sleep(until));
                    }
                }
                Err(e) => return Ok(fail(e)),
            }
        };
        let cost = self.config.prices.cost_usd(&response.model, response.prompt_tokens, response.completion_tokens);
        let total = {
            let mut core = self.core();
            core.usage.prompt_tokens += response.prompt_tokens;
            core.usage.completion_tokens += response.completion_tokens;
            core.usage.cost_usd += cost;
            core.usage.cost_usd
        };
        self.emit(
            ctx,
            "llm_usage",
            Some(&node.id),
            None,
            json!({"model": response.model, "prompt_tokens": response.prompt_tokens, "completion_tokens": response.completion_tokens,
                   "total_tokens": response.prompt_tokens + response.completion_tokens, "cost_usd": cost, "run_cost_usd": total}),
        );
        if let Some(max) = self.p.config.max_cost_usd
            && total > max
        {
            let message =
                format!("LLM budget exceeded: cumulative cost ${total:.4} > max_cost_usd={max} (node={})", node.id);
            self.emit(ctx, "budget_exceeded", Some(&node.id), None, json!({"message": message}));
            return Ok(fail(StepError::new(ErrorKind::BudgetExceeded, message)));
        }
        let parsed: Option<Value> =
            serde_json::from_str(response.text.trim()).ok().or_else(|| extract_json(&response.text));
        if l.outputs.is_empty() {
            let value = Value::from(response.text.as_str());
            if let Err(message) = self.var_fits("llm_output", &value) {
                return Ok(fail(StepError::new(ErrorKind::ValidationError, message)));
            }
            vars.insert("llm_output".into(), value);
        }
        for (var, mapping) in &l.outputs {
            let value = match mapping {
                OutputMapping::Text => Value::from(response.text.as_str()),
                OutputMapping::JsonKey(k) => match &parsed {
                    Some(Value::Object(m)) => m.get(k).cloned().unwrap_or(Value::Null),
                    Some(_) => Value::Null,
                    None => Value::from(response.text.as_str()),
                },
                OutputMapping::JsonPath(path) => match &parsed {
                    Some(Value::Object(m)) => path.resolve(m).map(std::borrow::Cow::into_owned).unwrap_or(Value::Null),
                    _ => Value::Null,
                },
                OutputMapping::Regex(re) => re
                    .search
                    .captures(&response.text)
                    .and_then(|c| c.get(1).or_else(|| c.get(0)))
                    .map_or(Value::Null, |m| Value::from(m.as_str())),
            };
            if let Err(message) = self.var_fits(var, &value) {
                return Ok(fail(StepError::new(ErrorKind::ValidationError, message)));
            }
            vars.insert(var.clone(), value);
        }
        if let Some(branches) = &l.branches {
            let chosen = parsed.as_ref().and_then(|p| p.get("_next_node")).and_then(Value::as_str);
            let target =
                branches.iter().find(|(id, _)| Some(id.as_str()) == chosen).or(branches.first()).map(|(_, t)| *t);
            return Ok(Flow::Next(target));
        }
        Ok(Flow::Next(node.next))
    }

    /// One LLM call between two commit points (a committed result is replayed, never requested again).
    async fn llm_call(&self, key: &str, request: &LlmRequest) -> Result<Result<LlmResponse, StepError>, EngineError> {
        match self.step_record(key) {
            Some(StepRecord::Completed { result }) => {
                return Ok(serde_json::from_value(result).map_err(|e| {
                    StepError::new(ErrorKind::InternalError, format!("stored LLM result unreadable: {e}"))
                }));
            }
            Some(StepRecord::Failed { error }) => return Ok(Err(error)),
            Some(StepRecord::Started { .. }) => {}
            None => {
                self.record_step(
                    key.to_owned(),
                    StepRecord::Started { idempotency_key: format!("{}:{key}", self.run_id) },
                );
                self.commit_mid_node().await?;
            }
        }
        let _permit = match &self.ops_limit {
            Some(limit) => limit.acquire().await.ok(),
            None => None,
        };
        let result = match &self.effects.llm {
            Some(llm) => {
                // Asked now: the intent's commit made the node's span known.
                let traceparent = self.traceparent(&request.node_id, "");
                llm.complete(LlmRequest { traceparent, ..request.clone() }).await
            }
            None => Err(StepError::new(
                ErrorKind::LlmError,
                "no LLM is configured; set one up (see the README) to run llm_action nodes",
            )),
        };
        let record = match &result {
            Ok(r) => StepRecord::Completed { result: serde_json::to_value(r).unwrap_or(Value::Null) },
            Err(e) => {
                // Logged once, where the failure is new (a replayed one comes from its record above).
                tracing::warn!(run_id = %self.run_id, procedure_id = %self.p.id, node_id = %request.node_id,
                    model = request.model.as_deref(), error_kind = e.kind.as_str(), error = %e.message,
                    "LLM call failed");
                StepRecord::Failed { error: e.clone() }
            }
        };
        self.record_step(key.to_owned(), record);
        self.commit_mid_node().await?;
        Ok(result)
    }
}

/// The first JSON object inside a text (models often wrap JSON in prose or code fences).
fn extract_json(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    serde_json::from_str(text.get(start..=end)?).ok()
}
