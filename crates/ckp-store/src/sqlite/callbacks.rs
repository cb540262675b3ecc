//! Workflow callbacks as one transaction (CKP.md A.2.6, langorch.md B §6.4): the engine's pure `apply_callback` on the
//! stored checkpoint (only if the step still waits: exactly one of concurrent duplicate callbacks wins, the rest
//! are conflicts), the delegated step's record, the events, and the requeue, together.

use ckp_engine::EngineError;
use ckp_engine::callback::{Callback, apply_callback};
use ckp_engine::journal::{Checkpoint, Commit};
use rusqlite::{OptionalExtension, params};

use crate::StoreError;
use crate::queue::enqueue_in;
use crate::sqlite::{SqliteStore, apply, now, parse_checkpoint};

/// Priority of a run resumed by a callback (LangOrch requeues at 0).
pub(crate) const CALLBACK_PRIORITY: i64 = 0;

impl SqliteStore {
    /// Applies `callback` to the paused `run_id` atomically; returns true when the run was queued (no other
    /// callback pending). A run not waiting for this callback (answered already, never delegated, ended) is a
    /// [`StoreError::Conflict`]; an unknown run is [`StoreError::NotFound`].
    pub async fn workflow_callback(&self, run_id: &str, callback: Callback) -> Result<bool, StoreError> {
        let id = run_id.to_owned();
        let runnable = self
            .write(move |tx| {
                let text: Option<String> = tx
                    .prepare_cached("SELECT checkpoint FROM runs WHERE run_id = ?1")?
                    .query_row(params![id], |r| r.get(0))
                    .optional()?;
                let Some(text) = text else { return Ok(Err(StoreError::NotFound(format!("run {id} not found")))) };
                let mut cp: Checkpoint = parse_checkpoint(&text)?;
                let applied = match apply_callback(&mut cp, &id, callback, chrono::Utc::now()) {
                    Ok(a) => a,
                    Err(EngineError::InvalidState { message, .. }) => return Ok(Err(StoreError::Conflict(message))),
                    Err(e) => return Ok(Err(StoreError::Conflict(e.to_string()))),
                };
                apply(tx, &id, &Commit { events: applied.events, steps: applied.steps, checkpoint: cp })?;
                if applied.runnable {
                    let now = now();
                    enqueue_in(tx, &id, CALLBACK_PRIORITY, &now, &now)?;
                }
                Ok(Ok(applied.runnable))
            })
            .await??;
        if runnable {
            self.notify_work();
        }
        self.publish(run_id);
        Ok(runnable)
    }
}
