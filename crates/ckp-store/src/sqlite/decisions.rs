//! Approval decisions as one transaction on SQLite (DESIGN §3): the run's checkpoint gains the decision only if the
//! approval is still pending, the `approval_decision_received` event is written, and the run is requeued (priority
//! 10) in the same transaction, so exactly one of many concurrent decisions wins and a winner is never lost.

use ckp_engine::engine::{Decision, apply_decision};
use ckp_engine::journal::{Commit, PendingApproval};

use super::apply;
use super::queue::enqueue_in;
use super::runs::checkpoint_of;
use crate::StoreError;
use crate::codec::now;
use crate::store::{DECISION_PRIORITY, refused, run_not_found};

/// Records `decision` on `run_id` inside `tx` (see [`crate::ApprovalStore::decide`]).
pub(crate) fn decide_in(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    decision: Decision,
) -> Result<Result<Vec<PendingApproval>, StoreError>, rusqlite::Error> {
    let at = chrono::Utc::now();
    let (mut run, mut decision) = (run_id.to_owned(), decision);
    let mut first: Option<Vec<PendingApproval>> = None;
    loop {
        let Some(mut cp) = checkpoint_of(tx, &run)? else { return Ok(Err(run_not_found(&run))) };
        let applied = match apply_decision(&mut cp, &run, decision, at) {
            Ok(a) => a,
            Err(e) => return Ok(Err(refused(e))),
        };
        apply(tx, &run, &Commit { events: applied.events, steps: Vec::new(), checkpoint: cp })?;
        if first.is_none() {
            // Only the top-level run is queued: a child run is executed by its parent.
            if applied.still_pending.is_empty() {
                let now = now();
                enqueue_in(tx, &run, DECISION_PRIORITY, &now, &now)?;
            }
            first = Some(applied.still_pending);
        }
        match applied.child {
            Some((child, d)) => (run, decision) = (child, d),
            None => break,
        }
    }
    Ok(Ok(first.unwrap_or_default()))
}
