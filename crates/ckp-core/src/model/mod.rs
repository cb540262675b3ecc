//! The CKP document model: a faithful, typed picture of a CKP JSON file.
//!
//! Every field of `ckp-syntax-reference.json` (and the LangOrch extras the engine reads) has a typed home; fields
//! nobody knows land in an `extra` map on the nearest object, so import → export loses nothing. The model checks
//! JSON *types* only: values (enums, ranges, references between nodes) are checked by the compiler, which turns a
//! [`Document`] into a [`crate::Procedure`]. Numbers are kept as [`serde_json::Number`] so that `30000` stays
//! `30000` on export. Nothing here performs I/O.

mod node;
pub(crate) mod parse;

pub use node::*;
pub use parse::{Limits, ParsedDocument, parse_document, parse_document_with};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Unknown fields of an object, kept verbatim.
pub type Extra = Map<String, Value>;

/// A whole CKP document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Unique id of the procedure.
    #[serde(default)]
    pub procedure_id: String,
    /// Version, usually semver.
    #[serde(default)]
    pub version: String,
    /// Display name (LangOrch falls back to `procedure_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lifecycle status: active, draft, approved, inactive (also deprecated/archived in LangOrch's store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `YYYY-MM-DD` before which the procedure must not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How runs are started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Metadata for retrieval by intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_metadata: Option<RetrievalMetadata>,
    /// Procedure-wide settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_config: Option<GlobalConfig>,
    /// Declared input and working variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables_schema: Option<VariablesSchema>,
    /// The graph.
    #[serde(default)]
    pub workflow_graph: WorkflowGraph,
    /// Where the procedure came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// Unknown root fields (`$schema`, `release`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `workflow_graph`: the start node and the node map.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowGraph {
    /// Entry node id.
    #[serde(default)]
    pub start_node: String,
    /// Nodes by id, in document order.
    #[serde(default)]
    pub nodes: IndexMap<String, Node>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `trigger`: how runs of this procedure start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// manual | scheduled | webhook | event | file_watch.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<String>,
    /// Cron expression for `scheduled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Webhook settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_config: Option<WebhookConfig>,
    /// Name of the secret used for webhook HMAC verification (LangOrch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Event settings (syntax reference form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_config: Option<EventConfig>,
    /// Event settings (LangOrch form: `{source | provider + topic/queue/queue_name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Map<String, Value>>,
    /// Event source (LangOrch shorthand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
    /// File watch settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_watch_config: Option<FileWatchConfig>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The kinds of change a `file_watch` trigger can fire for.
pub const FILE_EVENTS: &[&str] = &["created", "modified", "deleted"];

impl Trigger {
    /// A `file_watch` trigger's folder, in every form a document may write it: the syntax reference's
    /// `file_watch_config.path`, then LangOrch's `file_watch.path`, `file.path`, `file_watch_path` and
    /// `event_source` (where LangOrch's API keeps a watched path).
    pub fn watch_path(&self) -> Option<String> {
        let nested = |k: &str| self.extra.get(k).and_then(|v| v.get("path")).and_then(Value::as_str);
        let flat = self.extra.get("file_watch_path").and_then(Value::as_str);
        self.file_watch_config
            .as_ref()
            .and_then(|c| c.path.as_deref())
            .or_else(|| nested("file_watch"))
            .or_else(|| nested("file"))
            .or(flat)
            .or(self.event_source.as_deref())
            .filter(|p| !p.trim().is_empty())
            .map(str::to_owned)
    }
}

/// `trigger.webhook_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookConfig {
    /// Path of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Authentication settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Map<String, Value>>,
    /// Allowed source addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_sources: Option<Vec<String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `trigger.event_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventConfig {
    /// Where events come from (`nats://subject`, `amqp://queue`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
    /// Filter on event fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_filter: Option<Map<String, Value>>,
    /// Accepted event types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<Vec<String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `trigger.file_watch_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileWatchConfig {
    /// Directory to watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Glob of file names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// created | modified | deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `retrieval_metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetadata {
    /// Intents this procedure serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_intents: Option<Vec<String>>,
    /// Intents it must not be picked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_intents: Option<Vec<String>>,
    /// finance | hr | it | ops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_domain: Option<String>,
    /// Where it applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applicability: Option<Applicability>,
    /// Search keywords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `retrieval_metadata.applicability`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Applicability {
    /// Application names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_names: Option<Vec<String>>,
    /// Account types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_types: Option<Vec<String>>,
    /// Channels (web, desktop, api, mainframe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Vec<String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `global_config`: procedure-wide settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalConfig {
    /// Emit `screenshot_requested` when a step fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot_on_fail: Option<bool>,
    /// Default retries for steps with `retry_on_failure` and for LLM calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<Number>,
    /// Default delay before the first retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay_ms: Option<Number>,
    /// Default backoff multiplier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_multiplier: Option<Number>,
    /// Default retry settings as one object (LangOrch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryConfig>,
    /// Wall-clock limit of the whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Number>,
    /// ckp: most node entries of one run (loop iterations and revisits count), under the server's own limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_node_entries: Option<Number>,
    /// Node to run when the run fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// DEBUG | INFO | WARNING | ERROR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging_level: Option<String>,
    /// Telemetry switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_enabled: Option<bool>,
    /// every_node | critical_nodes_only | disabled (A.2.11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_strategy: Option<String>,
    /// local | database | cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_storage: Option<String>,
    /// Resume from the last checkpoint after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_on_failure: Option<bool>,
    /// How long checkpoints are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_retention_days: Option<Number>,
    /// production | dry_run | validation_only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_mode: Option<String>,
    /// Replace external calls with mocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock_external_calls: Option<bool>,
    /// step_id → result to use instead of executing the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_data_overrides: Option<Map<String, Value>>,
    /// Rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiting: Option<RateLimiting>,
    /// Secrets provider and references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_config: Option<SecretsConfig>,
    /// Audit settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_config: Option<AuditConfig>,
    /// async | sync default for workflow-type agent capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_dispatch_mode: Option<String>,
    /// Cumulative LLM budget of one run, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<Number>,
    /// Fallback models costing more than this per call are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_per_llm_call_usd: Option<Number>,
    /// Fallback models below this quality are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_llm_quality: Option<Number>,
    /// MCP servers by name (`mcp:<server>/<tool>` steps); checked by the compiler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<Map<String, Value>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Retry settings: step `retry_config`, `global_config.retry_policy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryConfig {
    /// Retries after the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<Number>,
    /// Delay before the first retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay_ms: Option<Number>,
    /// Alias of `retry_delay_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<Number>,
    /// Delay multiplier per retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_multiplier: Option<Number>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `global_config.rate_limiting`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimiting {
    /// Switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Token bucket rate per procedure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_minute: Option<Number>,
    /// Concurrent external operations per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_operations: Option<Number>,
    /// LangOrch's name for a concurrency cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<Number>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `global_config.secrets_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretsConfig {
    /// azure_keyvault | aws_secrets | hashicorp_vault | env_vars (and LangOrch's aliases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// LangOrch's alias of `provider`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    /// Vault address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_url: Option<String>,
    /// alias → provider key (a string or `{key}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_references: Option<Map<String, Value>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `global_config.audit_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditConfig {
    /// Switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// minimal | standard | detailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_level: Option<String>,
    /// Where audit records go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_location: Option<String>,
    /// How long they are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<Number>,
    /// Whether sensitive values may be recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_sensitive_data: Option<bool>,
    /// Extra keys to redact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_fields: Option<Vec<String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `variables_schema` in either accepted form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VariablesSchema {
    /// `{"required": {name: spec}, "optional": {name: spec}}`.
    Nested(NestedSchema),
    /// `{name: spec}` with `required` inside each spec.
    Flat(IndexMap<String, VarSpec>),
}

/// The nested form of `variables_schema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NestedSchema {
    /// Variables a run must provide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<IndexMap<String, VarSpec>>,
    /// Variables a run may provide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<IndexMap<String, VarSpec>>,
}

/// One declared variable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VarSpec {
    /// string | number | boolean | array | object.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub var_type: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// user_strict | user_lazy | system_captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Value seeded at run start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Flat form: whether a run must provide it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Constraints on the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<VarValidation>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `variables_schema.*.validation`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VarValidation {
    /// Full-match pattern for strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Minimum number, or minimum length of a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Number>,
    /// Maximum number, or maximum length of a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Number>,
    /// Allowed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<Value>>,
    /// Redact the value in events and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<bool>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `provenance`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// ISO timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiled_on: Option<String>,
    /// Version of the tool that wrote the CKP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiler_agent_version: Option<String>,
    /// Who reviewed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_reviewer: Option<String>,
    /// Source documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<ProvenanceSource>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `provenance.sources[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProvenanceSource {
    /// Document id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_id: Option<String>,
    /// Document version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_ref: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl VariablesSchema {
    /// The variables in one flat list, `(name, spec, required)`, in document order (required ones first in the
    /// nested form). In the nested form, `required` entries are required and `optional` ones are not unless
    /// their spec says `required: true`.
    pub fn entries(&self) -> Vec<(&str, &VarSpec, bool)> {
        match self {
            VariablesSchema::Nested(n) => {
                let req = n.required.iter().flatten().map(|(k, v)| (k.as_str(), v, v.required.unwrap_or(true)));
                let opt = n.optional.iter().flatten().map(|(k, v)| (k.as_str(), v, v.required.unwrap_or(false)));
                req.chain(opt).collect()
            }
            VariablesSchema::Flat(m) => m.iter().map(|(k, v)| (k.as_str(), v, v.required.unwrap_or(false))).collect(),
        }
    }
}
