//! `parallel`: branches run concurrently (polled together inside the run), each on its own copy of the
//! variables and its own thread key; their changes merge in declaration order (later wins) and
//! `parallel_results` records each branch's changes and errors. `wait_strategy: any` takes the first branch to
//! succeed; `branch_failure` decides what a failed branch (step errors included, A.2.7) does.

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use ckp_core::procedure::{BranchFailure, Node, Parallel, WaitStrategy};
use serde_json::{Map, Value, json};

use crate::error::{EngineError, RunError};
use crate::run::{Ctx, Flow, Runner};

impl Runner<'_> {
    pub(crate) async fn exec_parallel(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        node: &Node,
        visit: u32,
        par: &Parallel,
    ) -> Result<Flow, EngineError> {
        if par.branches.is_empty() {
            return Ok(Flow::Next(node.next));
        }
        let base = vars.clone();
        let contexts: Vec<Ctx> = par
            .branches
            .iter()
            .map(|(bid, _)| {
                let mut c = ctx.clone();
                c.thread = format!("{}/{}#{}:{}", ctx.thread, node.id, visit, bid);
                c.tags.retain(|(k, _)| *k != "branch_id");
                c.tags.push(("branch_id", Value::from(bid.as_str())));
                c
            })
            .collect();
        let mut branch_vars: Vec<Map<String, Value>> = par.branches.iter().map(|_| base.clone()).collect();
        let mut results: Vec<Option<Flow>> = par.branches.iter().map(|_| None).collect();
        {
            let mut running: FuturesUnordered<_> = contexts
                .iter()
                .zip(branch_vars.iter_mut())
                .zip(par.branches.iter())
                .enumerate()
                .map(|(i, ((c, v), (_, start)))| async move { (i, self.run_path(c, v, *start, node.next).await) })
                .collect();
            while let Some((i, flow)) = running.next().await {
                let flow = flow?;
                let succeeded = matches!(flow, Flow::Next(_) | Flow::End(_));
                let failed = matches!(flow, Flow::Fail(_));
                results[i] = Some(flow);
                if par.wait == WaitStrategy::Any && succeeded {
                    break;
                }
                if par.wait == WaitStrategy::Any && failed && par.failure == BranchFailure::Fail {
                    break;
                }
            }
        }
        let mut retried = Vec::new();
        if par.failure == BranchFailure::Retry {
            for (i, r) in results.iter_mut().enumerate() {
                if matches!(r, Some(Flow::Fail(_))) {
                    let mut c = contexts[i].clone();
                    c.thread.push_str("~retry");
                    let mut v = base.clone();
                    let flow = self.run_path(&c, &mut v, par.branches[i].1, node.next).await?;
                    branch_vars[i] = v;
                    *r = Some(flow);
                    retried.push(i);
                }
            }
        }
        let mut deltas = Map::new();
        let mut errors = Map::new();
        let mut pauses = Vec::new();
        let mut delegated = Vec::new();
        let mut first_error: Option<(String, RunError)> = None;
        for (i, result) in results.into_iter().enumerate() {
            let bid = &par.branches[i].0;
            match result {
                None => continue,
                Some(Flow::Next(_) | Flow::End(_)) => {
                    let delta: Map<String, Value> = branch_vars[i]
                        .iter()
                        .filter(|(k, v)| base.get(*k) != Some(*v))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    for (k, v) in &delta {
                        vars.insert(k.clone(), v.clone());
                    }
                    deltas.insert(bid.clone(), Value::Object(delta));
                }
                Some(Flow::Fail(e)) => {
                    errors.insert(bid.clone(), e.to_value());
                    first_error.get_or_insert((bid.clone(), e));
                }
                Some(Flow::Pause(mut a)) => pauses.append(&mut a),
                Some(Flow::Delegated(mut d)) => delegated.append(&mut d),
                Some(Flow::Cancelled) => return Ok(Flow::Cancelled),
                Some(Flow::Sleep(until)) => return Ok(Flow::Sleep(until)),
            }
        }
        vars.insert("parallel_results".into(), json!({"branches": deltas, "errors": errors}));
        // Branches waiting for workflow callbacks pause the run first; a branch waiting for an approval asks again
        // when the node re-executes after them.
        if !delegated.is_empty() {
            return Ok(Flow::Delegated(delegated));
        }
        if !pauses.is_empty() {
            return Ok(Flow::Pause(pauses));
        }
        if let Some((bid, e)) = first_error
            && par.failure != BranchFailure::Continue
        {
            return Ok(Flow::Fail(RunError { message: format!("Parallel branch '{bid}' failed: {}", e.message), ..e }));
        }
        Ok(Flow::Next(node.next))
    }
}
