//! Crash tests: the engine is dropped at every commit point (before the commit is durable, and just after), a
//! fresh engine resumes on the same journal, and the run ends exactly as an uninterrupted one: same final
//! variables, same events, and no external effect whose result was committed is requested again.

use std::collections::HashMap;
use std::sync::Arc;

use ckp_core::Procedure;
use ckp_engine::journal::CrashPoint;
use ckp_engine::{Decision, EngineError, RunOutcome};
use serde_json::{Map, Value, json};

use crate::support::{Harness, comparable, echo_effects, inputs, procedure};

fn mixed() -> Arc<Procedure> {
    procedure(&json!({
        "procedure_id": "mixed", "version": "1",
        "workflow_graph": {"start_node": "prep", "nodes": {
            "prep": {"type": "sequence", "steps": [{"step_id": "s", "action": "set_variable", "variable": "n", "value": 2}], "next_node": "fetch"},
            "fetch": {"type": "sequence", "agent": "WEB", "steps": [
                {"step_id": "nav", "action": "navigate", "url": "u{{n}}", "output_variable": "page"},
                {"step_id": "note", "action": "log", "message": "got {{page.action}}"},
                {"step_id": "id", "action": "generate_id", "output_variable": "uid"},
                {"step_id": "save", "action": "save", "value": "{{uid}}", "output_variable": "saved"}
            ], "next_node": "each"},
            "each": {"type": "loop", "iterator": "items", "iterator_variable": "it", "body_node": "per_item", "next_node": "ask"},
            "per_item": {"type": "sequence", "agent": "API", "steps": [{"step_id": "push", "action": "push", "item": "{{it}}"}], "next_node": "each"},
            "ask": {"type": "llm_action", "prompt": "p {{n}}", "outputs": {"answer": "json:answer"}, "next_node": "route"},
            "route": {"type": "logic", "is_checkpoint": true, "rules": [{"condition": "{{answer}} == 42", "next_node": "approve"}], "default_next_node": "end"},
            "approve": {"type": "human_approval", "prompt": "ok?", "on_approve": "finish", "on_reject": "end"},
            "finish": {"type": "sequence", "agent": "API", "steps": [{"step_id": "post", "action": "post", "body": "{{saved}}"}], "next_node": "end"},
            "end": {"type": "terminate", "outputs": {"done": true}}
        }}
    }))
}

struct Outcome {
    vars: Map<String, Value>,
    events: Vec<Value>,
    calls: Vec<String>,
}

/// Runs to the end, approving when asked, restarting with a fresh engine after every injected crash.
async fn run_to_end(p: &Arc<Procedure>, crash: Option<(usize, CrashPoint)>) -> Outcome {
    run_to_end_twice(p, crash, None).await
}

/// Like [`run_to_end`], with a second crash `second` commits after the first recovery starts.
async fn run_to_end_twice(
    p: &Arc<Procedure>,
    crash: Option<(usize, CrashPoint)>,
    second: Option<(usize, CrashPoint)>,
) -> Outcome {
    let mut second = second;
    let (effects, agents, _) = echo_effects();
    let h = Harness::new(effects);
    if let Some((n, point)) = crash {
        h.journal.crash_at(n, point);
    }
    let engine = h.engine();
    let start = || engine.start(p.clone(), "run-1", inputs(json!({"items": [1, 2]})));
    let mut result = start().await;
    let mut guard = 0;
    let vars = loop {
        guard += 1;
        assert!(guard < 20, "no progress");
        result = match result {
            Ok(RunOutcome::Completed { outputs }) => break outputs,
            Ok(RunOutcome::WaitingApproval(_)) => {
                let d = Decision { key: None, value: json!("approve"), decided_by: Some("t".into()), comment: None };
                h.engine().decide(p.clone(), "run-1", d).await
            }
            Err(EngineError::Journal(_)) => {
                if let Some((m, point)) = second.take() {
                    h.journal.crash_at(m, point);
                }
                h.engine().resume(p.clone(), "run-1").await
            }
            Err(EngineError::RunNotFound(_)) => start().await,
            other => panic!("unexpected {other:?}"),
        };
    };
    let calls = agents.calls().into_iter().map(|c| c.idempotency_key).collect();
    Outcome { vars, events: comparable(&h.events()), calls }
}

/// The outcome without the generated id (`uid`, and `saved`, which holds it), which differs between runs.
fn without_random_ids(o: &Outcome) -> (Map<String, Value>, Vec<Value>) {
    let mut vars = o.vars.clone();
    vars.remove("uid");
    vars.remove("saved");
    let events = o
        .events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if e["type"] == "run_completed" {
                e["payload"]["outputs"]["uid"] = Value::Null;
                e["payload"]["outputs"]["saved"] = Value::Null;
            }
            e
        })
        .collect();
    (vars, events)
}

#[tokio::test]
async fn crash_at_every_commit_point_changes_nothing() {
    let p = mixed();
    let reference = run_to_end(&p, None).await;
    assert_eq!(reference.vars["done"], true);
    assert_eq!(reference.calls.len(), 5, "nav, save, push ×2, post");
    let commits = {
        let (effects, _, _) = echo_effects();
        let h = Harness::new(effects);
        let out = h.engine().start(p.clone(), "run-1", inputs(json!({"items": [1, 2]}))).await.expect("runs");
        assert!(matches!(out, RunOutcome::WaitingApproval(_)));
        let d = Decision { key: None, value: json!("approve"), decided_by: Some("t".into()), comment: None };
        h.engine().decide(p.clone(), "run-1", d).await.expect("decides");
        h.journal.commit_count("run-1")
    };
    assert!(
        commits >= 14,
        "intent and result commits around 5 agent calls and 1 LLM call, a pause, a decision, the end: {commits}"
    );
    for n in 1..=commits {
        for point in [CrashPoint::Before, CrashPoint::After] {
            let got = run_to_end(&p, Some((n, point))).await;
            let (got_vars, got_events) = without_random_ids(&got);
            let (expected_vars, expected_events) = without_random_ids(&reference);
            assert_eq!(got_vars, expected_vars, "crash at commit {n} {point:?}: final vars differ");
            assert_eq!(got_events, expected_events, "crash at commit {n} {point:?}: events differ");
            let mut per_key: HashMap<&str, usize> = HashMap::new();
            for k in &got.calls {
                *per_key.entry(k.as_str()).or_default() += 1;
            }
            let repeated: Vec<_> = per_key.iter().filter(|(_, c)| **c > 1).collect();
            assert!(
                repeated.len() <= 1 && repeated.iter().all(|(_, c)| **c == 2),
                "crash at commit {n} {point:?}: {per_key:?}"
            );
            assert!(got.calls.len() <= reference.calls.len() + 1, "crash at commit {n} {point:?}: {:?}", got.calls);
        }
    }
}

#[tokio::test]
async fn a_committed_result_is_never_requested_again() {
    let p = mixed();
    let (effects, agents, _) = echo_effects();
    let h = Harness::new(effects);
    // Commits: 1 created, 2 nav intent, 3 nav result. Crash right after the result is durable.
    h.journal.crash_at(3, CrashPoint::After);
    assert!(h.engine().start(p.clone(), "run-1", inputs(json!({"items": []}))).await.is_err());
    assert_eq!(agents.calls().len(), 1);
    let out = h.engine().resume(p.clone(), "run-1").await.expect("resumes");
    assert!(matches!(out, RunOutcome::WaitingApproval(_)), "{out:?}");
    let navs = agents.calls().iter().filter(|c| c.action == "navigate").count();
    assert_eq!(navs, 1, "nav's committed result was replayed, not requested again");
}

#[tokio::test]
async fn an_uncommitted_result_is_requested_again_with_the_same_key() {
    let p = mixed();
    let (effects, agents, _) = echo_effects();
    let h = Harness::new(effects);
    // Commit 3 (nav result) is lost: the process died between the intent and the result.
    h.journal.crash_at(3, CrashPoint::Before);
    assert!(h.engine().start(p.clone(), "run-1", inputs(json!({"items": []}))).await.is_err());
    h.engine().resume(p.clone(), "run-1").await.expect("resumes");
    let navs: Vec<_> = agents.calls().into_iter().filter(|c| c.action == "navigate").collect();
    assert_eq!(navs.len(), 2);
    assert_eq!(navs[0].idempotency_key, navs[1].idempotency_key);
}

#[tokio::test]
async fn two_crashes_in_a_row_change_nothing_either() {
    let p = mixed();
    let reference = run_to_end(&p, None).await;
    for n in 2..=10 {
        for m in 1..=4 {
            for (a, b) in [(CrashPoint::Before, CrashPoint::After), (CrashPoint::After, CrashPoint::After)] {
                let got = run_to_end_twice(&p, Some((n, a)), Some((m, b))).await;
                assert_eq!(
                    without_random_ids(&got),
                    without_random_ids(&reference),
                    "crashes at commit {n} {a:?} then {m} {b:?}"
                );
            }
        }
    }
}

/// A long internal loop streams its events in bounded commits (not one commit at the loop's end), and a crash at
/// any of those commits changes nothing: the loop re-executes from its start, replaying the committed events, and
/// ends with the same variables and events as an uninterrupted run.
#[tokio::test]
async fn a_long_loop_commits_in_bounded_batches_and_survives_a_crash_at_each() {
    let p = procedure(&json!({
        "procedure_id": "long_loop", "version": "1",
        "workflow_graph": {"start_node": "each", "nodes": {
            "each": {"type": "loop", "iterator": "items", "iterator_variable": "it", "body_node": "body", "next_node": "end"},
            "body": {"type": "processing", "operations": [
                {"action": "calculate", "expression": "{{it}} * 2", "output_variable": "double"},
                {"action": "append_to_array", "array": "seen", "value": "{{it}}:{{double}}"}
            ], "next_node": "each"},
            "end": {"type": "terminate"}
        }}
    }));
    let items: Vec<u32> = (0..200).collect();
    let config = ckp_engine::EngineConfig { max_buffered_events: 40, ..ckp_engine::EngineConfig::default() };
    let run = |crash: Option<(usize, CrashPoint)>| {
        let p = p.clone();
        let config = config.clone();
        let items = items.clone();
        async move {
            let h = Harness::new(ckp_engine::effects::Effects::default());
            if let Some((n, point)) = crash {
                h.journal.crash_at(n, point);
            }
            let mut result =
                h.engine().with_config(config.clone()).start(p.clone(), "run-1", inputs(json!({"items": items}))).await;
            if matches!(result, Err(EngineError::Journal(_))) {
                result = h.engine().with_config(config.clone()).resume(p.clone(), "run-1").await;
            }
            if matches!(result, Err(EngineError::RunNotFound(_))) {
                result =
                    h.engine().with_config(config).start(p.clone(), "run-1", inputs(json!({"items": items}))).await;
            }
            let Ok(RunOutcome::Completed { outputs }) = result else { panic!("crash {crash:?}: {result:?}") };
            (outputs, comparable(&h.events()), h.journal.commit_count("run-1"))
        }
    };
    let (vars, events, commits) = run(None).await;
    assert_eq!(vars["seen"].as_array().map(Vec::len), Some(200));
    let iterations = events.iter().filter(|e| e["type"] == "loop_iteration").count();
    assert_eq!(iterations, 200);
    // 200 iterations of about 5 events each, committed every 40 or so, rather than once at the end.
    assert!(commits >= 10, "the loop committed its events in batches: {commits} commits");
    for n in 2..=commits {
        for point in [CrashPoint::Before, CrashPoint::After] {
            let (got_vars, got_events, _) = run(Some((n, point))).await;
            assert_eq!(got_vars, vars, "crash at commit {n} {point:?}: final vars differ");
            assert_eq!(got_events, events, "crash at commit {n} {point:?}: events differ");
        }
    }
}
