//! One test (at least) per validation rule and diagnostic code.

use ckp_core::{Code, compile};
use serde_json::json;

use crate::support::{add, base, expect, expect_clean, expect_no, node, with};

#[test]
fn base_document_is_clean() {
    expect_clean(&with(|_| {}));
}

#[test]
fn every_code_is_documented() {
    let doc = include_str!("../../../../docs/diagnostics.md");
    for code in Code::ALL {
        assert!(doc.contains(&format!("`{}`", code.as_str())), "{code} missing from docs/diagnostics.md");
    }
}

#[test]
fn json_syntax_error_points_at_line_and_column() {
    let c = compile("{\n  \"procedure_id\": \"p\",\n  \"version\": 1.0.0\n}");
    assert_eq!(c.diagnostics.len(), 1, "{:#?}", c.diagnostics);
    let d = &c.diagnostics[0];
    assert_eq!(d.code, Code::JsonSyntax);
    assert_eq!((d.line, d.column), (3, 17));
    assert!(d.message.starts_with("invalid JSON"), "{}", d.message);
}

#[test]
fn too_large() {
    let text = format!("{{\"x\": \"{}\"}}", "a".repeat(9 * 1024 * 1024));
    let c = compile(&text);
    assert_eq!(c.diagnostics[0].code, Code::TooLarge);
}

#[test]
fn root_must_be_an_object() {
    let c = compile("[1, 2]");
    expect(&c, Code::NotAnObject, "");
}

#[test]
fn another_dialect_gives_one_clear_error() {
    let c = compile(
        r#"{"id": "triage", "version": 1, "entry": "a", "nodes": [{"id": "a", "type": "sequence", "steps": [{"action": "x", "params": {}}]}]}"#,
    );
    assert_eq!(c.diagnostics.len(), 1, "{:#?}", c.diagnostics);
    let msg = expect(&c, Code::ForeignDialect, "");
    assert!(msg.contains("root `id`") && msg.contains("\"nodes\": {"), "{msg}");
    let c = compile(
        r#"{"procedure_id": "p", "version": "1", "workflow_graph": {"start_node": "a", "nodes": [{"id": "a"}]}}"#,
    );
    assert_eq!(c.diagnostics.len(), 1);
    assert!(expect(&c, Code::ForeignDialect, "").contains("`workflow_graph.nodes` as a list"));
}

#[test]
fn missing_fields() {
    let c = with(|d| {
        d["procedure_id"] = json!("");
        d.as_object_mut().map(|o| o.shift_remove("version"));
    });
    expect(&c, Code::MissingField, "/procedure_id");
    expect(&c, Code::MissingField, "/version");
    let c = with(|d| d["workflow_graph"]["start_node"] = json!(""));
    expect(&c, Code::MissingField, "/workflow_graph/start_node");
    let c = with(|d| {
        d.as_object_mut().map(|o| o.shift_remove("workflow_graph"));
    });
    expect(&c, Code::MissingField, "/workflow_graph");
    let c =
        with(|d| node(d, "a")["steps"][0].as_object_mut().map(|o| o.shift_remove("action")).map(drop).unwrap_or(()));
    expect(&c, Code::MissingField, "/workflow_graph/nodes/a/steps/0/action");
    let c = with(|d| node(d, "check")["rules"][0]["condition"] = json!(""));
    expect(&c, Code::MissingField, "/workflow_graph/nodes/check/rules/0/condition");
    let c = with(|d| add(d, "l", json!({"type": "loop", "iterator_variable": "i", "body_node": "a"})));
    expect(&c, Code::MissingField, "/workflow_graph/nodes/l/iterator");
    let c = with(|d| add(d, "s", json!({"type": "subflow"})));
    expect(&c, Code::MissingField, "/workflow_graph/nodes/s/procedure_id");
    let c = with(|d| add(d, "m", json!({"type": "llm_action", "model": "gpt-4o"})));
    expect(&c, Code::MissingField, "/workflow_graph/nodes/m/prompt");
    let c = with(|d| add(d, "v", json!({"type": "verification", "checks": [{"id": "c"}]})));
    expect(&c, Code::MissingField, "/workflow_graph/nodes/v/checks/0/condition");
    let c = with(|d| add(d, "par", json!({"type": "parallel", "branches": [{"branch_id": "b"}]})));
    expect(&c, Code::MissingField, "/workflow_graph/nodes/par/branches/0/start_node");
    let c = with(|d| {
        add(
            d,
            "t",
            json!({"type": "transform", "transformations": [{"type": "filter", "source_variable": "x", "expression": "{{item}}"}]}),
        )
    });
    expect(&c, Code::MissingField, "/workflow_graph/nodes/t/transformations/0/output_variable");
    let c =
        with(|d| node(d, "a")["steps"][0].as_object_mut().map(|o| o.shift_remove("variable")).map(drop).unwrap_or(()));
    expect(&c, Code::MissingField, "/workflow_graph/nodes/a/steps/0/variable");
    let c = with(|d| node(d, "a")["sla"] = json!({"on_breach": "fail"}));
    expect(&c, Code::MissingField, "/workflow_graph/nodes/a/sla/max_duration_ms");
}

#[test]
fn wrong_types_point_at_the_value() {
    let c = with(|d| d["version"] = json!(1));
    let msg = expect(&c, Code::WrongType, "/version");
    assert!(msg.contains("must be a string") && msg.contains("integer"), "{msg}");
    let c = with(|d| node(d, "a")["steps"][0]["timeout_ms"] = json!("soon"));
    expect(&c, Code::WrongType, "/workflow_graph/nodes/a/steps/0/timeout_ms");
    let c = with(|d| d["global_config"] = json!({"rate_limiting": {"enabled": "yes"}}));
    expect(&c, Code::WrongType, "/global_config/rate_limiting/enabled");
    let c = with(|d| node(d, "check")["rules"] = json!({"condition": "x"}));
    expect(&c, Code::WrongType, "/workflow_graph/nodes/check/rules");
    let c = with(|d| d["workflow_graph"]["nodes"]["a"] = json!("sequence"));
    expect(&c, Code::WrongType, "/workflow_graph/nodes/a");
}

#[test]
fn type_errors_in_two_nodes_are_both_reported() {
    let c = with(|d| {
        node(d, "a")["next_node"] = json!(3);
        node(d, "check")["default_next_node"] = json!(["end"]);
    });
    expect(&c, Code::WrongType, "/workflow_graph/nodes/a/next_node");
    expect(&c, Code::WrongType, "/workflow_graph/nodes/check/default_next_node");
}

#[test]
fn enum_values() {
    let cases = [
        ("/global_config/execution_mode", json!({"global_config": {"execution_mode": "fast"}})),
        ("/global_config/checkpoint_strategy", json!({"global_config": {"checkpoint_strategy": "sometimes"}})),
        ("/global_config/workflow_dispatch_mode", json!({"global_config": {"workflow_dispatch_mode": "later"}})),
        (
            "/global_config/secrets_config/provider",
            json!({"global_config": {"secrets_config": {"provider": "keychain"}}}),
        ),
        ("/trigger/type", json!({"trigger": {"type": "cron"}})),
        ("/status", json!({"status": "live"})),
    ];
    for (pointer, patch) in cases {
        let c = with(|d| {
            for (k, v) in patch.as_object().into_iter().flatten() {
                d[k] = v.clone();
            }
        });
        expect(&c, Code::InvalidEnum, pointer);
    }
    let node_cases = [
        (json!({"type": "parallel", "branches": [], "wait_strategy": "most"}), "wait_strategy"),
        (json!({"type": "parallel", "branches": [], "branch_failure": "explode"}), "branch_failure"),
        (
            json!({"type": "human_approval", "decision_type": "vote", "on_approve": "end", "on_reject": "end"}),
            "decision_type",
        ),
        (
            json!({"type": "human_approval", "timeout_action": "nothing", "on_approve": "end", "on_reject": "end"}),
            "timeout_action",
        ),
        (json!({"type": "verification", "checks": [{"condition": "true", "on_fail": "explode"}]}), "checks/0/on_fail"),
        (json!({"type": "subflow", "procedure_id": "x", "on_failure": "panic"}), "on_failure"),
        (json!({"type": "sequence", "steps": [], "sla": {"max_duration_ms": 5, "on_breach": "cry"}}), "sla/on_breach"),
        (json!({"type": "sequence", "steps": [], "error_handlers": [{"action": "pray"}]}), "error_handlers/0/action"),
        (
            json!({"type": "transform", "transformations": [{"type": "explode", "source_variable": "a", "output_variable": "b"}]}),
            "transformations/0/type",
        ),
        (json!({"type": "processing", "operations": [{"action": "click"}]}), "operations/0/action"),
        (
            json!({"type": "human_approval", "prompt": "ok?", "on_approve": "end", "on_reject": "end",
                   "approvers": ["role:manager", "group:finance"]}),
            "approvers/1",
        ),
        (
            json!({"type": "llm_action", "prompt": "p", "attachments": [{"type": "video", "source": "x"}]}),
            "attachments/0/type",
        ),
    ];
    for (n, field) in node_cases {
        let c = with(|d| add(d, "n", n.clone()));
        expect(&c, Code::InvalidEnum, &format!("/workflow_graph/nodes/n/{field}"));
    }
}

#[test]
fn enum_error_suggests_the_closest_value() {
    let c = with(|d| d["global_config"] = json!({"execution_mode": "dryrun"}));
    let msg = expect(&c, Code::InvalidEnum, "/global_config/execution_mode");
    assert!(msg.contains("Did you mean `dry_run`?"), "{msg}");
}

#[test]
fn numbers_must_be_non_negative() {
    let c = with(|d| node(d, "a")["steps"][0]["wait_ms"] = json!(-5));
    expect(&c, Code::InvalidNumber, "/workflow_graph/nodes/a/steps/0/wait_ms");
    let c = with(|d| d["global_config"] = json!({"max_retries": 1.5, "max_cost_usd": -1}));
    expect(&c, Code::InvalidNumber, "/global_config/max_retries");
    expect(&c, Code::InvalidNumber, "/global_config/max_cost_usd");
    let c = with(|d| add(d, "m", json!({"type": "llm_action", "prompt": "p", "temperature": 3})));
    expect(&c, Code::InvalidNumber, "/workflow_graph/nodes/m/temperature");
    let c = with(|d| {
        add(
            d,
            "l",
            json!({"type": "loop", "iterator": "xs", "iterator_variable": "x", "body_node": "a", "max_iterations": -1}),
        )
    });
    expect(&c, Code::InvalidNumber, "/workflow_graph/nodes/l/max_iterations");
    let c = with(|d| node(d, "a")["error_handlers"] = json!([{"trigger": {"http_status_codes": [42]}}]));
    expect(&c, Code::InvalidNumber, "/workflow_graph/nodes/a/error_handlers/0/trigger/http_status_codes/0");
    // 1500.0 is a whole number and is accepted.
    let c = with(|d| node(d, "a")["steps"][0]["timeout_ms"] = json!(1500.0));
    expect_no(&c, Code::InvalidNumber);
}

#[test]
fn unknown_node_type_suggests() {
    let c = with(|d| node(d, "check")["type"] = json!("logik"));
    let msg = expect(&c, Code::UnknownNodeType, "/workflow_graph/nodes/check/type");
    assert!(msg.contains("did you mean `logic`?"), "{msg}");
}

#[test]
fn start_node_must_exist() {
    let c = with(|d| d["workflow_graph"]["start_node"] = json!("A"));
    let msg = expect(&c, Code::StartNodeMissing, "/workflow_graph/start_node");
    assert!(msg.contains("Did you mean `a`?"), "{msg}");
}

#[test]
fn every_edge_kind_must_point_at_a_node() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({"type": "sequence", "steps": [], "next_node": "nowhere"}), "next_node"),
        (json!({"type": "logic", "rules": [{"condition": "true", "next_node": "nowhere"}]}), "rules/0/next_node"),
        (json!({"type": "logic", "rules": [], "default_next_node": "nowhere"}), "default_next_node"),
        (json!({"type": "loop", "iterator": "xs", "iterator_variable": "x", "body_node": "nowhere"}), "body_node"),
        (
            json!({"type": "parallel", "branches": [{"branch_id": "b", "start_node": "nowhere"}]}),
            "branches/0/start_node",
        ),
        (json!({"type": "human_approval", "on_approve": "nowhere", "on_reject": "end"}), "on_approve"),
        (json!({"type": "human_approval", "on_approve": "end", "on_reject": "nowhere"}), "on_reject"),
        (
            json!({"type": "human_approval", "on_approve": "end", "on_reject": "end", "on_timeout": "nowhere"}),
            "on_timeout",
        ),
        (
            json!({"type": "llm_action", "prompt": "p", "orchestration_mode": true, "branches": ["end", "nowhere"]}),
            "branches/1",
        ),
        (
            json!({"type": "sequence", "steps": [], "error_handlers": [{"action": "ignore", "fallback_node": "nowhere"}]}),
            "error_handlers/0/fallback_node",
        ),
        (
            json!({"type": "sequence", "steps": [], "sla": {"max_duration_ms": 1, "on_breach": "escalate", "escalation_handler": "nowhere"}}),
            "sla/escalation_handler",
        ),
    ];
    for (n, field) in cases {
        let c = with(|d| add(d, "n", n.clone()));
        let msg = expect(&c, Code::EdgeTargetMissing, &format!("/workflow_graph/nodes/n/{field}"));
        assert!(msg.contains("`nowhere`"), "{msg}");
    }
    let c = with(|d| d["global_config"] = json!({"on_failure": "nowhere"}));
    expect(&c, Code::EdgeTargetMissing, "/global_config/on_failure");
}

#[test]
fn cron_schedules_are_checked() {
    let c = with(|d| d["trigger"] = json!({"type": "scheduled", "schedule": "61 * * * *"}));
    expect(&c, Code::InvalidCron, "/trigger/schedule");
    let c = with(|d| d["trigger"] = json!({"type": "scheduled", "schedule": "every day"}));
    expect(&c, Code::InvalidCron, "/trigger/schedule");
    let c = with(|d| d["trigger"] = json!({"type": "scheduled"}));
    expect(&c, Code::MissingField, "/trigger/schedule");
    for ok in ["0 9 * * 1-5", "*/5 * * * *", "0 0 1 JAN *", "30 0 9 * * MON"] {
        let c = with(|d| d["trigger"] = json!({"type": "scheduled", "schedule": ok}));
        expect_clean(&c);
    }
}

#[test]
fn other_trigger_requirements() {
    let c = with(|d| d["trigger"] = json!({"type": "webhook"}));
    expect(&c, Code::MissingField, "/trigger/webhook_secret");
    let c = with(|d| d["trigger"] = json!({"type": "event"}));
    expect(&c, Code::MissingField, "/trigger");
    let c = with(|d| d["trigger"] = json!({"type": "event", "event": {"provider": "nats", "topic": "orders"}}));
    expect_clean(&c);
    let c = with(|d| d["trigger"] = json!({"type": "file_watch", "file_watch_config": {"pattern": "*.csv"}}));
    expect(&c, Code::MissingField, "/trigger/file_watch_config/path");
    // LangOrch's forms of the watched folder.
    for form in
        [json!({"file_watch_path": "/in"}), json!({"file_watch": {"path": "/in"}}), json!({"event_source": "/in"})]
    {
        let mut trigger = form;
        trigger["type"] = json!("file_watch");
        let c = with(|d| d["trigger"] = trigger.clone());
        expect_clean(&c);
    }
    let bad =
        json!({"type": "file_watch", "file_watch_config": {"path": "/in", "event_types": ["created", "renamed"]}});
    let c = with(|d| d["trigger"] = bad.clone());
    expect(&c, Code::InvalidEnum, "/trigger/file_watch_config/event_types/1");
}

#[test]
fn regexes_must_compile() {
    let c = with(|d| d["variables_schema"]["required"]["amount"]["validation"] = json!({"regex": "([a-z"}));
    expect(&c, Code::InvalidRegex, "/variables_schema/required/amount/validation/regex");
    let c = with(|d| add(d, "m", json!({"type": "llm_action", "prompt": "p", "outputs": {"id": "regex: (unclosed"}})));
    expect(&c, Code::InvalidRegex, "/workflow_graph/nodes/m/outputs/id");
    let c = with(|d| {
        add(
            d,
            "p",
            json!({"type": "processing", "operations": [{"action": "extract_regex", "source": "x", "pattern": "[z-a]"}]}),
        )
    });
    expect(&c, Code::InvalidRegex, "/workflow_graph/nodes/p/operations/0/pattern");
}

#[test]
fn json_schemas_must_compile_and_are_never_fetched() {
    let c = with(|d| {
        add(
            d,
            "p",
            json!({"type": "processing", "operations": [{"action": "validate_schema", "source": "{{x}}", "schema": {"type": "thing"}}]}),
        )
    });
    expect(&c, Code::InvalidJsonSchema, "/workflow_graph/nodes/p/operations/0/schema");
    let c = with(|d| {
        add(
            d,
            "p",
            json!({"type": "processing", "operations": [{"action": "validate_schema", "source": "{{x}}", "schema": {"$ref": "http://127.0.0.1:9/schema.json"}}]}),
        )
    });
    let msg = expect(&c, Code::InvalidJsonSchema, "/workflow_graph/nodes/p/operations/0/schema");
    assert!(msg.contains("not fetched") || msg.contains("127.0.0.1"), "{msg}");
    let c = with(|d| {
        add(
            d,
            "p",
            json!({"type": "processing", "operations": [{"action": "validate_schema", "source": "{{x}}", "schema": {"$defs": {"n": {"type": "number"}}, "$ref": "#/$defs/n"}}]}),
        )
    });
    expect_no(&c, Code::InvalidJsonSchema);
}

#[test]
fn conditions_are_parsed_at_compile_time() {
    let c = with(|d| node(d, "check")["rules"][0]["condition"] = json!("({{x}} > 10"));
    expect(&c, Code::ConditionSyntax, "/workflow_graph/nodes/check/rules/0/condition");
    let c = with(|d| add(d, "v", json!({"type": "verification", "checks": [{"condition": "{{x}} >"}]})));
    expect(&c, Code::ConditionSyntax, "/workflow_graph/nodes/v/checks/0/condition");
}

#[test]
fn template_limits() {
    let huge = "{{x}}".repeat(2000);
    let c = with(|d| node(d, "a")["steps"][0]["value"] = json!(huge));
    expect(&c, Code::TemplateLimit, "/workflow_graph/nodes/a/steps/0/value");
}

#[test]
fn malformed_placeholders_warn() {
    let c = with(|d| node(d, "a")["steps"][0]["value"] = json!("total {{amount-1}}"));
    let msg = expect(&c, Code::MalformedPlaceholder, "/workflow_graph/nodes/a/steps/0/value");
    assert!(msg.contains("{{amount-1}}"), "{msg}");
    assert!(c.procedure.is_some());
}

#[test]
fn subflow_self_recursion() {
    let c = with(|d| add(d, "s", json!({"type": "subflow", "procedure_id": "p"})));
    expect(&c, Code::SubflowRecursion, "/workflow_graph/nodes/s/procedure_id");
    let c =
        with(|d| add(d, "s", json!({"type": "subflow", "procedure_id": "p", "version": "0.9.0", "next_node": "end"})));
    expect_no(&c, Code::SubflowRecursion);
}

#[test]
fn actions_need_an_executor() {
    let c = with(|d| node(d, "a")["steps"][0] = json!({"step_id": "c", "action": "click", "target": "#go"}));
    let msg = expect(&c, Code::NoExecutor, "/workflow_graph/nodes/a/steps/0/action");
    assert!(msg.contains("agent"), "{msg}");
    let c = with(|d| {
        node(d, "a")["agent"] = json!("WEB");
        node(d, "a")["steps"][0] = json!({"step_id": "c", "action": "click", "target": "#go"});
    });
    expect_no(&c, Code::NoExecutor);
    let c = with(|d| node(d, "a")["steps"][0] = json!({"step_id": "h", "action": "http_request", "url": "http://x"}));
    expect_no(&c, Code::NoExecutor);
    let c =
        with(|d| node(d, "a")["steps"][0] = json!({"step_id": "m", "action": "mcp:everything/echo", "message": "hi"}));
    expect_no(&c, Code::NoExecutor);
    let c = with(|d| node(d, "a")["steps"][0] = json!({"step_id": "m", "action": "mcp:echo"}));
    expect(&c, Code::InvalidConfig, "/workflow_graph/nodes/a/steps/0/action");
}

#[test]
fn mcp_servers_are_checked_where_they_are_declared() {
    let c = with(|d| {
        d["global_config"] = json!({"mcp_servers": {
            "fs": {"command": "npx", "args": ["-y", "server-fs"], "env": {"ROOT": "/tmp"}},
            "web": {"url": "https://tools.example/mcp", "headers": {"Authorization": "Bearer x"}}
        }});
    });
    let p = c.procedure.expect("compiles");
    assert_eq!(p.config.mcp_servers.keys().collect::<Vec<_>>(), ["fs", "web"]);
    for (server, pointer, words) in [
        (json!({"url": "https://x", "command": "y"}), "/global_config/mcp_servers/bad", "not both"),
        (json!({"command": "y", "args": "a b"}), "/global_config/mcp_servers/bad", "`args` must be a list of strings"),
        (json!(["npx"]), "/global_config/mcp_servers/bad", "not an array"),
    ] {
        let c = with(|d| d["global_config"] = json!({"mcp_servers": {"bad": server}}));
        let msg = expect(&c, Code::InvalidConfig, pointer);
        assert!(msg.starts_with("MCP server `bad`: ") && msg.contains(words), "{msg}");
    }
    let c = with(|d| d["global_config"] = json!({"mcp_servers": {"a/b": {"command": "x"}}}));
    expect(&c, Code::InvalidConfig, "/global_config/mcp_servers/a~1b");
}

#[test]
fn invalid_configurations() {
    let c = with(|d| add(d, "m", json!({"type": "llm_action", "prompt": "p", "orchestration_mode": true})));
    expect(&c, Code::InvalidConfig, "/workflow_graph/nodes/m/branches");
    let c = with(|d| {
        add(
            d,
            "h",
            json!({"type": "human_approval", "decision_type": "select_option", "on_approve": "end", "on_reject": "end"}),
        )
    });
    expect(&c, Code::InvalidConfig, "/workflow_graph/nodes/h/options");
    let c = with(|d| d["variables_schema"]["required"]["amount"]["validation"] = json!({"min": 10, "max": 1}));
    expect(&c, Code::InvalidConfig, "/variables_schema/required/amount/validation");
    let c = with(|d| d["variables_schema"]["required"]["amount"]["default"] = json!("lots"));
    expect(&c, Code::InvalidConfig, "/variables_schema/required/amount/default");
    let c = with(|d| d["effective_date"] = json!("next week"));
    expect(&c, Code::InvalidConfig, "/effective_date");
    let c = with(|d| {
        add(
            d,
            "par",
            json!({"type": "parallel", "branches": [{"branch_id": "b", "start_node": "end"}, {"branch_id": "b", "start_node": "end"}]}),
        )
    });
    expect(&c, Code::InvalidConfig, "/workflow_graph/nodes/par/branches/1/branch_id");
}

#[test]
fn unreachable_nodes_warn() {
    let c = with(|d| add(d, "orphan", json!({"type": "terminate"})));
    let msg = expect(&c, Code::Unreachable, "/workflow_graph/nodes/orphan");
    assert!(msg.contains("start_node `a`"), "{msg}");
    assert!(c.procedure.is_some(), "unreachable is a warning, not an error");
}

#[test]
fn nodes_reached_only_through_on_failure_or_fallback_are_reachable() {
    let c = with(|d| {
        d["global_config"] = json!({"on_failure": "recovery"});
        add(d, "recovery", json!({"type": "terminate", "status": "failed"}));
    });
    expect_clean(&c);
    let c = with(|d| {
        node(d, "a")["error_handlers"] = json!([{"error_type": "*", "action": "ignore", "fallback_node": "fallback"}]);
        add(d, "fallback", json!({"type": "terminate", "status": "failed"}));
    });
    expect_clean(&c);
    let c = with(|d| {
        node(d, "a")["sla"] = json!({"max_duration_ms": 100, "on_breach": "escalate", "escalation_handler": "slow"});
        add(d, "slow", json!({"type": "terminate"}));
        add(d, "m", json!({"type": "llm_action", "prompt": "p", "orchestration_mode": true, "branches": ["end"]}));
        node(d, "check")["default_next_node"] = json!("m");
    });
    expect_clean(&c);
}

#[test]
fn duplicate_step_ids_warn() {
    let c = with(|d| {
        let steps = node(d, "a")["steps"].as_array_mut().expect("steps");
        steps.push(json!({"step_id": "s1", "action": "log", "message": "again"}));
    });
    expect(&c, Code::DuplicateStepId, "/workflow_graph/nodes/a/steps/1/step_id");
    assert!(c.procedure.is_some());
}

#[test]
fn undefined_variables_warn_once_per_variable() {
    let c = with(|d| {
        node(d, "a")["steps"][0]["value"] = json!("{{amount}} {{nope}} {{nope.x}}");
        node(d, "check")["rules"][0]["condition"] = json!("{{nope}} > 1 and {{x}} > 2");
    });
    let msg = expect(&c, Code::UndefinedVariable, "/workflow_graph/nodes/a/steps/0/value");
    assert!(msg.contains("`nope`") && msg.contains("3 places"), "{msg}");
    assert_eq!(c.diagnostics.iter().filter(|d| d.code == Code::UndefinedVariable).count(), 1);
}

#[test]
fn variables_defined_by_every_kind_of_writer_are_known() {
    let c = with(|d| {
        node(d, "a")["steps"] = json!([
            {"step_id": "s1", "action": "set_variable", "variable": "x", "value": 1},
            {"step_id": "s2", "action": "http_request", "url": "http://h/{{x}}", "output_variable": "resp"},
            {"step_id": "s3", "action": "log", "message": "{{resp.status}} {{run_id}} {{secrets.token}} {{last_error.message}}"}
        ]);
        node(d, "a")["next_node"] = json!("l");
        add(
            d,
            "l",
            json!({"type": "loop", "iterator": "resp.items", "iterator_variable": "it", "index_variable": "i", "collect_variable": "got", "body_node": "body", "next_node": "check"}),
        );
        add(
            d,
            "body",
            json!({"type": "processing", "operations": [{"action": "log", "message": "{{it}} {{i}} {{got}}"}], "next_node": "l"}),
        );
    });
    expect_no(&c, Code::UndefinedVariable);
    expect_clean(&c);
}

#[test]
fn set_variable_targets_count_as_defined() {
    // LangOrch calls these undeclared; ckp does not (langorch.md B §8.16).
    let c = with(|d| node(d, "check")["rules"][0]["condition"] = json!("{{x}} > 1"));
    expect_no(&c, Code::UndefinedVariable);
}

#[test]
fn duplicate_keys_warn() {
    let text = serde_json::to_string_pretty(&base()).expect("json").replacen(
        "\"version\": \"1.0.0\",",
        "\"version\": \"0.1\",\n  \"version\": \"1.0.0\",",
        1,
    );
    let c = compile(&text);
    let msg = expect(&c, Code::DuplicateKey, "/version");
    assert!(msg.contains("last one"), "{msg}");
}

#[test]
fn unknown_output_mappings_warn() {
    let c = with(|d| {
        add(
            d,
            "m",
            json!({"type": "llm_action", "prompt": "p", "outputs": {"page": "xpath://div"}, "next_node": "end"}),
        )
    });
    expect(&c, Code::UnknownOutputMapping, "/workflow_graph/nodes/m/outputs/page");
}

#[test]
fn unknown_error_types_warn() {
    let c = with(|d| {
        node(d, "a")["error_handlers"] =
            json!([{"error_type": "ElementNotFoundException", "action": "retry", "max_retries": 1}])
    });
    let msg = expect(&c, Code::UnknownErrorType, "/workflow_graph/nodes/a/error_handlers/0/error_type");
    assert!(msg.contains("contains"), "{msg}");
    let c = with(|d| node(d, "a")["error_handlers"] = json!([{"error_type": "AgentActionError", "action": "fail"}]));
    expect_no(&c, Code::UnknownErrorType);
}

#[test]
fn missing_routes_warn() {
    let c =
        with(|d| node(d, "check").as_object_mut().map(|o| o.shift_remove("default_next_node")).map(drop).unwrap_or(()));
    expect(&c, Code::MissingRoute, "/workflow_graph/nodes/check");
    let c = with(|d| {
        node(d, "check")["default_next_node"] = json!("h");
        add(d, "h", json!({"type": "human_approval", "prompt": "ok?", "on_approve": "end"}));
    });
    expect(&c, Code::MissingRoute, "/workflow_graph/nodes/h/on_reject");
}

#[test]
fn ignored_fields_warn() {
    let c = with(|d| node(d, "end")["next_node"] = json!("a"));
    expect(&c, Code::IgnoredField, "/workflow_graph/nodes/end/next_node");
    let c = with(|d| {
        add(d, "m", json!({"type": "llm_action", "prompt": "p", "branches": ["end"], "next_node": "end"}));
        node(d, "check")["default_next_node"] = json!("m");
    });
    expect(&c, Code::IgnoredField, "/workflow_graph/nodes/m/branches");
}

#[test]
fn both_variables_schema_forms_compile() {
    let c = with(|d| {
        d["variables_schema"] =
            json!({"amount": {"type": "number", "required": true}, "note": {"type": "string", "default": "n"}})
    });
    expect_clean(&c);
    let p = c.procedure.expect("compiles");
    assert_eq!(p.variables.len(), 2);
    assert!(p.variables[0].required && !p.variables[1].required);
}

#[test]
fn diagnostics_carry_line_and_column_of_the_value() {
    let text = r#"{
  "procedure_id": "p",
  "version": "1",
  "workflow_graph": {
    "start_node": "a",
    "nodes": {
      "a": {"type": "sequence", "steps": [], "next_node": "b"}
    }
  }
}"#;
    let c = compile(text);
    let d = c.diagnostics.iter().find(|d| d.code == Code::EdgeTargetMissing).expect("edge error");
    assert_eq!((d.line, d.column), (7, 59));
    assert_eq!(d.pointer, "/workflow_graph/nodes/a/next_node");
}

#[test]
fn pointers_escape_slashes_and_tildes_in_node_ids() {
    let c = with(|d| add(d, "a/b~c", json!({"type": "sequence", "steps": [], "next_node": "zzz"})));
    expect(&c, Code::EdgeTargetMissing, "/workflow_graph/nodes/a~1b~0c/next_node");
}

#[test]
fn secrets_config_settings_are_checked_per_provider() {
    let c = with(|d| {
        d["global_config"] = json!({"secrets_config": {
            "type": "hashicorp_vault", "vault_url": "http://127.0.0.1:8200", "mount_point": "kv", "kv_version": 1,
            "cache_ttl": 2.5, "region_name": "eu-west-1",
            "secret_references": {"db_password": {"key": "db#password"}, "api": "api_key"}
        }})
    });
    expect(&c, Code::IgnoredField, "/global_config/secrets_config/region_name");
    let spec = c.procedure.as_ref().expect("compiles").config.secrets.clone().expect("secrets_config");
    assert_eq!(spec.provider, ckp_core::procedure::SecretProvider::Vault);
    assert_eq!(spec.settings.get("kv_version").map(String::as_str), Some("1"));
    assert_eq!(spec.settings.get("vault_url").map(String::as_str), Some("http://127.0.0.1:8200"));
    assert_eq!(spec.cache_ttl_ms, Some(2500));
    assert_eq!(
        (spec.key_for("db_password"), spec.key_for("api"), spec.key_for("other")),
        ("db#password", "api_key", "other")
    );

    let c = with(|d| d["global_config"] = json!({"secrets_config": {"provider": "vault", "vault_token": "hvs.x"}}));
    let msg = expect(&c, Code::InlineCredential, "/global_config/secrets_config/vault_token");
    assert!(!msg.contains("hvs.x"), "a diagnostic never repeats the credential: {msg}");
    assert!(c.procedure.is_some(), "an inline credential is a warning");

    for (patch, code, pointer) in [
        (json!({"provider": "vault", "kv_version": 3}), Code::InvalidEnum, "kv_version"),
        (json!({"provider": "aws", "endpoint_url": "localhost:5000"}), Code::WrongType, "endpoint_url"),
        (json!({"provider": "azure", "tenant_id": ["t"]}), Code::WrongType, "tenant_id"),
        (json!({"provider": "env", "cache_ttl": -1}), Code::InvalidNumber, "cache_ttl"),
        (json!({"provider": "db", "secret_references": {"a": 3}}), Code::WrongType, "secret_references/a"),
    ] {
        let c = with(|d| d["global_config"] = json!({"secrets_config": patch}));
        expect(&c, code, &format!("/global_config/secrets_config/{pointer}"));
        assert!(c.procedure.is_none(), "{patch}");
    }
}
