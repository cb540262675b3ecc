//! Node types end to end, with golden event traces.

use std::sync::Arc;

use ckp_engine::effects::Effects;
use ckp_engine::testing::FnAgents;
use ckp_engine::{Decision, ErrorKind, RunOutcome, StepError};
use serde_json::{Value, json};

use crate::support::{Harness, completed, echo_effects, fixture, inputs, procedure};

fn doc(start: &str, nodes: Value) -> Value {
    json!({"procedure_id": "t", "version": "1", "workflow_graph": {"start_node": start, "nodes": nodes}})
}

#[tokio::test]
async fn ticket_lookup_fixture_completes_with_langorch_events() {
    let p = fixture("ticket_lookup.ckp.json");
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({"ticket_id": 7}))).await;
    let vars = completed(&out);
    assert_eq!(vars["ticket"], json!({"id": 7, "subject": "Ticket 7", "queue": "fixtures"}));
    assert_eq!(vars["result"], "ok");
    assert_eq!(vars["report"], vars["ticket"]);
    insta::assert_snapshot!("ticket_lookup_trace", h.trace());
}

#[tokio::test]
async fn article_review_fixture_pauses_for_approval_and_resumes() {
    let p = fixture("article_review.ckp.json");
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({"article_id": 5, "review_depth": "deep"}))).await;
    let RunOutcome::WaitingApproval(pending) = out else { panic!("expected a pause, got {out:?}") };
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].node_id, "editor_gate");
    assert_eq!(pending[0].prompt, "Publish article 5?", "approval prompts are rendered (A.2.8)");
    assert_eq!(pending[0].context_data["article_id"], 5);
    let decision = Decision { key: None, value: json!("approve"), decided_by: Some("ann".into()), comment: None };
    let out = h.engine().decide(p.clone(), "run-1", decision).await.expect("decides");
    let vars = completed(&out);
    assert_eq!(vars["publication"], json!({"status": "published", "article_id": 5}));
    assert_eq!(vars["spelling"], "clean");
    assert_eq!(vars["keywords"], json!(["orchestration", "durability"]));
    insta::assert_snapshot!("article_approve_trace", h.trace());
}

#[tokio::test]
async fn article_review_fixture_rejected_ends_failed_with_outputs() {
    let p = fixture("article_review.ckp.json");
    let h = Harness::new(Effects::default());
    h.start(&p, inputs(json!({"article_id": 5}))).await;
    let decision = Decision { key: None, value: json!("reject"), decided_by: None, comment: None };
    let out = h.engine().decide(p.clone(), "run-1", decision).await.expect("decides");
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.message, "Execution terminated with failed status");
    let cp = h.journal.checkpoint("run-1").expect("checkpoint");
    assert_eq!(cp.outputs.expect("outputs kept")["reason"], "not_approved");
}

#[tokio::test]
async fn invalid_inputs_fail_the_run_with_a_message() {
    let p = fixture("ticket_lookup.ckp.json");
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({"ticket_id": 501}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert!(error.message.contains("ticket_id: Must be at most 500"), "{}", error.message);
    let types: Vec<String> = h.events().into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["run_created", "error", "run_failed"]);
}

#[tokio::test]
async fn external_steps_dispatch_to_agents_with_idempotency_keys() {
    let p = procedure(&doc(
        "fetch",
        json!({
            "fetch": {"type": "sequence", "agent": "WEB", "steps": [
                {"step_id": "nav", "action": "navigate", "url": "https://x/{{id}}", "output_variable": "page",
                 "idempotency_key": "nav-{{id}}"}
            ], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let (effects, agents, _) = echo_effects();
    let h = Harness::new(effects);
    let out = h.start(&p, inputs(json!({"id": 3}))).await;
    assert_eq!(completed(&out)["page"]["params"], json!({"url": "https://x/3"}));
    let calls = agents.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].channel, "web", "channels match case-insensitively (A.2.14)");
    assert_eq!(calls[0].idempotency_key, "nav-3");
    assert_eq!(h.journal.commit_count("run-1"), 4, "created, intent, result, end");
}

#[tokio::test]
async fn retries_then_handler_fallback() {
    let p = procedure(&doc(
        "work",
        json!({
            "work": {"type": "sequence", "agent": "API", "steps": [
                {"step_id": "call", "action": "post", "retry_on_failure": true, "retry_config": {"max_retries": 2, "retry_delay_ms": 1}}
            ], "error_handlers": [{"error_type": "agent_error", "action": "ignore", "fallback_node": "fallback"}], "next_node": "end"},
            "fallback": {"type": "terminate", "status": "failed", "outputs": {"why": "fallback"}},
            "end": {"type": "terminate"}
        }),
    ));
    let agents = FnAgents::new(|_| Err(StepError::new(ErrorKind::AgentError, "boom")));
    let h = Harness::new(Effects { agents: Some(Arc::new(agents.clone())), ..Effects::default() });
    let out = h.start(&p, inputs(json!({}))).await;
    assert!(matches!(out, RunOutcome::Failed { .. }), "{out:?}");
    assert_eq!(agents.calls().len(), 3, "one attempt and two retries");
    let cp = h.journal.checkpoint("run-1").expect("checkpoint");
    assert_eq!(cp.outputs.expect("outputs")["why"], "fallback", "the handler's fallback_node ran (A.2.3)");
    insta::assert_snapshot!("retry_fallback_trace", h.trace());
}

#[tokio::test]
async fn max_retries_zero_means_no_retry() {
    let p = procedure(&json!({
        "procedure_id": "t", "version": "1", "global_config": {"max_retries": 0},
        "workflow_graph": {"start_node": "work", "nodes": {
            "work": {"type": "sequence", "agent": "API", "steps": [{"step_id": "call", "action": "post", "retry_on_failure": true}]}
        }}
    }));
    let agents = FnAgents::new(|_| Err(StepError::new(ErrorKind::AgentError, "boom")));
    let h = Harness::new(Effects { agents: Some(Arc::new(agents.clone())), ..Effects::default() });
    let out = h.start(&p, inputs(json!({}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.kind, ErrorKind::AgentError);
    assert_eq!(error.step_id.as_deref(), Some("call"));
    assert_eq!(agents.calls().len(), 1);
}

#[tokio::test]
async fn loop_collects_and_nested_loops_are_independent() {
    let p = procedure(&doc(
        "outer",
        json!({
            "outer": {"type": "loop", "iterator": "rows", "iterator_variable": "row", "index_variable": "i",
                      "collect_variable": "done_rows", "body_node": "inner", "next_node": "end"},
            "inner": {"type": "loop", "iterator": "cols", "iterator_variable": "col", "index_variable": "j",
                      "collect_variable": "done_cols", "body_node": "cell", "next_node": "outer"},
            "cell": {"type": "processing", "operations": [
                {"action": "append_to_array", "array": "cells", "value": "{{row}}{{col}}"}
            ], "next_node": "inner"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({"rows": ["a", "b"], "cols": [1, 2, 3]}))).await;
    let vars = completed(&out);
    assert_eq!(vars["cells"], json!(["a1", "a2", "a3", "b1", "b2", "b3"]), "inner loop starts at 0 each time (B §8.7)");
    assert_eq!(vars["done_cols"], json!([1, 2, 3]), "the inner collection does not grow across outer iterations");
    assert_eq!(vars["done_rows"], json!(["a", "b"]));
    let iterations = h.events().iter().filter(|e| e.event_type == "loop_iteration").count();
    assert_eq!(iterations, 8);
    let cell_events =
        h.events().iter().filter(|e| e.event_type == "node_started" && e.node_id.as_deref() == Some("cell")).count();
    assert_eq!(cell_events, 6, "nodes inside loop bodies emit node events (A.2.7)");
    insta::assert_snapshot!("nested_loops_trace", h.trace());
}

#[tokio::test]
async fn parallel_branches_merge_and_fail_policy() {
    let nodes = |failure: &str| {
        json!({
            "split": {"type": "parallel", "branches": [
                {"branch_id": "a", "start_node": "set_a"}, {"branch_id": "b", "start_node": "set_b"}
            ], "branch_failure": failure, "next_node": "end"},
            "set_a": {"type": "processing", "operations": [{"action": "set_variable", "variable": "x", "value": "a"}], "next_node": "end"},
            "set_b": {"type": "verification", "checks": [{"id": "c", "condition": "{{missing}} == 1", "message": "b broke"}], "next_node": "end"},
            "end": {"type": "terminate"}
        })
    };
    let h = Harness::new(Effects::default());
    let out = h.start(&procedure(&doc("split", nodes("continue"))), inputs(json!({}))).await;
    let vars = completed(&out);
    assert_eq!(vars["x"], "a");
    assert_eq!(vars["parallel_results"]["errors"]["b"]["message"], "b broke");
    insta::assert_snapshot!("parallel_continue_trace", h.trace());
    let h = Harness::new(Effects::default());
    let out = h.start(&procedure(&doc("split", nodes("fail"))), inputs(json!({}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.message, "Parallel branch 'b' failed: b broke");
    assert!(
        !h.events().iter().any(|e| e.event_type == "node_started" && e.node_id.as_deref() == Some("end")),
        "an error stops the run (A.2.3)"
    );
}

#[tokio::test]
async fn llm_outputs_usage_and_budget() {
    let p = procedure(&json!({
        "procedure_id": "t", "version": "1", "global_config": {"max_cost_usd": 0.001},
        "workflow_graph": {"start_node": "ask", "nodes": {
            "ask": {"type": "llm_action", "prompt": "Answer about {{topic}}", "model": "gpt-4o", "json_mode": true,
                    "outputs": {"answer": "json:answer", "raw": "text"}, "next_node": "again"},
            "again": {"type": "llm_action", "prompt": "again", "next_node": "end"},
            "end": {"type": "terminate"}
        }}
    }));
    let (effects, _, llm) = echo_effects();
    let h = Harness::new(effects);
    let out = h.start(&p, inputs(json!({"topic": "life"}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.kind, ErrorKind::BudgetExceeded);
    let calls = llm.calls();
    assert_eq!(calls[0].prompt, "Answer about life");
    assert!(calls[0].json_mode);
    let usage: Vec<_> = h.events().into_iter().filter(|e| e.event_type == "llm_usage").collect();
    assert_eq!(usage.len(), 2);
    assert_eq!(usage[0].payload["prompt_tokens"], 100, "token counts are readable, not redacted (B §8.13)");
    let cp = h.journal.checkpoint("run-1").expect("checkpoint");
    assert_eq!(cp.vars["answer"], 42);
    insta::assert_snapshot!("llm_budget_trace", h.trace());
}

#[tokio::test]
async fn global_on_failure_recovers_to_completed() {
    let p = procedure(&json!({
        "procedure_id": "t", "version": "1", "global_config": {"on_failure": "recover"},
        "workflow_graph": {"start_node": "check", "nodes": {
            "check": {"type": "verification", "checks": [{"id": "c", "condition": "false", "message": "nope"}], "next_node": "end"},
            "recover": {"type": "processing", "operations": [{"action": "set_variable", "variable": "seen", "value": "{{last_error.message}}"}], "next_node": "end"},
            "end": {"type": "terminate", "status": "success"}
        }}
    }));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({}))).await;
    let vars = completed(&out);
    assert_eq!(vars["seen"], "nope");
    let done = h.events().into_iter().find(|e| e.event_type == "run_completed").expect("run_completed");
    assert_eq!(done.payload["recovered_via"], "recover", "A.2.4");
}

#[tokio::test]
async fn approvals_in_a_loop_ask_each_visit() {
    let p = procedure(&doc(
        "each",
        json!({
            "each": {"type": "loop", "iterator": "items", "iterator_variable": "item", "body_node": "ask", "next_node": "end"},
            "ask": {"type": "human_approval", "prompt": "ok {{item}}?", "on_approve": "mark", "on_reject": "each"},
            "mark": {"type": "processing", "operations": [{"action": "append_to_array", "array": "approved", "value": "{{item}}"}], "next_node": "each"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    let mut out = h.start(&p, inputs(json!({"items": ["x", "y", "z"]}))).await;
    let mut prompts = Vec::new();
    for answer in ["approve", "reject", "approve"] {
        let RunOutcome::WaitingApproval(pending) = out else { panic!("{out:?}") };
        prompts.push(pending[0].prompt.clone());
        let d = ckp_engine::Decision { key: None, value: json!(answer), decided_by: None, comment: None };
        out = h.engine().decide(p.clone(), "run-1", d).await.expect("decides");
    }
    assert_eq!(prompts, ["ok x?", "ok y?", "ok z?"]);
    assert_eq!(completed(&out)["approved"], json!(["x", "z"]));
    let started: Vec<_> = h
        .events()
        .into_iter()
        .filter(|e| e.event_type == "node_started" && e.node_id.as_deref() == Some("each"))
        .collect();
    assert_eq!(started.len(), 1, "resuming inside the loop does not repeat committed events");
    insta::assert_snapshot!("approval_in_loop_trace", h.trace());
}

#[tokio::test]
async fn approvals_in_parallel_branches_all_must_decide() {
    let p = procedure(&doc(
        "split",
        json!({
            "split": {"type": "parallel", "branches": [
                {"branch_id": "legal", "start_node": "ask_legal"}, {"branch_id": "sec", "start_node": "ask_sec"}
            ], "next_node": "end"},
            "ask_legal": {"type": "human_approval", "prompt": "legal?", "on_approve": "ok_legal", "on_reject": "end"},
            "ok_legal": {"type": "processing", "operations": [{"action": "set_variable", "variable": "legal", "value": true}], "next_node": "end"},
            "ask_sec": {"type": "human_approval", "prompt": "security?", "on_approve": "ok_sec", "on_reject": "end"},
            "ok_sec": {"type": "processing", "operations": [{"action": "set_variable", "variable": "sec", "value": true}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({}))).await;
    let RunOutcome::WaitingApproval(pending) = out else { panic!("{out:?}") };
    assert_eq!(pending.len(), 2);
    let key = |i: usize| Some(pending[i].key.clone());
    let d = ckp_engine::Decision { key: key(1), value: json!("approved"), decided_by: None, comment: None };
    let out = h.engine().decide(p.clone(), "run-1", d).await.expect("decides");
    assert!(matches!(&out, RunOutcome::WaitingApproval(rest) if rest.len() == 1), "{out:?}");
    let d = ckp_engine::Decision { key: key(0), value: json!("approved"), decided_by: None, comment: None };
    let out = h.engine().decide(p.clone(), "run-1", d).await.expect("decides");
    let vars = completed(&out);
    assert_eq!((vars["legal"].clone(), vars["sec"].clone()), (Value::Bool(true), Value::Bool(true)));
}
