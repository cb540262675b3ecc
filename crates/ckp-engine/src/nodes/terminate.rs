//! `terminate`: cleanup actions, error actions when the status is failed, outputs written into the variables,
//! then the run ends. ckp keeps the outputs of a failed terminate (LangOrch drops them, B §8.17).

use ckp_core::procedure::{Node, Terminate, TerminateOutput};
use serde_json::{Map, Value};

use crate::error::{EngineError, ErrorKind, RunError};
use crate::run::{Ctx, Ending, Flow, Runner};

impl Runner<'_> {
    pub(crate) async fn exec_terminate(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        node: &Node,
        visit: u32,
        t: &Terminate,
    ) -> Result<Flow, EngineError> {
        if let Some(e) = self.run_operations(ctx, vars, node, visit, &t.cleanup, "cleanup").await? {
            return Ok(Flow::Fail(e));
        }
        if t.failed
            && let Some(e) = self.run_operations(ctx, vars, node, visit, &t.error_actions, "error").await?
        {
            return Ok(Flow::Fail(e));
        }
        for (key, out) in &t.outputs {
            let value = match out {
                TerminateOutput::Template(tpl) => tpl.render(vars),
                TerminateOutput::VarOrText(s) => vars.get(s).cloned().unwrap_or_else(|| Value::from(s.as_str())),
                TerminateOutput::Literal(v) => v.clone(),
            };
            if let Err(message) = self.var_fits(key, &value) {
                return Ok(Flow::Fail(RunError {
                    message,
                    node_id: Some(node.id.clone()),
                    step_id: None,
                    kind: ErrorKind::ValidationError,
                }));
            }
            vars.insert(key.clone(), value);
        }
        Ok(Flow::End(Ending { failed: t.failed, status: t.status.clone() }))
    }
}
