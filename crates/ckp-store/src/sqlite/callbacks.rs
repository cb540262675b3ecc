//! Workflow callbacks as one transaction on SQLite (CKP.md A.2.6, langorch.md B §6.4): the engine's pure
//! `apply_callback` on the stored checkpoint (only if the step still waits: exactly one of concurrent duplicate
//! callbacks wins, the rest are conflicts), the delegated step's record, the events, and the requeue, together.

use ckp_engine::callback::{Callback, apply_callback};
use ckp_engine::journal::Commit;

use super::apply;
use super::queue::enqueue_in;
use super::runs::checkpoint_of;
use crate::StoreError;
use crate::codec::now;
use crate::store::{CALLBACK_PRIORITY, refused, run_not_found};

/// Applies `callback` to `run_id` inside `tx` (see [`crate::ApprovalStore::workflow_callback`]); true when the
/// run was queued.
pub(crate) fn callback_in(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    callback: Callback,
) -> Result<Result<bool, StoreError>, rusqlite::Error> {
    let Some(mut cp) = checkpoint_of(tx, run_id)? else { return Ok(Err(run_not_found(run_id))) };
    let applied = match apply_callback(&mut cp, run_id, callback, chrono::Utc::now()) {
        Ok(a) => a,
        Err(e) => return Ok(Err(refused(e))),
    };
    apply(tx, run_id, &Commit { events: applied.events, steps: applied.steps, checkpoint: cp })?;
    if applied.runnable {
        let now = now();
        enqueue_in(tx, run_id, CALLBACK_PRIORITY, &now, &now)?;
    }
    Ok(Ok(applied.runnable))
}
