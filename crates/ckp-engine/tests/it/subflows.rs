//! Subflows as child runs (A.2.12): mappings, failure policies, a child that pauses its parent, recursion.

use std::sync::Arc;

use ckp_engine::effects::Effects;
use ckp_engine::engine::ProcedureSet;
use ckp_engine::{Decision, Engine, MemoryJournal, RunOutcome};
use serde_json::{Value, json};

use crate::support::{completed, inputs, procedure};

fn parent(child: &str, on_failure: &str) -> Value {
    json!({"procedure_id": "parent", "version": "1", "workflow_graph": {"start_node": "call", "nodes": {
        "call": {"type": "subflow", "procedure_id": child, "input_mapping": {"n": "amount", "label": "order {{amount}}"},
                 "output_mapping": {"doubled": "result"}, "on_failure": on_failure, "next_node": "end"},
        "end": {"type": "terminate"}
    }}})
}

fn doubler() -> Value {
    json!({"procedure_id": "doubler", "version": "1", "workflow_graph": {"start_node": "calc", "nodes": {
        "calc": {"type": "processing", "operations": [{"action": "calculate", "expression": "{{n}} * 2", "output_variable": "result"}], "next_node": "end"},
        "end": {"type": "terminate"}
    }}})
}

fn engine(journal: &Arc<MemoryJournal>, docs: &[Value]) -> Engine {
    let set = ProcedureSet(docs.iter().map(procedure).collect());
    Engine::new(journal.clone(), Effects::default()).with_procedures(Arc::new(set))
}

#[tokio::test]
async fn child_run_maps_inputs_and_outputs() {
    let journal = Arc::new(MemoryJournal::new());
    let e = engine(&journal, &[doubler()]);
    let out =
        e.start(procedure(&parent("doubler", "fail_parent")), "p1", inputs(json!({"amount": 21}))).await.expect("runs");
    assert_eq!(completed(&out)["doubled"], 42);
    insta::assert_snapshot!("subflow_parent_trace", crate::support::trace(&journal.events("p1")));
    insta::assert_snapshot!("subflow_child_trace", crate::support::trace(&journal.events("p1:call#1")));
    let child = journal.checkpoint("p1:call#1").expect("the child is its own run");
    assert_eq!(child.vars["label"], "order 21");
    let types: Vec<String> = journal.events("p1").into_iter().map(|e| e.event_type).collect();
    assert!(types.contains(&"subflow_started".to_owned()) && types.contains(&"subflow_completed".to_owned()));
    assert!(
        !types.contains(&"step_started".to_owned())
            || journal.events("p1:call#1").iter().any(|e| e.event_type == "node_started")
    );
}

#[tokio::test]
async fn child_failure_policies() {
    let failing = json!({"procedure_id": "failing", "version": "1", "workflow_graph": {"start_node": "v", "nodes": {
        "v": {"type": "verification", "checks": [{"id": "c", "condition": "false", "message": "child says no"}]}
    }}});
    let journal = Arc::new(MemoryJournal::new());
    let e = engine(&journal, std::slice::from_ref(&failing));
    let out =
        e.start(procedure(&parent("failing", "fail_parent")), "p1", inputs(json!({"amount": 1}))).await.expect("runs");
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.message, "Subflow execution failed: child says no");
    let out =
        e.start(procedure(&parent("failing", "continue")), "p2", inputs(json!({"amount": 1}))).await.expect("runs");
    assert!(matches!(out, RunOutcome::Completed { .. }), "{out:?}");
    let out =
        e.start(procedure(&parent("missing", "fail_parent")), "p3", inputs(json!({"amount": 1}))).await.expect("runs");
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.message, "Subflow procedure not found: missing:latest");
}

#[tokio::test]
async fn a_child_approval_pauses_the_parent_and_the_decision_reaches_it() {
    let asking = json!({"procedure_id": "asking", "version": "1", "workflow_graph": {"start_node": "ask", "nodes": {
        "ask": {"type": "human_approval", "prompt": "child asks about {{n}}", "on_approve": "ok", "on_reject": "ok"},
        "ok": {"type": "processing", "operations": [{"action": "set_variable", "variable": "result", "value": "{{ask_decision}}"}], "next_node": "end"},
        "end": {"type": "terminate"}
    }}});
    let journal = Arc::new(MemoryJournal::new());
    let e = engine(&journal, &[asking]);
    let p = procedure(&parent("asking", "fail_parent"));
    let out = e.start(p.clone(), "p1", inputs(json!({"amount": 5}))).await.expect("runs");
    let RunOutcome::WaitingApproval(pending) = out else { panic!("{out:?}") };
    assert_eq!(pending[0].prompt, "child asks about 5");
    let d = Decision { key: Some(pending[0].key.clone()), value: json!("approve"), decided_by: None, comment: None };
    let out = e.decide(p, "p1", d).await.expect("decides");
    assert_eq!(completed(&out)["doubled"], "approved");
}

#[tokio::test]
async fn indirect_recursion_is_stopped() {
    let a = json!({"procedure_id": "a", "version": "1", "workflow_graph": {"start_node": "s", "nodes": {
        "s": {"type": "subflow", "procedure_id": "b"}}}});
    let b = json!({"procedure_id": "b", "version": "1", "workflow_graph": {"start_node": "s", "nodes": {
        "s": {"type": "subflow", "procedure_id": "a"}}}});
    let journal = Arc::new(MemoryJournal::new());
    let e = engine(&journal, &[a.clone(), b]);
    let out = e.start(procedure(&a), "r", inputs(json!({}))).await.expect("runs");
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert!(error.message.contains("Subflow execution failed: Recursive subflow detected: 'a'"), "{}", error.message);
}

#[tokio::test]
async fn retry_runs_a_failed_child_once_more() {
    use ckp_engine::testing::FnAgents;
    let flaky = json!({"procedure_id": "flaky", "version": "1", "workflow_graph": {"start_node": "call", "nodes": {
        "call": {"type": "sequence", "agent": "API", "steps": [{"step_id": "x", "action": "work", "output_variable": "result"}], "next_node": "end"},
        "end": {"type": "terminate"}
    }}});
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let agents = FnAgents::new(move |_| {
        if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Err(ckp_engine::StepError::new(ckp_engine::ErrorKind::AgentError, "first time fails"))
        } else {
            Ok(json!("second time works"))
        }
    });
    let journal = Arc::new(MemoryJournal::new());
    let set = ProcedureSet(vec![procedure(&flaky)]);
    let e = Engine::new(journal.clone(), Effects { agents: Some(Arc::new(agents)), ..Effects::default() })
        .with_procedures(Arc::new(set));
    let out = e.start(procedure(&parent("flaky", "retry")), "p1", inputs(json!({"amount": 1}))).await.expect("runs");
    assert_eq!(completed(&out)["doubled"], "second time works");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}
