//! Compiling one node: the common fields, then its payload. Sequence steps and error handlers live in
//! `steps.rs`; the other ten payloads are here.

use serde_json::{Map, Value};

use super::ctx::Ctx;
use super::root::DISPATCH_MODES;
use super::steps::{compile_operations, compile_sequence, retry_overrides};
use crate::diag::{Code, child};
use crate::model::{self, Document, NodeKind};
use crate::path::VarPath;
use crate::procedure::{
    AggregateOp, Approval, Attachment, AttachmentKind, BranchFailure, Check, DecisionType, InputSource, Kind, Llm,
    Logic, Loop, MapExpr, Node, OnBreach, OnFail, OutputMapping, Parallel, SlaSpec, Subflow, SubflowFailure,
    TelemetrySpec, Terminate, TerminateOutput, TimeoutAction, TransformOp, Transformation, WaitStrategy,
};

pub(super) fn compile_node(cx: &mut Ctx<'_>, doc: &Document, id: &str, node: &model::Node) -> Option<Node> {
    let p = child("/workflow_graph/nodes", id);
    let next = cx.edge(&format!("{p}/next_node"), node.next_node.as_deref().filter(|s| !s.is_empty()));
    let sla = node.sla.as_ref().map(|s| sla(cx, &p, s)).transpose();
    let dispatch_key = match node.dispatch_mode_key {
        model::DispatchModeKey::DispatchMode => "dispatch_mode",
        model::DispatchModeKey::WorkflowDispatchMode => "workflow_dispatch_mode",
    };
    let dispatch_mode = cx.choice(&format!("{p}/{dispatch_key}"), node.dispatch_mode.as_deref(), &DISPATCH_MODES);
    let telemetry = node.telemetry.as_ref().map(telemetry).unwrap_or_default();
    let kind = match &node.kind {
        NodeKind::Sequence(s) => compile_sequence(cx, &p, node, s).map(Kind::Sequence),
        NodeKind::Logic(l) => logic(cx, &p, l).map(Kind::Logic),
        NodeKind::Loop(l) => loop_(cx, &p, l).map(Kind::Loop),
        NodeKind::Parallel(par) => parallel(cx, &p, par).map(Kind::Parallel),
        NodeKind::Processing(pr) => {
            compile_operations(cx, &format!("{p}/operations"), pr.operations.as_deref().unwrap_or_default())
                .map(Kind::Processing)
        }
        NodeKind::Verification(v) => verification(cx, &p, v).map(Kind::Verification),
        NodeKind::LlmAction(l) => llm(cx, &p, l).map(|l| Kind::Llm(Box::new(l))),
        NodeKind::Terminate(t) => terminate(cx, &p, t).map(Kind::Terminate),
        NodeKind::HumanApproval(a) => approval(cx, &p, id, a).map(Kind::Approval),
        NodeKind::Transform(t) => transform(cx, &p, t).map(Kind::Transform),
        NodeKind::Subflow(s) => subflow(cx, &p, doc, s).map(Kind::Subflow),
    };
    if matches!(node.kind, NodeKind::Terminate(_)) && node.next_node.is_some() {
        cx.report(
            Code::IgnoredField,
            format!("{p}/next_node"),
            "a terminate node ends the run; its `next_node` is ignored",
        );
    }
    Some(Node {
        id: id.to_owned(),
        name: node.display_name(id).to_owned(),
        agent: node.agent.clone(),
        channel: node.agent.as_ref().map(|a| a.trim().to_lowercase()).filter(|a| !a.is_empty()),
        next: next.ok()?,
        is_checkpoint: node.is_checkpoint.unwrap_or(false),
        sla: sla.ok()?,
        telemetry,
        dispatch_mode: dispatch_mode.ok()?,
        kind: kind?,
    })
}

fn sla(cx: &mut Ctx<'_>, p: &str, s: &model::Sla) -> Result<SlaSpec, ()> {
    let p = format!("{p}/sla");
    let max = cx.uint(&format!("{p}/max_duration_ms"), s.max_duration_ms.as_ref());
    let on_breach = cx.choice(
        &format!("{p}/on_breach"),
        s.on_breach.as_deref(),
        &[
            ("warn", OnBreach::Warn),
            ("log", OnBreach::Warn),
            ("fail", OnBreach::Fail),
            ("escalate", OnBreach::Escalate),
        ],
    );
    let escalation =
        cx.edge(&format!("{p}/escalation_handler"), s.escalation_handler.as_deref().filter(|s| !s.is_empty()));
    let (max, on_breach, escalation) = (max?, on_breach?.unwrap_or_default(), escalation?);
    let Some(max) = max else {
        cx.report(
            Code::MissingField,
            format!("{p}/max_duration_ms"),
            "an `sla` needs `max_duration_ms`, the limit in milliseconds",
        );
        return Err(());
    };
    if on_breach == OnBreach::Escalate && escalation.is_none() {
        cx.report(
            Code::InvalidConfig,
            format!("{p}/escalation_handler"),
            "`on_breach: escalate` needs `escalation_handler`, the node to go to on a breach",
        );
        return Err(());
    }
    Ok(SlaSpec { max_duration_ms: max, on_breach, escalation })
}

fn telemetry(t: &model::Telemetry) -> TelemetrySpec {
    let custom_metrics = match &t.custom_metrics {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|m| match m {
                Value::String(s) => Some((s.clone(), None)),
                Value::Object(o) => {
                    o.get("name").and_then(Value::as_str).map(|n| (n.to_owned(), o.get("value").cloned()))
                }
                _ => None,
            })
            .collect(),
        Some(Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect(),
        _ => Vec::new(),
    };
    TelemetrySpec {
        track_duration: t.track_duration.unwrap_or(false),
        track_retries: t.track_retries.unwrap_or(false),
        custom_metrics,
        trace_id: t.trace_id.clone(),
        span_id: t.span_id.clone(),
    }
}

fn logic(cx: &mut Ctx<'_>, p: &str, l: &model::LogicNode) -> Option<Logic> {
    let mut rules = Vec::new();
    let mut ok = true;
    for (i, rule) in l.rules.iter().flatten().enumerate() {
        let rp = format!("{p}/rules/{i}");
        let cond = cx
            .required_str(&format!("{rp}/condition"), rule.condition.as_deref(), "`condition` in this logic rule")
            .and_then(|c| cx.condition(&format!("{rp}/condition"), c));
        let target =
            cx.required_edge(&format!("{rp}/next_node"), rule.next_node.as_deref(), "`next_node` in this logic rule");
        match (cond, target) {
            (Some(c), Some(t)) => rules.push((c, t)),
            _ => ok = false,
        }
    }
    let default =
        cx.edge(&format!("{p}/default_next_node"), l.default_next_node.as_deref().filter(|s| !s.is_empty())).ok();
    if l.default_next_node.is_none() {
        cx.report(
            Code::MissingRoute,
            p,
            "logic node has no `default_next_node`: when no rule matches, the run ends here. Add a default to make that explicit",
        );
    }
    Some(Logic { rules, default: default? }).filter(|_| ok)
}

fn loop_(cx: &mut Ctx<'_>, p: &str, l: &model::LoopNode) -> Option<Loop> {
    let iterator = cx
        .required_str(
            &format!("{p}/iterator"),
            l.iterator.as_deref(),
            "`iterator`: the name of the variable holding the list",
        )
        .and_then(|it| {
            let name = it.trim().trim_start_matches("{{").trim_end_matches("}}").trim();
            match VarPath::parse(name) {
                Ok(path) => {
                    cx.read(&path.root, &format!("{p}/iterator"));
                    Some(path)
                }
                Err(e) => {
                    cx.report(
                        Code::InvalidConfig,
                        format!("{p}/iterator"),
                        format!("`iterator` must name a variable: {e}"),
                    );
                    None
                }
            }
        });
    let item_var = cx
        .required_str(
            &format!("{p}/iterator_variable"),
            l.iterator_variable.as_deref(),
            "`iterator_variable`: the variable that receives each element",
        )
        .map(str::to_owned);
    let body = cx.required_edge(
        &format!("{p}/body_node"),
        l.body_node.as_deref(),
        "`body_node`, the first node of the loop body",
    );
    let max_iterations = cx.uint(&format!("{p}/max_iterations"), l.max_iterations.as_ref());
    for (field, v) in [
        ("iterator_variable", &l.iterator_variable),
        ("index_variable", &l.index_variable),
        ("collect_variable", &l.collect_variable),
    ] {
        if let Some(v) = v {
            cx.write(v, &format!("{p}/{field}"));
        }
    }
    cx.write("loop_index", p);
    Some(Loop {
        iterator: iterator?,
        item_var: item_var?,
        index_var: l.index_variable.clone().filter(|s| !s.is_empty()),
        body: body?,
        collect_var: l.collect_variable.clone().filter(|s| !s.is_empty()),
        max_iterations: max_iterations.ok()?,
        continue_on_error: l.continue_on_error.unwrap_or(false),
    })
}

fn parallel(cx: &mut Ctx<'_>, p: &str, par: &model::ParallelNode) -> Option<Parallel> {
    let mut branches = Vec::new();
    let mut ok = true;
    let mut seen = std::collections::HashSet::new();
    for (i, b) in par.branches.iter().flatten().enumerate() {
        let bp = format!("{p}/branches/{i}");
        let id = cx.required_str(&format!("{bp}/branch_id"), b.branch_id.as_deref(), "`branch_id` of this branch");
        let start =
            cx.required_edge(&format!("{bp}/start_node"), b.start_node.as_deref(), "`start_node` of this branch");
        if let Some(id) = id
            && !seen.insert(id)
        {
            cx.report(
                Code::InvalidConfig,
                format!("{bp}/branch_id"),
                format!("branch_id `{id}` is used twice in this parallel node; give each branch its own id"),
            );
            ok = false;
        }
        match (id, start) {
            (Some(id), Some(s)) => branches.push((id.to_owned(), s)),
            _ => ok = false,
        }
    }
    let wait = cx.choice(
        &format!("{p}/wait_strategy"),
        par.wait_strategy.as_deref(),
        &[("all", WaitStrategy::All), ("any", WaitStrategy::Any), ("first", WaitStrategy::Any)],
    );
    let failure = cx.choice(
        &format!("{p}/branch_failure"),
        par.branch_failure.as_deref(),
        &[
            ("continue", BranchFailure::Continue),
            ("fail", BranchFailure::Fail),
            ("stop", BranchFailure::Fail),
            ("retry", BranchFailure::Retry),
        ],
    );
    cx.write("parallel_results", p);
    let (wait, failure) = (wait.ok()?, failure.ok()?);
    ok.then_some(Parallel {
        branches,
        wait: wait.unwrap_or(WaitStrategy::All),
        failure: failure.unwrap_or(BranchFailure::Continue),
    })
}

fn verification(cx: &mut Ctx<'_>, p: &str, v: &model::VerificationNode) -> Option<Vec<Check>> {
    let mut checks = Vec::new();
    let mut ok = true;
    for (i, c) in v.checks.iter().flatten().enumerate() {
        let cp = format!("{p}/checks/{i}");
        let cond = cx
            .required_str(&format!("{cp}/condition"), c.condition.as_deref(), "`condition` of this check")
            .and_then(|t| cx.condition(&format!("{cp}/condition"), t));
        let on_fail = cx.choice(
            &format!("{cp}/on_fail"),
            c.on_fail.as_deref(),
            &[("fail_workflow", OnFail::FailWorkflow), ("warn", OnFail::Warn), ("continue", OnFail::Continue)],
        );
        let message = c.message.as_deref().map(|m| cx.template(&format!("{cp}/message"), m));
        match (cond, on_fail, message) {
            (Some(condition), Ok(on_fail), message @ (None | Some(Some(_)))) => checks.push(Check {
                id: c.id.clone().unwrap_or_else(|| format!("check_{i}")),
                condition,
                on_fail: on_fail.unwrap_or_default(),
                message: message.flatten(),
            }),
            _ => ok = false,
        }
    }
    ok.then_some(checks)
}

fn llm(cx: &mut Ctx<'_>, p: &str, l: &model::LlmActionNode) -> Option<Llm> {
    let prompt = cx
        .required_str(&format!("{p}/prompt"), l.prompt.as_deref(), "`prompt`: the text sent to the model")
        .and_then(|t| cx.template(&format!("{p}/prompt"), t));
    let system_prompt =
        l.system_prompt.as_deref().map(|t| cx.template(&format!("{p}/system_prompt"), t).ok_or(())).transpose();
    let temperature = cx.number_in(&format!("{p}/temperature"), l.temperature.as_ref(), 0.0, 2.0);
    let max_tokens = cx.uint32(&format!("{p}/max_tokens"), l.max_tokens.as_ref());
    if let Ok(Some(0)) = max_tokens {
        cx.report(Code::InvalidNumber, format!("{p}/max_tokens"), "`max_tokens` must be at least 1");
    }
    let mut attachments = Vec::new();
    let mut ok = true;
    for (i, a) in l.attachments.iter().flatten().enumerate() {
        let ap = format!("{p}/attachments/{i}");
        let kind = cx.choice(
            &format!("{ap}/type"),
            a.attachment_type.as_deref(),
            &[
                ("image", AttachmentKind::Image),
                ("csv", AttachmentKind::Csv),
                ("text", AttachmentKind::Text),
                ("json", AttachmentKind::Json),
            ],
        );
        if a.attachment_type.is_none() {
            cx.report(
                Code::MissingField,
                format!("{ap}/type"),
                "missing `type` of this attachment: image, csv, text or json",
            );
        }
        let source = cx
            .required_str(
                &format!("{ap}/source"),
                a.source.as_deref(),
                "`source` of this attachment: a file path or {{variable}}",
            )
            .and_then(|s| cx.template(&format!("{ap}/source"), s));
        match (kind, source) {
            (Ok(Some(kind)), Some(source)) => {
                attachments.push(Attachment { kind, source, description: a.description.clone() })
            }
            _ => ok = false,
        }
    }
    let retry = l.retry.as_ref().map(|r| {
        retry_overrides(
            cx,
            &format!("{p}/retry"),
            r.max_retries.as_ref(),
            r.delay_ms.as_ref().or(r.retry_delay_ms.as_ref()),
            r.backoff_multiplier.as_ref(),
        )
    });
    let mut outputs = Vec::new();
    for (var, mapping) in l.outputs.iter().flatten() {
        let op = child(&format!("{p}/outputs"), var);
        cx.write(var, &op);
        match mapping {
            Value::String(m) => match output_mapping(cx, &op, m) {
                Some(m) => outputs.push((var.clone(), m)),
                None => ok = false,
            },
            other => {
                cx.diags.push(crate::model::parse::wrong_type_msg(
                    &op,
                    "a string mapping such as \"text\" or \"json:field\"",
                    other,
                ));
                ok = false;
            }
        }
    }
    if l.outputs.as_ref().is_none_or(Map::is_empty) {
        cx.write("llm_output", p);
    }
    let branches = if l.orchestration_mode.unwrap_or(false) {
        let list = l.branches.as_deref().unwrap_or_default();
        if list.is_empty() {
            cx.report(
                Code::InvalidConfig,
                format!("{p}/branches"),
                "`orchestration_mode` needs `branches`: the node ids the model may choose from",
            );
            ok = false;
        }
        let mut out = Vec::new();
        for (i, b) in list.iter().enumerate() {
            match cx.edge(&format!("{p}/branches/{i}"), Some(b)) {
                Ok(Some(t)) => out.push((b.clone(), t)),
                _ => ok = false,
            }
        }
        Some(out)
    } else {
        if l.branches.as_ref().is_some_and(|b| !b.is_empty()) {
            cx.report(
                Code::IgnoredField,
                format!("{p}/branches"),
                "`branches` is used only with `orchestration_mode: true`; set it, or remove `branches`",
            );
        }
        None
    };
    let (system_prompt, temperature, max_tokens) = (system_prompt.ok()?, temperature.ok()?, max_tokens.ok()?);
    let retry = match retry {
        Some(Ok(r)) => Some(r),
        Some(Err(())) => return None,
        None => None,
    };
    ok.then_some(Llm {
        prompt: prompt?,
        system_prompt,
        model: l.model.clone().filter(|m| !m.is_empty()),
        temperature,
        max_tokens: max_tokens.filter(|m| *m > 0),
        json_mode: l.json_mode.unwrap_or(false) || branches.is_some(),
        attachments,
        retry,
        outputs,
        branches,
    })
}

fn output_mapping(cx: &mut Ctx<'_>, p: &str, m: &str) -> Option<OutputMapping> {
    let t = m.trim();
    let lower = t.to_ascii_lowercase();
    if matches!(lower.as_str(), "text" | "raw" | "content" | "llm_response" | "response") {
        return Some(OutputMapping::Text);
    }
    let after = |prefix: &str| lower.starts_with(prefix).then(|| t[prefix.len()..].trim());
    if let Some(path) = after("json_extract:") {
        let path = path.trim_start_matches("$.").trim_start_matches('$');
        return match VarPath::parse(path) {
            Ok(p) => Some(OutputMapping::JsonPath(p)),
            Err(e) => {
                cx.report(Code::InvalidConfig, p, format!("output mapping `{m}`: {e}; write `json_extract: a.b.0`"));
                None
            }
        };
    }
    if let Some(key) = after("json:") {
        if key.is_empty() {
            cx.report(Code::InvalidConfig, p, format!("output mapping `{m}` names no key; write `json:field`"));
            return None;
        }
        return Some(OutputMapping::JsonKey(key.to_owned()));
    }
    if let Some(pattern) = after("regex:") {
        return cx.regex(p, pattern).map(OutputMapping::Regex);
    }
    cx.report(
        Code::UnknownOutputMapping,
        p,
        format!("output mapping `{m}` is not one of `text`, `json:<key>`, `json_extract: <path>`, `regex: <pattern>`; the whole response text will be stored"),
    );
    Some(OutputMapping::Text)
}

fn terminate(cx: &mut Ctx<'_>, p: &str, t: &model::TerminateNode) -> Option<Terminate> {
    let status = t.status.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "success".to_owned());
    let cleanup =
        compile_operations(cx, &format!("{p}/cleanup_actions"), t.cleanup_actions.as_deref().unwrap_or_default());
    let error_actions =
        compile_operations(cx, &format!("{p}/error_actions"), t.error_actions.as_deref().unwrap_or_default());
    let mut outputs = Vec::new();
    let mut ok = true;
    for (key, v) in t.outputs.iter().flatten() {
        let op = child(&format!("{p}/outputs"), key);
        let out = match v {
            Value::String(s) if !s.contains("{{") => Some(TerminateOutput::VarOrText(s.clone())),
            Value::String(_) | Value::Array(_) | Value::Object(_) => {
                cx.value_template(&op, v).map(TerminateOutput::Template)
            }
            other => Some(TerminateOutput::Literal(other.clone())),
        };
        match out {
            Some(o) => outputs.push((key.clone(), o)),
            None => ok = false,
        }
    }
    let failed = status.trim().eq_ignore_ascii_case("failed");
    ok.then_some(Terminate { status, failed, cleanup: cleanup?, error_actions: error_actions?, outputs })
}

fn approval(cx: &mut Ctx<'_>, p: &str, id: &str, a: &model::HumanApprovalNode) -> Option<Approval> {
    let prompt = cx.template(&format!("{p}/prompt"), a.prompt.as_deref().unwrap_or_default());
    let decision_type = cx.choice(
        &format!("{p}/decision_type"),
        a.decision_type.as_deref(),
        &[
            ("approve_reject", DecisionType::ApproveReject),
            ("select_option", DecisionType::SelectOption),
            ("provide_input", DecisionType::ProvideInput),
        ],
    );
    let options = a
        .options
        .as_ref()
        .map(|o| cx.value_template(&format!("{p}/options"), &Value::Array(o.clone())).ok_or(()))
        .transpose();
    if matches!(decision_type, Ok(Some(DecisionType::SelectOption))) && a.options.as_ref().is_none_or(Vec::is_empty) {
        cx.report(
            Code::InvalidConfig,
            format!("{p}/options"),
            "`decision_type: select_option` needs a non-empty `options` list",
        );
    }
    let timeout_ms = cx.uint(&format!("{p}/timeout_ms"), a.timeout_ms.as_ref());
    let timeout_action = cx.choice(
        &format!("{p}/timeout_action"),
        a.timeout_action.as_deref(),
        &[
            ("auto_approve", TimeoutAction::AutoApprove),
            ("auto_reject", TimeoutAction::AutoReject),
            ("escalate", TimeoutAction::Escalate),
        ],
    );
    let level = cx.choice(
        &format!("{p}/approval_level"),
        a.approval_level.as_deref(),
        &[("standard", ()), ("manager", ()), ("executive", ())],
    );
    let context_data =
        a.context_data.as_ref().map(|c| cx.value_template(&format!("{p}/context_data"), c).ok_or(())).transpose();
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let on_approve = cx.edge(&format!("{p}/on_approve"), nonempty(&a.on_approve).as_deref());
    let on_reject = cx.edge(&format!("{p}/on_reject"), nonempty(&a.on_reject).as_deref());
    let on_timeout = cx.edge(&format!("{p}/on_timeout"), nonempty(&a.on_timeout).as_deref());
    for (field, v) in [("on_approve", &a.on_approve), ("on_reject", &a.on_reject)] {
        if nonempty(v).is_none() {
            cx.report(
                Code::MissingRoute,
                format!("{p}/{field}"),
                format!("no `{field}`: that decision ends the run here. Name the node to go to"),
            );
        }
    }
    const ROLES: [&str; 5] = ["viewer", "approver", "operator", "manager", "admin"];
    let approvers = a.approvers.clone().unwrap_or_default();
    for (i, entry) in approvers.iter().enumerate() {
        let ok = match entry.split_once(':') {
            Some(("role", r)) => ROLES.contains(&r),
            Some(("user", u)) => !u.trim().is_empty(),
            _ => false,
        };
        if !ok {
            cx.report(
                Code::InvalidEnum,
                format!("{p}/approvers/{i}"),
                format!(
                    "approver {entry:?} is neither `role:<role>` (one of {}) nor `user:<username>`",
                    ROLES.join(", ")
                ),
            );
        }
    }
    cx.write(&format!("{id}_decision"), p);
    cx.write("__approval_decisions", p);
    let _ = level.ok()?;
    let (decision_type, options, timeout_ms, timeout_action, context_data) =
        (decision_type.ok()?, options.ok()?, timeout_ms.ok()?, timeout_action.ok()?, context_data.ok()?);
    if decision_type == Some(DecisionType::SelectOption) && a.options.as_ref().is_none_or(Vec::is_empty) {
        return None;
    }
    Some(Approval {
        prompt: prompt?,
        decision_type: decision_type.unwrap_or_default(),
        options,
        timeout_ms,
        timeout_action,
        escalation_contact: a.escalation_contact.clone(),
        context_data,
        approval_level: a.approval_level.clone(),
        approvers,
        on_approve: on_approve.ok()?,
        on_reject: on_reject.ok()?,
        on_timeout: on_timeout.ok()?,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TType {
    Filter,
    Map,
    Reduce,
    Join,
    Aggregate,
    Pivot,
    Sort,
    Dedup,
}

fn transform(cx: &mut Ctx<'_>, p: &str, t: &model::TransformNode) -> Option<Vec<Transformation>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (i, tr) in t.transformations.iter().flatten().enumerate() {
        match transformation(cx, &format!("{p}/transformations/{i}"), tr) {
            Some(x) => out.push(x),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn transformation(cx: &mut Ctx<'_>, p: &str, t: &model::Transformation) -> Option<Transformation> {
    let ttype = cx.choice(
        &format!("{p}/type"),
        t.transform_type.as_deref(),
        &[
            ("filter", TType::Filter),
            ("map", TType::Map),
            ("reduce", TType::Reduce),
            ("join", TType::Join),
            ("aggregate", TType::Aggregate),
            ("pivot", TType::Pivot),
            ("sort", TType::Sort),
            ("deduplicate", TType::Dedup),
            ("unique", TType::Dedup),
        ],
    );
    if t.transform_type.is_none() {
        cx.report(
            Code::MissingField,
            format!("{p}/type"),
            "missing `type` of this transformation: filter, map, reduce, join, aggregate, pivot, sort or deduplicate",
        );
    }
    let source = cx.required_str(
        &format!("{p}/source_variable"),
        t.source_variable.as_deref(),
        "`source_variable`: the variable holding the input list",
    );
    if let Some(s) = source {
        cx.read(s, &format!("{p}/source_variable"));
    }
    let output = cx.required_str(
        &format!("{p}/output_variable"),
        t.output_variable.as_deref(),
        "`output_variable`: the variable that receives the result",
    );
    if let Some(o) = output {
        cx.write(o, &format!("{p}/output_variable"));
    }
    let params = t.params.clone().unwrap_or_default();
    let expr = t.expression.as_deref().map(str::trim).filter(|e| !e.is_empty());
    let ep = format!("{p}/expression");
    let param_str = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned).filter(|s| !s.is_empty());
    let op = match ttype.ok()?? {
        TType::Filter => {
            let e = cx.required_str(
                &ep,
                expr,
                "`expression`: the condition each item must meet, e.g. {{item.amount}} > 100",
            )?;
            cx.local_names.push("item");
            let c = cx.condition(&ep, e);
            cx.local_names.pop();
            TransformOp::Filter(c?)
        }
        TType::Map => {
            let e =
                cx.required_str(&ep, expr, "`expression`: a template such as {{item.name}}, `item`, or a field name")?;
            if e.contains("{{") {
                cx.local_names.push("item");
                let t = cx.template(&ep, e);
                cx.local_names.pop();
                TransformOp::Map(MapExpr::Template(t?))
            } else if e == "item" {
                TransformOp::Map(MapExpr::Item)
            } else {
                TransformOp::Map(MapExpr::Field(e.to_owned()))
            }
        }
        kind @ (TType::Aggregate | TType::Reduce) => {
            let op_text = param_str("op").or_else(|| expr.map(str::to_owned)).unwrap_or_else(|| "count".to_owned());
            let op_ptr = if params.contains_key("op") { format!("{p}/params/op") } else { ep.clone() };
            let op = cx
                .choice(
                    &op_ptr,
                    Some(&op_text),
                    &[
                        ("count", AggregateOp::Count),
                        ("sum", AggregateOp::Sum),
                        ("avg", AggregateOp::Avg),
                        ("mean", AggregateOp::Avg),
                        ("average", AggregateOp::Avg),
                        ("min", AggregateOp::Min),
                        ("max", AggregateOp::Max),
                    ],
                )
                .ok()??;
            let field = param_str("field");
            if kind == TType::Aggregate { TransformOp::Aggregate(op, field) } else { TransformOp::Reduce(op, field) }
        }
        TType::Sort => TransformOp::Sort {
            key: param_str("key").or_else(|| expr.map(str::to_owned)),
            descending: params.get("descending").and_then(Value::as_bool).unwrap_or(false),
        },
        TType::Dedup => TransformOp::Deduplicate { key: param_str("key").or_else(|| expr.map(str::to_owned)) },
        TType::Join => {
            let with = param_str("with").or_else(|| param_str("right")).or_else(|| expr.map(str::to_owned));
            let on = param_str("on");
            let left = param_str("left_key").or_else(|| on.clone());
            let right = param_str("right_key").or(on);
            match (with, left, right) {
                (Some(with), Some(left_key), Some(right_key)) => {
                    cx.read(&with, &format!("{p}/params"));
                    TransformOp::Join { with, left_key, right_key }
                }
                _ => {
                    cx.report(Code::MissingField, format!("{p}/params"), "a join needs `params.with` (the variable holding the other list) and `params.on` (or `left_key` and `right_key`)");
                    return None;
                }
            }
        }
        TType::Pivot => match (param_str("index"), param_str("columns"), param_str("values")) {
            (Some(index), Some(columns), Some(values)) => TransformOp::Pivot { index, columns, values },
            _ => {
                cx.report(
                    Code::MissingField,
                    format!("{p}/params"),
                    "a pivot needs `params.index`, `params.columns` and `params.values` (field names)",
                );
                return None;
            }
        },
    };
    Some(Transformation { source: source?.to_owned(), output: output?.to_owned(), op, params })
}

fn subflow(cx: &mut Ctx<'_>, p: &str, doc: &Document, s: &model::SubflowNode) -> Option<Subflow> {
    let pid = cx.required_str(
        &format!("{p}/procedure_id"),
        s.procedure_id.as_deref(),
        "`procedure_id`: the procedure to run as a child",
    );
    let version = s.version.clone().filter(|v| !v.is_empty());
    if let Some(pid) = pid
        && pid == doc.procedure_id
        && version.as_deref().is_none_or(|v| v == doc.version)
    {
        cx.report(
                Code::SubflowRecursion,
                format!("{p}/procedure_id"),
                format!("subflow calls its own procedure `{pid}`: that recursion never ends. Call another procedure, or use a loop"),
            );
        return None;
    }
    let mut input_mapping = Vec::new();
    let mut ok = true;
    for (k, v) in s.input_mapping.iter().flatten() {
        let ip = child(&format!("{p}/input_mapping"), k);
        match v {
            Value::String(text) => match cx.template(&ip, text) {
                Some(t) => input_mapping.push((k.clone(), InputSource::VarOrTemplate(text.clone(), t))),
                None => ok = false,
            },
            other => input_mapping.push((k.clone(), InputSource::Literal(other.clone()))),
        }
    }
    let mut output_mapping = Vec::new();
    for (k, v) in s.output_mapping.iter().flatten() {
        cx.write(k, &child(&format!("{p}/output_mapping"), k));
        output_mapping.push((k.clone(), v.clone()));
    }
    if s.output_mapping.as_ref().is_none_or(Map::is_empty) {
        cx.write("subflow_output", p);
    }
    let on_failure = cx.choice(
        &format!("{p}/on_failure"),
        s.on_failure.as_deref(),
        &[
            ("fail_parent", SubflowFailure::FailParent),
            ("continue", SubflowFailure::Continue),
            ("retry", SubflowFailure::Retry),
        ],
    );
    let on_failure = on_failure.ok()?.unwrap_or_default();
    ok.then_some(Subflow {
        procedure_id: pid?.to_owned(),
        version,
        input_mapping,
        output_mapping,
        on_failure,
        inherit_context: s.inherit_context.unwrap_or(false),
    })
}
