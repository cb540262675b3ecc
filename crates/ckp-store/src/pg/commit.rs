//! A journal commit on PostgreSQL. Its common parts (the run row, event batches, step records, the job released,
//! approvals canceled) are one call of the `ckp_commit` function (migration 0004): a commit is
//! then one statement and one round trip, in a transaction of its own. Rarer parts (approvals asked or decided,
//! artifacts, a subflow's parent) are more statements after it; the commit then takes a transaction, and all its
//! statements are sent as one pipeline between BEGIN and COMMIT.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use chrono::{DateTime, Utc};
use ckp_engine::Event;
use ckp_engine::journal::{Checkpoint, Commit, RunStatus};
use deadpool_postgres::{GenericClient, Object, Transaction};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::JOBS_CHANNEL;
use crate::StoreError;
use crate::codec::{json_col, ts};
use crate::derived::{ArtifactFields, DecisionRow};
use crate::store::{NewRun, RunRow};

/// One statement of a pipeline; a query's row, None for a write.
pub(crate) type Op<'a> = Pin<Box<dyn Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send + 'a>>;

/// A parameter list.
pub(crate) type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

/// A write of a pipeline.
pub(crate) fn write<'a>(c: &'a impl GenericClient, stmt: &'a Statement, params: Params<'a>) -> Op<'a> {
    Box::pin(async move { c.execute(stmt, &params).await.map(|_| None) })
}

/// Sends `ops` back to back and waits for all their answers. Each is polled once, in order, before any answer is
/// awaited: tokio-postgres writes a statement to the connection when its future is first polled (every statement
/// must be prepared already), and PostgreSQL runs them in the order received. The first error, in that order, wins;
/// PostgreSQL then refuses the rest of the transaction and the caller's transaction guard rolls it back.
pub(crate) async fn pipeline(ops: Vec<Op<'_>>) -> Result<Vec<Option<Row>>, tokio_postgres::Error> {
    let mut ops: Vec<Option<Op<'_>>> = ops.into_iter().map(Some).collect();
    let mut answers: Vec<Option<Row>> = Vec::with_capacity(ops.len());
    answers.resize_with(ops.len(), || None);
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (slot, answer) in ops.iter_mut().zip(answers.iter_mut()) {
            let Some(op) = slot else { continue };
            match op.as_mut().poll(cx) {
                Poll::Ready(Ok(row)) => {
                    *answer = row;
                    *slot = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => waiting = true,
            }
        }
        if waiting { Poll::Pending } else { Poll::Ready(Ok(())) }
    })
    .await?;
    Ok(answers)
}

/// An approval row asked by the checkpoint.
struct Ask<'c> {
    approval_id: String,
    key: &'c str,
    node_id: &'c str,
    node_name: &'c str,
    prompt: &'c str,
    decision_type: &'c str,
    options: Option<String>,
    context_data: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

/// The API's columns of a new run, written by its first commit.
pub(crate) struct Creation<'c> {
    input_vars: Option<String>,
    run: &'c NewRun,
    enqueue: bool,
}

impl<'c> Creation<'c> {
    /// `run`'s columns; `enqueue`: the run also gets its job.
    pub(crate) fn new(run: &'c NewRun, enqueue: bool) -> Creation<'c> {
        Creation { input_vars: run.input_vars.as_ref().map(serde_json::Value::to_string), run, enqueue }
    }
}

/// The prepared statements a commit needs (None: nothing of that kind to write).
struct Statements {
    commit: Statement,
    parent: Option<Statement>,
    rerun: Option<Statement>,
    decide: Option<Statement>,
    artifact: Option<Statement>,
    ask: Option<Statement>,
}

/// A journal commit encoded as the parameters of `ckp_commit` and of the statements of its rarer parts, with
/// every statement prepared.
pub(crate) struct CommitWrite<'c> {
    run_id: &'c str,
    cp: &'c Checkpoint,
    at: DateTime<Utc>,
    status: &'static str,
    checkpoint: String,
    outputs: Option<String>,
    terminal: bool,
    error: Option<&'c str>,
    last_node: Option<&'c str>,
    prompt_tokens: i64,
    completion_tokens: i64,
    batch_sizes: Vec<i64>,
    batch_data: Vec<Vec<u8>>,
    step_keys: Vec<&'c str>,
    step_records: Vec<String>,
    release_job: bool,
    cancel_approvals: bool,
    jobs_channel: Option<&'static str>,
    creation: Option<Creation<'c>>,
    parent: Option<&'c str>,
    decisions: Vec<DecisionRow<'c>>,
    artifacts: Vec<(&'c Event, ArtifactFields)>,
    asks: Vec<Ask<'c>>,
    statements: Statements,
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Write(crate::cause(format!("cannot encode: {e}")))
}

impl<'c> CommitWrite<'c> {
    /// Encodes `commit` (the first of a new run when `creation` is given) and prepares its statements on `c`.
    pub(crate) async fn new(
        c: &impl GenericClient,
        run_id: &'c str,
        commit: &'c Commit,
        creation: Option<Creation<'c>>,
    ) -> Result<CommitWrite<'c>, StoreError> {
        let cp = &commit.checkpoint;
        let outputs = match (cp.status, &cp.outputs) {
            (RunStatus::Completed, Some(o)) => Some(serde_json::to_string(o).map_err(json_err)?),
            _ => None,
        };
        let mut batch_sizes = Vec::new();
        let mut batch_data = Vec::new();
        for chunk in crate::events::chunks(&commit.events) {
            batch_sizes.push(chunk.len() as i64);
            batch_data.push(crate::events::encode(chunk).map_err(|m| StoreError::Write(crate::cause(m)))?);
        }
        // The last record of a key wins, as if each were written in turn.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(commit.steps.len());
        for (i, (key, _)) in commit.steps.iter().enumerate() {
            last.insert(key.as_str(), i);
        }
        let mut step_keys = Vec::with_capacity(last.len());
        let mut step_records = Vec::with_capacity(last.len());
        for (i, (key, record)) in commit.steps.iter().enumerate() {
            if last.get(key.as_str()) == Some(&i) {
                step_keys.push(key.as_str());
                step_records.push(serde_json::to_string(record).map_err(json_err)?);
            }
        }
        let mut parent = None;
        let mut decisions = Vec::new();
        let mut artifacts = Vec::new();
        for e in &commit.events {
            match e.event_type.as_str() {
                "run_created" => parent = e.payload.get("parent_run_id").and_then(|v| v.as_str()).or(parent),
                "approval_decision_received" => decisions.push(crate::derived::decision_row(e)),
                "artifact_created" => artifacts.extend(crate::derived::artifact_fields(e).map(|a| (e, a))),
                _ => {}
            }
        }
        let top = cp.call_stack.is_empty();
        let asks = if top {
            cp.pending
                .iter()
                .map(|a| Ask {
                    approval_id: ckp_engine::journal::approval_id(run_id, &a.key),
                    key: &a.key,
                    node_id: &a.node_id,
                    node_name: &a.node_name,
                    prompt: &a.prompt,
                    decision_type: &a.decision_type,
                    options: crate::derived::json_or_null(&a.options),
                    context_data: crate::derived::json_or_null(&a.context_data),
                    expires_at: a.expires_at,
                })
                .collect()
        } else {
            Vec::new()
        };
        let terminal = cp.status.is_terminal();
        let when = |wanted: bool, sql: &'static str| async move {
            if wanted { c.prepare_cached(sql).await.map(Some) } else { Ok(None) }
        };
        let statements = Statements {
            commit: c.prepare_cached(COMMIT).await?,
            parent: when(parent.is_some(), SET_PARENT).await?,
            rerun: when(creation.as_ref().is_some_and(|c| c.run.rerun_of.is_some()), SET_RERUN_OF).await?,
            decide: when(!decisions.is_empty(), DECIDE).await?,
            artifact: when(!artifacts.is_empty(), INSERT_ARTIFACT).await?,
            ask: when(!asks.is_empty(), ASK).await?,
        };
        Ok(CommitWrite {
            run_id,
            cp,
            at: Utc::now(),
            status: cp.status.as_str(),
            checkpoint: serde_json::to_string(cp).map_err(json_err)?,
            outputs,
            terminal,
            error: cp.error.as_ref().filter(|_| cp.status == RunStatus::Failed).map(|e| e.message.as_str()),
            last_node: cp.pending.first().map(|a| a.node_id.as_str()),
            prompt_tokens: i64::try_from(cp.usage.prompt_tokens).unwrap_or(i64::MAX),
            completion_tokens: i64::try_from(cp.usage.completion_tokens).unwrap_or(i64::MAX),
            batch_sizes,
            batch_data,
            step_keys,
            step_records,
            release_job: crate::derived::releases_job(cp),
            cancel_approvals: top && terminal,
            jobs_channel: creation.as_ref().is_some_and(|c| c.enqueue).then_some(JOBS_CHANNEL),
            creation,
            parent,
            decisions,
            artifacts,
            asks,
            statements,
        })
    }

    /// The row a new run's commit stores, as reading it back would return it (no second statement): every column
    /// is a parameter of the commit, and times keep microseconds on both sides.
    pub(crate) fn created_row(&self) -> Option<RunRow> {
        let c = self.creation.as_ref()?;
        let at = ts(self.at);
        Some(RunRow {
            run_id: self.run_id.to_owned(),
            procedure_id: self.cp.procedure_id.clone(),
            procedure_version: self.cp.procedure_version.clone(),
            status: self.cp.status,
            input_vars: json_col(c.input_vars.clone()),
            output_vars: json_col(self.outputs.clone()),
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cost_usd: self.cp.usage.cost_usd,
            started_at: self.cp.started_at.map(ts),
            ended_at: self.terminal.then(|| at.clone()),
            last_node_id: self.last_node.map(str::to_owned),
            error_message: self.error.map(str::to_owned),
            parent_run_id: self.parent.map(str::to_owned),
            trigger_type: c.run.trigger_type.clone(),
            triggered_by: c.run.triggered_by.clone(),
            project_id: c.run.project_id.clone(),
            case_id: c.run.case_id.clone(),
            created_at: at.clone(),
            updated_at: at,
            commits: 1,
            rerun_of: c.run.rerun_of.clone(),
        })
    }

    /// Whether the commit has statements beyond `ckp_commit` (it then needs a transaction).
    pub(crate) fn has_more(&self) -> bool {
        self.parent.is_some()
            || self.statements.rerun.is_some()
            || !self.decisions.is_empty()
            || !self.artifacts.is_empty()
            || !self.asks.is_empty()
    }

    /// The commit's statements, in the order they must run: `ckp_commit` first (it locks the run).
    pub(crate) fn ops<'a>(&'a self, c: &'a impl GenericClient) -> Vec<Op<'a>> {
        let s = &self.statements;
        let (run_id, cp, at) = (&self.run_id, self.cp, &self.at);
        let none: &'a Option<String> = &NONE;
        let (created, enqueue): (&'a bool, &'a bool) = match &self.creation {
            Some(c) if c.enqueue => (&true, &true),
            Some(_) => (&true, &false),
            None => (&false, &false),
        };
        let (input_vars, project_id, case_id, trigger_type, triggered_by) = match &self.creation {
            Some(c) => (&c.input_vars, &c.run.project_id, &c.run.case_id, &c.run.trigger_type, &c.run.triggered_by),
            None => (none, none, none, none, none),
        };
        let mut ops = vec![write(
            c,
            &s.commit,
            vec![
                run_id,
                &cp.procedure_id,
                &cp.procedure_version,
                &self.status,
                &self.checkpoint,
                at,
                &self.outputs,
                &cp.started_at,
                &self.terminal,
                &self.error,
                &self.last_node,
                &self.prompt_tokens,
                &self.completion_tokens,
                &cp.usage.cost_usd,
                &self.batch_sizes,
                &self.batch_data,
                &self.step_keys,
                &self.step_records,
                &self.release_job,
                &self.cancel_approvals,
                &self.jobs_channel,
                created,
                input_vars,
                project_id,
                case_id,
                trigger_type,
                triggered_by,
                enqueue,
            ],
        )];
        if let (Some(stmt), Some(parent)) = (&s.parent, &self.parent) {
            ops.push(write(c, stmt, vec![run_id, parent]));
        }
        if let (Some(stmt), Some(creation)) = (&s.rerun, &self.creation) {
            ops.push(write(c, stmt, vec![run_id, &creation.run.rerun_of]));
        }
        if let Some(stmt) = &s.decide {
            for d in &self.decisions {
                ops.push(write(c, stmt, vec![&d.approval_id, &d.status, &d.decided_by, &d.payload, at]));
            }
        }
        if let Some(stmt) = &s.artifact {
            for (e, a) in &self.artifacts {
                ops.push(write(
                    c,
                    stmt,
                    vec![
                        &a.artifact_id,
                        run_id,
                        &e.node_id,
                        &e.step_id,
                        &a.kind,
                        &a.uri,
                        &a.name,
                        &a.mime_type,
                        &a.size_bytes,
                        &e.created_at,
                    ],
                ));
            }
        }
        if let Some(stmt) = &s.ask {
            for a in &self.asks {
                ops.push(write(
                    c,
                    stmt,
                    vec![
                        &a.approval_id,
                        run_id,
                        &a.key,
                        &a.node_id,
                        &a.node_name,
                        &a.prompt,
                        &a.decision_type,
                        &a.options,
                        &a.context_data,
                        at,
                        &a.expires_at,
                    ],
                ));
            }
        }
        ops
    }
}

/// A NULL text parameter.
const NONE: Option<String> = None;

/// Writes a journal commit inside the caller's transaction `tx` (see [`CommitWrite`]).
pub(crate) async fn apply(tx: &Transaction<'_>, run_id: &str, commit: &Commit) -> Result<(), StoreError> {
    let w = CommitWrite::new(tx, run_id, commit, None).await?;
    pipeline(w.ops(tx)).await?;
    Ok(())
}

/// Writes `w` on `c`: one statement in a transaction of its own when the commit has no rarer parts, else BEGIN,
/// one pipeline, COMMIT.
pub(crate) async fn write_commit(c: &mut Object, w: CommitWrite<'_>) -> Result<(), StoreError> {
    if !w.has_more() {
        pipeline(w.ops(&*c)).await?;
        return Ok(());
    }
    let tx = c.transaction().await?;
    pipeline(w.ops(&tx)).await?;
    tx.commit().await?;
    Ok(())
}

/// One journal commit (the run row, batches, step records, job, approvals, notice).
const COMMIT: &str = "SELECT ckp_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
    $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)";

const SET_PARENT: &str = "UPDATE runs SET parent_run_id = $2 WHERE run_id = $1";

/// A rerun's link to the run it starts again, written with the run's first commit (`ckp_commit` keeps its
/// signature: reruns are rare).
const SET_RERUN_OF: &str = "UPDATE runs SET rerun_of = $2 WHERE run_id = $1";

const DECIDE: &str = "UPDATE approvals SET status = $2, decided_by = $3, decision_payload = $4, decided_at = $5,
        updated_at = $5
    WHERE approval_id = $1 AND status = 'pending'";

const INSERT_ARTIFACT: &str = "INSERT INTO artifacts (artifact_id, run_id, node_id, step_id, kind, uri, name,
        mime_type, size_bytes, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (artifact_id) DO NOTHING";

const ASK: &str = "INSERT INTO approvals (approval_id, run_id, approval_key, node_id, node_name, prompt, decision_type,
        options, context_data, status, created_at, expires_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $10)
    ON CONFLICT (run_id, approval_key) DO UPDATE SET status = 'pending', decided_by = NULL,
        decision_payload = NULL, decided_at = NULL, prompt = excluded.prompt, options = excluded.options,
        context_data = excluded.context_data, created_at = excluded.created_at, expires_at = excluded.expires_at,
        updated_at = excluded.updated_at
    WHERE approvals.status != 'pending'";
