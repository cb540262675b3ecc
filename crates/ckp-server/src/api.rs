//! The API's bodies, with LangOrch's field names (`docs/langorch-api.md`, "Endpoints and bodies") and ckp's fixes:
//! RFC 3339 UTC timestamps, JSON errors, `warnings` beside an imported procedure.

use ckp_store::{AgentRow, ApprovalRow, ArtifactRow, EventRow, LeaseRow, ProcedureRecord, ProjectRow, RunRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

fn json_text(s: &Option<String>) -> Option<Value> {
    s.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

/// `{"status": "ok", "leader": …}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
    /// Whether this process runs the singleton loops (lease reclaim, agent health checks): always with SQLite;
    /// on PostgreSQL, the one process holding the leader lock.
    pub leader: bool,
}

/// A procedure version (ProcedureOut).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcedureOut {
    /// Row id.
    pub id: i64,
    /// Procedure id.
    pub procedure_id: String,
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// draft, active, deprecated, archived.
    pub status: String,
    /// Not runnable before.
    pub effective_date: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// dev, qa, prod.
    pub release_channel: Option<String>,
    /// Promotion: previous version.
    pub promoted_from_version: Option<String>,
    /// Promotion time.
    pub promoted_at: Option<String>,
    /// Promoted by.
    pub promoted_by: Option<String>,
    /// Project.
    pub project_id: Option<String>,
    /// Imported.
    pub created_at: String,
}

impl From<&ProcedureRecord> for ProcedureOut {
    fn from(r: &ProcedureRecord) -> Self {
        ProcedureOut {
            id: r.id,
            procedure_id: r.procedure_id.clone(),
            version: r.version.clone(),
            name: r.name.clone(),
            status: r.status.as_str().to_owned(),
            effective_date: r.effective_date.clone(),
            description: r.description.clone(),
            release_channel: r.release_channel.clone(),
            promoted_from_version: None,
            promoted_at: None,
            promoted_by: None,
            project_id: r.project_id.clone(),
            created_at: r.created_at.clone(),
        }
    }
}

/// A procedure version with its document (ProcedureDetail).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcedureDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: ProcedureOut,
    /// The CKP document.
    pub ckp_json: Value,
    /// UI builder draft (not stored by ckp yet).
    pub builder_draft: Option<Value>,
    /// Its update time.
    pub builder_draft_updated_at: Option<String>,
    /// `provenance`.
    pub provenance: Option<Value>,
    /// `retrieval_metadata`.
    pub retrieval_metadata: Option<Value>,
    /// `trigger`.
    pub trigger: Option<Value>,
}

impl From<&ProcedureRecord> for ProcedureDetail {
    fn from(r: &ProcedureRecord) -> Self {
        ProcedureDetail {
            summary: r.into(),
            ckp_json: serde_json::from_str(&r.ckp_json).unwrap_or_else(|_| Value::Object(Default::default())),
            builder_draft: None,
            builder_draft_updated_at: None,
            provenance: json_text(&r.provenance),
            retrieval_metadata: json_text(&r.retrieval_metadata),
            trigger: json_text(&r.trigger_config),
        }
    }
}

/// An imported procedure and the compiler's warnings.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcedureImported {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: ProcedureOut,
    /// Compiler warnings (`{severity, code, message, pointer, line, column}`).
    pub warnings: Vec<Value>,
}

/// `POST /api/procedures` and `PUT /api/procedures/{id}/{version}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProcedureIn {
    /// The CKP document (an object, or its JSON text).
    pub ckp_json: Value,
    /// Project (import only).
    #[serde(default)]
    pub project_id: Option<String>,
}

/// `POST /api/procedures/validate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ValidateIn {
    /// The CKP document: an object, or its JSON text (diagnostics then point at lines and columns of that text).
    pub ckp_json: Value,
}

/// What `POST /api/procedures/validate` found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    /// No error (warnings allowed): the document would import.
    pub valid: bool,
    /// The document's procedure id, when it compiled.
    pub procedure_id: Option<String>,
    /// The document's version, when it compiled.
    pub version: Option<String>,
    /// Errors: `{severity, code, message, pointer, line, column}` each.
    pub errors: Vec<Value>,
    /// Warnings, the same shape.
    pub warnings: Vec<Value>,
}

/// A version's builder draft.
#[derive(Debug, Serialize, ToSchema)]
pub struct DraftOut {
    /// Procedure.
    pub procedure_id: String,
    /// Version.
    pub version: String,
    /// The draft object, or null when none is stored.
    pub draft: Option<Value>,
    /// When it was written last.
    pub updated_at: Option<String>,
    /// Who wrote it last (when authentication is on).
    pub updated_by: Option<String>,
    /// 0 when none is stored; one more on every write. Send it back with the next PUT.
    pub revision: i64,
}

/// `PUT /api/procedures/{id}/{version}/builder-draft`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DraftIn {
    /// The draft: any JSON object (the console stores `{ckp, layout, base_version}`).
    pub draft: Value,
    /// The revision the editor read; a different stored one is 409 `draft_conflict`. Absent: write regardless.
    #[serde(default)]
    pub revision: Option<i64>,
}

/// `POST /api/procedures/{id}/{version}/test-runs`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TestRunIn {
    /// The draft document to run (it must name this procedure); an object or its JSON text.
    pub ckp_json: Value,
    /// Inputs, checked against the document's `variables_schema`.
    #[serde(default)]
    pub input_vars: Option<serde_json::Map<String, Value>>,
    /// Answer agent and MCP steps with a mock result instead of calling them (default true).
    #[serde(default)]
    pub mock_external_calls: Option<bool>,
    /// Results by step id, used instead of executing those steps (`global_config.test_data_overrides`).
    #[serde(default)]
    pub test_data_overrides: Option<serde_json::Map<String, Value>>,
    /// End the run (completed) on reaching this node, which is not executed.
    #[serde(default)]
    pub stop_at_node: Option<String>,
}

/// `PATCH /api/procedures/{id}/{version}/status`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusIn {
    /// draft, active, deprecated, archived.
    pub status: String,
}

/// `POST /api/procedures/{id}/{version}/explain`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ExplainIn {
    /// Inputs to check against `variables_schema`.
    #[serde(default)]
    pub input_vars: Option<serde_json::Map<String, Value>>,
    /// A document to explain instead of the stored one.
    #[serde(default)]
    pub ckp_json: Option<Value>,
}

/// `{"deleted": true, ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// Always true.
    pub deleted: bool,
    /// Procedure id (procedure deletes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub procedure_id: Option<String>,
    /// Version (procedure deletes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Run id (run deletes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// `POST /api/runs`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RunIn {
    /// Procedure id.
    pub procedure_id: String,
    /// Version (latest when absent).
    #[serde(default)]
    pub procedure_version: Option<String>,
    /// Inputs.
    #[serde(default)]
    pub input_vars: Option<serde_json::Map<String, Value>>,
    /// Project (the procedure's when absent).
    #[serde(default)]
    pub project_id: Option<String>,
    /// Case.
    #[serde(default)]
    pub case_id: Option<String>,
}

/// A run (RunOut).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunOut {
    /// Id.
    pub run_id: String,
    /// Procedure id.
    pub procedure_id: String,
    /// Version it runs.
    pub procedure_version: String,
    /// = run_id.
    pub thread_id: String,
    /// created, running, waiting_approval, paused, completed, failed, canceled.
    pub status: String,
    /// Inputs as given.
    pub input_vars: Option<Value>,
    /// Final variables.
    pub output_vars: Option<Value>,
    /// LLM prompt tokens.
    pub total_prompt_tokens: Option<i64>,
    /// LLM completion tokens.
    pub total_completion_tokens: Option<i64>,
    /// LLM cost.
    pub estimated_cost_usd: Option<f64>,
    /// First execution.
    pub started_at: Option<String>,
    /// Terminal status reached.
    pub ended_at: Option<String>,
    /// ended_at - started_at.
    pub duration_seconds: Option<f64>,
    /// Approval node it waits (or waited) at.
    pub last_node_id: Option<String>,
    /// Always null (kept for compatibility).
    pub last_step_id: Option<String>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// Parent of a subflow's child run.
    pub parent_run_id: Option<String>,
    /// Trigger type.
    pub trigger_type: Option<String>,
    /// Trigger source.
    pub triggered_by: Option<String>,
    /// Project.
    pub project_id: Option<String>,
    /// Case.
    pub case_id: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// The run this one started again with other inputs (`POST /api/runs/{run_id}/retry` with a body); null for
    /// other runs. The id stays when that run is deleted.
    pub rerun_of: Option<String>,
}

/// `POST /api/runs/{run_id}/retry` with a body: a new run of the same procedure version with these inputs.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RetryIn {
    /// The new run's inputs, checked against the procedure's `variables_schema` as for `POST /api/runs`.
    pub input_vars: serde_json::Map<String, Value>,
}

fn seconds_between(a: &str, b: &str) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    Some((b - a).num_microseconds()? as f64 / 1e6)
}

impl From<&RunRow> for RunOut {
    fn from(r: &RunRow) -> Self {
        let used = r.prompt_tokens > 0 || r.completion_tokens > 0 || r.cost_usd > 0.0;
        RunOut {
            run_id: r.run_id.clone(),
            procedure_id: r.procedure_id.clone(),
            procedure_version: r.procedure_version.clone(),
            thread_id: r.run_id.clone(),
            status: r.status.as_str().to_owned(),
            input_vars: r.input_vars.clone(),
            output_vars: r.output_vars.clone(),
            total_prompt_tokens: used.then_some(r.prompt_tokens),
            total_completion_tokens: used.then_some(r.completion_tokens),
            estimated_cost_usd: used.then_some(r.cost_usd),
            started_at: r.started_at.clone(),
            ended_at: r.ended_at.clone(),
            duration_seconds: match (&r.started_at, &r.ended_at) {
                (Some(s), Some(e)) => seconds_between(s, e),
                _ => None,
            },
            last_node_id: r.last_node_id.clone(),
            last_step_id: None,
            error_message: r.error_message.clone(),
            parent_run_id: r.parent_run_id.clone(),
            trigger_type: r.trigger_type.clone(),
            triggered_by: r.triggered_by.clone(),
            project_id: r.project_id.clone(),
            case_id: r.case_id.clone(),
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
            rerun_of: r.rerun_of.clone(),
        }
    }
}

/// A run event (RunEventOut).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunEventOut {
    /// Monotonic id.
    pub event_id: i64,
    /// Run.
    pub run_id: String,
    /// When.
    pub created_at: String,
    /// Type.
    pub event_type: String,
    /// Node.
    pub node_id: Option<String>,
    /// Step.
    pub step_id: Option<String>,
    /// Attempt (in the payload for ckp; kept null here for compatibility).
    pub attempt: Option<i64>,
    /// Type-specific data.
    pub payload: Option<Value>,
}

impl From<EventRow> for RunEventOut {
    fn from(e: EventRow) -> Self {
        let payload: Option<Value> = e.payload.as_deref().and_then(|p| serde_json::from_str(p).ok());
        let attempt = payload.as_ref().and_then(|p| p.get("attempt")).and_then(Value::as_i64);
        RunEventOut {
            event_id: e.event_id,
            run_id: e.run_id,
            created_at: e.created_at,
            event_type: e.event_type,
            node_id: e.node_id,
            step_id: e.step_id,
            attempt,
            payload,
        }
    }
}

/// An approval (ApprovalOut).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalOut {
    /// Id.
    pub approval_id: String,
    /// Run.
    pub run_id: String,
    /// Approval node.
    pub node_id: String,
    /// Rendered prompt.
    pub prompt: String,
    /// approve_reject, select_option, provide_input.
    pub decision_type: String,
    /// Options.
    pub options: Option<Value>,
    /// Context.
    pub context_data: Option<Value>,
    /// pending, approved, rejected, timeout, canceled, or the option chosen.
    pub status: String,
    /// Who decided.
    pub decided_by: Option<String>,
    /// The decision and its payload.
    pub decision_payload: Option<Value>,
    /// decision_payload.comment.
    pub comment: Option<String>,
    /// Asked.
    pub created_at: String,
    /// Decided.
    pub decided_at: Option<String>,
    /// Expires.
    pub expires_at: Option<String>,
    /// The run's status.
    pub run_status: Option<String>,
}

impl From<&ApprovalRow> for ApprovalOut {
    fn from(a: &ApprovalRow) -> Self {
        ApprovalOut {
            approval_id: a.approval_id.clone(),
            run_id: a.run_id.clone(),
            node_id: a.node_id.clone(),
            prompt: a.prompt.clone(),
            decision_type: a.decision_type.clone(),
            options: a.options.clone(),
            context_data: a.context_data.clone(),
            status: a.status.as_str().to_owned(),
            decided_by: a.decided_by.clone(),
            decision_payload: a.decision_payload.clone(),
            comment: a
                .decision_payload
                .as_ref()
                .and_then(|p| p.get("comment"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            created_at: a.created_at.clone(),
            decided_at: a.decided_at.clone(),
            expires_at: a.expires_at.clone(),
            run_status: a.run_status.map(|s| s.as_str().to_owned()),
        }
    }
}

/// `POST /api/approvals/{id}/decision`: `status`, else `decision`, else `resolved_decision`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DecisionIn {
    /// The decision (highest precedence).
    #[serde(default)]
    pub status: Option<Value>,
    /// The decision.
    #[serde(default)]
    pub decision: Option<Value>,
    /// The decision (lowest precedence).
    #[serde(default)]
    pub resolved_decision: Option<Value>,
    /// Who decided ("anonymous" when absent).
    #[serde(default)]
    pub decided_by: Option<String>,
    /// Why.
    #[serde(default)]
    pub comment: Option<String>,
    /// Extra data kept with the decision.
    #[serde(default)]
    pub payload: Option<serde_json::Map<String, Value>>,
}

/// An artifact (ArtifactOut).
#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactOut {
    /// Id.
    pub artifact_id: String,
    /// Run.
    pub run_id: String,
    /// Node.
    pub node_id: Option<String>,
    /// Step.
    pub step_id: Option<String>,
    /// Kind.
    pub kind: String,
    /// Where it is.
    pub uri: String,
    /// Name.
    pub name: Option<String>,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Size.
    pub size_bytes: Option<i64>,
    /// Recorded.
    pub created_at: String,
}

impl From<ArtifactRow> for ArtifactOut {
    fn from(a: ArtifactRow) -> Self {
        ArtifactOut {
            artifact_id: a.artifact_id,
            run_id: a.run_id,
            node_id: a.node_id,
            step_id: a.step_id,
            kind: a.kind,
            uri: a.uri,
            name: a.name,
            mime_type: a.mime_type,
            size_bytes: a.size_bytes,
            created_at: a.created_at,
        }
    }
}

/// A project (ProjectOut).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectOut {
    /// Id.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Created.
    pub created_at: String,
}

impl From<ProjectRow> for ProjectOut {
    fn from(p: ProjectRow) -> Self {
        ProjectOut { project_id: p.project_id, name: p.name, description: p.description, created_at: p.created_at }
    }
}

/// `POST /api/projects`, `PUT /api/projects/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProjectIn {
    /// Name (required to create).
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A project's LLM usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostSummaryOut {
    /// Project.
    pub project_id: String,
    /// Days covered.
    pub period_days: i64,
    /// Runs created in the period.
    pub run_count: i64,
    /// Prompt tokens.
    pub total_prompt_tokens: i64,
    /// Completion tokens.
    pub total_completion_tokens: i64,
    /// Cost (6 decimals).
    pub estimated_cost_usd: f64,
}

/// An agent capability.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentCapability {
    /// Action name (`*` for any).
    pub name: String,
    /// tool or workflow.
    #[serde(default = "tool")]
    #[serde(rename = "type")]
    pub kind: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Typical duration.
    #[serde(default)]
    pub estimated_duration_s: Option<f64>,
    /// Batch action.
    #[serde(default)]
    pub is_batch: bool,
}

fn tool() -> String {
    "tool".into()
}

/// `POST /api/agents`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentIn {
    /// Id (`{channel}_{name}` when absent).
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Name.
    pub name: String,
    /// Channel (matched case-insensitively).
    pub channel: String,
    /// Base URL.
    pub base_url: String,
    /// Concurrent steps (default 1).
    #[serde(default)]
    pub concurrency_limit: Option<i64>,
    /// Lease key (`{channel}_default` when absent).
    #[serde(default)]
    pub resource_key: Option<String>,
    /// Capabilities.
    #[serde(default)]
    pub capabilities: Option<Vec<AgentCapability>>,
    /// Pool.
    #[serde(default)]
    pub pool_id: Option<String>,
}

/// `PUT /api/agents/{id}`: null leaves a field unchanged, `[]` clears the capabilities.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentUpdateIn {
    /// Status.
    #[serde(default)]
    pub status: Option<String>,
    /// Base URL.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Concurrency limit.
    #[serde(default)]
    pub concurrency_limit: Option<i64>,
    /// Capabilities.
    #[serde(default)]
    pub capabilities: Option<Vec<AgentCapability>>,
    /// Pool.
    #[serde(default)]
    pub pool_id: Option<String>,
}

/// An agent (AgentInstanceOut).
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentOut {
    /// Id.
    pub agent_id: String,
    /// Name.
    pub name: String,
    /// Channel.
    pub channel: String,
    /// Base URL.
    pub base_url: String,
    /// online, offline, ...
    pub status: String,
    /// Concurrent steps.
    pub concurrency_limit: i64,
    /// Lease key.
    pub resource_key: String,
    /// Pool.
    pub pool_id: Option<String>,
    /// Capabilities.
    pub capabilities: Vec<AgentCapability>,
    /// Failed health checks in a row.
    pub consecutive_failures: i64,
    /// Circuit opened.
    pub circuit_open_at: Option<String>,
    /// Last heartbeat.
    pub last_heartbeat_at: Option<String>,
    /// Last change.
    pub updated_at: String,
}

impl From<AgentRow> for AgentOut {
    fn from(a: AgentRow) -> Self {
        AgentOut {
            agent_id: a.agent_id,
            name: a.name,
            channel: a.channel,
            base_url: a.base_url,
            status: a.status.as_str().to_owned(),
            concurrency_limit: a.concurrency_limit,
            resource_key: a.resource_key,
            pool_id: a.pool_id,
            capabilities: serde_json::from_value(a.capabilities).unwrap_or_default(),
            consecutive_failures: a.consecutive_failures,
            circuit_open_at: a.circuit_open_at,
            last_heartbeat_at: a.last_heartbeat_at,
            updated_at: a.updated_at,
        }
    }
}

/// A resource lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseOut {
    /// Id.
    pub lease_id: String,
    /// Resource.
    pub resource_key: String,
    /// Holder.
    pub run_id: String,
    /// Node.
    pub node_id: Option<String>,
    /// Step.
    pub step_id: Option<String>,
    /// Acquired.
    pub acquired_at: String,
    /// Expires unless renewed.
    pub expires_at: String,
    /// Released.
    pub released_at: Option<String>,
    /// Unreleased and unexpired.
    pub is_active: bool,
}

impl LeaseOut {
    /// The lease as seen at `now`.
    pub fn new(l: LeaseRow, now: chrono::DateTime<chrono::Utc>) -> Self {
        let is_active = l.is_active(now);
        LeaseOut {
            lease_id: l.lease_id,
            resource_key: l.resource_key,
            run_id: l.run_id,
            node_id: l.node_id,
            step_id: l.step_id,
            acquired_at: l.acquired_at,
            expires_at: l.expires_at,
            released_at: l.released_at,
            is_active,
        }
    }
}
