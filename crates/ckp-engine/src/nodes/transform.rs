//! `transform`: each transformation reads its source variable and writes its output variable.

use ckp_core::procedure::{Node, Transformation};
use serde_json::{Map, Value};

use crate::error::{ErrorKind, RunError};
use crate::ops::apply_transform;
use crate::run::{Flow, Runner};

impl Runner<'_> {
    pub(crate) fn exec_transform(&self, vars: &mut Map<String, Value>, node: &Node, ts: &[Transformation]) -> Flow {
        for t in ts {
            match apply_transform(t, vars) {
                Ok(v) => {
                    vars.insert(t.output.clone(), v);
                }
                Err(e) => {
                    return Flow::Fail(RunError {
                        message: format!("transform into `{}` failed: {}", t.output, e.message),
                        node_id: Some(node.id.clone()),
                        step_id: None,
                        kind: ErrorKind::InternalError,
                    });
                }
            }
        }
        Flow::Next(node.next)
    }
}
