//! `loop`: runs the body once per element of the iterator list (A.2.7). Each iteration sets the item and index
//! variables, emits `loop_iteration`, and walks the body until it returns to the loop node. Nested loops have
//! their own indexes and collections; `continue_on_error` skips a failing iteration (step errors included).

use ckp_core::procedure::{Loop, Node, NodeIdx};
use serde_json::{Map, Value, json};

use crate::error::{EngineError, ErrorKind, RunError};
use crate::run::{Ctx, Flow, Runner};

impl Runner<'_> {
    pub(crate) async fn exec_loop(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        idx: NodeIdx,
        node: &Node,
        l: &Loop,
    ) -> Result<Flow, EngineError> {
        let items = match l.iterator.resolve(vars).map(std::borrow::Cow::into_owned) {
            None => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Ok(Flow::Fail(RunError {
                    message: format!(
                        "Loop iterator '{}' must resolve to a list, found {}",
                        l.iterator,
                        crate::ops::describe(&other)
                    ),
                    node_id: Some(node.id.clone()),
                    step_id: None,
                    kind: ErrorKind::ValidationError,
                }));
            }
        };
        let total = items.len();
        let limit = l.max_iterations.map_or(total, |m| total.min(usize::try_from(m).unwrap_or(usize::MAX)));
        let mut collected = Vec::new();
        for (i, item) in items.into_iter().take(limit).enumerate() {
            if (self.cancelled)() {
                return Ok(Flow::Cancelled);
            }
            vars.insert(l.item_var.clone(), item.clone());
            if let Some(index_var) = &l.index_var {
                vars.insert(index_var.clone(), Value::from(i));
            }
            let preview: String = crate::nodes::dispatch::text_of(&item).chars().take(256).collect();
            self.emit(
                ctx,
                "loop_iteration",
                Some(&node.id),
                None,
                json!({"iteration": i, "total": total, "item": preview}),
            );
            let mut body_ctx = ctx.clone();
            body_ctx.tags.retain(|(k, _)| *k != "loop_index");
            body_ctx.tags.push(("loop_index", Value::from(i)));
            match self.run_path(&body_ctx, vars, l.body, Some(idx)).await? {
                Flow::Next(_) => collected.push(vars.get(&l.item_var).cloned().unwrap_or(Value::Null)),
                Flow::Fail(e) if l.continue_on_error => {
                    self.emit(
                        ctx,
                        "loop_iteration_failed",
                        Some(&node.id),
                        None,
                        json!({"iteration": i, "error": e.to_value()}),
                    );
                }
                Flow::Fail(e) => {
                    return Ok(Flow::Fail(RunError {
                        message: format!("Loop iteration {i} failed: {}", e.message),
                        ..e
                    }));
                }
                other => return Ok(other),
            }
            if let Err(message) = self.loop_progress(vars).await? {
                return Ok(Flow::Fail(RunError {
                    message,
                    node_id: Some(node.id.clone()),
                    step_id: None,
                    kind: ErrorKind::ValidationError,
                }));
            }
        }
        let collected = Value::Array(collected);
        let too_big = |name: &str| {
            self.var_fits(name, &collected).err().map(|message| {
                Flow::Fail(RunError {
                    message,
                    node_id: Some(node.id.clone()),
                    step_id: None,
                    kind: ErrorKind::ValidationError,
                })
            })
        };
        if let Some(fail) = too_big(l.collect_var.as_deref().unwrap_or("loop_results")) {
            return Ok(fail);
        }
        if let Some(c) = &l.collect_var {
            vars.insert(c.clone(), collected.clone());
        }
        vars.insert("loop_results".into(), collected);
        Ok(Flow::Next(node.next))
    }
}
