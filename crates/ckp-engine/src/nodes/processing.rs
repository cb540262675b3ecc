//! `processing`: internal operations in order (A.2.9). Each operation's fields are rendered, the operation runs,
//! and a non-null result goes to its `output_variable`. Logs become `step_log` events, notifications
//! `notification` events.

use std::collections::HashMap;

use ckp_core::procedure::{InternalAction, Node, Operation};
use serde_json::{Map, Value, json};

use crate::error::{EngineError, ErrorKind, RunError};
use crate::ops::{OpErrorKind, OpOutcome, run_internal};
use crate::run::{Ctx, Flow, Runner};

impl Runner<'_> {
    pub(crate) async fn exec_processing(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        node: &Node,
        visit: u32,
        ops: &[Operation],
    ) -> Result<Flow, EngineError> {
        match self.run_operations(ctx, vars, node, visit, ops, "op").await? {
            Some(e) => Ok(Flow::Fail(e)),
            None => Ok(Flow::Next(node.next)),
        }
    }

    /// Runs operations (processing nodes, terminate cleanup/error actions); the first failure is returned.
    pub(crate) async fn run_operations(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        node: &Node,
        visit: u32,
        ops: &[Operation],
        label: &str,
    ) -> Result<Option<RunError>, EngineError> {
        for (i, op) in ops.iter().enumerate() {
            let fields = match op.fields.render(vars) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            let secrets = self.prefetch_op_secrets(op.action, &fields).await;
            let key = format!("{}|{}#{}|{label}{i}", ctx.thread, node.id, visit);
            let mut env = self.op_env(key, secrets);
            match run_internal(op.action, &fields, op.schema.as_ref(), op.pattern.as_ref(), vars, &mut env) {
                Ok(outcome) => {
                    let output = fields.get("output_variable").and_then(Value::as_str).filter(|s| !s.is_empty());
                    if let (Some(name), Some(value)) = (output, &outcome.value)
                        && let Err(message) = self.var_fits(name, value)
                    {
                        return Ok(Some(RunError {
                            message: format!("{} failed: {message}", op.action.as_str()),
                            node_id: Some(node.id.clone()),
                            step_id: None,
                            kind: ErrorKind::ValidationError,
                        }));
                    }
                    self.apply_outcome(ctx, vars, &node.id, None, output, outcome).await?;
                }
                Err(e) => {
                    let kind = match e.kind {
                        OpErrorKind::Validation => ErrorKind::ValidationError,
                        _ => ErrorKind::InternalError,
                    };
                    return Ok(Some(RunError {
                        message: format!("{} failed: {}", op.action.as_str(), e.message),
                        node_id: Some(node.id.clone()),
                        step_id: None,
                        kind,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Fetches the secret an encrypt/decrypt operation names, so the synchronous operation can use it.
    pub(crate) async fn prefetch_op_secrets(
        &self,
        action: InternalAction,
        fields: &Map<String, Value>,
    ) -> HashMap<String, Option<String>> {
        let mut out = HashMap::new();
        if !matches!(action, InternalAction::Encrypt | InternalAction::Decrypt) {
            return out;
        }
        let reference = fields.get("key_reference").or_else(|| fields.get("key_ref")).and_then(Value::as_str);
        if let (Some(reference), Some(secrets)) = (reference, &self.effects.secrets) {
            let name = crate::ops::crypto::secret_name(reference);
            let scope = crate::effects::SecretScope { run_id: &self.run_id, config: self.p.config.secrets.as_ref() };
            let value = secrets.get(scope, name).await.ok().flatten();
            out.insert(name.to_owned(), value);
        }
        out
    }

    /// Applies what an internal action produced: the output variable, log and notification events, waits.
    pub(crate) async fn apply_outcome(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        node_id: &str,
        step_id: Option<&str>,
        output: Option<&str>,
        outcome: OpOutcome,
    ) -> Result<(), EngineError> {
        if let (Some(name), Some(v)) = (output, &outcome.value)
            && !v.is_null()
        {
            vars.insert(name.to_owned(), v.clone());
        }
        if let Some(log) = outcome.log {
            let level = match log.level {
                ckp_core::procedure::LogLevel::Debug => "DEBUG",
                ckp_core::procedure::LogLevel::Info => "INFO",
                ckp_core::procedure::LogLevel::Warning => "WARNING",
                ckp_core::procedure::LogLevel::Error => "ERROR",
            };
            self.emit(ctx, "step_log", Some(node_id), step_id, json!({"level": level, "message": log.message}));
        }
        if let Some(n) = outcome.notify {
            self.emit(
                ctx,
                "notification",
                Some(node_id),
                step_id,
                json!({"channel": n.channel, "recipients": n.recipients, "subject": n.subject, "message": n.message}),
            );
        }
        if let Some(ms) = outcome.wait_ms {
            self.effects.clock.sleep(std::time::Duration::from_millis(ms)).await;
        }
        Ok(())
    }
}
