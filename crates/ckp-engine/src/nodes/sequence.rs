//! `sequence`: steps in order with waits, retries (step `retry_config` over the global defaults; `0` means no
//! retry), error handlers (A.2.10: taxonomy, trigger filters, retry policies, recovery steps, fallback nodes), then
//! the node's `validations` (A.2.9).

use ckp_core::procedure::{
    Backoff, BackoffStrategy, ErrorHandler, HandlerAction, Node, RecoveryStrategy, Sequence, Step, ValidationFailure,
    ValidationKind,
};
use serde_json::{Map, Value, json};

use crate::error::{EngineError, ErrorKind, RunError, StepError};
use crate::nodes::dispatch::Attempt;
use crate::run::{Ctx, Flow, Runner};
use ckp_core::path::to_text as path_text;

/// How one step ended, as seen by its node.
pub(crate) enum StepFlow {
    /// Done; go on with the next step.
    Done(Option<Value>),
    /// A handler sends the run to this node.
    Jump(ckp_core::procedure::NodeIdx),
    /// The step failed (after retries and handlers).
    Failed(StepError),
    /// The run was cancelled.
    Cancelled,
    /// A durable wait: re-execute this node after `until`.
    Sleep(chrono::DateTime<chrono::Utc>),
    /// Delegated to an async workflow: re-execute this node after the callback.
    Delegated(crate::journal::PendingCallback),
}

impl Runner<'_> {
    pub(crate) async fn exec_sequence(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        node: &Node,
        visit: u32,
        s: &Sequence,
    ) -> Result<Flow, EngineError> {
        let max_node_attempts = 1 + self.p.config.retry.max_retries.unwrap_or(3);
        let mut node_attempt = 0u32;
        'node: loop {
            node_attempt += 1;
            let mut last: Option<Value> = None;
            for (i, step) in s.steps.iter().enumerate() {
                if let Some(flow) = self.interrupted_at(node) {
                    return Ok(flow);
                }
                let key = format!("{}|{}#{}.{}|{}:{}", ctx.thread, node.id, visit, node_attempt, i, step.id);
                match self.exec_step(ctx, vars, node, step, &key, &s.handlers).await? {
                    StepFlow::Done(v) => last = v,
                    StepFlow::Jump(target) => return Ok(Flow::Next(Some(target))),
                    StepFlow::Failed(e) => return Ok(Flow::Fail(RunError::at(&node.id, Some(&step.id), &e))),
                    StepFlow::Cancelled => return Ok(Flow::Cancelled),
                    StepFlow::Sleep(until) => return Ok(Flow::Sleep(until)),
                    StepFlow::Delegated(pending) => return Ok(Flow::Delegated(vec![pending])),
                }
            }
            for v in &s.validations {
                let ok = match &v.check {
                    ValidationKind::Condition(c) => c.eval(vars),
                    ValidationKind::Expected { expected, .. } => {
                        let text = last.as_ref().map(path_text).unwrap_or_default();
                        expected
                            .iter()
                            .any(|e| last.as_ref() == Some(e) || (!text.is_empty() && text.contains(&*path_text(e))))
                    }
                };
                if ok {
                    continue;
                }
                let message = v
                    .message
                    .as_ref()
                    .map(|m| m.render_text(vars))
                    .unwrap_or_else(|| format!("Validation '{}' of node '{}' failed", v.id, node.id));
                self.emit(
                    ctx,
                    "validation_failed",
                    Some(&node.id),
                    None,
                    json!({"validation_id": v.id, "message": message}),
                );
                if v.on_failure == ValidationFailure::RetryNode && node_attempt < max_node_attempts {
                    continue 'node;
                }
                return Ok(Flow::Fail(RunError {
                    message,
                    node_id: Some(node.id.clone()),
                    step_id: None,
                    kind: ErrorKind::ValidationError,
                }));
            }
            return Ok(Flow::Next(node.next));
        }
    }

    async fn exec_step(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        node: &Node,
        step: &Step,
        key: &str,
        handlers: &[ErrorHandler],
    ) -> Result<StepFlow, EngineError> {
        if let Some(ms) = step.wait_ms
            && let Some(until) = self.wait(key, "wait", ms).await
        {
            return Ok(StepFlow::Sleep(until));
        }
        let defaults = self.p.config.retry;
        let (max_retries, backoff) = match &step.retry {
            Some(o) => (
                o.max_retries.or(defaults.max_retries).unwrap_or(3),
                Backoff {
                    strategy: BackoffStrategy::ExponentialBackoff,
                    base_ms: o.delay_ms.or(defaults.delay_ms).unwrap_or(1000),
                    max_ms: None,
                    multiplier: o.multiplier.or(defaults.multiplier).unwrap_or(2.0),
                    jitter: false,
                },
            ),
            None => (
                0,
                Backoff { strategy: BackoffStrategy::Fixed, base_ms: 0, max_ms: None, multiplier: 1.0, jitter: false },
            ),
        };
        let started = self.effects.clock.now();
        let mut attempt = 0u32;
        let mut handler_retries = 0u32;
        let outcome = loop {
            let attempt_key = format!("{key}#{attempt}");
            let at = Attempt { record: &attempt_key, execution: key, attempt, may_wait: true };
            let result = self.attempt_step(ctx, vars, node, step, at).await?;
            if matches!(result, Ok(None)) {
                if let Some(pending) = self.take_delegated(&attempt_key) {
                    return Ok(StepFlow::Delegated(pending));
                }
                if let Some(until) = self.take_agent_wait(&attempt_key) {
                    return Ok(StepFlow::Sleep(until));
                }
            }
            let error = match result {
                Ok(v) => break Ok(v),
                Err(e) if e.kind == ErrorKind::Cancelled => return Ok(StepFlow::Cancelled),
                Err(e) => e,
            };
            if attempt < max_retries && !error.is_refused() {
                let delay = backoff.delay_ms(attempt);
                attempt += 1;
                if let Some(until) =
                    self.before_retry(ctx, node, step, attempt, delay, &error, &attempt_key, false).await
                {
                    return Ok(StepFlow::Sleep(until));
                }
                continue;
            }
            if self.p.config.screenshot_on_fail {
                self.emit(
                    ctx,
                    "screenshot_requested",
                    Some(&node.id),
                    Some(&step.id),
                    json!({"reason": "screenshot_on_fail", "error": error.message}),
                );
            }
            let Some(handler) = handlers.iter().find(|h| handler_matches(h, &error)) else {
                break Err(error);
            };
            for (r, recovery) in handler.recovery_steps.iter().enumerate() {
                let rkey = format!("{attempt_key}|recovery{r}");
                let at = Attempt { record: &rkey, execution: &rkey, attempt: 0, may_wait: false };
                let _ = self.attempt_step(ctx, vars, node, recovery, at).await?;
            }
            let action = match handler.action {
                HandlerAction::Retry => "retry",
                HandlerAction::ScreenshotAndFail => "screenshot_and_fail",
                HandlerAction::Fail => "fail",
                HandlerAction::Ignore => "ignore",
                HandlerAction::Escalate => "escalate",
            };
            if handler.notify {
                self.emit(
                    ctx,
                    "step_error_notification",
                    Some(&node.id),
                    Some(&step.id),
                    json!({"error_type": error.kind.as_str(), "error": error.message, "handler_action": action}),
                );
            }
            let retry = handler.action == HandlerAction::Retry || handler.recovery == Some(RecoveryStrategy::RetryNode);
            if retry && handler_retries < handler.max_retries {
                let delay = handler.backoff.delay_ms(handler_retries);
                handler_retries += 1;
                attempt += 1;
                if let Some(until) =
                    self.before_retry(ctx, node, step, attempt, delay, &error, &attempt_key, true).await
                {
                    return Ok(StepFlow::Sleep(until));
                }
                continue;
            }
            let gives_up =
                matches!(handler.action, HandlerAction::Fail | HandlerAction::ScreenshotAndFail | HandlerAction::Retry)
                    || handler.recovery == Some(RecoveryStrategy::Stop);
            if gives_up
                && handler.recovery != Some(RecoveryStrategy::FallbackNode)
                && handler.recovery != Some(RecoveryStrategy::Continue)
            {
                break Err(error);
            }
            if let Some(target) = handler.fallback {
                return Ok(StepFlow::Jump(target));
            }
            // ignore / escalate without a fallback / continue: the step ends with a null result.
            break Ok(None);
        };
        let value = match outcome {
            Ok(v) => v,
            Err(e) => return Ok(StepFlow::Failed(e)),
        };
        if let (Some(name), Some(v)) = (&step.output_variable, &value)
            && !v.is_null()
        {
            vars.insert(name.clone(), v.clone());
        }
        if let Some(result) = &value {
            for (i, artifact) in artifacts_of(result).into_iter().enumerate() {
                let id = uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_URL,
                    format!("ckp:artifact:{}/{key}/{i}", self.run_id).as_bytes(),
                );
                let mut payload = artifact;
                if let Value::Object(m) = &mut payload {
                    m.insert("artifact_id".into(), Value::from(id.to_string()));
                    if let (Some(dir), Some(uri)) = (&self.config.artifacts_dir, m.get("uri").and_then(Value::as_str))
                        && let Some(public) = served_uri(uri, dir)
                    {
                        m.insert("uri".into(), Value::from(public));
                    }
                }
                self.emit(ctx, "artifact_created", Some(&node.id), Some(&step.id), payload);
            }
        }
        let mut done = json!({"action": step.action_name, "output_variable": step.output_variable, "cached": false});
        if let Value::Object(m) = &mut done {
            if node.telemetry.track_duration {
                let ms = (self.effects.clock.now() - started).num_milliseconds().max(0);
                m.insert("duration_ms".into(), Value::from(ms));
            }
            if node.telemetry.track_retries && attempt > 0 {
                m.insert("retry_count".into(), Value::from(attempt));
            }
        }
        self.emit(ctx, "step_completed", Some(&node.id), Some(&step.id), done);
        if let Some(ms) = step.wait_after_ms
            && let Some(until) = self.wait(key, "wait_after", ms).await
        {
            return Ok(StepFlow::Sleep(until));
        }
        Ok(StepFlow::Done(value))
    }
}

impl Runner<'_> {
    /// Announces a retry (`step_retrying`) and waits its delay; a long delay is a durable timer (returns when).
    #[expect(clippy::too_many_arguments, reason = "the retry's whole context, used once per retry")]
    async fn before_retry(
        &self,
        ctx: &Ctx,
        node: &Node,
        step: &Step,
        attempt: u32,
        delay: u64,
        error: &StepError,
        key: &str,
        by_handler: bool,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let mut payload =
            json!({"action": step.action_name, "attempt": attempt, "delay_ms": delay, "error": error.message});
        if by_handler && let Value::Object(m) = &mut payload {
            m.insert("handler".into(), Value::Bool(true));
        }
        self.emit(ctx, "step_retrying", Some(&node.id), Some(&step.id), payload);
        self.wait(key, if by_handler { "handler_backoff" } else { "backoff" }, delay).await
    }
}

fn handler_matches(h: &ErrorHandler, e: &StepError) -> bool {
    e.matches(&h.error_type)
        && h.text_contains.as_ref().is_none_or(|t| e.message.contains(t.as_str()))
        && (h.http_status_codes.is_empty() || e.http_status.is_some_and(|s| h.http_status_codes.contains(&s)))
        && h.error_code.as_ref().is_none_or(|c| e.code.as_deref() == Some(c.as_str()))
}

/// `/api/artifacts/<path>` for a local file (an absolute path, a `file://` URI, or a screenshot path that got the
/// `memory://` prefix) under `dir`, the server's artifacts folder; None for anything else (other schemes, paths
/// outside it or climbing out with `..`).
pub(crate) fn served_uri(uri: &str, dir: &std::path::Path) -> Option<String> {
    use std::path::{Component, Path};
    let path = Path::new(uri.strip_prefix("file://").or_else(|| uri.strip_prefix("memory://")).unwrap_or(uri));
    if !path.is_absolute() {
        return None;
    }
    let rel = path.strip_prefix(dir).ok()?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(crate::nodes::dispatch::encode(p.to_str()?)),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| format!("/api/artifacts/{}", parts.join("/")))
}

/// The artifacts a step result names (langorch.md B §5.12): `screenshot` (a string; `memory://` is prefixed when it
/// has no scheme), `artifact` (an object), `artifacts` (a list of objects), `artifact_uri` or `uri` (kind from
/// `artifact_kind`). Entries without a string uri are skipped. Each is `{kind, uri, name?, mime_type?,
/// size_bytes?}`.
pub(crate) fn artifacts_of(result: &Value) -> Vec<Value> {
    let Some(r) = result.as_object() else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(shot) = r.get("screenshot").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        let uri = if shot.contains("://") { shot.to_owned() } else { format!("memory://{shot}") };
        out.push(json!({"kind": "screenshot", "uri": uri}));
    }
    let described = |a: &Value, default_kind: &str| -> Option<Value> {
        let o = a.as_object()?;
        let uri = o.get("uri").and_then(Value::as_str)?;
        let mut entry = serde_json::Map::new();
        entry.insert(
            "kind".into(),
            o.get("kind").filter(|k| k.is_string()).cloned().unwrap_or_else(|| default_kind.into()),
        );
        entry.insert("uri".into(), Value::from(uri));
        for key in ["name", "mime_type", "size_bytes"] {
            if let Some(v) = o.get(key).filter(|v| !v.is_null()) {
                entry.insert(key.into(), v.clone());
            }
        }
        Some(Value::Object(entry))
    };
    if let Some(a) = r.get("artifact").and_then(|a| described(a, "artifact")) {
        out.push(a);
    }
    if let Some(list) = r.get("artifacts").and_then(Value::as_array) {
        out.extend(list.iter().filter_map(|a| described(a, "artifact")));
    }
    if let Some(uri) = r.get("artifact_uri").or_else(|| r.get("uri")).and_then(Value::as_str) {
        let kind = r.get("artifact_kind").and_then(Value::as_str).unwrap_or("artifact");
        out.push(json!({"kind": kind, "uri": uri}));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::served_uri;

    #[test]
    fn local_artifacts_under_the_folder_are_served_by_the_api() {
        let dir = std::path::Path::new("/data/artifacts");
        assert_eq!(served_uri("/data/artifacts/r1/shot 1.png", dir).as_deref(), Some("/api/artifacts/r1/shot%201.png"));
        assert_eq!(served_uri("file:///data/artifacts/r1/a.txt", dir).as_deref(), Some("/api/artifacts/r1/a.txt"));
        assert_eq!(served_uri("memory:///data/artifacts/s.png", dir).as_deref(), Some("/api/artifacts/s.png"));
        for other in [
            "/data/other/a.png",
            "/data/artifacts/../secret",
            "/data/artifacts",
            "s3://b/k",
            "rel/a.png",
            "memory://shot-1",
        ] {
            assert_eq!(served_uri(other, dir), None, "{other}");
        }
    }
}
