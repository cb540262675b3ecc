//! One attempt of one step: internal actions run here; external ones (agent, MCP, the built-in HTTP executor)
//! are dispatched between two commit points — the intent with its idempotency key before the call, the result
//! after — so a committed result is never requested again and an uncommitted one is re-requested with the same
//! key (DESIGN §3). Dry runs, mocks and test data overrides short-circuit dispatch (langorch.md B §5.3).

use std::collections::HashMap;
use std::time::Duration;

use ckp_core::path::to_text;
use ckp_core::procedure::{Action, DispatchMode, ExecutionMode, Kind, Node, Step};
use ckp_core::template::Secrets as TemplateSecrets;
use serde_json::{Map, Value, json};

use crate::effects::{AgentReply, AgentRequest, HttpRequest, McpCall, WorkflowDispatch, dispatch_mode_name};
use crate::error::{EngineError, ErrorKind, StepError};
use crate::journal::{PendingCallback, StepRecord};
use crate::ops::{OpErrorKind, run_internal};
use crate::run::{Ctx, Runner};

/// Text form of a value (strings as-is, others compact JSON).
pub(crate) fn text_of(v: &Value) -> String {
    to_text(v).into_owned()
}

/// What one dispatch resolved: secret values and grant tokens by name.
#[derive(Default)]
struct Fetched {
    values: HashMap<String, String>,
    grants: HashMap<String, String>,
}

impl TemplateSecrets for Fetched {
    fn secret(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned()
    }

    fn grant(&self, name: &str) -> Option<String> {
        self.grants.get(name).cloned()
    }
}

/// Names one attempt of a step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt<'a> {
    /// The attempt's step record.
    pub record: &'a str,
    /// The execution of the step the attempt belongs to: the same for every retry of it, new for a loop
    /// iteration, a revisit, or a node retried after a failed validation. The default `Idempotency-Key` is
    /// derived from it, so an agent that did the work but whose answer was lost sees the retry under the key it
    /// already applied.
    pub execution: &'a str,
    /// 0 for the first attempt, then 1, 2... for retries.
    pub attempt: u32,
    /// Whether the attempt may wait (a durable timer) for an agent of its channel to come online; a recovery step
    /// fails at once instead.
    pub may_wait: bool,
}

/// How often a step waiting for an agent looks again (a durable timer each time).
pub(crate) const AGENT_POLL_MS: i64 = 2_000;

impl Runner<'_> {
    /// Waits `ms`: in-process when short, else a durable timer (returns when to come back).
    pub(crate) async fn wait(&self, key: &str, label: &str, ms: u64) -> Option<chrono::DateTime<chrono::Utc>> {
        if ms == 0 {
            return None;
        }
        if ms <= self.config.inline_wait_ms {
            self.effects.clock.sleep(Duration::from_millis(ms)).await;
            return None;
        }
        let tkey = format!("{key}|{label}");
        let now = self.effects.clock.now();
        let until = match self.step_record(&tkey) {
            Some(StepRecord::Completed { result }) => result
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&chrono::Utc)),
            _ => None,
        };
        match until {
            Some(u) if now >= u => None,
            Some(u) => Some(u),
            None => {
                let u = now + chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2));
                self.record_step(tkey, StepRecord::Completed { result: Value::from(u.to_rfc3339()) });
                Some(u)
            }
        }
    }

    /// One attempt of a step: `step_started`, then the action. Returns the result or the step error.
    pub(crate) async fn attempt_step(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        node: &Node,
        step: &Step,
        at: Attempt<'_>,
    ) -> Result<Result<Option<Value>, StepError>, EngineError> {
        if (self.cancelled)() {
            return Ok(Err(StepError::new(ErrorKind::Cancelled, "run cancelled")));
        }
        let params = match step.params.render(vars) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        self.emit(ctx, "step_started", Some(&node.id), Some(&step.id), json!({"action": step.action_name}));
        let result = match &step.action {
            Action::Internal(action) => {
                let secrets = self.prefetch_op_secrets(*action, &params).await;
                let mut env = self.op_env(at.record.to_owned(), secrets);
                match run_internal(*action, &params, step.schema.as_ref(), step.pattern.as_ref(), vars, &mut env) {
                    Ok(mut outcome) => {
                        let value = outcome.value.take();
                        self.apply_outcome(ctx, vars, &node.id, Some(&step.id), None, outcome).await?;
                        Ok(Ok(value))
                    }
                    Err(e) => {
                        let kind = match e.kind {
                            OpErrorKind::Validation => ErrorKind::ValidationError,
                            _ => ErrorKind::InternalError,
                        };
                        Ok(Err(StepError::new(kind, format!("{} failed: {}", step.action_name, e.message))))
                    }
                }
            }
            Action::External | Action::Mcp { .. } => self.dispatch(ctx, vars, node, step, params, at).await,
        };
        // The result goes to `output_variable`: a result over the variable cap fails the step before it is written.
        if let (Ok(Ok(Some(value))), Some(name)) = (&result, &step.output_variable)
            && let Err(message) = self.var_fits(name, value)
        {
            return Ok(Err(StepError::new(ErrorKind::ValidationError, message)));
        }
        result
    }

    async fn dispatch(
        &self,
        ctx: &Ctx,
        vars: &Map<String, Value>,
        node: &Node,
        step: &Step,
        params: Map<String, Value>,
        at: Attempt<'_>,
    ) -> Result<Result<Option<Value>, StepError>, EngineError> {
        let key = at.record;
        let binding = match (&step.action, &node.channel) {
            (Action::Mcp { server, tool }, _) => format!("mcp_tool:{server}/{tool}"),
            (_, Some(channel)) => format!("agent_http:{channel}"),
            _ => "http".to_owned(),
        };
        let config = &self.p.config;
        if let Some(v) = config.test_data_overrides.get(&step.id).filter(|_| !step.id.is_empty()) {
            self.emit(
                ctx,
                "step_test_override_applied",
                Some(&node.id),
                Some(&step.id),
                json!({"step_id": step.id, "override": v}),
            );
            return Ok(Ok(Some(v.clone())));
        }
        if config.execution_mode == ExecutionMode::DryRun {
            self.emit(
                ctx,
                "dry_run_step_skipped",
                Some(&node.id),
                Some(&step.id),
                json!({"action": step.action_name, "binding": binding, "ref": step.id}),
            );
            return Ok(Ok(Some(json!({"dry_run": true, "skipped_action": step.action_name, "binding": binding}))));
        }
        if config.mock_external_calls || self.config.mock_external {
            self.emit(
                ctx,
                "step_mock_applied",
                Some(&node.id),
                Some(&step.id),
                json!({"action": step.action_name, "binding": binding, "ref": step.id}),
            );
            return Ok(Ok(Some(json!({"mocked": true, "action": step.action_name, "binding": binding}))));
        }
        // A re-execution of an attempt that waited for an agent emits its wait event again (replayed, not shown
        // twice), whether its result is recorded or not, so the events after it keep their places.
        let wait_key = format!("{key}|agent_wait");
        let waited = self.agent_wait_until(&wait_key);
        if let Some(until) = waited {
            self.emit_agent_wait(ctx, node, step, until);
        }
        let idempotency_key = match self.step_record(key) {
            Some(StepRecord::Completed { result }) => return Ok(Ok(Some(result))),
            Some(StepRecord::Failed { error }) => return Ok(Err(error)),
            Some(StepRecord::Started { idempotency_key }) => idempotency_key,
            None => {
                let ik = step
                    .idempotency_key
                    .as_ref()
                    .map(|t| t.render_text(vars))
                    .filter(|k| !k.is_empty())
                    .unwrap_or_else(|| format!("{}:{}", self.run_id, at.execution));
                self.record_step(key.to_owned(), StepRecord::Started { idempotency_key: ik.clone() });
                self.commit_mid_node().await?;
                ik
            }
        };
        let workflow = self.workflow_dispatch(node, step, &params);
        let (params, secret_values) = match self.with_secrets(vars, step, params).await {
            Ok(resolved) => resolved,
            Err(e) => {
                self.record_step(key.to_owned(), StepRecord::Failed { error: e.clone() });
                self.commit_mid_node().await?;
                return Ok(Err(e));
            }
        };
        let timeout = step.timeout_ms.map(Duration::from_millis);
        let _permit = match &self.ops_limit {
            Some(limit) => limit.acquire().await.ok(),
            None => None,
        };
        let call = self.call_executor(node, step, params, &idempotency_key, timeout, workflow);
        let result = match timeout {
            Some(limit) => match tokio::time::timeout(limit, call).await {
                Ok(r) => r,
                Err(_) => {
                    self.emit(
                        ctx,
                        "step_timeout",
                        Some(&node.id),
                        Some(&step.id),
                        json!({"timeout_ms": step.timeout_ms, "action": step.action_name, "binding": binding}),
                    );
                    Err(StepError::new(
                        ErrorKind::Timeout,
                        format!("Step {} timed out after {}ms", step.id, step.timeout_ms.unwrap_or(0)),
                    ))
                }
            },
            None => call.await,
        };
        let result = match result {
            Ok(AgentReply::Done(v)) => Ok(v),
            Err(e) => Err(e),
            Ok(AgentReply::Delegated { agent_url, callback_url }) => {
                self.delegate(ctx, node, step, key, agent_url, callback_url);
                return Ok(Ok(None));
            }
            Ok(AgentReply::NoneOnline { message }) => {
                let now = self.effects.clock.now();
                let bound = i64::try_from(self.config.agent_wait_ms).unwrap_or(i64::MAX / 2);
                let until = match waited {
                    Some(until) => until,
                    None if at.may_wait && bound > 0 => {
                        let until = now + chrono::Duration::milliseconds(bound);
                        self.record_step(wait_key, StepRecord::Completed { result: Value::from(until.to_rfc3339()) });
                        self.emit_agent_wait(ctx, node, step, until);
                        until
                    }
                    None => now,
                };
                if now < until {
                    let next = (now + chrono::Duration::milliseconds(AGENT_POLL_MS)).min(until);
                    self.core().agent_waits.insert(key.to_owned(), next);
                    return Ok(Ok(None));
                }
                match waited {
                    Some(_) => Err(StepError::new(
                        ErrorKind::AgentUnavailable,
                        format!("{message}; none came online within {} ms", self.config.agent_wait_ms),
                    )),
                    None => Err(StepError::new(ErrorKind::AgentUnavailable, message)),
                }
            }
        };
        let mut result = result;
        // Whatever the executor echoed of a secret is masked before it is recorded, emitted or committed.
        let needles = crate::redact::needles(secret_values);
        match &mut result {
            Ok(v) => crate::redact::value(v, &needles),
            Err(e) => {
                e.message = crate::redact::text(&e.message, &needles);
                e.code = e.code.as_deref().map(|c| crate::redact::text(c, &needles));
            }
        }
        let record = match &result {
            Ok(v) => StepRecord::Completed { result: v.clone() },
            Err(e) => {
                // Logged once, here, where the failure is new (a replayed failure comes from its record above);
                // the step's retries, handlers or the run's failure follow from it. Secrets are masked already.
                tracing::warn!(run_id = %self.run_id, procedure_id = %self.p.id, node_id = %node.id,
                    step_id = %step.id, action = %step.action_name, agent = %binding, attempt = at.attempt,
                    error_kind = e.kind.as_str(), error = %e.message, "step attempt failed");
                StepRecord::Failed { error: e.clone() }
            }
        };
        self.record_step(key.to_owned(), record);
        self.commit_mid_node().await?;
        Ok(result.map(Some))
    }

    /// Re-renders the parameters with `{{secrets.*}}` resolved through the run's provider and `{{secret_grants.*}}`
    /// as freshly issued grant tokens, only for the call (A.3); also returns the values and tokens (and the values
    /// the tokens grant), so that the step's result and error can be redacted. A provider failure, or a runner that issues no grants, fails the
    /// step (its message names the secret, never a value); an unknown secret stays literal text.
    async fn with_secrets(
        &self,
        vars: &Map<String, Value>,
        step: &Step,
        params: Map<String, Value>,
    ) -> Result<(Map<String, Value>, Vec<String>), StepError> {
        let (mut names, mut grants) = (Vec::new(), Vec::new());
        step.params.visit_placeholders(&mut |_, p| {
            for (name, list) in [(p.secret_name(), &mut names), (p.secret_grant_name(), &mut grants)] {
                if let Some(n) = name
                    && !list.iter().any(|m| m == n)
                {
                    list.push(n.to_owned());
                }
            }
        });
        if names.is_empty() && grants.is_empty() {
            return Ok((params, Vec::new()));
        }
        let Some(source) = self.effects.secrets.as_ref() else {
            return Ok((params, Vec::new()));
        };
        let scope = crate::effects::SecretScope { run_id: &self.run_id, config: self.p.config.secrets.as_ref() };
        let mut fetched = Fetched::default();
        for name in names {
            if let Some(v) = source.get(scope, &name).await? {
                fetched.values.insert(name, v);
            }
        }
        let now = self.effects.clock.now();
        let mut redact = Vec::new();
        for name in grants {
            let token = source.grant(scope, &name, now)?;
            fetched.grants.insert(name.clone(), token);
            // The executor may echo what it obtained with the token: its value is masked like a `{{secrets.*}}`
            // one. A provider failure here only means there is nothing to mask (the exchange will fail too).
            if !fetched.values.contains_key(&name)
                && let Ok(Some(v)) = source.get(scope, &name).await
            {
                redact.push(v);
            }
        }
        let rendered = match step.params.render_with_secrets(vars, &fetched) {
            Value::Object(m) => m,
            _ => params,
        };
        redact.extend(fetched.values.into_values().chain(fetched.grants.into_values()));
        Ok((rendered, redact))
    }

    /// The workflow side of an agent request: the mode (step, node, `global_config`, else async) and
    /// `_workflow_context` (langorch.md B §5.14: the node's steps with their params as written).
    fn workflow_dispatch(&self, node: &Node, step: &Step, params: &Map<String, Value>) -> WorkflowDispatch {
        let mode =
            step.dispatch_mode.or(node.dispatch_mode).or(self.p.config.dispatch_mode).unwrap_or(DispatchMode::Async);
        let steps: &[Step] = match &node.kind {
            Kind::Sequence(s) => &s.steps,
            _ => std::slice::from_ref(step),
        };
        let node_steps: Vec<Value> = steps
            .iter()
            .map(|s| {
                json!({"step_id": s.id, "action": s.action_name, "params": s.raw_params, "timeout_ms": s.timeout_ms,
                       "wait_ms": s.wait_ms, "wait_after_ms": s.wait_after_ms,
                       "workflow_dispatch_mode": s.dispatch_mode.map(dispatch_mode_name),
                       "output_variable": s.output_variable})
            })
            .collect();
        let context = json!({"dispatch_mode": dispatch_mode_name(mode), "channel": node.agent, "run_id": self.run_id,
                             "procedure_id": self.p.id, "node_id": node.id, "current_step_id": step.id,
                             "current_step_action": step.action_name, "current_step_params": params,
                             "node_steps": node_steps});
        WorkflowDispatch { mode, context, allow_async: self.core().base.call_stack.is_empty() }
    }

    /// An async workflow took the step: `workflow_delegated`, and the step waits for its callback. Its record stays
    /// `started` until the callback writes the result there.
    fn delegate(&self, ctx: &Ctx, node: &Node, step: &Step, key: &str, agent_url: String, callback_url: String) {
        let now = self.effects.clock.now();
        let minutes = self.config.callback_timeout_minutes;
        let ms = (minutes * 60_000.0).round().clamp(1.0, 1e15) as i64;
        let pending = PendingCallback {
            key: key.to_owned(),
            node_id: node.id.clone(),
            step_id: step.id.clone(),
            action: step.action_name.clone(),
            delegated_at: now,
            timeout_at: now + chrono::Duration::milliseconds(ms),
            timeout_minutes: minutes,
        };
        self.mark_pause(ctx);
        self.emit(
            ctx,
            "workflow_delegated",
            Some(&node.id),
            Some(&step.id),
            json!({"action": step.action_name, "agent_url": agent_url, "callback_url": callback_url,
                   "resume_node_id": node.id, "resume_step_id": step.id, "dispatch_mode": "async",
                   "timeout_at": pending.timeout_at.to_rfc3339()}),
        );
        self.core().delegated.insert(key.to_owned(), pending);
    }

    /// When the wait for an agent recorded under `wait_key` ends, if the attempt waited.
    fn agent_wait_until(&self, wait_key: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.step_record(wait_key) {
            Some(StepRecord::Completed { result }) => result
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&chrono::Utc)),
            _ => None,
        }
    }

    /// `step_waiting_for_agent`: the step waits (until `until` at most) for an agent of its channel.
    fn emit_agent_wait(&self, ctx: &Ctx, node: &Node, step: &Step, until: chrono::DateTime<chrono::Utc>) {
        let channel = node.channel.as_deref().unwrap_or_default();
        self.emit(
            ctx,
            "step_waiting_for_agent",
            Some(&node.id),
            Some(&step.id),
            json!({"action": step.action_name, "channel": channel, "until": until.to_rfc3339(),
                   "message": format!("waiting for an agent on channel '{channel}' to come online")}),
        );
    }

    /// When the step attempt `key` looks again for an agent, if its dispatch just found none online.
    pub(crate) fn take_agent_wait(&self, key: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        self.core().agent_waits.remove(key)
    }

    /// Takes the delegation of the step attempt `key`, if its dispatch was just delegated.
    pub(crate) fn take_delegated(&self, key: &str) -> Option<PendingCallback> {
        self.core().delegated.remove(key)
    }

    async fn call_executor(
        &self,
        node: &Node,
        step: &Step,
        params: Map<String, Value>,
        idempotency_key: &str,
        timeout: Option<Duration>,
        workflow: WorkflowDispatch,
    ) -> Result<AgentReply, StepError> {
        if let Action::Mcp { server, tool } = &step.action {
            return match &self.effects.mcp {
                Some(mcp) => mcp
                    .call_tool(McpCall {
                        server: server.clone(),
                        tool: tool.clone(),
                        arguments: params,
                        declared: self.p.config.mcp_servers.get(server).cloned(),
                        run_id: self.run_id.clone(),
                        node_id: node.id.clone(),
                        step_id: step.id.clone(),
                        traceparent: self.traceparent(&node.id, &step.id),
                    })
                    .await
                    .map(AgentReply::Done),
                None => Err(StepError::new(
                    ErrorKind::McpError,
                    format!("MCP server `{server}` is not configured, so tool `{tool}` cannot be called"),
                )),
            };
        }
        let mut agent_error = None;
        let mut none_online = None;
        if let Some(channel) = &node.channel {
            let req = AgentRequest {
                channel: channel.clone(),
                action: step.action_name.clone(),
                params: params.clone(),
                run_id: self.run_id.clone(),
                node_id: node.id.clone(),
                step_id: step.id.clone(),
                idempotency_key: idempotency_key.to_owned(),
                timeout,
                workflow,
                traceparent: self.traceparent(&node.id, &step.id),
            };
            if let Some(agents) = &self.effects.agents {
                match agents.dispatch(req.clone()).await {
                    Err(e) if e.kind == ErrorKind::AgentUnavailable => agent_error = Some(e),
                    // The fallbacks below come first; the step waits only when none takes it.
                    Ok(AgentReply::NoneOnline { message }) => none_online = Some(message),
                    other => return other,
                }
            }
            // No agent serves the channel: LangOrch's MCP fallback comes before the built-in executors (A.2.15).
            if let Some(call) = self.effects.mcp.as_ref().and_then(|m| m.fallback(&req)) {
                return call.await.map(AgentReply::Done);
            }
        }
        if step.action_name == "http_request"
            && let Some(http) = &self.effects.http
        {
            return http_request(http.as_ref(), &params, idempotency_key, timeout).await.map(AgentReply::Done);
        }
        if let Some(message) = none_online {
            return Ok(AgentReply::NoneOnline { message });
        }
        Err(agent_error.unwrap_or_else(|| {
            StepError::new(
                ErrorKind::AgentUnavailable,
                format!(
                    "No executor registered for channel='{}', action='{}'. Register an agent for this channel, or run with --mock-external",
                    node.channel.as_deref().unwrap_or(""),
                    step.action_name
                ),
            )
        }))
    }
}

/// The built-in `http_request` executor (A.2.15): method, url, headers, query, body/json; 2xx (or
/// `expected_status`) is success with `{status, headers, body}`.
async fn http_request(
    http: &dyn crate::effects::Http,
    params: &Map<String, Value>,
    idempotency_key: &str,
    timeout: Option<Duration>,
) -> Result<Value, StepError> {
    let method = params.get("method").and_then(Value::as_str).unwrap_or("GET").to_ascii_uppercase();
    let Some(mut url) = params.get("url").and_then(Value::as_str).map(str::to_owned) else {
        return Err(StepError::new(ErrorKind::ValidationError, "http_request needs a `url`"));
    };
    if let Some(Value::Object(query)) = params.get("query").or_else(|| params.get("params")) {
        let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{}={}", encode(k), encode(&text_of(v)))).collect();
        if !pairs.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&pairs.join("&"));
        }
    }
    let mut headers: Vec<(String, String)> = match params.get("headers") {
        Some(Value::Object(h)) => h.iter().map(|(k, v)| (k.clone(), text_of(v))).collect(),
        _ => Vec::new(),
    };
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("idempotency-key")) {
        headers.push(("Idempotency-Key".into(), idempotency_key.to_owned()));
    }
    let body = params.get("json").or_else(|| params.get("body")).cloned();
    let expected: Vec<u64> = match params.get("expected_status") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_u64).collect(),
        Some(Value::Number(n)) => n.as_u64().into_iter().collect(),
        _ => Vec::new(),
    };
    let resp = http.request(HttpRequest { method, url: url.clone(), headers, body, timeout }).await?;
    let ok = if expected.is_empty() {
        (200..300).contains(&resp.status)
    } else {
        expected.contains(&u64::from(resp.status))
    };
    let value = json!({"status": resp.status, "headers": resp.headers.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect::<Map<_, _>>(), "body": resp.body});
    if ok {
        Ok(value)
    } else {
        let mut e = StepError::new(ErrorKind::HttpError, format!("HTTP {} from {url}", resp.status));
        e.http_status = Some(resp.status);
        Err(e)
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
