//! The root of a document: identity, `global_config`, `variables_schema`, `trigger` and the start node.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ctx::Ctx;
use crate::diag::{Code, child};
use crate::mcp::McpServer;
use crate::model::{Document, GlobalConfig, Trigger, VarSpec};
use crate::procedure::{
    CheckpointStrategy, Config, DispatchMode, ExecutionMode, LogLevel, NodeIdx, RateLimit, RetryDefaults, TriggerSpec,
    VarType, Variable,
};

pub(super) struct Head {
    pub config: Config,
    pub variables: Vec<Variable>,
    pub trigger: Option<TriggerSpec>,
    pub start: NodeIdx,
}

pub(super) const DISPATCH_MODES: [(&str, DispatchMode); 2] =
    [("async", DispatchMode::Async), ("sync", DispatchMode::Sync)];

pub(super) fn compile_root(cx: &mut Ctx<'_>, doc: &Document) -> Option<Head> {
    cx.required_str("/procedure_id", Some(doc.procedure_id.as_str()), "`procedure_id`: give the procedure a unique id");
    cx.required_str(
        "/version",
        Some(doc.version.as_str()),
        "`version`: give the procedure a version such as \"1.0.0\"",
    );
    let _ = cx.choice(
        "/status",
        doc.status.as_deref(),
        &[("active", ()), ("draft", ()), ("approved", ()), ("inactive", ()), ("deprecated", ()), ("archived", ())],
    );
    if let Some(date) = &doc.effective_date
        && !is_iso_date(date)
    {
        cx.report(
            Code::InvalidConfig,
            "/effective_date",
            format!("effective_date `{date}` is not a date: write it as YYYY-MM-DD, e.g. 2026-01-31"),
        );
    }
    let start = start_node(cx, doc);
    let config = global_config(cx, doc.global_config.as_ref().unwrap_or(&GlobalConfig::default()));
    let variables = variables(cx, doc);
    let trigger = doc.trigger.as_ref().and_then(|t| trigger(cx, t));
    Some(Head { config: config?, variables: variables?, trigger, start: start? })
}

fn start_node(cx: &mut Ctx<'_>, doc: &Document) -> Option<NodeIdx> {
    let start = doc.workflow_graph.start_node.as_str();
    if start.is_empty() {
        cx.report(
            Code::MissingField,
            "/workflow_graph/start_node",
            "missing `workflow_graph.start_node`: name the node where runs begin",
        );
        return None;
    }
    match cx.index.get(start) {
        Some(i) => Some(*i),
        None => {
            let ids: Vec<&str> = doc.workflow_graph.nodes.keys().map(String::as_str).collect();
            let hint =
                crate::model::parse::closest(start, &ids).map(|s| format!(" Did you mean `{s}`?")).unwrap_or_default();
            cx.report(
                Code::StartNodeMissing,
                "/workflow_graph/start_node",
                format!("start_node `{start}` does not exist in nodes.{hint}"),
            );
            None
        }
    }
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    matches!((num(0..4), num(5..7), num(8..10)), (Some(_), Some(m), Some(d)) if (1..=12).contains(&m) && (1..=31).contains(&d))
}

fn global_config(cx: &mut Ctx<'_>, g: &GlobalConfig) -> Option<Config> {
    let p = "/global_config";
    let mut ok = true;
    let policy = g.retry_policy.as_ref();
    let max_retries = cx.uint32(&format!("{p}/max_retries"), g.max_retries.as_ref());
    let delay = cx.uint(&format!("{p}/retry_delay_ms"), g.retry_delay_ms.as_ref());
    let mult = cx.number_in(&format!("{p}/backoff_multiplier"), g.backoff_multiplier.as_ref(), 0.0, 1000.0);
    let p_max = cx.uint32(&format!("{p}/retry_policy/max_retries"), policy.and_then(|r| r.max_retries.as_ref()));
    let p_delay = cx.uint(
        &format!("{p}/retry_policy/retry_delay_ms"),
        policy.and_then(|r| r.retry_delay_ms.as_ref().or(r.delay_ms.as_ref())),
    );
    let p_mult = cx.number_in(
        &format!("{p}/retry_policy/backoff_multiplier"),
        policy.and_then(|r| r.backoff_multiplier.as_ref()),
        0.0,
        1000.0,
    );
    let retry_parts = (max_retries, delay, mult, p_max, p_delay, p_mult);
    let storage = cx.choice(
        &format!("{p}/checkpoint_storage"),
        g.checkpoint_storage.as_deref(),
        &[("local", ()), ("database", ()), ("cloud", ())],
    );
    let retention = cx.uint(&format!("{p}/checkpoint_retention_days"), g.checkpoint_retention_days.as_ref());
    ok &= storage.is_ok() && retention.is_ok();
    let retry = match retry_parts {
        (Ok(m), Ok(d), Ok(x), Ok(pm), Ok(pd), Ok(px)) => {
            RetryDefaults { max_retries: pm.or(m), delay_ms: pd.or(d), multiplier: px.or(x) }
        }
        _ => {
            ok = false;
            RetryDefaults::default()
        }
    };
    let timeout_ms = cx.uint(&format!("{p}/timeout_ms"), g.timeout_ms.as_ref());
    let max_node_entries = cx.uint(&format!("{p}/max_node_entries"), g.max_node_entries.as_ref());
    let on_failure = cx.edge(&format!("{p}/on_failure"), g.on_failure.as_deref().filter(|s| !s.is_empty()));
    let checkpoint_strategy = cx.choice(
        &format!("{p}/checkpoint_strategy"),
        g.checkpoint_strategy.as_deref(),
        &[
            ("every_node", CheckpointStrategy::EveryNode),
            ("critical_nodes_only", CheckpointStrategy::CriticalNodesOnly),
            ("disabled", CheckpointStrategy::Disabled),
            ("none", CheckpointStrategy::Disabled),
        ],
    );
    let execution_mode = cx.choice(
        &format!("{p}/execution_mode"),
        g.execution_mode.as_deref(),
        &[
            ("production", ExecutionMode::Production),
            ("dry_run", ExecutionMode::DryRun),
            ("validation_only", ExecutionMode::ValidationOnly),
        ],
    );
    let logging_level = cx.choice(
        &format!("{p}/logging_level"),
        g.logging_level.as_deref(),
        &[
            ("debug", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("warning", LogLevel::Warning),
            ("warn", LogLevel::Warning),
            ("error", LogLevel::Error),
            ("critical", LogLevel::Error),
        ],
    );
    let dispatch_mode =
        cx.choice(&format!("{p}/workflow_dispatch_mode"), g.workflow_dispatch_mode.as_deref(), &DISPATCH_MODES);
    let max_cost = cx.number_in(&format!("{p}/max_cost_usd"), g.max_cost_usd.as_ref(), 0.0, f64::MAX);
    let per_call =
        cx.number_in(&format!("{p}/max_cost_per_llm_call_usd"), g.max_cost_per_llm_call_usd.as_ref(), 0.0, f64::MAX);
    let quality = cx.number_in(&format!("{p}/min_llm_quality"), g.min_llm_quality.as_ref(), 0.0, f64::MAX);
    let rate_limit = rate_limit(cx, g);
    let secrets = g.secrets_config.as_ref().map(|s| super::secrets::secrets(cx, s)).transpose();
    let mcp_servers = mcp_servers(cx, g);
    if let Some(a) = &g.audit_config {
        let level = cx.choice(
            &format!("{p}/audit_config/audit_level"),
            a.audit_level.as_deref(),
            &[("minimal", ()), ("standard", ()), ("detailed", ())],
        );
        let days = cx.uint(&format!("{p}/audit_config/retention_days"), a.retention_days.as_ref());
        ok &= level.is_ok() && days.is_ok();
    }
    let config = Config {
        retry,
        timeout_ms: timeout_ms.ok()?,
        max_node_entries: max_node_entries.ok()?,
        on_failure: on_failure.ok()?,
        screenshot_on_fail: g.screenshot_on_fail.unwrap_or(false),
        checkpoint_strategy: checkpoint_strategy.ok()?.unwrap_or_default(),
        execution_mode: execution_mode.ok()?.unwrap_or_default(),
        mock_external_calls: g.mock_external_calls.unwrap_or(false),
        test_data_overrides: g.test_data_overrides.clone().unwrap_or_default(),
        rate_limit: rate_limit.ok()?,
        secrets: secrets.ok()?,
        dispatch_mode: dispatch_mode.ok()?,
        max_cost_usd: max_cost.ok()?,
        max_cost_per_llm_call_usd: per_call.ok()?,
        min_llm_quality: quality.ok()?,
        logging_level: logging_level.ok()?,
        redacted_fields: g.audit_config.as_ref().and_then(|a| a.redacted_fields.clone()).unwrap_or_default(),
        mcp_servers: mcp_servers.ok()?,
    };
    ok.then_some(config)
}

/// `mcp_servers`: name → server, each checked with the same rules as `ckp serve`'s `[mcp_servers.NAME]`.
fn mcp_servers(cx: &mut Ctx<'_>, g: &GlobalConfig) -> Result<BTreeMap<String, McpServer>, ()> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (name, v) in g.mcp_servers.iter().flatten() {
        let p = child("/global_config/mcp_servers", name);
        match McpServer::check_name(name).and_then(|()| McpServer::from_value(v)) {
            Ok(server) => {
                out.insert(name.clone(), server);
            }
            Err(e) => {
                cx.report(Code::InvalidConfig, p, format!("MCP server `{name}`: {e}"));
                ok = false;
            }
        }
    }
    if ok { Ok(out) } else { Err(()) }
}

fn rate_limit(cx: &mut Ctx<'_>, g: &GlobalConfig) -> Result<Option<RateLimit>, ()> {
    let Some(r) = &g.rate_limiting else { return Ok(None) };
    let p = "/global_config/rate_limiting";
    let per_minute = cx.uint32(&format!("{p}/max_requests_per_minute"), r.max_requests_per_minute.as_ref());
    let ops = cx.uint32(&format!("{p}/max_concurrent_operations"), r.max_concurrent_operations.as_ref());
    let conc = cx.uint32(&format!("{p}/max_concurrent"), r.max_concurrent.as_ref());
    let (per_minute, ops, conc) = (per_minute?, ops?, conc?);
    if per_minute == Some(0) {
        cx.report(
            Code::InvalidNumber,
            format!("{p}/max_requests_per_minute"),
            "`max_requests_per_minute` must be at least 1",
        );
        return Err(());
    }
    if !r.enabled.unwrap_or(false) {
        return Ok(None);
    }
    Ok(Some(RateLimit { per_minute, max_concurrent: ops.or(conc) }))
}

const VAR_TYPES: [(&str, VarType); 8] = [
    ("string", VarType::String),
    ("number", VarType::Number),
    ("integer", VarType::Number),
    ("boolean", VarType::Boolean),
    ("bool", VarType::Boolean),
    ("array", VarType::Array),
    ("object", VarType::Object),
    ("str", VarType::String),
];

fn variables(cx: &mut Ctx<'_>, doc: &Document) -> Option<Vec<Variable>> {
    let Some(schema) = &doc.variables_schema else { return Some(Vec::new()) };
    let mut out = Vec::new();
    let mut ok = true;
    for (name, spec, required) in schema.entries() {
        let section = match schema {
            crate::model::VariablesSchema::Nested(n) if n.required.as_ref().is_some_and(|r| r.contains_key(name)) => {
                "/variables_schema/required"
            }
            crate::model::VariablesSchema::Nested(_) => "/variables_schema/optional",
            crate::model::VariablesSchema::Flat(_) => "/variables_schema",
        };
        let p = child(section, name);
        cx.write(name, &p);
        match variable(cx, &p, name, spec, required) {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn variable(cx: &mut Ctx<'_>, p: &str, name: &str, spec: &VarSpec, required: bool) -> Option<Variable> {
    let var_type = cx.choice(&format!("{p}/type"), spec.var_type.as_deref(), &VAR_TYPES);
    let _ = cx.choice(
        &format!("{p}/origin"),
        spec.origin.as_deref(),
        &[("user_strict", ()), ("user_lazy", ()), ("system_captured", ())],
    );
    let v = spec.validation.as_ref();
    let regex =
        v.and_then(|v| v.regex.as_deref()).map(|r| cx.regex(&format!("{p}/validation/regex"), r).ok_or(())).transpose();
    let min = cx.number_in(&format!("{p}/validation/min"), v.and_then(|v| v.min.as_ref()), f64::MIN, f64::MAX);
    let max = cx.number_in(&format!("{p}/validation/max"), v.and_then(|v| v.max.as_ref()), f64::MIN, f64::MAX);
    let (var_type, regex, min, max) = (var_type.ok()?, regex.ok()?, min.ok()?, max.ok()?);
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        cx.report(
            Code::InvalidConfig,
            format!("{p}/validation"),
            format!("variable `{name}`: validation.min ({lo}) is greater than validation.max ({hi})"),
        );
        return None;
    }
    if let (Some(t), Some(d)) = (var_type, &spec.default)
        && !matches_type(t, d)
    {
        cx.report(
            Code::InvalidConfig,
            format!("{p}/default"),
            format!("variable `{name}`: the default {d} is not of its declared type `{}`", t.as_str()),
        );
        return None;
    }
    Some(Variable {
        name: name.to_owned(),
        var_type,
        required,
        default: spec.default.clone(),
        regex,
        min,
        max,
        allowed_values: v.and_then(|v| v.allowed_values.clone()),
        sensitive: v
            .and_then(|v| v.sensitive)
            .or_else(|| spec.extra.get("sensitive").and_then(Value::as_bool))
            .unwrap_or(false),
    })
}

/// Whether a JSON value has the declared type (`number` also accepts a numeric string, as LangOrch's check does).
pub(crate) fn matches_type(t: VarType, v: &Value) -> bool {
    match t {
        VarType::String => v.is_string(),
        VarType::Number => v.is_number() || v.as_str().is_some_and(|s| s.trim().parse::<f64>().is_ok()),
        VarType::Boolean => v.is_boolean(),
        VarType::Array | VarType::Object => v.is_array() || v.is_object(),
    }
}

fn trigger(cx: &mut Ctx<'_>, t: &Trigger) -> Option<TriggerSpec> {
    let p = "/trigger";
    #[derive(Clone, Copy)]
    enum T {
        Manual,
        Scheduled,
        Webhook,
        Event,
        FileWatch,
    }
    let kind = cx
        .choice(
            &format!("{p}/type"),
            t.trigger_type.as_deref(),
            &[
                ("manual", T::Manual),
                ("scheduled", T::Scheduled),
                ("webhook", T::Webhook),
                ("event", T::Event),
                ("file_watch", T::FileWatch),
            ],
        )
        .ok()?
        .unwrap_or(T::Manual);
    match kind {
        T::Manual => Some(TriggerSpec::Manual),
        T::Scheduled => {
            let Some(schedule) = t.schedule.as_deref().filter(|s| !s.trim().is_empty()) else {
                cx.report(
                    Code::MissingField,
                    format!("{p}/schedule"),
                    "trigger.type `scheduled` requires a `schedule` (cron expression such as \"0 9 * * 1-5\")",
                );
                return None;
            };
            if let Err(e) = check_cron(schedule) {
                cx.report(Code::InvalidCron, format!("{p}/schedule"), format!("schedule `{schedule}` is not a valid cron expression: {e}. Use 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first"));
                return None;
            }
            if let Some(tz) = t.timezone.as_deref()
                && tz.parse::<chrono_tz::Tz>().is_err()
            {
                cx.report(
                    Code::InvalidEnum,
                    format!("{p}/timezone"),
                    format!("timezone `{tz}` is not an IANA time zone name (such as \"Europe/Paris\" or \"UTC\")"),
                );
                return None;
            }
            Some(TriggerSpec::Scheduled { schedule: schedule.trim().to_owned(), timezone: t.timezone.clone() })
        }
        T::Webhook => {
            let secret = t.webhook_secret.clone().filter(|s| !s.is_empty());
            if secret.is_none() {
                cx.report(Code::MissingField, format!("{p}/webhook_secret"), "trigger.type `webhook` requires `webhook_secret` (the name of the secret used for HMAC verification)");
                return None;
            }
            Some(TriggerSpec::Webhook { secret })
        }
        T::Event => {
            let from_event = t.event.as_ref().and_then(|e| {
                let s = |k: &str| e.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
                s("source").map(str::to_owned).or_else(|| {
                    let target = s("topic").or_else(|| s("queue")).or_else(|| s("queue_name"))?;
                    Some(format!("{}://{target}", s("provider")?))
                })
            });
            let source = t
                .event_config
                .as_ref()
                .and_then(|c| c.event_source.clone())
                .or_else(|| t.event_source.clone())
                .or(from_event)
                .filter(|s| !s.is_empty());
            match source {
                Some(source) => Some(TriggerSpec::Event { source }),
                None => {
                    cx.report(Code::MissingField, p, "trigger.type `event` requires an event source: `event_config.event_source`, `event_source`, or `event: {provider, topic}`");
                    None
                }
            }
        }
        T::FileWatch => {
            let c = t.file_watch_config.as_ref();
            let Some(path) = t.watch_path() else {
                cx.report(
                    Code::MissingField,
                    format!("{p}/file_watch_config/path"),
                    "trigger.type `file_watch` requires `file_watch_config.path` (the directory to watch)",
                );
                return None;
            };
            let events = c.and_then(|c| c.event_types.as_deref()).unwrap_or_default();
            if let Some((i, bad)) =
                events.iter().enumerate().find(|(_, e)| !crate::model::FILE_EVENTS.contains(&e.as_str()))
            {
                cx.report(
                    Code::InvalidEnum,
                    format!("{p}/file_watch_config/event_types/{i}"),
                    format!("file_watch_config.event_types: `{bad}` is not one of created, modified, deleted"),
                );
                return None;
            }
            Some(TriggerSpec::FileWatch { path: Some(path), pattern: c.and_then(|c| c.pattern.clone()) })
        }
    }
}

/// Checks a cron expression: 5 fields (standard cron) or 6 (seconds first); names and ranges allowed.
pub fn check_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) && !expr.trim_start().starts_with('@') {
        return Err(format!("it has {fields} fields"));
    }
    expr.parse::<croner::Cron>().map(drop).map_err(|e| e.to_string())
}
