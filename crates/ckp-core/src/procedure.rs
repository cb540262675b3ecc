//! The compiled, validated form of a CKP document: what the engine executes.
//!
//! A [`Procedure`] is produced only by [`crate::compile()`] and needs no further checking: every edge is an index
//! that exists, every enum is a Rust enum, every template, condition, regex and JSON Schema is compiled, every
//! number is in range. Types here hold no I/O handles and are cheap to share behind an `Arc`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::condition::Condition;
use crate::model::Document;
use crate::template::{Template, ValueTemplate};

/// Index of a node in [`Procedure::nodes`].
pub type NodeIdx = usize;

/// A compiled procedure.
#[derive(Debug, Clone)]
pub struct Procedure {
    /// `procedure_id`.
    pub id: String,
    /// `version`.
    pub version: String,
    /// Display name (`name`, else the id).
    pub name: String,
    /// The document it was compiled from (kept for export, explain and the API).
    pub document: Document,
    /// Resolved `global_config`.
    pub config: Config,
    /// Declared variables, flattened.
    pub variables: Vec<Variable>,
    /// The trigger, when declared.
    pub trigger: Option<TriggerSpec>,
    /// Entry node.
    pub start: NodeIdx,
    /// All nodes in document order.
    pub nodes: Vec<Node>,
    pub(crate) index: HashMap<String, NodeIdx>,
}

impl Procedure {
    /// The node at `idx` (indexes come from this procedure, so they are always valid).
    pub fn node(&self, idx: NodeIdx) -> &Node {
        &self.nodes[idx]
    }

    /// The index of the node with id `id`.
    pub fn find(&self, id: &str) -> Option<NodeIdx> {
        self.index.get(id).copied()
    }
}

/// Resolved `global_config`.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Default step/LLM retry settings (`retry_policy`, else the top-level fields).
    pub retry: RetryDefaults,
    /// Wall-clock limit of a run.
    pub timeout_ms: Option<u64>,
    /// Most node entries of a run (`max_node_entries`, ckp's own), under the server's limit.
    pub max_node_entries: Option<u64>,
    /// Recovery node.
    pub on_failure: Option<NodeIdx>,
    /// Emit `screenshot_requested` when a step fails.
    pub screenshot_on_fail: bool,
    /// When the engine commits.
    pub checkpoint_strategy: CheckpointStrategy,
    /// production, dry_run or validation_only.
    pub execution_mode: ExecutionMode,
    /// Replace external calls with mocks.
    pub mock_external_calls: bool,
    /// step_id → result used instead of executing.
    pub test_data_overrides: Map<String, Value>,
    /// Rate limits.
    pub rate_limit: Option<RateLimit>,
    /// Secrets provider and references.
    pub secrets: Option<SecretsSpec>,
    /// Default dispatch mode of workflow capabilities.
    pub dispatch_mode: Option<DispatchMode>,
    /// Cumulative LLM budget, USD.
    pub max_cost_usd: Option<f64>,
    /// Per-call cost cap used to filter fallback models.
    pub max_cost_per_llm_call_usd: Option<f64>,
    /// Minimum model quality for fallbacks.
    pub min_llm_quality: Option<f64>,
    /// Log level of the run's `log` steps.
    pub logging_level: Option<LogLevel>,
    /// Keys redacted from events beside the built-in list (`audit_config.redacted_fields`).
    pub redacted_fields: Vec<String>,
    /// MCP servers declared by the procedure (`mcp_servers`), by name.
    pub mcp_servers: std::collections::BTreeMap<String, crate::mcp::McpServer>,
}

/// Retry defaults from `global_config`; each `None` falls back to the engine default (3 / 1000 ms / 2.0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RetryDefaults {
    /// Retries after the first attempt.
    pub max_retries: Option<u32>,
    /// First delay.
    pub delay_ms: Option<u64>,
    /// Multiplier.
    pub multiplier: Option<f64>,
}

/// Step-level retry overrides (`retry_config`), merged key by key over [`RetryDefaults`] by the engine.
pub type RetryOverrides = RetryDefaults;

/// `checkpoint_strategy` (A.2.11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CheckpointStrategy {
    /// Commit at every commit point (default).
    #[default]
    EveryNode,
    /// Commit only at external effects, pauses, `is_checkpoint` nodes and the end.
    CriticalNodesOnly,
    /// Keep the run in memory (`disabled` or `none`): fast, lost on a crash.
    Disabled,
}

/// `execution_mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecutionMode {
    /// Execute everything.
    #[default]
    Production,
    /// Execute internal nodes; skip and report external steps.
    DryRun,
    /// Compile and validate only.
    ValidationOnly,
}

/// `rate_limiting`, when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Token-bucket rate per procedure.
    pub per_minute: Option<u32>,
    /// Concurrent external operations per run.
    pub max_concurrent: Option<u32>,
}

/// `secrets_config` (langorch.md B §7.9): which provider serves the run's `{{secrets.NAME}}`, how aliases map to the
/// provider's keys, and provider settings that override the server's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretsSpec {
    /// Provider.
    pub provider: SecretProvider,
    /// alias → key at the provider (`secret_references`); a name that is no alias is looked up as itself.
    pub references: Vec<(String, String)>,
    /// Provider settings by LangOrch's names (`vault_url`, `mount_point`, `kv_version`, `region_name`, ...), checked
    /// against the provider's list at compile time; numbers and booleans are kept as their text.
    pub settings: std::collections::BTreeMap<String, String>,
    /// How long a fetched value may be reused (`cache_ttl`, seconds in the document); None = the server's setting.
    pub cache_ttl_ms: Option<u64>,
}

impl SecretsSpec {
    /// The provider's key for `name`: its `secret_references` entry, else `name` itself.
    pub fn key_for<'a>(&'a self, name: &'a str) -> &'a str {
        self.references.iter().find(|(alias, _)| alias == name).map_or(name, |(_, key)| key.as_str())
    }
}

/// A secrets provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretProvider {
    /// Environment variables.
    Env,
    /// HashiCorp Vault.
    Vault,
    /// AWS Secrets Manager.
    Aws,
    /// Azure Key Vault.
    Azure,
    /// ckp's own encrypted store.
    Database,
}

impl SecretProvider {
    /// Every provider with the names it is known by (the first is the canonical one; langorch.md B §7.9's aliases).
    pub const NAMES: [(&'static str, SecretProvider); 14] = [
        ("env", SecretProvider::Env),
        ("env_vars", SecretProvider::Env),
        ("environment", SecretProvider::Env),
        ("vault", SecretProvider::Vault),
        ("hashicorp_vault", SecretProvider::Vault),
        ("aws", SecretProvider::Aws),
        ("aws_secrets_manager", SecretProvider::Aws),
        ("aws_secrets", SecretProvider::Aws),
        ("azure", SecretProvider::Azure),
        ("azure_key_vault", SecretProvider::Azure),
        ("azure_keyvault", SecretProvider::Azure),
        ("db", SecretProvider::Database),
        ("database", SecretProvider::Database),
        ("catalog", SecretProvider::Database),
    ];

    /// The provider a name or alias means (case-insensitive; `platform` and `ckp` are the store too).
    pub fn parse(name: &str) -> Option<SecretProvider> {
        let n = name.trim().to_ascii_lowercase();
        match n.as_str() {
            "platform" | "ckp" => Some(SecretProvider::Database),
            _ => SecretProvider::NAMES.iter().find(|(k, _)| *k == n).map(|(_, p)| *p),
        }
    }

    /// The canonical name: env, vault, aws, azure or db.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretProvider::Env => "env",
            SecretProvider::Vault => "vault",
            SecretProvider::Aws => "aws",
            SecretProvider::Azure => "azure",
            SecretProvider::Database => "db",
        }
    }
}

/// async | sync dispatch of workflow capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchMode {
    /// Fire, pause, resume on callback.
    Async,
    /// Wait for the result.
    Sync,
}

/// `logging_level` and `log` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// DEBUG.
    Debug,
    /// INFO.
    Info,
    /// WARNING.
    Warning,
    /// ERROR.
    Error,
}

/// A declared variable.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Name.
    pub name: String,
    /// Declared type.
    pub var_type: Option<VarType>,
    /// Must be provided when a run is created.
    pub required: bool,
    /// Seeded at run start.
    pub default: Option<Value>,
    /// Full-match pattern for strings.
    pub regex: Option<CompiledRegex>,
    /// Minimum value or length.
    pub min: Option<f64>,
    /// Maximum value or length.
    pub max: Option<f64>,
    /// Allowed values.
    pub allowed_values: Option<Vec<Value>>,
    /// Redact in events and logs.
    pub sensitive: bool,
}

/// Declared variable types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarType {
    /// string.
    String,
    /// number (integer or float).
    Number,
    /// boolean.
    Boolean,
    /// array.
    Array,
    /// object.
    Object,
}

impl VarType {
    /// The name as written in CKP.
    pub fn as_str(self) -> &'static str {
        match self {
            VarType::String => "string",
            VarType::Number => "number",
            VarType::Boolean => "boolean",
            VarType::Array => "array",
            VarType::Object => "object",
        }
    }
}

/// A regex compiled at compile time, with its source.
#[derive(Clone)]
pub struct CompiledRegex {
    /// The pattern as written.
    pub source: String,
    /// The pattern anchored for full matching (`^(?:...)$`).
    pub full: regex::Regex,
    /// The pattern as written, for searching.
    pub search: regex::Regex,
}

impl fmt::Debug for CompiledRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.source)
    }
}

/// A JSON Schema compiled at compile time.
#[derive(Clone)]
pub struct CompiledSchema(pub Arc<jsonschema::Validator>);

impl fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CompiledSchema")
    }
}

/// A validated trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerSpec {
    /// Started by API or UI only.
    Manual,
    /// Cron schedule.
    Scheduled {
        /// The cron expression (5 or 6 fields).
        schedule: String,
        /// Time zone name (default UTC).
        timezone: Option<String>,
    },
    /// Inbound webhook.
    Webhook {
        /// Secret name for HMAC verification.
        secret: Option<String>,
    },
    /// Message on an event bus.
    Event {
        /// `provider://target`.
        source: String,
    },
    /// File appears or changes.
    FileWatch {
        /// Directory.
        path: Option<String>,
        /// Glob.
        pattern: Option<String>,
    },
}

/// A compiled node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Node id.
    pub id: String,
    /// `node_name` in events: the description, else the id.
    pub name: String,
    /// `agent` as written.
    pub agent: Option<String>,
    /// The dispatch channel: `agent` lower-cased.
    pub channel: Option<String>,
    /// Default successor (`next_node`; for loop and parallel, where they continue when done).
    pub next: Option<NodeIdx>,
    /// Commit and emit `checkpoint_saved` after this node.
    pub is_checkpoint: bool,
    /// Duration limit.
    pub sla: Option<SlaSpec>,
    /// Telemetry switches.
    pub telemetry: TelemetrySpec,
    /// Node-level dispatch mode.
    pub dispatch_mode: Option<DispatchMode>,
    /// The payload.
    pub kind: Kind,
}

/// A compiled node payload.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Steps in order.
    Sequence(Sequence),
    /// Routing rules.
    Logic(Logic),
    /// Iteration.
    Loop(Loop),
    /// Concurrent branches.
    Parallel(Parallel),
    /// Internal operations.
    Processing(Vec<Operation>),
    /// Checks.
    Verification(Vec<Check>),
    /// LLM call.
    Llm(Box<Llm>),
    /// End of the run.
    Terminate(Terminate),
    /// Human decision.
    Approval(Approval),
    /// Collection transformations.
    Transform(Vec<Transformation>),
    /// Child run.
    Subflow(Subflow),
}

impl Kind {
    /// The CKP type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Sequence(_) => "sequence",
            Kind::Logic(_) => "logic",
            Kind::Loop(_) => "loop",
            Kind::Parallel(_) => "parallel",
            Kind::Processing(_) => "processing",
            Kind::Verification(_) => "verification",
            Kind::Llm(_) => "llm_action",
            Kind::Terminate(_) => "terminate",
            Kind::Approval(_) => "human_approval",
            Kind::Transform(_) => "transform",
            Kind::Subflow(_) => "subflow",
        }
    }
}

/// `sla`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaSpec {
    /// Limit.
    pub max_duration_ms: u64,
    /// What a breach does.
    pub on_breach: OnBreach,
    /// Where escalation goes.
    pub escalation: Option<NodeIdx>,
}

/// `sla.on_breach`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnBreach {
    /// Emit `sla_breached` only (default).
    #[default]
    Warn,
    /// Fail the node.
    Fail,
    /// Go to the escalation handler.
    Escalate,
}

/// `telemetry`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetrySpec {
    /// Add `duration_ms` to `step_completed`.
    pub track_duration: bool,
    /// Add `retry_count` to `step_completed`.
    pub track_retries: bool,
    /// Custom metric names with optional values.
    pub custom_metrics: Vec<(String, Option<Value>)>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Span id.
    pub span_id: Option<String>,
}

/// A sequence node.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Steps.
    pub steps: Vec<Step>,
    /// Validations evaluated after the steps.
    pub validations: Vec<Validation>,
    /// Error handlers.
    pub handlers: Vec<ErrorHandler>,
}

/// A compiled step.
#[derive(Debug, Clone)]
pub struct Step {
    /// `step_id` (empty when absent).
    pub id: String,
    /// The action as written.
    pub action_name: String,
    /// How it executes.
    pub action: Action,
    /// Limit on the executor call.
    pub timeout_ms: Option<u64>,
    /// Wait before.
    pub wait_ms: Option<u64>,
    /// Wait after.
    pub wait_after_ms: Option<u64>,
    /// Retries, when `retry_on_failure` is true; key-by-key overrides of the global defaults.
    pub retry: Option<RetryOverrides>,
    /// Variable receiving the result.
    pub output_variable: Option<String>,
    /// Idempotency key template.
    pub idempotency_key: Option<Template>,
    /// Step-level dispatch mode.
    pub dispatch_mode: Option<DispatchMode>,
    /// Parameters (every non-meta key), rendered at execution.
    pub params: ValueTemplate,
    /// The parameters as written (sent unrendered in `_workflow_context.node_steps`).
    pub raw_params: Map<String, Value>,
    /// The JSON Schema of an internal `validate_schema` step, compiled.
    pub schema: Option<CompiledSchema>,
    /// The pattern of an internal `extract_regex` step, compiled when it has no placeholder.
    pub pattern: Option<CompiledRegex>,
}

/// How a step executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Performed by the engine itself.
    Internal(InternalAction),
    /// An MCP tool: `mcp:<server>/<tool>`.
    Mcp {
        /// Configured server name.
        server: String,
        /// Tool name.
        tool: String,
    },
    /// Dispatched at run time: agent for the channel, MCP fallback, or a built-in executor (`http_request`).
    External,
}

macro_rules! internal_actions {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// Actions the engine performs itself (CKP.md A.2.9).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum InternalAction { $(#[doc = $name] $variant,)* }

        impl InternalAction {
            /// Every internal action.
            pub const ALL: &'static [InternalAction] = &[$(InternalAction::$variant),*];

            /// Parses an action name.
            pub fn parse(name: &str) -> Option<InternalAction> {
                match name { $($name => Some(InternalAction::$variant),)* _ => None }
            }

            /// The action name.
            pub fn as_str(self) -> &'static str {
                match self { $(InternalAction::$variant => $name,)* }
            }
        }
    };
}

internal_actions! {
    SetVariable = "set_variable",
    Log = "log",
    Wait = "wait",
    Screenshot = "screenshot",
    Calculate = "calculate",
    FormatData = "format_data",
    FormatString = "format_string",
    ParseJson = "parse_json",
    ParseCsv = "parse_csv",
    ParseXml = "parse_xml",
    ParseExcelData = "parse_excel_data",
    GenerateId = "generate_id",
    GetTimestamp = "get_timestamp",
    SetCheckpoint = "set_checkpoint",
    RestoreCheckpoint = "restore_checkpoint",
    AppendToArray = "append_to_array",
    ExtractRegex = "extract_regex",
    Notify = "notify",
    Hash = "hash",
    ValidateSchema = "validate_schema",
    ConvertType = "convert_type",
    Encrypt = "encrypt",
    Decrypt = "decrypt",
}

/// `validations[]` of a sequence.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Check id.
    pub id: String,
    /// What is checked.
    pub check: ValidationKind,
    /// What a failure does.
    pub on_failure: ValidationFailure,
    /// Message on failure.
    pub message: Option<Template>,
}

/// The check of a validation.
#[derive(Debug, Clone)]
pub enum ValidationKind {
    /// A condition must hold (`custom`, or any check with a `condition`).
    Condition(Condition),
    /// The rendered value must be one of `expected_values` (`value_in_range` / `screen_text_contains` without agent).
    Expected {
        /// The check name.
        check: String,
        /// Accepted values.
        expected: Vec<Value>,
    },
}

/// `validations[].on_failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationFailure {
    /// Raise a step error (handled by error handlers).
    ThrowException,
    /// Run the node again (bounded by the retry defaults).
    RetryNode,
    /// Fail the run.
    FailWorkflow,
}

/// An error handler.
#[derive(Debug, Clone)]
pub struct ErrorHandler {
    /// Which errors it handles.
    pub error_type: ErrorMatch,
    /// What it does.
    pub action: HandlerAction,
    /// Retries granted.
    pub max_retries: u32,
    /// Delay schedule of those retries.
    pub backoff: Backoff,
    /// Substring the error message must contain.
    pub text_contains: Option<String>,
    /// Error code to match.
    pub error_code: Option<String>,
    /// HTTP statuses to match.
    pub http_status_codes: Vec<u16>,
    /// Recovery strategy.
    pub recovery: Option<RecoveryStrategy>,
    /// Internal steps run on a match.
    pub recovery_steps: Vec<Step>,
    /// Node to go to.
    pub fallback: Option<NodeIdx>,
    /// Emit `step_error_notification`.
    pub notify: bool,
}

/// What an error handler's `error_type` matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorMatch {
    /// Any error (`*` or empty).
    Any,
    /// Errors of one kind of the taxonomy (A.2.10; LangOrch's exception names are mapped onto it).
    Kind(ErrorKind),
    /// A name outside the taxonomy (an agent-side exception name): matches errors whose message contains it.
    MessageContains(String),
}

/// The kind of a step or node error (CKP.md A.2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A step, LLM call or the run exceeded its time limit.
    Timeout,
    /// An HTTP call returned an error status.
    HttpError,
    /// An agent reported an error.
    AgentError,
    /// No agent or executor could take the step.
    AgentUnavailable,
    /// A validation, verification or schema check failed.
    ValidationError,
    /// An LLM call failed.
    LlmError,
    /// The run's LLM budget was exceeded.
    BudgetExceeded,
    /// The run was cancelled.
    Cancelled,
    /// An MCP tool failed.
    McpError,
    /// An internal action failed.
    InternalError,
}

impl ErrorKind {
    /// The taxonomy name (`timeout`, `http_error`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::HttpError => "http_error",
            ErrorKind::AgentError => "agent_error",
            ErrorKind::AgentUnavailable => "agent_unavailable",
            ErrorKind::ValidationError => "validation_error",
            ErrorKind::LlmError => "llm_error",
            ErrorKind::BudgetExceeded => "budget_exceeded",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::McpError => "mcp_error",
            ErrorKind::InternalError => "internal_error",
        }
    }
}

/// `error_handlers[].action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerAction {
    /// Retry the step.
    Retry,
    /// Request a screenshot, then fail.
    ScreenshotAndFail,
    /// Fail.
    Fail,
    /// Ignore the error.
    Ignore,
    /// Escalate (go to the fallback node, else ignore).
    Escalate,
}

/// `error_handlers[].recovery_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryStrategy {
    /// Run the node again.
    RetryNode,
    /// Continue with the next step.
    Continue,
    /// Stop the node and fail.
    Stop,
    /// Go to the fallback node.
    FallbackNode,
}

/// A delay schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Strategy.
    pub strategy: BackoffStrategy,
    /// First delay.
    pub base_ms: u64,
    /// Cap.
    pub max_ms: Option<u64>,
    /// Growth factor (exponential).
    pub multiplier: f64,
    /// Randomise delays.
    pub jitter: bool,
}

/// `retry_policy.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffStrategy {
    /// Same delay each time.
    Fixed,
    /// base × (k + 1).
    Linear,
    /// base × multiplier^k.
    ExponentialBackoff,
    /// base × fib(k + 1).
    Fibonacci,
}

impl Backoff {
    /// The delay before retry `k` (0-based), before jitter.
    pub fn delay_ms(&self, k: u32) -> u64 {
        let base = self.base_ms as f64;
        let raw = match self.strategy {
            BackoffStrategy::Fixed => base,
            BackoffStrategy::Linear => base * f64::from(k + 1),
            BackoffStrategy::ExponentialBackoff => base * self.multiplier.powi(i32::try_from(k).unwrap_or(i32::MAX)),
            BackoffStrategy::Fibonacci => {
                let (mut a, mut b) = (1.0f64, 1.0f64);
                for _ in 0..k {
                    (a, b) = (b, a + b);
                }
                base * a
            }
        };
        let capped = self.max_ms.map_or(raw, |m| raw.min(m as f64));
        if capped.is_finite() && capped > 0.0 { capped.min(u64::MAX as f64) as u64 } else { 0 }
    }
}

/// A logic node.
#[derive(Debug, Clone)]
pub struct Logic {
    /// Rules in order.
    pub rules: Vec<(Condition, NodeIdx)>,
    /// When none matches (None: the run ends).
    pub default: Option<NodeIdx>,
}

/// A loop node. It continues at [`Node::next`] when done.
#[derive(Debug, Clone)]
pub struct Loop {
    /// Path of the list.
    pub iterator: crate::path::VarPath,
    /// Variable receiving each element.
    pub item_var: String,
    /// Variable receiving each index.
    pub index_var: Option<String>,
    /// First node of the body.
    pub body: NodeIdx,
    /// Variable collecting the elements of successful iterations.
    pub collect_var: Option<String>,
    /// Iteration cap.
    pub max_iterations: Option<u64>,
    /// Skip failing iterations.
    pub continue_on_error: bool,
}

/// A parallel node. Branches join at [`Node::next`].
#[derive(Debug, Clone)]
pub struct Parallel {
    /// `(branch_id, start)`.
    pub branches: Vec<(String, NodeIdx)>,
    /// Join strategy.
    pub wait: WaitStrategy,
    /// What a failed branch does.
    pub failure: BranchFailure,
}

/// `wait_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Wait for every branch.
    All,
    /// The first branch to succeed wins (`any` or `first`).
    Any,
}

/// `branch_failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchFailure {
    /// Record the error, go on (default).
    Continue,
    /// Fail the node (`fail` or `stop`).
    Fail,
    /// Run a failed branch once more, then fail.
    Retry,
}

/// A processing operation (also terminate cleanup/error actions).
#[derive(Debug, Clone)]
pub struct Operation {
    /// The operation.
    pub action: InternalAction,
    /// The operation's fields (everything but `action`), rendered at execution.
    pub fields: ValueTemplate,
    /// The JSON Schema of `validate_schema`, compiled.
    pub schema: Option<CompiledSchema>,
    /// The pattern of `extract_regex`, compiled when it has no placeholder.
    pub pattern: Option<CompiledRegex>,
}

/// A verification check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Check id.
    pub id: String,
    /// The condition.
    pub condition: Condition,
    /// What a false condition does.
    pub on_fail: OnFail,
    /// Message.
    pub message: Option<Template>,
}

/// `checks[].on_fail`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnFail {
    /// Fail the run (default).
    #[default]
    FailWorkflow,
    /// Log a warning event.
    Warn,
    /// Go on silently.
    Continue,
}

/// An llm_action node.
#[derive(Debug, Clone)]
pub struct Llm {
    /// User prompt.
    pub prompt: Template,
    /// System prompt.
    pub system_prompt: Option<Template>,
    /// Model (None: the configured default).
    pub model: Option<String>,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Completion token cap.
    pub max_tokens: Option<u32>,
    /// Ask for a JSON object (forced in orchestration mode).
    pub json_mode: bool,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// Retry overrides.
    pub retry: Option<RetryOverrides>,
    /// variable → mapping.
    pub outputs: Vec<(String, OutputMapping)>,
    /// Orchestration mode: the node ids the model may choose.
    pub branches: Option<Vec<(String, NodeIdx)>>,
}

/// An LLM attachment.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// Kind.
    pub kind: AttachmentKind,
    /// Source (a path or `{{var}}`).
    pub source: Template,
    /// Description.
    pub description: Option<String>,
}

/// Attachment kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentKind {
    /// Sent as a data URL.
    Image,
    /// Inline text.
    Csv,
    /// Inline text.
    Text,
    /// Inline JSON.
    Json,
}

/// How an LLM response maps to a variable.
#[derive(Debug, Clone)]
pub enum OutputMapping {
    /// The whole text (`text`, `raw`, `content`, `llm_response`, or anything unrecognised).
    Text,
    /// A top-level key of the JSON response (`json:<key>`).
    JsonKey(String),
    /// A path into the JSON response (`json_extract: a.b.0`).
    JsonPath(crate::path::VarPath),
    /// The first capture group of a regex over the text (`regex: <pattern>`).
    Regex(CompiledRegex),
}

/// A terminate node.
#[derive(Debug, Clone)]
pub struct Terminate {
    /// The status as written (`success` by default).
    pub status: String,
    /// True when the status is `failed`.
    pub failed: bool,
    /// Operations on the way out.
    pub cleanup: Vec<Operation>,
    /// Operations when failed.
    pub error_actions: Vec<Operation>,
    /// Run outputs.
    pub outputs: Vec<(String, TerminateOutput)>,
}

/// One terminate output.
#[derive(Debug, Clone)]
pub enum TerminateOutput {
    /// A string with placeholders, rendered (typed when it is one placeholder).
    Template(ValueTemplate),
    /// A plain string: the variable of that name if defined, else the text itself.
    VarOrText(String),
    /// A non-string literal.
    Literal(Value),
}

/// A human_approval node.
#[derive(Debug, Clone)]
pub struct Approval {
    /// The question.
    pub prompt: Template,
    /// Decision type.
    pub decision_type: DecisionType,
    /// Options (rendered).
    pub options: Option<ValueTemplate>,
    /// Expiry.
    pub timeout_ms: Option<u64>,
    /// What expiry does.
    pub timeout_action: Option<TimeoutAction>,
    /// Who to tell on escalation.
    pub escalation_contact: Option<String>,
    /// Data for the approver (rendered).
    pub context_data: Option<ValueTemplate>,
    /// standard | manager | executive.
    pub approval_level: Option<String>,
    /// Who may decide: `role:<role>` or `user:<username>` (empty: anyone with the role `approval_level` asks).
    pub approvers: Vec<String>,
    /// On approval.
    pub on_approve: Option<NodeIdx>,
    /// On rejection.
    pub on_reject: Option<NodeIdx>,
    /// On expiry.
    pub on_timeout: Option<NodeIdx>,
}

/// `decision_type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DecisionType {
    /// approve / reject.
    #[default]
    ApproveReject,
    /// one of `options`.
    SelectOption,
    /// free input.
    ProvideInput,
}

/// `timeout_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutAction {
    /// Expiry approves.
    AutoApprove,
    /// Expiry rejects.
    AutoReject,
    /// Expiry goes to on_timeout.
    Escalate,
}

/// A transformation.
#[derive(Debug, Clone)]
pub struct Transformation {
    /// Source variable.
    pub source: String,
    /// Destination variable.
    pub output: String,
    /// What it does.
    pub op: TransformOp,
    /// Extra parameters.
    pub params: Map<String, Value>,
}

/// The transformation types.
#[derive(Debug, Clone)]
pub enum TransformOp {
    /// Keep items for which the condition holds (`item` in scope).
    Filter(Condition),
    /// Map each item: a template (with `item`), `item`, or a field name.
    Map(MapExpr),
    /// Fold with an aggregate op.
    Reduce(AggregateOp, Option<String>),
    /// count | sum | avg | min | max over `params.field` or the items.
    Aggregate(AggregateOp, Option<String>),
    /// Sort by a key.
    Sort {
        /// Field (None: the items themselves).
        key: Option<String>,
        /// Descending order.
        descending: bool,
    },
    /// Remove duplicates (by canonical JSON), keeping the first.
    Deduplicate {
        /// Field to compare (None: the whole item).
        key: Option<String>,
    },
    /// Join with another list on a key.
    Join {
        /// Variable holding the right-hand list.
        with: String,
        /// Key on the left items.
        left_key: String,
        /// Key on the right items.
        right_key: String,
    },
    /// Group rows by a key and spread a column.
    Pivot {
        /// Row key.
        index: String,
        /// Column key.
        columns: String,
        /// Value key.
        values: String,
    },
}

/// A map expression.
#[derive(Debug, Clone)]
pub enum MapExpr {
    /// A template with `item` in scope.
    Template(Template),
    /// The item itself.
    Item,
    /// A field of the item (the item unchanged when absent).
    Field(String),
}

/// Aggregate operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateOp {
    /// Number of items.
    Count,
    /// Sum.
    Sum,
    /// Mean.
    Avg,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
}

/// A subflow node.
#[derive(Debug, Clone)]
pub struct Subflow {
    /// Child procedure.
    pub procedure_id: String,
    /// Child version (None: latest).
    pub version: Option<String>,
    /// child variable → source.
    pub input_mapping: Vec<(String, InputSource)>,
    /// parent variable → child variable (or a literal when not a string).
    pub output_mapping: Vec<(String, Value)>,
    /// What a child failure does.
    pub on_failure: SubflowFailure,
    /// Pass all parent variables.
    pub inherit_context: bool,
}

/// Where a child input comes from.
#[derive(Debug, Clone)]
pub enum InputSource {
    /// A string: the parent variable of that name if defined, else the rendered template.
    VarOrTemplate(String, Template),
    /// A non-string literal.
    Literal(Value),
}

/// `subflow.on_failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SubflowFailure {
    /// Fail the parent (default).
    #[default]
    FailParent,
    /// Go on with parent variables unchanged.
    Continue,
    /// Run the child once more, then fail the parent.
    Retry,
}
