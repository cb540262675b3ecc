//! Nodes of the workflow graph, their eleven payloads, steps, operations and the small objects inside them.
//!
//! A node is the fields every node has ([`Node`]'s own fields) plus exactly one payload ([`NodeKind`]), chosen by
//! `type` (default `sequence`). In JSON both sit flat on one object; `Node`'s serde impls split and merge them.

use serde::de::Error as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use super::{Extra, RetryConfig};

/// The eleven node types, as written in `type`.
pub const NODE_TYPES: [&str; 11] = [
    "sequence",
    "logic",
    "loop",
    "parallel",
    "processing",
    "verification",
    "llm_action",
    "terminate",
    "subflow",
    "human_approval",
    "transform",
];

/// Keys of [`Node`] that are common to every node type.
pub const COMMON_KEYS: [&str; 11] = [
    "type",
    "agent",
    "description",
    "inputs",
    "next_node",
    "is_checkpoint",
    "sla",
    "telemetry",
    "idempotency_key",
    "dispatch_mode",
    "workflow_dispatch_mode",
];

/// One node of `workflow_graph.nodes`: the common fields plus the typed payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Channel for step dispatch (`WEB`, `API`, `MasterAgent`, ...).
    pub agent: Option<String>,
    /// Human name; used as `node_name` in events.
    pub description: Option<String>,
    /// Declared inputs (documentation; values may hold templates).
    pub inputs: Option<Map<String, Value>>,
    /// Default successor.
    pub next_node: Option<String>,
    /// Commit and emit `checkpoint_saved` after this node.
    pub is_checkpoint: Option<bool>,
    /// Duration limit.
    pub sla: Option<Sla>,
    /// Telemetry switches.
    pub telemetry: Option<Telemetry>,
    /// Node-level idempotency key (documentation; steps carry their own).
    pub idempotency_key: Option<String>,
    /// async | sync for workflow capabilities (`dispatch_mode` or `workflow_dispatch_mode`).
    pub dispatch_mode: Option<String>,
    /// Which of the two spellings of the dispatch mode the document used, for faithful export.
    pub dispatch_mode_key: DispatchModeKey,
    /// The payload.
    pub kind: NodeKind,
}

/// The spelling of a node's dispatch mode field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DispatchModeKey {
    /// `dispatch_mode`.
    #[default]
    DispatchMode,
    /// `workflow_dispatch_mode`.
    WorkflowDispatchMode,
}

/// The payload of a node, one variant per node type.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// Steps executed in order.
    Sequence(SequenceNode),
    /// First matching rule routes.
    Logic(LogicNode),
    /// Iterate a body over a list.
    Loop(LoopNode),
    /// Concurrent branches joined at `next_node`.
    Parallel(ParallelNode),
    /// Internal operations.
    Processing(ProcessingNode),
    /// Checks on the variables.
    Verification(VerificationNode),
    /// One LLM call.
    LlmAction(LlmActionNode),
    /// End of the run.
    Terminate(TerminateNode),
    /// Another procedure as a child run.
    Subflow(SubflowNode),
    /// A pause for a human decision.
    HumanApproval(HumanApprovalNode),
    /// Collection transformations.
    Transform(TransformNode),
}

impl NodeKind {
    /// The `type` string of this payload.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Sequence(_) => "sequence",
            NodeKind::Logic(_) => "logic",
            NodeKind::Loop(_) => "loop",
            NodeKind::Parallel(_) => "parallel",
            NodeKind::Processing(_) => "processing",
            NodeKind::Verification(_) => "verification",
            NodeKind::LlmAction(_) => "llm_action",
            NodeKind::Terminate(_) => "terminate",
            NodeKind::Subflow(_) => "subflow",
            NodeKind::HumanApproval(_) => "human_approval",
            NodeKind::Transform(_) => "transform",
        }
    }

    /// Deserializes the payload of type `type_name` from the node's remaining fields. `None` for an unknown type.
    pub fn from_fields<'de, D: serde::Deserializer<'de>>(
        type_name: &str,
        fields: D,
    ) -> Option<Result<NodeKind, D::Error>> {
        Some(match type_name {
            "sequence" => SequenceNode::deserialize(fields).map(NodeKind::Sequence),
            "logic" => LogicNode::deserialize(fields).map(NodeKind::Logic),
            "loop" => LoopNode::deserialize(fields).map(NodeKind::Loop),
            "parallel" => ParallelNode::deserialize(fields).map(NodeKind::Parallel),
            "processing" => ProcessingNode::deserialize(fields).map(NodeKind::Processing),
            "verification" => VerificationNode::deserialize(fields).map(NodeKind::Verification),
            "llm_action" => LlmActionNode::deserialize(fields).map(NodeKind::LlmAction),
            "terminate" => TerminateNode::deserialize(fields).map(NodeKind::Terminate),
            "subflow" => SubflowNode::deserialize(fields).map(NodeKind::Subflow),
            "human_approval" => HumanApprovalNode::deserialize(fields).map(NodeKind::HumanApproval),
            "transform" => TransformNode::deserialize(fields).map(NodeKind::Transform),
            _ => return None,
        })
    }

    fn to_fields(&self) -> Result<Value, serde_json::Error> {
        match self {
            NodeKind::Sequence(p) => serde_json::to_value(p),
            NodeKind::Logic(p) => serde_json::to_value(p),
            NodeKind::Loop(p) => serde_json::to_value(p),
            NodeKind::Parallel(p) => serde_json::to_value(p),
            NodeKind::Processing(p) => serde_json::to_value(p),
            NodeKind::Verification(p) => serde_json::to_value(p),
            NodeKind::LlmAction(p) => serde_json::to_value(p),
            NodeKind::Terminate(p) => serde_json::to_value(p),
            NodeKind::Subflow(p) => serde_json::to_value(p),
            NodeKind::HumanApproval(p) => serde_json::to_value(p),
            NodeKind::Transform(p) => serde_json::to_value(p),
        }
    }
}

/// The common fields of a node, deserialized before the payload.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NodeCommon {
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    pub agent: Option<String>,
    pub description: Option<String>,
    pub inputs: Option<Map<String, Value>>,
    pub next_node: Option<String>,
    pub is_checkpoint: Option<bool>,
    pub sla: Option<Sla>,
    pub telemetry: Option<Telemetry>,
    pub idempotency_key: Option<String>,
    pub dispatch_mode: Option<String>,
    pub workflow_dispatch_mode: Option<String>,
}

impl Node {
    /// Builds a node from its common fields and payload.
    pub(crate) fn assemble(common: NodeCommon, kind: NodeKind) -> Node {
        let (dispatch_mode, dispatch_mode_key) = match (common.dispatch_mode, common.workflow_dispatch_mode) {
            (Some(m), _) => (Some(m), DispatchModeKey::DispatchMode),
            (None, Some(m)) => (Some(m), DispatchModeKey::WorkflowDispatchMode),
            (None, None) => (None, DispatchModeKey::DispatchMode),
        };
        Node {
            agent: common.agent,
            description: common.description,
            inputs: common.inputs,
            next_node: common.next_node,
            is_checkpoint: common.is_checkpoint,
            sla: common.sla,
            telemetry: common.telemetry,
            idempotency_key: common.idempotency_key,
            dispatch_mode,
            dispatch_mode_key,
            kind,
        }
    }

    /// The name used in events: the description, else the id.
    pub fn display_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.description.as_deref().filter(|d| !d.is_empty()).unwrap_or(id)
    }
}

impl Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut out = Map::new();
        out.insert("type".into(), Value::from(self.kind.type_name()));
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                out.insert(k.into(), v);
            }
        };
        put("agent", self.agent.clone().map(Value::from));
        put("description", self.description.clone().map(Value::from));
        put("inputs", self.inputs.clone().map(Value::Object));
        put("next_node", self.next_node.clone().map(Value::from));
        put("is_checkpoint", self.is_checkpoint.map(Value::from));
        put("sla", self.sla.as_ref().map(serde_json::to_value).transpose().map_err(S::Error::custom)?);
        put("telemetry", self.telemetry.as_ref().map(serde_json::to_value).transpose().map_err(S::Error::custom)?);
        put("idempotency_key", self.idempotency_key.clone().map(Value::from));
        let mode_key = match self.dispatch_mode_key {
            DispatchModeKey::DispatchMode => "dispatch_mode",
            DispatchModeKey::WorkflowDispatchMode => "workflow_dispatch_mode",
        };
        put(mode_key, self.dispatch_mode.clone().map(Value::from));
        if let Value::Object(fields) = self.kind.to_fields().map_err(S::Error::custom)? {
            out.extend(fields);
        }
        out.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut fields = Map::deserialize(d)?;
        let (common, type_name) = split_common(&mut fields).map_err(D::Error::custom)?;
        let kind = NodeKind::from_fields(&type_name, Value::Object(fields))
            .ok_or_else(|| D::Error::custom(format!("unknown node type `{type_name}`")))?
            .map_err(D::Error::custom)?;
        Ok(Node::assemble(common, kind))
    }
}

/// Takes the common keys (with a non-null value) out of a node object.
pub(crate) fn split_common_fields(fields: &mut Map<String, Value>) -> Map<String, Value> {
    let mut common = Map::new();
    for key in COMMON_KEYS {
        if let Some(v) = fields.shift_remove(key)
            && !v.is_null()
        {
            common.insert(key.into(), v);
        }
    }
    common
}

/// Takes the common keys out of a node object; returns them with the node type (default `sequence`).
pub(crate) fn split_common(fields: &mut Map<String, Value>) -> Result<(NodeCommon, String), serde_json::Error> {
    let common: NodeCommon = serde_json::from_value(Value::Object(split_common_fields(fields)))?;
    let type_name = common.type_name.clone().unwrap_or_else(|| "sequence".into());
    Ok((common, type_name))
}

macro_rules! payload {
    ($(#[doc = $doc:literal])* $name:ident { $( $(#[doc = $fdoc:literal])* $(#[serde($($attr:tt)*)])? $field:ident : $ty:ty ),* $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            $(
                $(#[doc = $fdoc])*
                #[serde(default, skip_serializing_if = "Option::is_none" $(, $($attr)*)?)]
                pub $field: Option<$ty>,
            )*
            /// Unknown fields.
            #[serde(flatten)]
            pub extra: Extra,
        }
    };
}

payload!(
    /// `sequence`: steps run in order.
    SequenceNode {
        /// The steps.
        steps: Vec<Step>,
        /// Checks evaluated after the steps (A.2.9).
        validations: Vec<ValidationCheck>,
        /// Handlers for step errors.
        error_handlers: Vec<ErrorHandler>,
    }
);

payload!(
    /// `logic`: the first rule whose condition holds routes; else `default_next_node`.
    LogicNode {
        /// Rules in order.
        rules: Vec<LogicRule>,
        /// Successor when no rule matches (absent: the run ends).
        default_next_node: String,
    }
);

payload!(
    /// One rule of a `logic` node.
    LogicRule {
        /// The condition.
        condition: String,
        /// Where to go when it holds.
        next_node: String,
    }
);

payload!(
    /// `loop`: run `body_node` once per element of the list `iterator`.
    LoopNode {
        /// Name of the variable holding the list.
        iterator: String,
        /// Variable that receives each element.
        iterator_variable: String,
        /// Variable that receives each index.
        index_variable: String,
        /// First node of the body; the body returns to the loop node.
        body_node: String,
        /// Variable that collects the elements of successful iterations.
        collect_variable: String,
        /// Stop after this many iterations.
        max_iterations: Number,
        /// Skip a failing iteration instead of failing the run.
        continue_on_error: bool,
    }
);

payload!(
    /// `parallel`: branches run concurrently and join at `next_node`.
    ParallelNode {
        /// The branches.
        branches: Vec<Branch>,
        /// all | any | first.
        wait_strategy: String,
        /// continue | stop | retry | fail.
        branch_failure: String,
    }
);

payload!(
    /// One branch of a `parallel` node.
    Branch {
        /// Branch name.
        branch_id: String,
        /// First node of the branch.
        start_node: String,
    }
);

payload!(
    /// `processing`: internal operations in order.
    ProcessingNode {
        /// The operations.
        operations: Vec<Operation>,
    }
);

payload!(
    /// `verification`: conditions that must hold.
    VerificationNode {
        /// The checks.
        checks: Vec<VerificationCheck>,
    }
);

payload!(
    /// One check of a `verification` node.
    VerificationCheck {
        /// Check name.
        id: String,
        /// The condition.
        condition: String,
        /// fail_workflow | warn | continue.
        on_fail: String,
        /// Message when it does not hold.
        message: String,
    }
);

payload!(
    /// `llm_action`: one call to a chat model.
    LlmActionNode {
        /// The user prompt (a template).
        prompt: String,
        /// The system prompt (a template).
        system_prompt: String,
        /// Model name.
        model: String,
        /// Sampling temperature.
        temperature: Number,
        /// Completion token limit.
        max_tokens: Number,
        /// Ask for a JSON object.
        json_mode: bool,
        /// Files and data sent with the prompt.
        attachments: Vec<LlmAttachment>,
        /// Retries of failed calls.
        retry: LlmRetry,
        /// variable → mapping (`text`, `json:key`, `json_extract: path`, `regex: pattern`).
        outputs: Map<String, Value>,
        /// The model chooses the next node among `branches`.
        orchestration_mode: bool,
        /// Node ids the model may choose in orchestration mode.
        branches: Vec<String>,
    }
);

payload!(
    /// `llm_action.attachments[]`.
    LlmAttachment {
        /// image | csv | text | json.
        #[serde(rename = "type")]
        attachment_type: String,
        /// File path or `{{var}}`.
        source: String,
        /// Free text sent with it.
        description: String,
    }
);

payload!(
    /// `llm_action.retry`.
    LlmRetry {
        /// Retries after the first call.
        max_retries: Number,
        /// Delay before the first retry.
        delay_ms: Number,
        /// Alias of `delay_ms`.
        retry_delay_ms: Number,
        /// Delay multiplier.
        backoff_multiplier: Number,
    }
);

payload!(
    /// `terminate`: ends the run.
    TerminateNode {
        /// success | failed.
        status: String,
        /// Operations run on the way out.
        cleanup_actions: Vec<Operation>,
        /// Operations run when the status is failed.
        error_actions: Vec<Operation>,
        /// Run outputs: a variable name, a template or a literal per key.
        outputs: Map<String, Value>,
        /// Audit record.
        final_audit_log: Value,
    }
);

payload!(
    /// `subflow`: another procedure run as a child.
    SubflowNode {
        /// The child procedure.
        procedure_id: String,
        /// Its version (absent: the latest).
        version: String,
        /// child variable → parent variable name or template.
        input_mapping: Map<String, Value>,
        /// parent variable → child variable name.
        output_mapping: Map<String, Value>,
        /// fail_parent | continue | retry.
        on_failure: String,
        /// Pass all parent variables to the child.
        inherit_context: bool,
    }
);

payload!(
    /// `human_approval`: pause for a decision.
    HumanApprovalNode {
        /// The question.
        prompt: String,
        /// approve_reject | select_option | provide_input.
        decision_type: String,
        /// Choices for select_option.
        options: Vec<Value>,
        /// Expiry.
        timeout_ms: Number,
        /// auto_approve | auto_reject | escalate.
        timeout_action: String,
        /// Who is told on escalation.
        escalation_contact: String,
        /// Data shown to the approver.
        context_data: Value,
        /// standard | manager | executive.
        approval_level: String,
        /// Who may decide (ckp's extension): `role:<role>` or `user:<username>` entries; any one suffices.
        approvers: Vec<String>,
        /// Successor on approval.
        on_approve: String,
        /// Successor on rejection.
        on_reject: String,
        /// Successor on expiry.
        on_timeout: String,
    }
);

payload!(
    /// `transform`: collection transformations.
    TransformNode {
        /// The transformations, in order.
        transformations: Vec<Transformation>,
    }
);

payload!(
    /// One transformation.
    Transformation {
        /// filter | map | reduce | join | aggregate | pivot | sort | deduplicate | unique.
        #[serde(rename = "type")]
        transform_type: String,
        /// Variable holding the input list.
        source_variable: String,
        /// Condition (filter), template or field (map), operation (aggregate), key (sort).
        expression: String,
        /// Variable that receives the result.
        output_variable: String,
        /// Extra parameters.
        params: Map<String, Value>,
    }
);

payload!(
    /// `sla` of a node.
    Sla {
        /// Limit.
        max_duration_ms: Number,
        /// warn | fail | escalate.
        on_breach: String,
        /// Node to go to on escalate.
        escalation_handler: String,
    }
);

payload!(
    /// `telemetry` of a node.
    Telemetry {
        /// Add duration_ms to step_completed.
        track_duration: bool,
        /// Add retry_count to step_completed.
        track_retries: bool,
        /// Metric names or `{name, value}` objects.
        custom_metrics: Value,
        /// Trace id.
        trace_id: String,
        /// Span id.
        span_id: String,
    }
);

payload!(
    /// `validations[]` of a sequence node.
    ValidationCheck {
        /// Check name.
        id: String,
        /// screen_text_contains | element_exists | value_in_range | custom.
        check: String,
        /// Values the check accepts.
        expected_values: Vec<Value>,
        /// Condition for `custom`.
        condition: String,
        /// throw_exception | retry_node | fail_workflow.
        on_failure: String,
        /// Message when it fails.
        message: String,
    }
);

payload!(
    /// `error_handlers[]` of a sequence node.
    ErrorHandler {
        /// Error kind it handles (A.2.10 taxonomy, LangOrch class names, or empty for all).
        error_type: String,
        /// retry | screenshot_and_fail | fail | ignore | escalate.
        action: String,
        /// Retries granted by this handler.
        max_retries: Number,
        /// Delay between them.
        delay_ms: Number,
        /// Delay strategy.
        retry_policy: RetryPolicy,
        /// Finer matching.
        trigger: ErrorTrigger,
        /// retry_node | continue | stop | fallback_node.
        recovery_strategy: String,
        /// Internal steps run on a match.
        recovery_steps: Vec<Step>,
        /// Node to go to.
        fallback_node: String,
        /// Emit step_error_notification.
        notify_on_error: bool,
        /// Free data.
        error_metadata: Map<String, Value>,
    }
);

payload!(
    /// `error_handlers[].retry_policy`.
    RetryPolicy {
        /// fixed | exponential_backoff | fibonacci | linear.
        strategy: String,
        /// First delay.
        base_delay_ms: Number,
        /// Cap.
        max_delay_ms: Number,
        /// Growth factor.
        multiplier: Number,
        /// Randomise delays.
        jitter: bool,
    }
);

payload!(
    /// `error_handlers[].trigger`.
    ErrorTrigger {
        /// Substring of the error message.
        error_text_contains: String,
        /// Error code (string or number).
        error_code: Value,
        /// HTTP statuses.
        http_status_codes: Vec<Number>,
    }
);

payload!(
    /// A processing operation (also terminate cleanup/error actions).
    Operation {
        /// The operation.
        action: String,
        /// Target variable (set_variable).
        variable: String,
        /// Value (set_variable, append_to_array, ...).
        value: Value,
        /// Target array variable (append_to_array).
        array: String,
        /// Expression (calculate, format_string).
        expression: String,
        /// Input (often `{{var}}`).
        source: Value,
        /// Pattern (extract_regex).
        pattern: String,
        /// Variable that receives the result.
        output_variable: String,
        /// Notification channel.
        channel: String,
        /// Notification recipients (a list or `{{var}}`).
        recipients: Value,
        /// Notification subject.
        subject: String,
        /// Message (notify, log).
        message: String,
        /// DEBUG | INFO | WARNING | ERROR.
        level: String,
        /// JSON Schema (validate_schema).
        schema: Value,
        /// Algorithm (hash, encrypt).
        algorithm: String,
        /// Secret holding the key (encrypt, decrypt).
        key_reference: String,
        /// Target type (convert_type).
        target_type: String,
    }
);

/// Step keys that configure the step itself; every other key is a parameter sent to the executor (B §5.1).
pub const STEP_META_KEYS: [&str; 12] = [
    "step_id",
    "action",
    "timeout_ms",
    "wait_ms",
    "wait_after_ms",
    "retry_on_failure",
    "retry_config",
    "output_variable",
    "screenshot_on_complete",
    "idempotency_key",
    "workflow_dispatch_mode",
    "retry_policy",
];

/// One step of a sequence node: meta keys plus parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Step id (recommended; keys the result cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    /// The action.
    #[serde(default)]
    pub action: String,
    /// Limit on the executor call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Number>,
    /// Wait before executing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<Number>,
    /// Wait after completing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_after_ms: Option<Number>,
    /// Retry a failing attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on_failure: Option<bool>,
    /// Retry settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
    /// Variable that receives the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_variable: Option<String>,
    /// Screenshot after the step (accepted, no effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot_on_complete: Option<bool>,
    /// Idempotency key sent to the agent (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// async | sync for workflow capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_dispatch_mode: Option<String>,
    /// Retry policy object (same shape as an error handler's), accepted on steps too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Every other key: the parameters sent to the executor (rendered).
    #[serde(flatten)]
    pub params: Map<String, Value>,
}
