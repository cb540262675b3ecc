//! Sequence nodes: steps (meta keys vs parameters, executor binding), validations and error handlers; and the
//! processing operations that terminate nodes share.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::ctx::Ctx;
use super::root::DISPATCH_MODES;
use crate::diag::Code;
use crate::model::{self, ErrorHandler as HandlerDoc};
use crate::procedure::{
    Action, Backoff, BackoffStrategy, CompiledRegex, CompiledSchema, ErrorHandler, ErrorKind, ErrorMatch,
    HandlerAction, InternalAction, Operation, RecoveryStrategy, RetryOverrides, Sequence, Step, Validation,
    ValidationFailure, ValidationKind,
};

pub(super) fn compile_sequence(
    cx: &mut Ctx<'_>,
    p: &str,
    node: &model::Node,
    s: &model::SequenceNode,
) -> Option<Sequence> {
    let has_agent = node.agent.as_deref().is_some_and(|a| !a.trim().is_empty());
    let steps = compile_steps(cx, &format!("{p}/steps"), s.steps.as_deref().unwrap_or_default(), has_agent, true);
    let mut validations = Vec::new();
    let mut ok = true;
    for (i, v) in s.validations.iter().flatten().enumerate() {
        match validation(cx, &format!("{p}/validations/{i}"), i, v) {
            Some(v) => validations.push(v),
            None => ok = false,
        }
    }
    let mut handlers = Vec::new();
    for (i, h) in s.error_handlers.iter().flatten().enumerate() {
        match handler(cx, &format!("{p}/error_handlers/{i}"), h, has_agent) {
            Some(h) => handlers.push(h),
            None => ok = false,
        }
    }
    ok.then_some(Sequence { steps: steps?, validations, handlers })
}

fn compile_steps(
    cx: &mut Ctx<'_>,
    p: &str,
    steps: &[model::Step],
    has_agent: bool,
    warn_duplicates: bool,
) -> Option<Vec<Step>> {
    let mut out = Vec::with_capacity(steps.len());
    let mut ok = true;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        let sp = format!("{p}/{i}");
        if let Some(id) = step.step_id.as_deref()
            && warn_duplicates
            && let Some(first) = seen.insert(id, i)
        {
            cx.report(
                        Code::DuplicateStepId,
                        format!("{sp}/step_id"),
                        format!("step_id `{id}` is also used by step {first} of this node; give each step its own id so results, retries and events can tell them apart"),
                    );
        }
        match compile_step(cx, &sp, step, has_agent) {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn compile_step(cx: &mut Ctx<'_>, sp: &str, step: &model::Step, has_agent: bool) -> Option<Step> {
    let action_name = step.action.trim();
    if action_name.is_empty() {
        cx.report(Code::MissingField, format!("{sp}/action"), "missing `action`: say what this step does (set_variable, log, http_request, an agent action, or mcp:<server>/<tool>)");
        return None;
    }
    let action = bind_action(cx, sp, action_name, has_agent);
    let timeout = cx.uint(&format!("{sp}/timeout_ms"), step.timeout_ms.as_ref());
    let wait = cx.uint(&format!("{sp}/wait_ms"), step.wait_ms.as_ref());
    let wait_after = cx.uint(&format!("{sp}/wait_after_ms"), step.wait_after_ms.as_ref());
    let rc = step.retry_config.as_ref();
    let rp = step.retry_policy.as_ref();
    let retry = retry_overrides(
        cx,
        &format!("{sp}/retry_config"),
        rc.and_then(|r| r.max_retries.as_ref()),
        rc.and_then(|r| r.retry_delay_ms.as_ref().or(r.delay_ms.as_ref()))
            .or(rp.and_then(|r| r.base_delay_ms.as_ref())),
        rc.and_then(|r| r.backoff_multiplier.as_ref()).or(rp.and_then(|r| r.multiplier.as_ref())),
    );
    let idem =
        step.idempotency_key.as_deref().map(|k| cx.template(&format!("{sp}/idempotency_key"), k).ok_or(())).transpose();
    let dispatch =
        cx.choice(&format!("{sp}/workflow_dispatch_mode"), step.workflow_dispatch_mode.as_deref(), &DISPATCH_MODES);
    if let Some(out) = &step.output_variable {
        cx.write(out, &format!("{sp}/output_variable"));
    }
    let params = cx.value_template(sp, &Value::Object(step.params.clone()));
    let (schema, pattern) = match &action {
        Some(Action::Internal(a)) => internal_checks(cx, sp, *a, &step.params)?,
        _ => (None, None),
    };
    Some(Step {
        id: step.step_id.clone().unwrap_or_default(),
        action_name: action_name.to_owned(),
        action: action?,
        timeout_ms: timeout.ok()?,
        wait_ms: wait.ok()?,
        wait_after_ms: wait_after.ok()?,
        retry: if step.retry_on_failure.unwrap_or(false) { Some(retry.ok()?) } else { retry.ok().map(|_| None)? },
        output_variable: step.output_variable.clone().filter(|s| !s.is_empty()),
        idempotency_key: idem.ok()?,
        dispatch_mode: dispatch.ok()?,
        params: params?,
        raw_params: step.params.clone(),
        schema,
        pattern,
    })
}

/// Binds a step's action: internal, MCP tool, or dispatched at run time (A.2.15). A non-internal action on a node
/// with no agent channel has no executor, except `http_request`, which ckp performs itself.
fn bind_action(cx: &mut Ctx<'_>, sp: &str, name: &str, has_agent: bool) -> Option<Action> {
    if let Some(rest) = name.strip_prefix("mcp:") {
        return match rest.split_once('/') {
            Some((server, tool)) if !server.is_empty() && !tool.is_empty() => {
                Some(Action::Mcp { server: server.to_owned(), tool: tool.to_owned() })
            }
            _ => {
                cx.report(
                    Code::InvalidConfig,
                    format!("{sp}/action"),
                    format!("`{name}` is not an MCP tool reference: write mcp:<server>/<tool>"),
                );
                None
            }
        };
    }
    match InternalAction::parse(name) {
        Some(InternalAction::Screenshot) if has_agent => Some(Action::External),
        Some(a) => Some(Action::Internal(a)),
        None if has_agent || name == "http_request" => Some(Action::External),
        None => {
            cx.report(
                Code::NoExecutor,
                format!("{sp}/action"),
                format!(
                    "action `{name}` is not an internal action and this node has no `agent`, so nothing can execute it. Set the node's `agent` to the channel of an agent that performs `{name}` (WEB, DESKTOP, API, ...), or call an MCP tool with mcp:<server>/<tool>"
                ),
            );
            None
        }
    }
}

type Extras = (Option<CompiledSchema>, Option<CompiledRegex>);

/// Checks of internal actions that can be decided at compile time; records the variables they write.
fn internal_checks(cx: &mut Ctx<'_>, p: &str, action: InternalAction, fields: &Map<String, Value>) -> Option<Extras> {
    let s = |k: &str| fields.get(k).and_then(Value::as_str);
    match action {
        InternalAction::SetVariable => match fields.get("variable") {
            Some(Value::String(v)) if !v.is_empty() => cx.write(v, &format!("{p}/variable")),
            _ => {
                cx.report(
                    Code::MissingField,
                    format!("{p}/variable"),
                    "set_variable needs `variable`: the name of the variable to set",
                );
                return None;
            }
        },
        InternalAction::AppendToArray => match s("array").or_else(|| s("variable")) {
            Some(v) if !v.is_empty() => cx.write(v, &format!("{p}/array")),
            _ => {
                cx.report(
                    Code::MissingField,
                    format!("{p}/array"),
                    "append_to_array needs `array`: the name of the list variable",
                );
                return None;
            }
        },
        _ => {}
    }
    if let Some(out) = s("output_variable") {
        cx.write(out, &format!("{p}/output_variable"));
    }
    let mut schema = None;
    let mut pattern = None;
    if action == InternalAction::ValidateSchema {
        match fields.get("schema") {
            Some(v @ (Value::Object(_) | Value::Bool(_))) => schema = Some(cx.schema(&format!("{p}/schema"), v)?),
            Some(Value::String(t)) if t.contains("{{") => {}
            _ => {
                cx.report(
                    Code::MissingField,
                    format!("{p}/schema"),
                    "validate_schema needs `schema`: a JSON Schema object",
                );
                return None;
            }
        }
    }
    if action == InternalAction::ExtractRegex {
        match s("pattern") {
            Some(pat) if pat.contains("{{") => {}
            Some(pat) => pattern = Some(cx.regex(&format!("{p}/pattern"), pat)?),
            None => {
                cx.report(
                    Code::MissingField,
                    format!("{p}/pattern"),
                    "extract_regex needs `pattern`: a regular expression",
                );
                return None;
            }
        }
    }
    Some((schema, pattern))
}

/// Compiles processing operations (also terminate cleanup and error actions).
pub(super) fn compile_operations(cx: &mut Ctx<'_>, p: &str, ops: &[model::Operation]) -> Option<Vec<Operation>> {
    let mut out = Vec::with_capacity(ops.len());
    let mut ok = true;
    for (i, op) in ops.iter().enumerate() {
        let opp = format!("{p}/{i}");
        let Some(name) = op.action.as_deref().map(str::trim).filter(|a| !a.is_empty()) else {
            cx.report(
                Code::MissingField,
                format!("{opp}/action"),
                "missing `action` of this operation (set_variable, append_to_array, parse_json, calculate, ...)",
            );
            ok = false;
            continue;
        };
        let Some(action) = InternalAction::parse(name) else {
            let names: Vec<&str> = InternalAction::ALL.iter().map(|a| a.as_str()).collect();
            let hint =
                crate::model::parse::closest(name, &names).map(|s| format!(" Did you mean `{s}`?")).unwrap_or_default();
            cx.report(
                Code::InvalidEnum,
                format!("{opp}/action"),
                format!("`{name}` is not an operation ckp can perform inside the engine.{hint} Use one of: {}. External actions belong in a sequence step", names.join(", ")),
            );
            ok = false;
            continue;
        };
        let mut fields = match serde_json::to_value(op) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        fields.shift_remove("action");
        let extras = internal_checks(cx, &opp, action, &fields);
        let template = cx.value_template(&opp, &Value::Object(fields));
        match (extras, template) {
            (Some((schema, pattern)), Some(fields)) => out.push(Operation { action, fields, schema, pattern }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// Retry overrides from a `retry_config`-like object.
pub(super) fn retry_overrides(
    cx: &mut Ctx<'_>,
    p: &str,
    max: Option<&Number>,
    delay: Option<&Number>,
    mult: Option<&Number>,
) -> Result<RetryOverrides, ()> {
    let max_retries = cx.uint32(&format!("{p}/max_retries"), max);
    let delay_ms = cx.uint(&format!("{p}/retry_delay_ms"), delay);
    let multiplier = cx.number_in(&format!("{p}/backoff_multiplier"), mult, 0.0, 1000.0);
    Ok(RetryOverrides { max_retries: max_retries?, delay_ms: delay_ms?, multiplier: multiplier? })
}

fn validation(cx: &mut Ctx<'_>, p: &str, i: usize, v: &model::ValidationCheck) -> Option<Validation> {
    let check = cx.choice(
        &format!("{p}/check"),
        v.check.as_deref(),
        &[("screen_text_contains", ()), ("element_exists", ()), ("value_in_range", ()), ("custom", ())],
    );
    let on_failure = cx.choice(
        &format!("{p}/on_failure"),
        v.on_failure.as_deref(),
        &[
            ("throw_exception", ValidationFailure::ThrowException),
            ("retry_node", ValidationFailure::RetryNode),
            ("fail_workflow", ValidationFailure::FailWorkflow),
        ],
    );
    let message = v.message.as_deref().map(|m| cx.template(&format!("{p}/message"), m).ok_or(())).transpose();
    let kind = match v.condition.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(c) => cx.condition(&format!("{p}/condition"), c).map(ValidationKind::Condition),
        None if v.check.as_deref() == Some("custom") || v.expected_values.is_none() => {
            cx.report(
                Code::MissingField,
                format!("{p}/condition"),
                "this validation needs a `condition` (or `expected_values`) to check",
            );
            None
        }
        None => Some(ValidationKind::Expected {
            check: v.check.clone().unwrap_or_default(),
            expected: v.expected_values.clone().unwrap_or_default(),
        }),
    };
    let _ = check.ok()?;
    Some(Validation {
        id: v.id.clone().unwrap_or_else(|| format!("validation_{i}")),
        check: kind?,
        on_failure: on_failure.ok()?.unwrap_or(ValidationFailure::ThrowException),
        message: message.ok()?,
    })
}

/// The error taxonomy (A.2.10), with LangOrch's exception class names.
const ERROR_TYPES: [(&str, ErrorMatch); 25] = [
    ("*", ErrorMatch::Any),
    ("any", ErrorMatch::Any),
    ("all", ErrorMatch::Any),
    ("exception", ErrorMatch::Any),
    ("timeout", ErrorMatch::Kind(ErrorKind::Timeout)),
    ("timeouterror", ErrorMatch::Kind(ErrorKind::Timeout)),
    ("http_error", ErrorMatch::Kind(ErrorKind::HttpError)),
    ("httperror", ErrorMatch::Kind(ErrorKind::HttpError)),
    ("agent_error", ErrorMatch::Kind(ErrorKind::AgentError)),
    ("agentactionerror", ErrorMatch::Kind(ErrorKind::AgentError)),
    ("agent_unavailable", ErrorMatch::Kind(ErrorKind::AgentUnavailable)),
    ("noexecutorerror", ErrorMatch::Kind(ErrorKind::AgentUnavailable)),
    ("validation_error", ErrorMatch::Kind(ErrorKind::ValidationError)),
    ("validationerror", ErrorMatch::Kind(ErrorKind::ValidationError)),
    ("llm_error", ErrorMatch::Kind(ErrorKind::LlmError)),
    ("llmcallerror", ErrorMatch::Kind(ErrorKind::LlmError)),
    ("budget_exceeded", ErrorMatch::Kind(ErrorKind::BudgetExceeded)),
    ("cancelled", ErrorMatch::Kind(ErrorKind::Cancelled)),
    ("runcancellederror", ErrorMatch::Kind(ErrorKind::Cancelled)),
    ("mcp_error", ErrorMatch::Kind(ErrorKind::McpError)),
    ("mcptoolerror", ErrorMatch::Kind(ErrorKind::McpError)),
    ("internal_error", ErrorMatch::Kind(ErrorKind::InternalError)),
    ("runtimeerror", ErrorMatch::Kind(ErrorKind::InternalError)),
    ("valueerror", ErrorMatch::Kind(ErrorKind::InternalError)),
    ("keyerror", ErrorMatch::Kind(ErrorKind::InternalError)),
];

fn error_match(cx: &mut Ctx<'_>, p: &str, raw: Option<&str>) -> ErrorMatch {
    let t = raw.map(str::trim).unwrap_or_default();
    if t.is_empty() {
        return ErrorMatch::Any;
    }
    let lower = t.to_ascii_lowercase();
    if let Some((_, m)) = ERROR_TYPES.iter().find(|(n, _)| *n == lower) {
        return m.clone();
    }
    cx.report(
        Code::UnknownErrorType,
        format!("{p}/error_type"),
        format!(
            "error_type `{t}` is not one of ckp's error types (timeout, http_error, agent_error, agent_unavailable, validation_error, llm_error, budget_exceeded, cancelled, mcp_error, internal_error, *); this handler will match errors whose message contains `{t}`"
        ),
    );
    ErrorMatch::MessageContains(t.to_owned())
}

fn handler(cx: &mut Ctx<'_>, p: &str, h: &HandlerDoc, has_agent: bool) -> Option<ErrorHandler> {
    let error_type = error_match(cx, p, h.error_type.as_deref());
    let action = cx.choice(
        &format!("{p}/action"),
        h.action.as_deref(),
        &[
            ("retry", HandlerAction::Retry),
            ("screenshot_and_fail", HandlerAction::ScreenshotAndFail),
            ("fail", HandlerAction::Fail),
            ("ignore", HandlerAction::Ignore),
            ("escalate", HandlerAction::Escalate),
        ],
    );
    let max_retries = cx.uint32(&format!("{p}/max_retries"), h.max_retries.as_ref());
    let delay = cx.uint(&format!("{p}/delay_ms"), h.delay_ms.as_ref());
    let rp = h.retry_policy.as_ref();
    let strategy = cx.choice(
        &format!("{p}/retry_policy/strategy"),
        rp.and_then(|r| r.strategy.as_deref()),
        &[
            ("fixed", BackoffStrategy::Fixed),
            ("linear", BackoffStrategy::Linear),
            ("exponential_backoff", BackoffStrategy::ExponentialBackoff),
            ("exponential", BackoffStrategy::ExponentialBackoff),
            ("fibonacci", BackoffStrategy::Fibonacci),
        ],
    );
    let base = cx.uint(&format!("{p}/retry_policy/base_delay_ms"), rp.and_then(|r| r.base_delay_ms.as_ref()));
    let max_delay = cx.uint(&format!("{p}/retry_policy/max_delay_ms"), rp.and_then(|r| r.max_delay_ms.as_ref()));
    let multiplier =
        cx.number_in(&format!("{p}/retry_policy/multiplier"), rp.and_then(|r| r.multiplier.as_ref()), 0.0, 1000.0);
    let tr = h.trigger.as_ref();
    let mut statuses = Vec::new();
    let mut ok = true;
    for (i, n) in tr.and_then(|t| t.http_status_codes.as_ref()).into_iter().flatten().enumerate() {
        match n.as_u64().and_then(|c| u16::try_from(c).ok()).filter(|c| (100..=599).contains(c)) {
            Some(c) => statuses.push(c),
            None => {
                ok = false;
                cx.report(
                    Code::InvalidNumber,
                    format!("{p}/trigger/http_status_codes/{i}"),
                    format!("`{n}` is not an HTTP status code (100–599)"),
                );
            }
        }
    }
    let error_code = tr.and_then(|t| t.error_code.as_ref()).and_then(|c| match c {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let recovery = cx.choice(
        &format!("{p}/recovery_strategy"),
        h.recovery_strategy.as_deref(),
        &[
            ("retry_node", RecoveryStrategy::RetryNode),
            ("continue", RecoveryStrategy::Continue),
            ("stop", RecoveryStrategy::Stop),
            ("fallback_node", RecoveryStrategy::FallbackNode),
        ],
    );
    let recovery_steps = compile_steps(
        cx,
        &format!("{p}/recovery_steps"),
        h.recovery_steps.as_deref().unwrap_or_default(),
        has_agent,
        false,
    );
    let fallback = cx.edge(&format!("{p}/fallback_node"), h.fallback_node.as_deref().filter(|s| !s.is_empty()));
    if matches!(recovery, Ok(Some(RecoveryStrategy::FallbackNode)))
        && h.fallback_node.as_deref().is_none_or(str::is_empty)
    {
        cx.report(
            Code::InvalidConfig,
            format!("{p}/fallback_node"),
            "`recovery_strategy: fallback_node` needs `fallback_node`, the node to go to",
        );
        ok = false;
    }
    let (strategy, base, max_delay, multiplier, delay) =
        (strategy.ok()?, base.ok()?, max_delay.ok()?, multiplier.ok()?, delay.ok()?);
    let backoff = Backoff {
        strategy: strategy.unwrap_or(if multiplier.is_some() {
            BackoffStrategy::ExponentialBackoff
        } else {
            BackoffStrategy::Fixed
        }),
        base_ms: base.or(delay).unwrap_or(1000),
        max_ms: max_delay,
        multiplier: multiplier.unwrap_or(2.0),
        jitter: rp.and_then(|r| r.jitter).unwrap_or(false),
    };
    let text_contains = tr.and_then(|t| t.error_text_contains.clone()).filter(|s| !s.is_empty());
    ok.then_some(ErrorHandler {
        error_type,
        action: action.ok()?.unwrap_or(HandlerAction::Fail),
        max_retries: max_retries.ok()?.unwrap_or(0),
        backoff,
        text_contains,
        error_code,
        http_status_codes: statuses,
        recovery: recovery.ok()?,
        recovery_steps: recovery_steps?,
        fallback: fallback.ok()?,
        notify: h.notify_on_error.unwrap_or(false),
    })
}
