//! [`ApprovalStore`] on PostgreSQL: decisions, callbacks and approvals with the same rules as the SQLite store.
//! The run row lock taken before the engine's pure rule runs serializes competing answers, from any process:
//! exactly one wins, the others see the approval decided.

use chrono::Utc;
use ckp_engine::callback::{Callback, apply_callback};
use ckp_engine::effects::BoxFuture;
use ckp_engine::engine::{Decision, apply_decision};
use ckp_engine::journal::{Commit, PendingApproval};
use deadpool_postgres::{GenericClient, Transaction};

use super::queue::enqueue_in;
use super::runs::lock_checkpoint;
use super::{PgStore, apply};
use crate::StoreError;
use crate::status::ApprovalStatus;
use crate::store::{
    APPROVAL_COLUMNS, ApprovalDecision, ApprovalRow, ApprovalStore, CALLBACK_PRIORITY, DECISION_PRIORITY,
    approval_not_found, approval_row, decided_payload, refused, run_not_found,
};

/// Records `decision` on `run_id` inside `tx` (see the SQLite store's `decide_in`); adds the runs it changed (the
/// run, and the parents a subflow's decision reaches) to `touched`.
async fn decide_in(
    tx: &Transaction<'_>,
    run_id: &str,
    decision: Decision,
    touched: &mut Vec<String>,
) -> Result<Result<Vec<PendingApproval>, StoreError>, StoreError> {
    let at = Utc::now();
    let (mut run, mut decision) = (run_id.to_owned(), decision);
    let mut first: Option<Vec<PendingApproval>> = None;
    loop {
        let Some(mut cp) = lock_checkpoint(tx, &run).await? else { return Ok(Err(run_not_found(&run))) };
        let applied = match apply_decision(&mut cp, &run, decision, at) {
            Ok(a) => a,
            Err(e) => return Ok(Err(refused(e))),
        };
        apply(tx, &run, &Commit { events: applied.events, steps: Vec::new(), checkpoint: cp }).await?;
        touched.push(run.clone());
        if first.is_none() {
            if applied.still_pending.is_empty() {
                enqueue_in(tx, &run, DECISION_PRIORITY, at).await?;
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

async fn get_approval_in(c: &impl GenericClient, approval_id: &str) -> Result<Option<ApprovalRow>, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals a JOIN runs r ON r.run_id = a.run_id WHERE a.approval_id = $1"
        ))
        .await?;
    c.query_opt(&stmt, &[&approval_id]).await?.as_ref().map(approval_row).transpose()
}

impl ApprovalStore for PgStore {
    fn decide<'a>(
        &'a self,
        run_id: &'a str,
        decision: Decision,
    ) -> BoxFuture<'a, Result<Vec<PendingApproval>, StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let mut touched = Vec::new();
            let pending = decide_in(&tx, run_id, decision, &mut touched).await??;
            tx.commit().await?;
            if pending.is_empty() {
                self.notify_work();
            }
            touched.iter().for_each(|run| self.publish(run));
            Ok(pending)
        })
    }

    fn workflow_callback<'a>(&'a self, run_id: &'a str, callback: Callback) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let Some(mut cp) = lock_checkpoint(&tx, run_id).await? else { return Err(run_not_found(run_id)) };
            let applied = apply_callback(&mut cp, run_id, callback, Utc::now()).map_err(refused)?;
            apply(&tx, run_id, &Commit { events: applied.events, steps: applied.steps, checkpoint: cp }).await?;
            if applied.runnable {
                enqueue_in(&tx, run_id, CALLBACK_PRIORITY, Utc::now()).await?;
            }
            tx.commit().await?;
            if applied.runnable {
                self.notify_work();
            }
            self.publish(run_id);
            Ok(applied.runnable)
        })
    }

    fn list_approvals(
        &self,
        status: Option<ApprovalStatus>,
        run_id: Option<String>,
        projects: Option<Vec<String>>,
    ) -> BoxFuture<'_, Result<Vec<ApprovalRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals a JOIN runs r ON r.run_id = a.run_id
                     WHERE ($1::text IS NULL OR a.status = $1) AND ($2::text IS NULL OR a.run_id = $2)
                       AND ($3::text[] IS NULL OR r.project_id = ANY($3))
                     ORDER BY a.created_at DESC, a.approval_id"
                ))
                .await?;
            let status = status.as_ref().map(ApprovalStatus::as_str);
            c.query(&stmt, &[&status, &run_id, &projects]).await?.iter().map(approval_row).collect()
        })
    }

    fn get_approval<'a>(&'a self, approval_id: &'a str) -> BoxFuture<'a, Result<Option<ApprovalRow>, StoreError>> {
        Box::pin(async move { get_approval_in(&self.client().await?, approval_id).await })
    }

    fn decide_approval<'a>(
        &'a self,
        approval_id: &'a str,
        decision: ApprovalDecision,
    ) -> BoxFuture<'a, Result<ApprovalRow, StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let Some(found) = get_approval_in(&tx, approval_id).await? else {
                return Err(approval_not_found(approval_id));
            };
            let engine_decision = decision.on(&found)?;
            // The run row lock inside decide_in serializes competing decisions; the loser sees the approval decided.
            let mut touched = Vec::new();
            let pending = decide_in(&tx, &found.run_id, engine_decision, &mut touched).await??;
            let settled: Option<String> = tx
                .query_one("SELECT decision_payload FROM approvals WHERE approval_id = $1", &[&approval_id])
                .await?
                .try_get(0)?;
            let payload = decided_payload(settled, decision.payload);
            tx.execute(
                "UPDATE approvals SET decision_payload = $2, decided_by = $3 WHERE approval_id = $1",
                &[&approval_id, &payload, &decision.decided_by],
            )
            .await?;
            let row = get_approval_in(&tx, approval_id).await?;
            tx.commit().await?;
            if pending.is_empty() {
                self.notify_work();
            }
            touched.iter().for_each(|run| self.publish(run));
            row.ok_or_else(|| approval_not_found(approval_id))
        })
    }
}
