//! `logic`: the first rule whose condition holds routes; otherwise `default_next_node` (none: the path ends).

use ckp_core::procedure::Logic;
use serde_json::{Map, Value};

use crate::run::{Flow, Runner};

impl Runner<'_> {
    pub(crate) fn exec_logic(&self, vars: &Map<String, Value>, l: &Logic) -> Flow {
        let target = l.rules.iter().find(|(cond, _)| cond.eval(vars)).map(|(_, t)| *t).or(l.default);
        Flow::Next(target)
    }
}
