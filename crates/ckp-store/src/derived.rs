//! What a journal commit implies for the API's tables beside the run row, decided once for both backends: the
//! approval row a decision settles, the artifact row an `artifact_created` event records, and whether the run's job
//! is released. The SQLite and PostgreSQL stores only write these values in their own SQL.

use ckp_engine::Event;
use ckp_engine::journal::{Checkpoint, RunStatus};
use serde_json::{Map, Value};

use crate::status::ApprovalStatus;

/// The approval row settled by an `approval_decision_received` event.
pub(crate) struct DecisionRow<'a> {
    /// The approval decided.
    pub approval_id: Option<&'a str>,
    /// Its new status.
    pub status: ApprovalStatus,
    /// Who decided.
    pub decided_by: Option<&'a str>,
    /// `{decision, comment?}` as JSON text.
    pub payload: String,
}

/// The approval row settled by a decision event.
pub(crate) fn decision_row(e: &Event) -> DecisionRow<'_> {
    let decision = e.payload.get("decision").cloned().unwrap_or_default();
    let status = ApprovalStatus::of_decision(&decision);
    let mut payload = Map::new();
    payload.insert("decision".into(), decision);
    if let Some(c) = e.payload.get("comment").filter(|c| !c.is_null()) {
        payload.insert("comment".into(), c.clone());
    }
    DecisionRow {
        approval_id: e.payload.get("approval_id").and_then(Value::as_str),
        status,
        decided_by: e.payload.get("decided_by").and_then(Value::as_str),
        payload: Value::Object(payload).to_string(),
    }
}

/// The artifact row an `artifact_created` event records (None without a string `uri`).
pub(crate) struct ArtifactFields {
    /// Id (the event's, or a new one).
    pub artifact_id: String,
    /// screenshot, artifact, ...
    pub kind: String,
    /// Where it is.
    pub uri: String,
    /// Name.
    pub name: Option<String>,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Size.
    pub size_bytes: Option<i64>,
}

/// The artifact fields of an `artifact_created` event.
pub(crate) fn artifact_fields(e: &Event) -> Option<ArtifactFields> {
    let text = |k: &str| e.payload.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(ArtifactFields {
        uri: text("uri")?,
        artifact_id: text("artifact_id").unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        kind: text("kind").unwrap_or_else(|| "artifact".into()),
        name: text("name"),
        mime_type: text("mime_type"),
        size_bytes: e.payload.get("size_bytes").and_then(Value::as_i64),
    })
}

/// A run that ended, or waits for a decision with no expiry, needs its job no more: the job is released in the
/// commit's own transaction (requeued instead if a requeue arrived while it ran), so the worker does not write again.
pub(crate) fn releases_job(cp: &Checkpoint) -> bool {
    cp.status.is_terminal()
        || (cp.status == RunStatus::WaitingApproval && cp.pending.iter().all(|a| a.expires_at.is_none()))
}

/// A JSON column's text, or NULL for a JSON null.
pub(crate) fn json_or_null(v: &Value) -> Option<String> {
    (!v.is_null()).then(|| v.to_string())
}
