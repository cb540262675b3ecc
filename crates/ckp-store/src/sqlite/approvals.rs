//! Approvals as the API lists them. Rows are written by journal commits (a pause inserts one per pending
//! approval, a decision or the run's end settles it); a decision by approval id goes through the same guarded
//! transaction as [`SqliteStore::decide`], so exactly one of concurrent decisions wins.

use ckp_engine::engine::Decision;
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value};

use crate::StoreError;
use crate::decisions::decide_in;
use crate::sqlite::{SqliteStore, json_col};

/// An approval row.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRow {
    /// Id.
    pub approval_id: String,
    /// The top-level run waiting for it.
    pub run_id: String,
    /// The engine's decision key.
    pub approval_key: String,
    /// Approval node.
    pub node_id: String,
    /// Node name.
    pub node_name: Option<String>,
    /// Rendered prompt.
    pub prompt: String,
    /// approve_reject, select_option, provide_input.
    pub decision_type: String,
    /// Options.
    pub options: Option<Value>,
    /// Context data.
    pub context_data: Option<Value>,
    /// pending, approved, rejected, timeout, canceled, or the option chosen.
    pub status: String,
    /// Who decided.
    pub decided_by: Option<String>,
    /// `{decision, comment?, ...payload}`.
    pub decision_payload: Option<Value>,
    /// Asked.
    pub created_at: String,
    /// Decided.
    pub decided_at: Option<String>,
    /// Expires.
    pub expires_at: Option<String>,
    /// The run's status (list only).
    pub run_status: Option<String>,
}

const COLUMNS: &str = "a.approval_id, a.run_id, a.approval_key, a.node_id, a.node_name, a.prompt, a.decision_type,
    a.options, a.context_data, a.status, a.decided_by, a.decision_payload, a.created_at, a.decided_at, a.expires_at";

fn row(r: &rusqlite::Row<'_>, with_run: bool) -> Result<ApprovalRow, rusqlite::Error> {
    Ok(ApprovalRow {
        approval_id: r.get(0)?,
        run_id: r.get(1)?,
        approval_key: r.get(2)?,
        node_id: r.get(3)?,
        node_name: r.get(4)?,
        prompt: r.get(5)?,
        decision_type: r.get(6)?,
        options: json_col(r.get(7)?),
        context_data: json_col(r.get(8)?),
        status: r.get(9)?,
        decided_by: r.get(10)?,
        decision_payload: json_col(r.get(11)?),
        created_at: r.get(12)?,
        decided_at: r.get(13)?,
        expires_at: r.get(14)?,
        run_status: if with_run { r.get(15)? } else { None },
    })
}

fn get_in(c: &rusqlite::Connection, approval_id: &str) -> Result<Option<ApprovalRow>, rusqlite::Error> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS}, r.status FROM approvals a JOIN runs r ON r.run_id = a.run_id WHERE a.approval_id = ?1"
    ))?
    .query_row(params![approval_id], |r| row(r, true))
    .optional()
}

/// A decision as the API receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalDecision {
    /// The decision (`approved`, `rejected`, an option, an input value).
    pub value: Value,
    /// Who decided.
    pub decided_by: Option<String>,
    /// Why.
    pub comment: Option<String>,
    /// Extra fields kept in `decision_payload`.
    pub payload: Map<String, Value>,
}

impl SqliteStore {
    /// Approvals, newest first, optionally by status and run.
    pub async fn list_approvals(
        &self,
        status: Option<String>,
        run_id: Option<String>,
    ) -> Result<Vec<ApprovalRow>, StoreError> {
        self.read_store(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS}, r.status FROM approvals a JOIN runs r ON r.run_id = a.run_id
                 WHERE (?1 IS NULL OR a.status = ?1) AND (?2 IS NULL OR a.run_id = ?2)
                 ORDER BY a.created_at DESC, a.approval_id"
            ))?;
            let rows = stmt.query_map(params![status, run_id], |r| row(r, true))?;
            rows.collect()
        })
        .await
    }

    /// One approval, with its run's status.
    pub async fn get_approval(&self, approval_id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        let id = approval_id.to_owned();
        self.read_store(move |c| get_in(c, &id)).await
    }

    /// Decides an approval in one transaction: the run's checkpoint, the `approval_decision_received` event, the
    /// approval row and the requeue land together, and only while the approval is pending (else
    /// [`StoreError::Conflict`]). Unknown id: [`StoreError::NotFound`].
    pub async fn decide_approval(
        &self,
        approval_id: &str,
        decision: ApprovalDecision,
    ) -> Result<ApprovalRow, StoreError> {
        let id = approval_id.to_owned();
        let outcome = self
            .write(move |tx| {
                let Some(found) = get_in(tx, &id)? else {
                    return Ok(Err(StoreError::NotFound(format!("Approval {id} not found"))));
                };
                if found.status != "pending" {
                    return Ok(Err(StoreError::Conflict(format!("Approval {id} is already {}", found.status))));
                }
                let engine_decision = Decision {
                    key: Some(found.approval_key.clone()),
                    value: decision.value.clone(),
                    decided_by: decision.decided_by.clone(),
                    comment: decision.comment.clone(),
                };
                let pending = match decide_in(tx, &found.run_id, engine_decision)? {
                    Ok(p) => p,
                    Err(e) => return Ok(Err(e)),
                };
                // The commit settled the row from the event; the API adds the caller's payload.
                let mut payload = Map::new();
                let settled: Option<String> = tx
                    .prepare_cached("SELECT decision_payload FROM approvals WHERE approval_id = ?1")?
                    .query_row(params![id], |r| r.get(0))?;
                if let Some(Value::Object(m)) = json_col(settled) {
                    payload.extend(m);
                }
                payload.extend(decision.payload);
                tx.prepare_cached(
                    "UPDATE approvals SET decision_payload = ?2, decided_by = ?3 WHERE approval_id = ?1",
                )?
                .execute(params![id, Value::Object(payload).to_string(), decision.decided_by])?;
                Ok(Ok((get_in(tx, &id)?, pending.is_empty())))
            })
            .await??;
        let (row, runnable) = outcome;
        if runnable {
            self.notify_work();
        }
        if let Some(r) = &row {
            self.publish(&r.run_id);
        }
        row.ok_or_else(|| StoreError::NotFound(format!("Approval {approval_id} not found")))
    }
}
