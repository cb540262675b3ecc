//! Approval decisions as one transaction (DESIGN §3): the run's checkpoint gains the decision only if the approval
//! is still pending, the `approval_decision_received` event is written, and the run is requeued (priority 10) in
//! the same transaction, so exactly one of many concurrent decisions wins and a winner is never lost.

use ckp_engine::EngineError;
use ckp_engine::engine::{Decision, apply_decision};
use ckp_engine::journal::{Checkpoint, Commit, PendingApproval};
use rusqlite::{OptionalExtension, params};

use crate::StoreError;
use crate::queue::enqueue_in;
use crate::sqlite::{SqliteStore, apply, now, parse_checkpoint};

/// Priority of a run resumed by a decision (LangOrch requeues at 10).
pub const DECISION_PRIORITY: i64 = 10;

/// Records `decision` on `run_id` inside `tx` (see [`SqliteStore::decide`]).
pub(crate) fn decide_in(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    decision: Decision,
) -> Result<Result<Vec<PendingApproval>, StoreError>, rusqlite::Error> {
    let at = chrono::Utc::now();
    let (mut run, mut decision) = (run_id.to_owned(), decision);
    let mut first: Option<Vec<PendingApproval>> = None;
    loop {
        let text: Option<String> = tx
            .prepare_cached("SELECT checkpoint FROM runs WHERE run_id = ?1")?
            .query_row(params![run], |r| r.get(0))
            .optional()?;
        let Some(text) = text else { return Ok(Err(StoreError::NotFound(format!("run {run} not found")))) };
        let mut cp: Checkpoint = parse_checkpoint(&text)?;
        let applied = match apply_decision(&mut cp, &run, decision, at) {
            Ok(a) => a,
            Err(EngineError::InvalidState { message, .. }) => return Ok(Err(StoreError::Conflict(message))),
            Err(e) => return Ok(Err(StoreError::Conflict(e.to_string()))),
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

impl SqliteStore {
    /// Records `decision` on `run_id` atomically; returns the approvals still pending. A decision on an approval
    /// that is no longer pending (decided, expired, cancelled) is a [`StoreError::Conflict`]; an unknown run is
    /// [`StoreError::NotFound`]. A subflow child's approval is recorded on the child in the same transaction.
    pub async fn decide(&self, run_id: &str, decision: Decision) -> Result<Vec<PendingApproval>, StoreError> {
        let id = run_id.to_owned();
        let pending = self.write(move |tx| decide_in(tx, &id, decision)).await??;
        if pending.is_empty() {
            self.notify_work();
        }
        self.publish(run_id);
        Ok(pending)
    }
}
