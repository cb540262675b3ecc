//! [`ApprovalStore`]: decisions and workflow callbacks as guarded transactions (the engine's pure
//! `apply_decision` and `apply_callback` run on the stored checkpoint inside them, so exactly one of concurrent
//! answers wins), and approvals as the API lists them, with their one decoder for both backends.

use ckp_engine::callback::Callback;
use ckp_engine::effects::BoxFuture;
use ckp_engine::engine::Decision;
use ckp_engine::journal::PendingApproval;
use serde_json::{Map, Value};

use crate::StoreError;
use crate::codec::json_col;
use crate::row::RowSource;
use crate::status::{ApprovalStatus, RunStatus};

/// Priority of a run resumed by a decision (LangOrch requeues at 10).
pub const DECISION_PRIORITY: i64 = 10;

/// Priority of a run resumed by a callback (LangOrch requeues at 0).
pub(crate) const CALLBACK_PRIORITY: i64 = 0;

/// Decisions, callbacks and approvals. Approval rows are written by journal commits (a pause inserts one per
/// pending approval, a decision or the run's end settles it).
pub trait ApprovalStore: Send + Sync {
    /// Records `decision` on a waiting run atomically (the checkpoint, `approval_decision_received` and the
    /// requeue at [`DECISION_PRIORITY`] together); returns the approvals still pending. A decision on an approval
    /// that is no longer pending is a [`StoreError::Conflict`]; an unknown run [`StoreError::NotFound`]. A subflow
    /// child's approval is recorded on the child in the same transaction.
    fn decide<'a>(
        &'a self,
        run_id: &'a str,
        decision: Decision,
    ) -> BoxFuture<'a, Result<Vec<PendingApproval>, StoreError>>;
    /// Applies a workflow callback to a paused run atomically (only a step still waiting can be answered: the rest
    /// are conflicts); true when the run was queued (no other callback pending).
    fn workflow_callback<'a>(&'a self, run_id: &'a str, callback: Callback) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Approvals, newest first, optionally by status, run and projects (`Some`: only approvals whose run belongs
    /// to one of them; a run with no project is left out), each with its run's status, project and trigger source.
    fn list_approvals(
        &self,
        status: Option<ApprovalStatus>,
        run_id: Option<String>,
        projects: Option<Vec<String>>,
    ) -> BoxFuture<'_, Result<Vec<ApprovalRow>, StoreError>>;
    /// One approval, with its run's status, project and trigger source.
    fn get_approval<'a>(&'a self, approval_id: &'a str) -> BoxFuture<'a, Result<Option<ApprovalRow>, StoreError>>;
    /// Decides an approval by id in one transaction with [`ApprovalStore::decide`]'s guard, and adds the caller's
    /// payload to the row: conflict unless pending, not found for an unknown id.
    fn decide_approval<'a>(
        &'a self,
        approval_id: &'a str,
        decision: ApprovalDecision,
    ) -> BoxFuture<'a, Result<ApprovalRow, StoreError>>;
}

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
    /// Pending, or how it was settled.
    pub status: ApprovalStatus,
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
    /// The run's status.
    pub run_status: Option<RunStatus>,
    /// The run's project.
    pub run_project_id: Option<String>,
    /// Who or what triggered the run.
    pub run_triggered_by: Option<String>,
}

/// The columns [`approval_row`] reads (approvals `a` joined with their run `r`), in its order.
pub(crate) const APPROVAL_COLUMNS: &str = "a.approval_id, a.run_id, a.approval_key, a.node_id, a.node_name, a.prompt,
    a.decision_type, a.options, a.context_data, a.status, a.decided_by, a.decision_payload, a.created_at,
    a.decided_at, a.expires_at, r.status, r.project_id, r.triggered_by";

/// An approval from the columns of [`APPROVAL_COLUMNS`].
pub(crate) fn approval_row<R: RowSource>(r: &R) -> Result<ApprovalRow, R::Error> {
    Ok(ApprovalRow {
        approval_id: r.text(0)?,
        run_id: r.text(1)?,
        approval_key: r.text(2)?,
        node_id: r.text(3)?,
        node_name: r.opt_text(4)?,
        prompt: r.text(5)?,
        decision_type: r.text(6)?,
        options: json_col(r.opt_text(7)?),
        context_data: json_col(r.opt_text(8)?),
        status: r.parsed(9)?,
        decided_by: r.opt_text(10)?,
        decision_payload: json_col(r.opt_text(11)?),
        created_at: r.time(12)?,
        decided_at: r.opt_time(13)?,
        expires_at: r.opt_time(14)?,
        run_status: r.opt_parsed(15)?,
        run_project_id: r.opt_text(16)?,
        run_triggered_by: r.opt_text(17)?,
    })
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

impl ApprovalDecision {
    /// The engine's decision on `found`, refused unless it is pending.
    pub(crate) fn on(&self, found: &ApprovalRow) -> Result<Decision, StoreError> {
        if found.status != ApprovalStatus::Pending {
            return Err(StoreError::Conflict(format!("Approval {} is already {}", found.approval_id, found.status)));
        }
        Ok(Decision {
            key: Some(found.approval_key.clone()),
            value: self.value.clone(),
            decided_by: self.decided_by.clone(),
            comment: self.comment.clone(),
        })
    }
}

/// An approval's `decision_payload` once decided: what the commit settled (`settled`) plus the caller's `extra`.
pub(crate) fn decided_payload(settled: Option<String>, extra: Map<String, Value>) -> String {
    let mut payload = Map::new();
    if let Some(Value::Object(m)) = json_col(settled) {
        payload.extend(m);
    }
    payload.extend(extra);
    Value::Object(payload).to_string()
}

/// The answer when an approval id names no approval.
pub(crate) fn approval_not_found(approval_id: &str) -> StoreError {
    StoreError::NotFound(format!("Approval {approval_id} not found"))
}

/// A refusal of the engine's pure decision or callback rule, as the store answers it: a conflict.
pub(crate) fn refused(e: ckp_engine::EngineError) -> StoreError {
    match e {
        ckp_engine::EngineError::InvalidState { message, .. } => StoreError::Conflict(message),
        e => StoreError::Conflict(e.to_string()),
    }
}
