//! [`ApprovalStore`] on SQLite. Approval rows are written by journal commits (a pause inserts one per pending
//! approval, a decision or the run's end settles it); a decision by approval id goes through the same guarded
//! transaction as a decision on the run ([`super::decisions`]), so exactly one of concurrent decisions wins.

use ckp_engine::callback::Callback;
use ckp_engine::effects::BoxFuture;
use ckp_engine::engine::Decision;
use ckp_engine::journal::PendingApproval;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::callbacks::callback_in;
use super::decisions::decide_in;
use crate::StoreError;
use crate::codec::string_list;
use crate::status::ApprovalStatus;
use crate::store::{
    APPROVAL_COLUMNS, ApprovalDecision, ApprovalRow, ApprovalStore, approval_not_found, approval_row, decided_payload,
};

fn get_in(c: &rusqlite::Connection, approval_id: &str) -> Result<Option<ApprovalRow>, rusqlite::Error> {
    c.prepare_cached(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals a JOIN runs r ON r.run_id = a.run_id WHERE a.approval_id = ?1"
    ))?
    .query_row(params![approval_id], |r| approval_row(r))
    .optional()
}

impl ApprovalStore for SqliteStore {
    fn decide<'a>(
        &'a self,
        run_id: &'a str,
        decision: Decision,
    ) -> BoxFuture<'a, Result<Vec<PendingApproval>, StoreError>> {
        let id = run_id.to_owned();
        Box::pin(async move {
            let pending = self.write(move |tx| decide_in(tx, &id, decision)).await??;
            if pending.is_empty() {
                self.notify_work();
            }
            self.publish(run_id);
            Ok(pending)
        })
    }

    fn workflow_callback<'a>(&'a self, run_id: &'a str, callback: Callback) -> BoxFuture<'a, Result<bool, StoreError>> {
        let id = run_id.to_owned();
        Box::pin(async move {
            let runnable = self.write(move |tx| callback_in(tx, &id, callback)).await??;
            if runnable {
                self.notify_work();
            }
            self.publish(run_id);
            Ok(runnable)
        })
    }

    fn list_approvals(
        &self,
        status: Option<ApprovalStatus>,
        run_id: Option<String>,
        projects: Option<Vec<String>>,
    ) -> BoxFuture<'_, Result<Vec<ApprovalRow>, StoreError>> {
        Box::pin(self.read_store(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals a JOIN runs r ON r.run_id = a.run_id
                 WHERE (?1 IS NULL OR a.status = ?1) AND (?2 IS NULL OR a.run_id = ?2)
                   AND (?3 IS NULL OR r.project_id IN (SELECT value FROM json_each(?3)))
                 ORDER BY a.created_at DESC, a.approval_id"
            ))?;
            let (status, projects) =
                (status.as_ref().map(ApprovalStatus::as_str), projects.as_deref().map(string_list));
            let rows = stmt.query_map(params![status, run_id, projects], |r| approval_row(r))?;
            rows.collect()
        }))
    }

    fn get_approval<'a>(&'a self, approval_id: &'a str) -> BoxFuture<'a, Result<Option<ApprovalRow>, StoreError>> {
        let id = approval_id.to_owned();
        Box::pin(self.read_store(move |c| get_in(c, &id)))
    }

    /// The run's checkpoint, the `approval_decision_received` event, the approval row and the requeue land
    /// together, and only while the approval is pending.
    fn decide_approval<'a>(
        &'a self,
        approval_id: &'a str,
        decision: ApprovalDecision,
    ) -> BoxFuture<'a, Result<ApprovalRow, StoreError>> {
        let id = approval_id.to_owned();
        Box::pin(async move {
            let (row, runnable) = self
                .write(move |tx| {
                    let Some(found) = get_in(tx, &id)? else { return Ok(Err(approval_not_found(&id))) };
                    let engine_decision = match decision.on(&found) {
                        Ok(d) => d,
                        Err(e) => return Ok(Err(e)),
                    };
                    let pending = match decide_in(tx, &found.run_id, engine_decision)? {
                        Ok(p) => p,
                        Err(e) => return Ok(Err(e)),
                    };
                    // The commit settled the row from the event; the API adds the caller's payload.
                    let settled: Option<String> = tx
                        .prepare_cached("SELECT decision_payload FROM approvals WHERE approval_id = ?1")?
                        .query_row(params![id], |r| r.get(0))?;
                    let payload = decided_payload(settled, decision.payload);
                    tx.prepare_cached(
                        "UPDATE approvals SET decision_payload = ?2, decided_by = ?3 WHERE approval_id = ?1",
                    )?
                    .execute(params![id, payload, decision.decided_by])?;
                    Ok(Ok((get_in(tx, &id)?, pending.is_empty())))
                })
                .await??;
            if runnable {
                self.notify_work();
            }
            if let Some(r) = &row {
                self.publish(&r.run_id);
            }
            row.ok_or_else(|| approval_not_found(approval_id))
        })
    }
}
