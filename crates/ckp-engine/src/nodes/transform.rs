//! `transform`: each transformation reads its source variable and writes its output variable.

use ckp_core::procedure::{Node, Transformation};
use serde_json::{Map, Value};

use crate::error::{ErrorKind, RunError};
use crate::ops::apply_transform;
use crate::run::{Flow, Runner};

impl Runner<'_> {
    pub(crate) fn exec_transform(&self, vars: &mut Map<String, Value>, node: &Node, ts: &[Transformation]) -> Flow {
        for t in ts {
            let result = apply_transform(t, vars)
                .map_err(|e| (e.message, ErrorKind::InternalError))
                .and_then(|v| self.var_fits(&t.output, &v).map(|()| v).map_err(|m| (m, ErrorKind::ValidationError)));
            match result {
                Ok(v) => {
                    vars.insert(t.output.clone(), v);
                }
                Err((message, kind)) => {
                    return Flow::Fail(RunError {
                        message: format!("transform into `{}` failed: {message}", t.output),
                        node_id: Some(node.id.clone()),
                        step_id: None,
                        kind,
                    });
                }
            }
        }
        Flow::Next(node.next)
    }
}
