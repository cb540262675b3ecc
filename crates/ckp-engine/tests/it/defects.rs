//! LangOrch's defects (langorch.md B §8), each shown fixed as CKP.md's numbered decisions say.

use std::sync::Arc;

use ckp_engine::effects::Effects;
use ckp_engine::testing::FnAgents;
use ckp_engine::{ErrorKind, RunOutcome, StepError};
use serde_json::json;

use crate::support::{Harness, completed, inputs, procedure};

fn doc(start: &str, nodes: serde_json::Value) -> serde_json::Value {
    json!({"procedure_id": "d", "version": "1", "workflow_graph": {"start_node": start, "nodes": nodes}})
}

/// B §8.1: a failing run executes once; no node or step runs twice.
#[tokio::test]
async fn b8_1_a_failure_does_not_rerun_the_graph() {
    let agents = FnAgents::new(|_| Err(StepError::new(ErrorKind::AgentError, "down")));
    let p = procedure(&doc(
        "a",
        json!({"a": {"type": "sequence", "agent": "API", "steps": [{"step_id": "x", "action": "post"}]}}),
    ));
    let h = Harness::new(Effects { agents: Some(Arc::new(agents.clone())), ..Effects::default() });
    let out = h.start(&p, inputs(json!({}))).await;
    assert!(matches!(out, RunOutcome::Failed { .. }));
    assert_eq!(agents.calls().len(), 1);
    assert_eq!(h.events().iter().filter(|e| e.event_type == "node_started").count(), 1);
}

/// B §8.2: loop iterations execute their steps again (the cache is per visit).
#[tokio::test]
async fn b8_2_each_loop_iteration_executes_its_steps() {
    let agents = FnAgents::new(|req| Ok(json!(req.params["n"])));
    let p = procedure(&doc(
        "each",
        json!({
            "each": {"type": "loop", "iterator": "ns", "iterator_variable": "n", "body_node": "call", "next_node": "end"},
            "call": {"type": "sequence", "agent": "API", "steps": [
                {"step_id": "double", "action": "double", "n": "{{n}}", "output_variable": "last"},
                {"step_id": "keep", "action": "append_to_array", "array": "seen", "value": "{{last}}"}
            ], "next_node": "each"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects { agents: Some(Arc::new(agents.clone())), ..Effects::default() });
    let out = h.start(&p, inputs(json!({"ns": [1, 2, 3]}))).await;
    assert_eq!(agents.calls().len(), 3);
    assert_eq!(completed(&out)["seen"], json!([1, 2, 3]));
}

/// B §8.3: an error stops the run where it happens; later nodes (terminate included) do not run.
#[tokio::test]
async fn b8_3_an_error_stops_traversal() {
    let p = procedure(&doc(
        "check",
        json!({
            "check": {"type": "verification", "checks": [{"id": "c", "condition": "{{x}} > 1", "message": "x too small"}], "next_node": "after"},
            "after": {"type": "processing", "operations": [{"action": "set_variable", "variable": "ran", "value": true}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({"x": 0}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.message, "x too small", "error_message carries the reason (A.2.13)");
    assert!(!h.events().iter().any(|e| e.node_id.as_deref() == Some("after")));
}

/// B §8.8: continue_on_error covers step exceptions.
#[tokio::test]
async fn b8_8_continue_on_error_skips_failing_iterations() {
    let agents = FnAgents::new(|req| {
        if req.params["n"] == 2 { Err(StepError::new(ErrorKind::AgentError, "bad 2")) } else { Ok(json!("ok")) }
    });
    let p = procedure(&doc(
        "each",
        json!({
            "each": {"type": "loop", "iterator": "ns", "iterator_variable": "n", "collect_variable": "ok", "continue_on_error": true, "body_node": "call", "next_node": "end"},
            "call": {"type": "sequence", "agent": "API", "steps": [{"step_id": "c", "action": "check", "n": "{{n}}"}], "next_node": "each"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects { agents: Some(Arc::new(agents)), ..Effects::default() });
    let out = h.start(&p, inputs(json!({"ns": [1, 2, 3]}))).await;
    assert_eq!(completed(&out)["ok"], json!([1, 3]));
}

/// B §8.9: a select_option choice goes to on_approve with the value in vars.
#[tokio::test]
async fn b8_9_select_option_routes_to_on_approve() {
    let p = procedure(&doc(
        "pick",
        json!({
            "pick": {"type": "human_approval", "prompt": "which?", "decision_type": "select_option", "options": ["red", "blue"],
                     "on_approve": "end", "on_reject": "rejected"},
            "rejected": {"type": "terminate", "status": "failed"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    h.start(&p, inputs(json!({}))).await;
    let d = ckp_engine::Decision { key: None, value: json!("blue"), decided_by: None, comment: None };
    let out = h.engine().decide(p.clone(), "run-1", d).await.expect("decides");
    let vars = completed(&out);
    assert_eq!(vars["pick_decision"], "blue");
    assert_eq!(vars["__approval_decisions"]["pick"], "blue");
}

/// B §8.10/11: conditions see values; templates keep types.
#[tokio::test]
async fn b8_10_conditions_on_values_and_typed_templates() {
    let p = procedure(&doc(
        "set",
        json!({
            "set": {"type": "processing", "operations": [{"action": "set_variable", "variable": "copy", "value": "{{items}}"}], "next_node": "route"},
            "route": {"type": "logic", "rules": [{"condition": "{{status}} != 'x'", "next_node": "yes"}], "default_next_node": "no"},
            "yes": {"type": "terminate", "outputs": {"branch": "yes"}},
            "no": {"type": "terminate", "outputs": {"branch": "no"}}
        }),
    ));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({"status": "log in failed", "items": [1, 2]}))).await;
    let vars = completed(&out);
    assert_eq!(vars["branch"], "yes");
    assert_eq!(vars["copy"], json!([1, 2]));
}

/// B §8.12: internal actions do what their names say; validations are evaluated.
#[tokio::test]
async fn b8_12_internal_actions_and_validations_work() {
    let p = procedure(&doc(
        "work",
        json!({
            "work": {"type": "sequence", "steps": [
                {"step_id": "p", "action": "parse_json", "source": "{\"a\": 3}", "output_variable": "parsed"},
                {"step_id": "c", "action": "calculate", "expression": "{{parsed.a}} * 2 + 1", "output_variable": "total"}
            ], "validations": [{"id": "v", "check": "custom", "condition": "{{total}} == 7", "on_failure": "fail_workflow"}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({}))).await;
    assert_eq!(completed(&out)["total"], 7);
}

/// B §8.17: a failed terminate keeps its outputs.
#[tokio::test]
async fn b8_17_failed_terminate_keeps_outputs() {
    let p = procedure(&doc(
        "end",
        json!({"end": {"type": "terminate", "status": "failed", "outputs": {"why": "because"}}}),
    ));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({}))).await;
    assert!(matches!(out, RunOutcome::Failed { .. }));
    assert_eq!(h.journal.checkpoint("run-1").and_then(|c| c.outputs).expect("outputs")["why"], "because");
}

/// B §8.18: checkpoint_saved once per is_checkpoint node; no duplicate step_completed.
#[tokio::test]
async fn b8_18_checkpoint_saved_once() {
    let p = procedure(&doc(
        "a",
        json!({
            "a": {"type": "processing", "is_checkpoint": true, "operations": [{"action": "log", "message": "a"}], "next_node": "b"},
            "b": {"type": "processing", "operations": [{"action": "log", "message": "b"}], "next_node": "end"},
            "end": {"type": "terminate"}
        }),
    ));
    let h = Harness::new(Effects::default());
    h.start(&p, inputs(json!({}))).await;
    assert_eq!(h.events().iter().filter(|e| e.event_type == "checkpoint_saved").count(), 1);
    assert_eq!(h.events().iter().filter(|e| e.event_type == "step_log").count(), 2, "log appends step_log (A.2.9)");
}

/// B §8.11: terminate outputs keep JSON types (no Python repr), objects with placeholders are rendered.
#[tokio::test]
async fn b8_11_terminate_outputs_are_typed() {
    let p = procedure(&doc(
        "end",
        json!({"end": {"type": "terminate", "outputs": {"obj": "{{o}}", "nested": {"n": "{{o.n}}"}, "text": "n={{o.n}} flag={{f}}"}}}),
    ));
    let h = Harness::new(Effects::default());
    let out = h.start(&p, inputs(json!({"o": {"n": 1}, "f": true}))).await;
    let vars = completed(&out);
    assert_eq!(vars["obj"], json!({"n": 1}));
    assert_eq!(vars["nested"], json!({"n": 1}));
    assert_eq!(vars["text"], "n=1 flag=true");
}

/// B §8.13: the system prompt is rendered, `retry.max_retries: 0` means no retry, and llm_usage is kept readable.
#[tokio::test]
async fn b8_13_llm_system_prompt_retries_and_usage() {
    use ckp_engine::testing::FnLlm;
    let llm = FnLlm::new(|_| Err(StepError::new(ErrorKind::LlmError, "HTTP 503")));
    let p = procedure(&doc(
        "ask",
        json!({
            "ask": {"type": "llm_action", "prompt": "q", "system_prompt": "You help {{team}}", "retry": {"max_retries": 0}}
        }),
    ));
    let h = Harness::new(Effects { llm: Some(Arc::new(llm.clone())), ..Effects::default() });
    let out = h.start(&p, inputs(json!({"team": "ops"}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.kind, ErrorKind::LlmError);
    let calls = llm.calls();
    assert_eq!(calls.len(), 1, "max_retries 0 means one call");
    assert_eq!(calls[0].system_prompt.as_deref(), Some("You help ops"));
}
