//! `verification`: checks in order; a false `fail_workflow` check fails the node (and, per A.2.3, the run goes
//! to its error routing instead of `next_node`); `warn` emits `verification_warning`; `continue` goes on.

use ckp_core::procedure::{Check, Node, OnFail};
use serde_json::{Map, Value, json};

use crate::error::{ErrorKind, RunError};
use crate::run::{Ctx, Flow, Runner};

impl Runner<'_> {
    pub(crate) fn exec_verification(
        &self,
        ctx: &Ctx,
        vars: &Map<String, Value>,
        node: &Node,
        checks: &[Check],
    ) -> Flow {
        for check in checks {
            if check.condition.eval(vars) {
                continue;
            }
            let message =
                check.message.as_ref().map(|m| m.render_text(vars)).unwrap_or_else(|| {
                    format!("Verification check '{}' failed: {}", check.id, check.condition.source())
                });
            match check.on_fail {
                OnFail::FailWorkflow => {
                    return Flow::Fail(RunError {
                        message,
                        node_id: Some(node.id.clone()),
                        step_id: None,
                        kind: ErrorKind::ValidationError,
                    });
                }
                OnFail::Warn => self.emit(
                    ctx,
                    "verification_warning",
                    Some(&node.id),
                    None,
                    json!({"check_id": check.id, "message": message}),
                ),
                OnFail::Continue => {}
            }
        }
        Flow::Next(node.next)
    }
}
