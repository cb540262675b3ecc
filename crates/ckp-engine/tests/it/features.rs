//! Step and global_config features: timeouts, durable waits, SLA, telemetry, execution modes, mocks, overrides,
//! rate limiting, checkpoint strategy, cancellation.

use std::sync::Arc;
use std::time::Duration;

use ckp_engine::effects::{AgentRequest, Agents, BoxFuture, Effects};
use ckp_engine::{Decision, EngineConfig, ErrorKind, RunOutcome, StepError};
use serde_json::{Value, json};

use crate::support::{Harness, completed, echo_effects, inputs, procedure};

fn with_config(config: Value, start: &str, nodes: Value) -> Value {
    json!({"procedure_id": "f", "version": "1", "global_config": config, "workflow_graph": {"start_node": start, "nodes": nodes}})
}

fn web_then_end() -> Value {
    json!({
        "web": {"type": "sequence", "agent": "WEB", "steps": [
            {"step_id": "nav", "action": "navigate", "url": "u", "output_variable": "page"},
            {"step_id": "mark", "action": "set_variable", "variable": "marked", "value": true}
        ], "next_node": "end"},
        "end": {"type": "terminate"}
    })
}

struct SlowAgent(Duration);

impl Agents for SlowAgent {
    fn execute(&self, _req: AgentRequest) -> BoxFuture<'_, Result<Value, StepError>> {
        let d = self.0;
        Box::pin(async move {
            tokio::time::sleep(d).await;
            Ok(json!("late"))
        })
    }
}

#[tokio::test]
async fn step_timeout_emits_step_timeout_and_fails_with_timeout() {
    let p = procedure(&with_config(
        json!({}),
        "web",
        json!({
            "web": {"type": "sequence", "agent": "WEB", "steps": [{"step_id": "nav", "action": "navigate", "timeout_ms": 20}]}
        }),
    ));
    let h = Harness::new(Effects { agents: Some(Arc::new(SlowAgent(Duration::from_secs(5)))), ..Effects::default() });
    let out = h.start(&p, inputs(json!({}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert_eq!(error.message, "Step nav timed out after 20ms");
    assert!(h.events().iter().any(|e| e.event_type == "step_timeout" && e.payload["timeout_ms"] == 20));
}

#[tokio::test]
async fn global_timeout_stops_the_run() {
    let p = procedure(&with_config(
        json!({"timeout_ms": 30}),
        "slow",
        json!({
            "slow": {"type": "sequence", "steps": [{"step_id": "w", "action": "wait", "duration_ms": 200}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert!(error.message.contains("global_config.timeout_ms"));
    assert_eq!(error.node_id.as_deref(), Some("end"));
}

#[tokio::test]
async fn long_waits_are_durable_timers() {
    let p = procedure(&with_config(
        json!({}),
        "w",
        json!({
            "w": {"type": "sequence", "steps": [{"step_id": "pause", "action": "log", "message": "after", "wait_ms": 80}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    let engine = h.engine().with_config(EngineConfig { inline_wait_ms: 10, ..EngineConfig::default() });
    let out = engine.start(p.clone(), "run-1", inputs(json!({}))).await.expect("runs");
    let RunOutcome::Sleeping { until } = out else { panic!("{out:?}") };
    assert_eq!(h.journal.checkpoint("run-1").expect("cp").wake_at, Some(until), "the timer is in the checkpoint");
    let early = engine.resume(p.clone(), "run-1").await.expect("resumes");
    assert!(matches!(early, RunOutcome::Sleeping { .. }), "not yet: {early:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = h.engine().resume(p.clone(), "run-1").await.expect("resumes");
    assert!(matches!(out, RunOutcome::Completed { .. }), "{out:?}");
    let started =
        h.events().iter().filter(|e| e.event_type == "node_started" && e.node_id.as_deref() == Some("w")).count();
    assert_eq!(started, 1, "the wait re-executes the node without repeating its events");
}

/// Agents that are all offline (the step may wait) until an action is brought online.
struct ComingOnline(std::sync::Mutex<Vec<String>>);

impl Agents for ComingOnline {
    fn execute(&self, req: AgentRequest) -> BoxFuture<'_, Result<Value, StepError>> {
        Box::pin(async move { Ok(json!({"done": req.action})) })
    }

    fn dispatch(&self, req: AgentRequest) -> BoxFuture<'_, Result<ckp_engine::effects::AgentReply, StepError>> {
        use ckp_engine::effects::AgentReply;
        let online = self.0.lock().expect("lock").contains(&req.action);
        Box::pin(async move {
            if online {
                Ok(AgentReply::Done(json!({"done": req.action})))
            } else {
                Ok(AgentReply::NoneOnline { message: format!("No online agent for channel='{}'", req.channel) })
            }
        })
    }
}

/// The system clock moved forward by hand (durable timers come due without sleeping).
#[derive(Default)]
struct Ahead(std::sync::Mutex<chrono::Duration>);

impl Ahead {
    fn skip(&self, seconds: i64) {
        *self.0.lock().expect("lock") += chrono::Duration::seconds(seconds);
    }
}

impl ckp_engine::effects::Clock for Ahead {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + *self.0.lock().expect("lock")
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

#[tokio::test]
async fn a_step_waits_for_an_agent_on_durable_timers_and_its_events_replay_in_place() {
    let p = procedure(&with_config(
        json!({}),
        "go",
        json!({
            "go": {"type": "sequence", "agent": "web", "steps": [
                {"step_id": "first", "action": "click"}, {"step_id": "second", "action": "type"}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let agents = Arc::new(ComingOnline(std::sync::Mutex::default()));
    let clock = Arc::new(Ahead::default());
    let h = Harness::new(Effects { agents: Some(agents.clone()), clock: clock.clone(), ..Effects::default() });
    let engine = || h.engine().with_config(EngineConfig { agent_wait_ms: 60_000, ..EngineConfig::default() });
    let p2 = p.clone();
    let resume = move |e: ckp_engine::Engine| {
        let p = p2.clone();
        async move { e.resume(p, "run-1").await.expect("resumes") }
    };
    // No agent online: the first step waits on a durable timer (no worker held), and again when looked at early.
    let out = engine().start(p.clone(), "run-1", inputs(json!({}))).await.expect("runs");
    assert!(matches!(out, RunOutcome::Sleeping { .. }), "{out:?}");
    clock.skip(3);
    assert!(matches!(resume(engine()).await, RunOutcome::Sleeping { .. }));
    // Its agent comes online; the second step's has not: it waits in turn, the first one's result kept.
    agents.0.lock().expect("lock").push("click".into());
    clock.skip(3);
    assert!(matches!(resume(engine()).await, RunOutcome::Sleeping { .. }));
    agents.0.lock().expect("lock").push("type".into());
    clock.skip(3);
    let out = resume(engine()).await;
    assert!(matches!(out, RunOutcome::Completed { .. }), "{out:?}\n{}", h.trace());
    let count = |t: &str| h.events().iter().filter(|e| e.event_type == t).count();
    assert_eq!(count("step_waiting_for_agent"), 2, "{}", h.trace());
    assert_eq!(count("step_completed"), 2, "{}", h.trace());
    assert_eq!(count("step_started"), 2, "{}", h.trace());
    let waits: Vec<Value> =
        h.events().iter().filter(|e| e.event_type == "step_waiting_for_agent").map(|e| e.payload.clone()).collect();
    assert_eq!(waits[0]["channel"], "web");
    assert_eq!(waits[1]["action"], "type");

    // With no wait allowed, the step fails at once with the agents' message.
    let h = Harness::new(Effects {
        agents: Some(Arc::new(ComingOnline(std::sync::Mutex::default()))),
        ..Effects::default()
    });
    let engine = h.engine().with_config(EngineConfig { agent_wait_ms: 0, ..EngineConfig::default() });
    let out = engine.start(p.clone(), "run-1", inputs(json!({}))).await.expect("runs");
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.kind, ErrorKind::AgentUnavailable);
    assert_eq!(error.message, "No online agent for channel='web'");
}

#[tokio::test]
async fn sla_fail_and_escalate() {
    let nodes = |on_breach: &str| {
        json!({
            "slow": {"type": "sequence", "steps": [{"step_id": "w", "action": "wait", "duration_ms": 60}],
                     "sla": {"max_duration_ms": 5, "on_breach": on_breach, "escalation_handler": "escalated"}, "next_node": "end"},
            "escalated": {"type": "terminate", "outputs": {"path": "escalated"}},
            "end": {"type": "terminate", "outputs": {"path": "normal"}}
        })
    };
    let h = Harness::new(Effects::default());
    let out = h.start(&procedure(&with_config(json!({}), "slow", nodes("fail"))), inputs(json!({}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert!(error.message.starts_with("SLA breach: node 'slow' exceeded 5ms limit"), "{}", error.message);
    let breach = h.events().into_iter().find(|e| e.event_type == "sla_breached").expect("sla_breached");
    assert_eq!(breach.payload["on_breach"], "fail");
    let h = Harness::new(Effects::default());
    let out = h.start(&procedure(&with_config(json!({}), "slow", nodes("escalate"))), inputs(json!({}))).await;
    assert_eq!(completed(&out)["path"], "escalated");
    let h = Harness::new(Effects::default());
    let out = h.start(&procedure(&with_config(json!({}), "slow", nodes("warn"))), inputs(json!({}))).await;
    assert_eq!(completed(&out)["path"], "normal");
}

#[tokio::test]
async fn telemetry_adds_duration_and_retry_count() {
    let p = procedure(&with_config(
        json!({}),
        "web",
        json!({
            "web": {"type": "sequence", "agent": "WEB", "telemetry": {"track_duration": true, "track_retries": true},
                    "steps": [{"step_id": "flaky", "action": "navigate", "retry_on_failure": true, "retry_config": {"max_retries": 3, "retry_delay_ms": 1}}]}
        }),
    ));
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    let agents = ckp_engine::testing::FnAgents::new(move |_| {
        if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            Err(StepError::new(ErrorKind::AgentError, "flaky"))
        } else {
            Ok(json!(1))
        }
    });
    let h = Harness::new(Effects { agents: Some(Arc::new(agents)), ..Effects::default() });
    completed(&h.start(&p, inputs(json!({}))).await);
    let done = h.events().into_iter().find(|e| e.event_type == "step_completed").expect("step_completed");
    assert_eq!(done.payload["retry_count"], 2);
    assert!(done.payload["duration_ms"].is_u64());
    assert_eq!(
        h.events().iter().filter(|e| e.event_type == "step_started").count(),
        3,
        "every attempt emits step_started"
    );
}

#[tokio::test]
async fn dry_run_skips_external_steps_and_runs_internal_ones() {
    let p = procedure(&with_config(json!({"execution_mode": "dry_run"}), "web", web_then_end()));
    let (effects, agents, _) = echo_effects();
    let h = Harness::new(effects);
    let vars = completed(&h.start(&p, inputs(json!({}))).await).clone();
    assert_eq!(vars["marked"], true);
    assert_eq!(vars["page"]["dry_run"], true);
    assert!(agents.calls().is_empty());
    assert!(h.events().iter().any(|e| e.event_type == "dry_run_step_skipped"));
}

#[tokio::test]
async fn validation_only_compiles_and_stops() {
    let p = procedure(&with_config(json!({"execution_mode": "validation_only"}), "web", web_then_end()));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({}))).await;
    assert!(completed(&out).is_empty());
    let types: Vec<String> = h.events().into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["run_created", "run_completed"]);
}

#[tokio::test]
async fn mocks_and_test_data_overrides() {
    let p = procedure(&with_config(json!({"mock_external_calls": true}), "web", web_then_end()));
    let (effects, agents, _) = echo_effects();
    let h = Harness::new(effects);
    let vars = completed(&h.start(&p, inputs(json!({}))).await).clone();
    assert_eq!(vars["page"]["mocked"], true);
    assert!(agents.calls().is_empty());
    let p = procedure(&with_config(json!({"test_data_overrides": {"nav": {"title": "fixed"}}}), "web", web_then_end()));
    let (effects, agents, _) = echo_effects();
    let h = Harness::new(effects);
    let vars = completed(&h.start(&p, inputs(json!({}))).await).clone();
    assert_eq!(vars["page"], json!({"title": "fixed"}));
    assert!(agents.calls().is_empty());
    assert!(h.events().iter().any(|e| e.event_type == "step_test_override_applied"));
}

#[tokio::test]
async fn rate_limiting_fails_a_node_that_would_wait_too_long() {
    let p = procedure(&with_config(
        json!({"rate_limiting": {"enabled": true, "max_requests_per_minute": 1}}),
        "a",
        json!({
            "a": {"type": "sequence", "steps": [{"step_id": "x", "action": "log", "message": "a"}], "next_node": "b"},
            "b": {"type": "sequence", "steps": [{"step_id": "y", "action": "log", "message": "b"}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert!(error.message.starts_with("Rate limit exceeded"), "{}", error.message);
    assert_eq!(error.node_id.as_deref(), Some("b"));
}

#[tokio::test]
async fn disabled_checkpointing_commits_only_at_the_ends() {
    let p = procedure(&with_config(json!({"checkpoint_strategy": "disabled"}), "web", web_then_end()));
    let (effects, agents, _) = echo_effects();
    let h = Harness::new(effects);
    completed(&h.start(&p, inputs(json!({}))).await);
    assert_eq!(agents.calls().len(), 1);
    assert_eq!(h.journal.commit_count("run-1"), 2, "creation and the end only");
}

#[tokio::test]
async fn cancellation_takes_effect_at_the_next_step() {
    let p = procedure(&with_config(
        json!({}),
        "ask",
        json!({
            "ask": {"type": "human_approval", "prompt": "go?", "on_approve": "work", "on_reject": "end"},
            "work": {"type": "sequence", "steps": [{"step_id": "s", "action": "set_variable", "variable": "worked", "value": true}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    h.start(&p, inputs(json!({}))).await;
    let engine = h.engine();
    engine.cancel("run-1");
    let d = Decision { key: None, value: json!("approve"), decided_by: None, comment: None };
    let out = engine.decide(p.clone(), "run-1", d).await.expect("decides");
    assert_eq!(out, RunOutcome::Cancelled);
    let last = h.events().pop().expect("events");
    assert_eq!(last.event_type, "run_canceled");
    assert!(h.journal.checkpoint("run-1").expect("cp").vars.get("worked").is_none());
}

#[tokio::test]
async fn approval_expiry_applies_timeout_action() {
    for (action, expected) in
        [("auto_approve", "approved_path"), ("auto_reject", "rejected_path"), ("escalate", "timeout_path")]
    {
        let p = procedure(&with_config(
            json!({}),
            "ask",
            json!({
                "ask": {"type": "human_approval", "prompt": "ok?", "timeout_ms": 1, "timeout_action": action,
                        "on_approve": "approved_path", "on_reject": "rejected_path", "on_timeout": "timeout_path"},
                "approved_path": {"type": "terminate", "outputs": {"path": "approved_path"}},
                "rejected_path": {"type": "terminate", "outputs": {"path": "rejected_path"}},
                "timeout_path": {"type": "terminate", "outputs": {"path": "timeout_path"}}
            }),
        ));
        let h = Harness::new(Effects::default());
        let out = h.start(&p, inputs(json!({}))).await;
        assert!(matches!(out, RunOutcome::WaitingApproval(_)));
        tokio::time::sleep(Duration::from_millis(5)).await;
        let out = h.engine().expire_due(p.clone(), "run-1").await.expect("expires");
        assert_eq!(completed(&out)["path"], expected, "timeout_action {action}");
        let decision =
            h.events().into_iter().find(|e| e.event_type == "approval_decision_received").expect("decision event");
        assert_eq!(decision.payload["decision"], "timed_out");
    }
}

struct CountingAgent {
    in_flight: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

impl Agents for CountingAgent {
    fn execute(&self, _req: AgentRequest) -> BoxFuture<'_, Result<Value, StepError>> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.peak.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.in_flight.fetch_sub(1, SeqCst);
            Ok(json!("done"))
        })
    }
}

#[tokio::test]
async fn parallel_branches_really_run_concurrently_within_max_concurrent_operations() {
    let doc = |limit: Value| {
        with_config(
            json!({"rate_limiting": {"enabled": true, "max_concurrent_operations": limit}}),
            "split",
            json!({
                "split": {"type": "parallel", "branches": [
                    {"branch_id": "a", "start_node": "a"}, {"branch_id": "b", "start_node": "b"}, {"branch_id": "c", "start_node": "c"}
                ], "next_node": "end"},
                "a": {"type": "sequence", "agent": "API", "steps": [{"step_id": "x", "action": "work"}], "next_node": "end"},
                "b": {"type": "sequence", "agent": "API", "steps": [{"step_id": "x", "action": "work"}], "next_node": "end"},
                "c": {"type": "sequence", "agent": "API", "steps": [{"step_id": "x", "action": "work"}], "next_node": "end"},
                "end": {"type": "terminate"}
            }),
        )
    };
    for (limit, peak) in [(json!(10), 3), (json!(2), 2)] {
        let agent = Arc::new(CountingAgent { in_flight: 0.into(), peak: 0.into() });
        let h = Harness::new(Effects { agents: Some(agent.clone()), ..Effects::default() });
        completed(&h.start(&procedure(&doc(limit)), inputs(json!({}))).await);
        assert_eq!(agent.peak.load(std::sync::atomic::Ordering::SeqCst), peak);
    }
}

#[tokio::test]
async fn builtin_http_request_with_secrets_resolved_only_at_dispatch() {
    use ckp_engine::effects::HttpResponse;
    use ckp_engine::testing::{FnHttp, MapSecrets};
    let p = procedure(&with_config(
        json!({}),
        "call",
        json!({
            "call": {"type": "sequence", "steps": [{"step_id": "get", "action": "http_request", "method": "post",
                "url": "https://api.example/items", "query": {"q": "a b"}, "headers": {"Authorization": "Bearer {{secrets.token}}"},
                "body": {"n": "{{n}}"}, "output_variable": "resp"}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let http = FnHttp::new(|_| Ok(HttpResponse { status: 201, headers: vec![], body: json!({"id": 9}) }));
    let secrets = MapSecrets([("token".to_owned(), "s3cr3t".to_owned())].into_iter().collect());
    let h = Harness::new(Effects {
        http: Some(Arc::new(http.clone())),
        secrets: Some(Arc::new(secrets)),
        ..Effects::default()
    });
    let vars = completed(&h.start(&p, inputs(json!({"n": 2}))).await).clone();
    assert_eq!(vars["resp"]["status"], 201);
    assert_eq!(vars["resp"]["body"]["id"], 9);
    let req = &http.calls()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://api.example/items?q=a%20b");
    assert_eq!(req.body, Some(json!({"n": 2})));
    assert!(req.headers.contains(&("Authorization".to_owned(), "Bearer s3cr3t".to_owned())));
    assert!(req.headers.iter().any(|(k, _)| k == "Idempotency-Key"));
    let everything = serde_json::to_string(&h.events()).expect("json") + &serde_json::to_string(&vars).expect("json");
    assert!(!everything.contains("s3cr3t"), "the secret never reaches vars or events (A.3)");
}

#[tokio::test]
async fn http_error_status_is_an_http_error_matched_by_status() {
    use ckp_engine::effects::HttpResponse;
    use ckp_engine::testing::FnHttp;
    let p = procedure(&with_config(
        json!({}),
        "call",
        json!({
            "call": {"type": "sequence", "steps": [{"step_id": "get", "action": "http_request", "url": "https://x"}],
                     "error_handlers": [{"error_type": "http_error", "trigger": {"http_status_codes": [503]}, "action": "ignore", "fallback_node": "down"}],
                     "next_node": "end"},
            "down": {"type": "terminate", "outputs": {"path": "down"}},
            "end": {"type": "terminate", "outputs": {"path": "end"}}
        }),
    ));
    let http = FnHttp::new(|_| Ok(HttpResponse { status: 503, headers: vec![], body: Value::Null }));
    let h = Harness::new(Effects { http: Some(Arc::new(http)), ..Effects::default() });
    assert_eq!(completed(&h.start(&p, inputs(json!({}))).await)["path"], "down");
}

#[tokio::test]
async fn mcp_steps_call_tools() {
    use ckp_engine::testing::FnMcp;
    let p = procedure(&with_config(
        json!({}),
        "call",
        json!({
            "call": {"type": "sequence", "steps": [{"step_id": "e", "action": "mcp:everything/echo", "message": "hi {{who}}", "output_variable": "echo"}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let mcp =
        FnMcp(Box::new(|server, tool, args| Ok(json!({"server": server, "tool": tool, "text": args["message"]}))));
    let h = Harness::new(Effects { mcp: Some(Arc::new(mcp)), ..Effects::default() });
    let vars = completed(&h.start(&p, inputs(json!({"who": "you"}))).await).clone();
    assert_eq!(vars["echo"], json!({"server": "everything", "tool": "echo", "text": "hi you"}));
}

/// An MCP effect whose legacy fallback answers with the action it was given.
struct Fallback;

impl ckp_engine::effects::Mcp for Fallback {
    fn call_tool(&self, call: ckp_engine::effects::McpCall) -> BoxFuture<'_, Result<Value, StepError>> {
        let declared = call.declared.map(|d| d.transport_name());
        Box::pin(async move { Ok(json!({"tool": call.tool, "declared": declared})) })
    }

    fn fallback(&self, req: &AgentRequest) -> Option<BoxFuture<'_, Result<Value, StepError>>> {
        let answer = json!({"fallback": req.action, "params": req.params});
        Some(Box::pin(async move { Ok(answer) }))
    }
}

#[tokio::test]
async fn executors_resolve_agent_then_mcp_fallback_then_built_in() {
    use ckp_engine::effects::{HttpResponse, Mcp};
    use ckp_engine::testing::{FnAgents, FnHttp};
    let p = procedure(&with_config(
        json!({"mcp_servers": {"own": {"url": "http://127.0.0.1:9/mcp"}}}),
        "web",
        json!({
            "web": {"type": "sequence", "agent": "Web", "steps": [
                {"step_id": "c", "action": "click", "output_variable": "click"},
                {"step_id": "h", "action": "http_request", "url": "http://127.0.0.1:9/", "output_variable": "http"}
            ], "next_node": "plain"},
            "plain": {"type": "sequence", "steps": [
                {"step_id": "h", "action": "http_request", "url": "http://127.0.0.1:9/", "output_variable": "plain"},
                {"step_id": "m", "action": "mcp:own/echo", "output_variable": "mcp"}
            ], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let http = Arc::new(FnHttp::new(|_| Ok(HttpResponse { status: 200, headers: vec![], body: json!("built-in") })));
    let mcp: Arc<dyn Mcp> = Arc::new(Fallback);
    let unavailable = Arc::new(FnAgents::new(|_| Err(StepError::new(ErrorKind::AgentUnavailable, "no agent for web"))));
    let h = Harness::new(Effects {
        agents: Some(unavailable),
        http: Some(http.clone()),
        mcp: Some(mcp.clone()),
        ..Effects::default()
    });
    let vars = completed(&h.start(&p, inputs(json!({}))).await).clone();
    assert_eq!(vars["click"], json!({"fallback": "click", "params": {}}), "no agent: the MCP fallback");
    assert_eq!(vars["http"]["fallback"], "http_request", "the fallback comes before the built-in executors");
    assert_eq!(vars["plain"]["body"], "built-in", "no channel: no fallback");
    assert_eq!(vars["mcp"], json!({"tool": "echo", "declared": "http"}), "the procedure's declaration is passed");

    let agents = Arc::new(FnAgents::new(|req| Ok(json!({"agent": req.action}))));
    let h = Harness::new(Effects { agents: Some(agents), http: Some(http), mcp: Some(mcp), ..Effects::default() });
    let vars = completed(&h.start(&p, inputs(json!({}))).await).clone();
    assert_eq!(vars["click"], json!({"agent": "click"}), "an agent wins over the fallback");
}

#[tokio::test]
async fn llm_orchestration_and_output_mappings() {
    use ckp_engine::effects::LlmResponse;
    use ckp_engine::testing::FnLlm;
    let p = procedure(&with_config(
        json!({}),
        "pick",
        json!({
            "pick": {"type": "llm_action", "prompt": "route", "orchestration_mode": true, "branches": ["a", "b"],
                     "outputs": {"score": "json_extract: detail.score", "code": "regex: code=(\\d+)"}},
            "a": {"type": "terminate", "outputs": {"path": "a"}},
            "b": {"type": "terminate", "outputs": {"path": "b"}}
        }),
    ));
    let llm = FnLlm::new(|_| {
        Ok(LlmResponse {
            text: r#"{"_next_node": "b", "detail": {"score": 0.7}, "note": "code=42"}"#.into(),
            model: "gpt-4o".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
        })
    });
    let h = Harness::new(Effects { llm: Some(Arc::new(llm.clone())), ..Effects::default() });
    let vars = completed(&h.start(&p, inputs(json!({}))).await).clone();
    assert_eq!(vars["path"], "b");
    assert_eq!(vars["score"], 0.7);
    assert_eq!(vars["code"], "42");
    let req = &llm.calls()[0];
    assert!(req.json_mode, "orchestration forces JSON mode");
    assert!(
        req.system_prompt.as_deref().unwrap_or("").contains(r#""_next_node" whose value is exactly one of: ["a","b"]"#)
    );
}

#[tokio::test]
async fn wait_strategy_any_takes_the_first_success() {
    let p = procedure(&with_config(
        json!({}),
        "race",
        json!({
            "race": {"type": "parallel", "wait_strategy": "any", "branches": [
                {"branch_id": "slow", "start_node": "slow"}, {"branch_id": "fast", "start_node": "fast"}
            ], "next_node": "end"},
            "slow": {"type": "sequence", "steps": [{"step_id": "w", "action": "wait", "duration_ms": 300}, {"step_id": "s", "action": "set_variable", "variable": "winner", "value": "slow"}], "next_node": "end"},
            "fast": {"type": "sequence", "steps": [{"step_id": "s", "action": "set_variable", "variable": "winner", "value": "fast"}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    let vars = completed(&h.start(&p, inputs(json!({}))).await).clone();
    assert_eq!(vars["winner"], "fast");
    assert!(vars["parallel_results"]["branches"].get("slow").is_none());
}

#[tokio::test]
async fn loop_max_iterations_and_terminate_error_actions() {
    let p = procedure(&with_config(
        json!({}),
        "each",
        json!({
            "each": {"type": "loop", "iterator": "xs", "iterator_variable": "x", "max_iterations": 2, "collect_variable": "done", "body_node": "noop", "next_node": "end"},
            "noop": {"type": "processing", "operations": [{"action": "log", "message": "{{x}}"}], "next_node": "each"},
            "end": {"type": "terminate", "status": "failed", "error_actions": [{"action": "set_variable", "variable": "cleaned", "value": true}]}
        }),
    ));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({"xs": [1, 2, 3, 4]}))).await;
    assert!(matches!(out, RunOutcome::Failed { .. }));
    let vars = h.journal.checkpoint("run-1").and_then(|c| c.outputs).expect("outputs");
    assert_eq!(vars["done"], json!([1, 2]));
    assert_eq!(vars["cleaned"], true);
}

#[tokio::test]
async fn an_unknown_checkpoint_format_is_refused() {
    use ckp_engine::journal::{Commit, Journal};
    let p = procedure(&with_config(json!({}), "end", json!({"end": {"type": "terminate"}})));
    let h = Harness::new(Effects::default());
    let mut cp = ckp_engine::Engine::new_checkpoint(&p, "run-1", &serde_json::Map::new());
    cp.format = 99;
    h.journal.commit("run-1", Commit { events: vec![], steps: vec![], checkpoint: cp }).await.expect("commits");
    let err = h.engine().resume(p, "run-1").await.expect_err("refused");
    assert!(err.to_string().contains("checkpoint format 99 is not supported"), "{err}");
}

#[tokio::test]
async fn resuming_with_another_procedure_is_refused() {
    let p = procedure(&with_config(
        json!({}),
        "ask",
        json!({
            "ask": {"type": "human_approval", "prompt": "ok?", "on_approve": "end", "on_reject": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let other = procedure(
        &json!({"procedure_id": "other", "version": "1", "workflow_graph": {"start_node": "end", "nodes": {"end": {"type": "terminate"}}}}),
    );
    let h = Harness::new(Effects::default());
    h.start(&p, inputs(json!({}))).await;
    let err = h.engine().resume(other, "run-1").await.expect_err("refused");
    assert!(err.to_string().contains("belongs to procedure f version 1, not other version 1"), "{err}");
}

#[tokio::test]
async fn secret_values_echoed_by_an_executor_are_redacted_before_anything_is_kept() {
    use ckp_engine::effects::HttpResponse;
    use ckp_engine::error::{ErrorKind, StepError};
    use ckp_engine::testing::{FnHttp, MapSecrets};
    const VALUE: &str = "v3ry-s3cret-value";
    let doc = |url: &str| {
        with_config(
            json!({"secrets_config": {"provider": "env", "secret_references": {"tok": {"key": "api/token"}}}}),
            "call",
            json!({
                "call": {"type": "sequence", "steps": [{"step_id": "get", "action": "http_request",
                    "url": url, "headers": {"X-Key": "{{secrets.tok}}"}, "output_variable": "resp"}], "next_node": "end"},
                "end": {"type": "terminate"}
            }),
        )
    };
    // The executor echoes what it was sent: in the body, in a header name, and in a failure message.
    let http = FnHttp::new(|req| {
        let key = req.headers.iter().find(|(k, _)| k == "X-Key").map(|(_, v)| v.clone()).unwrap_or_default();
        if req.url.contains("fail") {
            return Err(StepError::new(ErrorKind::HttpError, format!("upstream rejected key {key} at {}", req.url)));
        }
        Ok(HttpResponse { status: 200, headers: vec![(key.clone(), "h".into())], body: json!({"echo": key, "n": 1}) })
    });
    let secrets = MapSecrets([("api/token".to_owned(), VALUE.to_owned())].into_iter().collect());
    let effects =
        Effects { http: Some(Arc::new(http.clone())), secrets: Some(Arc::new(secrets)), ..Effects::default() };

    let h = Harness::new(effects.clone());
    let vars = completed(&h.start(&procedure(&doc("https://api.example/ok")), inputs(json!({}))).await).clone();
    assert_eq!(http.calls()[0].headers[0], ("X-Key".to_owned(), VALUE.to_owned()), "the alias's key was fetched");
    assert_eq!(vars["resp"]["body"], json!({"echo": "***", "n": 1}));
    assert_eq!(vars["resp"]["headers"]["***"], "h");
    let kept = serde_json::to_string(&h.events()).expect("json") + &format!("{:?}", h.journal.checkpoint("run-1"));
    assert!(!kept.contains(VALUE), "{kept}");

    let h = Harness::new(effects);
    let outcome = h.start(&procedure(&doc("https://api.example/fail?k={{secrets.tok}}")), inputs(json!({}))).await;
    let RunOutcome::Failed { error } = outcome else { panic!("expected a failure, got {outcome:?}") };
    assert!(error.message.contains("upstream rejected key *** at https://api.example/fail?k=***"), "{}", error.message);
    let kept = serde_json::to_string(&h.events()).expect("json") + &format!("{:?}", h.journal.checkpoint("run-1"));
    assert!(!kept.contains(VALUE), "{kept}");
}

/// Secrets that also issue grant tokens: `grant.<run>.<name>.<unix seconds>`.
struct Granting(ckp_engine::testing::MapSecrets);

impl ckp_engine::effects::Secrets for Granting {
    fn get<'a>(
        &'a self,
        scope: ckp_engine::effects::SecretScope<'a>,
        name: &'a str,
    ) -> ckp_engine::effects::BoxFuture<'a, Result<Option<String>, ckp_engine::error::StepError>> {
        self.0.get(scope, name)
    }

    fn grant(
        &self,
        scope: ckp_engine::effects::SecretScope<'_>,
        name: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, ckp_engine::error::StepError> {
        Ok(format!("grant.{}.{name}.{}", scope.run_id, now.timestamp()))
    }
}

#[tokio::test]
async fn grant_tokens_are_rendered_at_dispatch_and_masked_with_the_values_they_grant() {
    use ckp_engine::effects::HttpResponse;
    use ckp_engine::testing::{FnHttp, MapSecrets};
    const VALUE: &str = "v3ry-s3cret-value";
    let p = procedure(&with_config(
        json!({"secrets_config": {"provider": "env", "secret_references": {"tok": {"key": "api/token"}}}}),
        "call",
        json!({
            "call": {"type": "sequence", "steps": [{"step_id": "get", "action": "http_request", "url": "https://api.example",
                "headers": {"X-Grant": "{{secret_grants.tok}}"}, "body": {"g": "Grant {{secret_grants.tok}}"},
                "output_variable": "resp"}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    // The executor echoes the token, and the value it would obtain with it.
    let http = FnHttp::new(|req| {
        let grant = req.headers.iter().find(|(k, _)| k == "X-Grant").map(|(_, v)| v.clone()).unwrap_or_default();
        Ok(HttpResponse { status: 200, headers: vec![], body: json!({"grant": grant, "obtained": VALUE}) })
    });
    let values = MapSecrets([("api/token".to_owned(), VALUE.to_owned())].into_iter().collect());
    let h = Harness::new(Effects {
        http: Some(Arc::new(http.clone())),
        secrets: Some(Arc::new(Granting(values.clone()))),
        ..Effects::default()
    });
    let vars = completed(&h.start(&p, inputs(json!({}))).await).clone();
    let sent = &http.calls()[0];
    let token = sent.headers[0].1.clone();
    assert!(token.starts_with("grant.run-1.tok."), "a token for the run and the name, not the value: {token}");
    assert_eq!(sent.body, Some(json!({"g": format!("Grant {token}")})));
    assert_eq!(vars["resp"]["body"], json!({"grant": "***", "obtained": "***"}));
    let kept = serde_json::to_string(&h.events()).expect("json") + &format!("{:?}", h.journal.checkpoint("run-1"));
    assert!(!kept.contains(&token) && !kept.contains(VALUE), "{kept}");

    // A runner that issues no grants fails the step and says what to do.
    let h = Harness::new(Effects { http: Some(Arc::new(http)), secrets: Some(Arc::new(values)), ..Effects::default() });
    let outcome = h.start(&p, inputs(json!({}))).await;
    let RunOutcome::Failed { error } = outcome else { panic!("expected a failure, got {outcome:?}") };
    assert!(
        error.message.contains("`{{secret_grants.tok}}` needs a server that exchanges credential grants"),
        "{}",
        error.message
    );
}

/// A cycle between two top-level nodes that never exits fails at the run's node-entry budget: the procedure's
/// when lower than the engine's, else the engine's.
#[tokio::test]
async fn a_cycle_that_never_exits_fails_at_the_node_entry_budget() {
    let cycle = |config: Value| {
        procedure(&with_config(
            config,
            "a",
            json!({
                "a": {"type": "processing", "operations": [{"action": "set_variable", "variable": "x", "value": 1}], "next_node": "b"},
                "b": {"type": "logic", "rules": [{"condition": "x == 2", "next_node": "end"}], "default_next_node": "a"},
                "end": {"type": "terminate"}
            }),
        ))
    };
    let h = Harness::new(Effects::default());
    let out = h.start(&cycle(json!({"max_node_entries": 40})), inputs(json!({}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert!(error.message.contains("entered 40 nodes") && error.message.contains("max_node_entries"), "{error:?}");
    let entered = h.events().iter().filter(|e| e.event_type == "node_started").count();
    assert_eq!(entered, 40, "the 41st entry fails before it starts");

    // The engine's budget caps a procedure that asks for more.
    let config = EngineConfig { max_node_entries: 10, ..EngineConfig::default() };
    let h = Harness::new(Effects::default());
    let p = cycle(json!({"max_node_entries": 1000}));
    let out = h.engine().with_config(config).start(p, "run-1", inputs(json!({}))).await.expect("runs");
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert!(error.message.contains("entered 10 nodes"), "{error:?}");
}

/// The events budget: a run that keeps recording events fails at the node entered past `max_events_per_run`, with
/// an error naming the setting, and records no more than the budget plus the failure's own events.
#[tokio::test]
async fn a_run_fails_at_the_events_budget() {
    let p = procedure(&with_config(
        json!({}),
        "a",
        json!({
            "a": {"type": "processing", "operations": [{"action": "set_variable", "variable": "x", "value": 1}], "next_node": "b"},
            "b": {"type": "logic", "rules": [{"condition": "x == 2", "next_node": "end"}], "default_next_node": "a"},
            "end": {"type": "terminate"}
        }),
    ));
    let config = EngineConfig { max_events_per_run: 50, max_buffered_events: 8, ..EngineConfig::default() };
    let h = Harness::new(Effects::default());
    let out = h.engine().with_config(config).start(p, "run-1", inputs(json!({}))).await.expect("runs");
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert!(error.message.contains("max_events_per_run (50)"), "{error:?}");
    let events = h.events().len();
    assert!((50..=60).contains(&events), "{events} events");
    assert_eq!(h.journal.checkpoint("run-1").map(|c| c.events), Some(events as u64), "the checkpoint counts them");
}

/// A step whose result would make a variable bigger than `max_variable_bytes` fails with an error naming the
/// variable and the cap, and the variable keeps its previous value: `set_variable`, `append_to_array`, a step's
/// `output_variable`, a transform.
#[tokio::test]
async fn a_variable_over_the_cap_fails_the_step_and_keeps_the_old_value() {
    let config = || EngineConfig { max_variable_bytes: 1_000, ..EngineConfig::default() };
    let run = |nodes: Value, vars: Value| {
        let p = procedure(&with_config(json!({}), "a", nodes));
        async move {
            let h = Harness::new(Effects::default());
            let out = h.engine().with_config(config()).start(p, "run-1", inputs(vars)).await.expect("runs");
            let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
            let cp = h.journal.checkpoint("run-1").expect("stored");
            (error, cp.vars)
        }
    };
    // Doubling a string with set_variable: it stops at the first value over 1,000 bytes.
    let double = json!({"step_id": "d", "action": "set_variable", "variable": "x", "value": "{{x}}{{x}}"});
    let (error, vars) = run(
        json!({"a": {"type": "sequence", "steps": vec![double; 12], "next_node": "end"}, "end": {"type": "terminate"}}),
        json!({"x": "0123456789"}),
    )
    .await;
    assert_eq!(error.kind, ErrorKind::ValidationError);
    assert!(
        error.message.contains("variable `x` would take 1282 bytes")
            && error.message.contains("max_variable_bytes (1000 bytes)"),
        "{error:?}"
    );
    assert_eq!(vars["x"].as_str().map(str::len), Some(640), "x keeps the last value under the cap");

    // append_to_array leaves the list as it was.
    let (error, vars) = run(
        json!({
            "a": {"type": "loop", "iterator": "items", "iterator_variable": "it", "body_node": "b", "next_node": "end"},
            "b": {"type": "processing", "operations": [{"action": "append_to_array", "array": "acc", "value": "{{it}}"}], "next_node": "a"},
            "end": {"type": "terminate"}
        }),
        json!({"items": vec!["x".repeat(90); 20]}),
    )
    .await;
    assert!(error.message.contains("variable `acc` would take"), "{error:?}");
    let acc = vars["acc"].as_array().map(Vec::len).unwrap_or_default();
    assert!((9..=10).contains(&acc), "the list kept its elements under the cap: {acc}");

    // A step's output_variable and a transform's output.
    let (error, _) = run(
        json!({"a": {"type": "sequence", "steps": [{"step_id": "f", "action": "format_string", "template": "{{s}}{{s}}", "output_variable": "big"}], "next_node": "end"}, "end": {"type": "terminate"}}),
        json!({"s": "y".repeat(600)}),
    )
    .await;
    assert!(error.message.contains("variable `big` would take 1202 bytes"), "{error:?}");
    assert_eq!(error.step_id.as_deref(), Some("f"));
    let (error, vars) = run(
        json!({"a": {"type": "transform", "transformations": [{"type": "map", "source_variable": "l", "expression": "{{item}}", "output_variable": "m"}], "next_node": "end"}, "end": {"type": "terminate"}}),
        json!({"l": vec!["z".repeat(100); 12]}),
    )
    .await;
    assert!(error.message.contains("variable `m` would take"), "{error:?}");
    assert!(vars.get("m").is_none());
}

/// The run's variables together are capped (`max_state_bytes`): after the node that takes them over the cap the
/// run fails with an error naming the largest variables.
#[tokio::test]
async fn the_run_state_is_capped() {
    let set = |name: &str| json!({"step_id": name, "action": "set_variable", "variable": name, "value": "{{s}}"});
    let p = procedure(&with_config(
        json!({}),
        "a",
        json!({
            "a": {"type": "sequence", "steps": [set("one"), set("two")], "next_node": "b"},
            "b": {"type": "sequence", "steps": [set("three"), set("four")], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let config = EngineConfig { max_state_bytes: 2_000, max_variable_bytes: 1_000, ..EngineConfig::default() };
    let h = Harness::new(Effects::default());
    let out =
        h.engine().with_config(config).start(p, "run-1", inputs(json!({"s": "q".repeat(400)}))).await.expect("runs");
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.node_id.as_deref(), Some("b"), "a (three copies) fits; b (five) does not");
    assert!(error.message.contains("over the server's max_state_bytes (2000 bytes)"), "{error:?}");
    assert!(error.message.contains("the largest: four (402 bytes), one (402 bytes), s (402 bytes)"), "{error:?}");
}
