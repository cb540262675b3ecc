//! The server's guarantees over real HTTP: read-after-write, one winner among concurrent decisions, SSE
//! resumption with Last-Event-ID.

use std::collections::BTreeSet;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::{TestServer, approval_procedure, chain_procedure};

/// One SSE message.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Value,
}

/// Reads SSE messages from `resp` until `stop` says so or the stream ends; returns them and whether the stream
/// ended by itself.
pub async fn read_sse(resp: reqwest::Response, mut stop: impl FnMut(&Sse) -> bool) -> (Vec<Sse>, bool) {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut msg = Sse { id: None, event: None, data: Value::Null };
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    msg.id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("event:") {
                    msg.event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if data.is_empty() {
                continue; // keep-alive comment
            }
            msg.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
            let done = stop(&msg);
            out.push(msg);
            if done {
                return (out, false);
            }
        }
        match tokio::time::timeout(std::time::Duration::from_secs(20), stream.next()).await {
            Ok(Some(Ok(bytes))) => buf.push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n")),
            Ok(Some(Err(e))) => panic!("stream error: {e}"),
            Ok(None) => return (out, true),
            Err(_) => panic!("no SSE message for 20 s; got {out:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_creates_are_each_readable_at_once() {
    let server = TestServer::start("read-after-write").await;
    server.import(chain_procedure("raw", 2)).await;
    for i in 0..1000 {
        let id = server.start_run("raw", json!({"i": i})).await;
        let (status, run) = server.call("GET", &format!("/api/runs/{id}"), None).await;
        assert_eq!(status, 200, "run {i} ({id}) not readable right after its 201: {run}");
        assert_eq!(run["run_id"], id.as_str());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_decisions_have_exactly_one_winner() {
    let server = TestServer::start("fifty-decisions").await;
    server.import(approval_procedure("gate50")).await;
    let run = server.start_run("gate50", json!({})).await;
    server.wait_status(&run, &["waiting_approval"]).await;
    let (_, approvals) = server.call("GET", &format!("/api/approvals?run_id={run}"), None).await;
    let approval = approvals[0]["approval_id"].as_str().expect("approval id").to_owned();
    let mut calls = Vec::new();
    for i in 0..50 {
        let http = server.http.clone();
        let url = server.url(&format!("/api/approvals/{approval}/decision"));
        calls.push(tokio::spawn(async move {
            let resp = http.post(url).json(&json!({"decision": "approve", "decided_by": format!("u{i}")})).send().await;
            let resp = resp.expect("sent");
            (resp.status().as_u16(), resp.json::<Value>().await.expect("json"))
        }));
    }
    let mut statuses = Vec::new();
    for c in calls {
        let (status, body) = c.await.expect("joined");
        if status == 409 {
            assert_eq!(body["code"], "conflict", "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 49, "{statuses:?}");
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_vars"]["result"], "approved");
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    let count = |t: &str| events.as_array().expect("list").iter().filter(|e| e["event_type"] == t).count();
    assert_eq!(count("approval_decision_received"), 1);
    assert_eq!(count("execution_resumed"), 1, "the run resumed once");
    assert_eq!(count("run_completed"), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_resumes_after_last_event_id_and_ends_after_the_terminal_event() {
    let server = TestServer::start("sse-resume").await;
    server.import(approval_procedure("gate_sse")).await;
    let run = server.start_run("gate_sse", json!({})).await;
    // First connection: read until the approval is requested, then drop the connection.
    let resp = server.http.get(server.url(&format!("/api/runs/{run}/stream"))).send().await.expect("stream");
    assert_eq!(resp.status().as_u16(), 200);
    let (first, ended) = read_sse(resp, |m| m.data["event_type"] == "approval_requested").await;
    assert!(!ended, "the stream must stay open while the run waits");
    let last = first.last().and_then(|m| m.id.clone()).expect("ids");
    // Decide while disconnected, then reconnect from the last id seen.
    let (_, approvals) = server.call("GET", &format!("/api/approvals?run_id={run}"), None).await;
    let approval = approvals[0]["approval_id"].as_str().expect("id");
    let (status, _) =
        server.call("POST", &format!("/api/approvals/{approval}/decision"), Some(json!({"decision": "approve"}))).await;
    assert_eq!(status, 200);
    let resp = server
        .http
        .get(server.url(&format!("/api/runs/{run}/stream")))
        .header("Last-Event-ID", last.as_str())
        .send()
        .await
        .expect("stream");
    let (second, ended) = read_sse(resp, |_| false).await;
    assert!(ended, "the stream ends after the terminal event");
    assert_eq!(second.last().map(|m| m.data["event_type"].clone()), Some(json!("run_completed")));
    // Every event exactly once, in order.
    let received: Vec<i64> = first
        .iter()
        .chain(&second)
        .map(|m| m.id.as_deref().and_then(|i| i.parse().ok()).expect("numeric id"))
        .collect();
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    let all: Vec<i64> = events.as_array().expect("list").iter().map(|e| e["event_id"].as_i64().expect("id")).collect();
    assert_eq!(received, all);
    assert_eq!(received.iter().collect::<BTreeSet<_>>().len(), received.len(), "no duplicates");
    assert!(first.iter().chain(&second).all(|m| m.event.as_deref() == Some("run_event")));
    // A finished run's stream replays from the id given and ends at once.
    let resp = server
        .http
        .get(server.url(&format!("/api/runs/{run}/stream?last_event_id={}", all[all.len() - 2])))
        .send()
        .await
        .expect("stream");
    let (tail, ended) = read_sse(resp, |_| false).await;
    assert!(ended);
    assert_eq!(tail.len(), 1);
    server.stop().await;
}

/// A chain of `n` nodes, each waiting `ms` in-process.
fn slow_chain(id: &str, n: usize, ms: u64) -> Value {
    let mut nodes = serde_json::Map::new();
    for i in 0..n {
        let next = if i + 1 < n { format!("n{}", i + 1) } else { "done".into() };
        nodes.insert(
            format!("n{i}"),
            json!({"type": "sequence", "steps": [
            {"step_id": "w", "action": "log", "message": "step {{i}}", "wait_ms": ms}], "next_node": next}),
        );
    }
    nodes.insert("done".into(), json!({"type": "terminate"}));
    json!({"procedure_id": id, "version": "1", "workflow_graph": {"start_node": "n0", "nodes": nodes}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_an_executing_run_within_a_step() {
    let server = TestServer::start("cancel-executing").await;
    server.import(slow_chain("slow_cancel", 50, 100)).await;
    let run = server.start_run("slow_cancel", json!({})).await;
    // Wait until a worker executes it (slow internal runs commit their progress as they go).
    wait_started(&server, &run).await;
    let (status, body) = server.call("POST", &format!("/api/runs/{run}/cancel"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "canceled", "{body}");
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    let events = events.as_array().expect("list").clone();
    assert_eq!(events.last().map(|e| e["event_type"].clone()), Some(json!("run_canceled")));
    let started = events.iter().filter(|e| e["event_type"] == "node_started").count();
    assert!(started < 50, "the run stopped early ({started} nodes started)");
    let (status, body) = server.call("POST", &format!("/api/runs/{run}/cancel"), None).await;
    assert_eq!(status, 409, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_releases_runs_at_a_node_boundary_and_a_restart_finishes_them() {
    let server = TestServer::start("graceful").await;
    server.import(slow_chain("slow_stop", 20, 50)).await;
    let run = server.start_run("slow_stop", json!({})).await;
    wait_started(&server, &run).await;
    let server = server.restart().await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    let events = events.as_array().expect("list");
    for node in 0..20 {
        let id = format!("n{node}");
        let n = events.iter().filter(|e| e["event_type"] == "node_completed" && e["node_id"] == id.as_str()).count();
        assert_eq!(n, 1, "node {id} completed once");
    }
    let resumed = events.iter().filter(|e| e["event_type"] == "execution_resumed").count();
    assert!(resumed <= 1, "{resumed}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_approval_resumes_the_run_on_its_timeout_path() {
    let server = TestServer::start("expiry").await;
    server
        .import(json!({"procedure_id": "expiring", "version": "1", "workflow_graph": {"start_node": "g", "nodes": {
            "g": {"type": "human_approval", "prompt": "quick?", "timeout_ms": 300,
                  "on_approve": "yes", "on_reject": "no", "on_timeout": "late"},
            "yes": {"type": "terminate", "outputs": {"path": "approved"}},
            "no": {"type": "terminate", "outputs": {"path": "rejected"}},
            "late": {"type": "terminate", "outputs": {"path": "timed out"}}
        }}}))
        .await;
    let run = server.start_run("expiring", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_vars"]["path"], "timed out", "{done}");
    let (_, approvals) = server.call("GET", &format!("/api/approvals?run_id={run}"), None).await;
    assert_eq!(approvals[0]["status"], "timeout", "{approvals}");
    let (status, body) = server
        .call(
            "POST",
            &format!("/api/approvals/{}/decision", approvals[0]["approval_id"].as_str().expect("id")),
            Some(json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(status, 409, "an expired approval cannot be decided: {body}");
    server.stop().await;
}

/// Waits until a run's first node has started (its events are committed while it runs).
async fn wait_started(server: &TestServer, run: &str) {
    for _ in 0..1000 {
        let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
        if events.as_array().is_some_and(|e| e.iter().any(|e| e["event_type"] == "node_started")) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("run {run} never started");
}

/// A cycle between two top-level nodes that never exits fails at the run's node-entry budget, with an error that
/// says which limit and how to raise it, and leaves a bounded number of events behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_that_never_exits_fails_at_the_node_entry_budget_with_bounded_events() {
    let server = TestServer::start("cycle-budget").await;
    server
        .import(json!({"procedure_id": "cycle", "version": "1", "global_config": {"max_node_entries": 2000},
            "workflow_graph": {"start_node": "a", "nodes": {
                "a": {"type": "processing", "operations": [{"action": "set_variable", "variable": "x", "value": 1}],
                      "next_node": "b"},
                "b": {"type": "logic", "rules": [{"condition": "x == 2", "next_node": "end"}], "default_next_node": "a"},
                "end": {"type": "terminate"}}}}))
        .await;
    let run = server.start_run("cycle", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "failed", "{done}");
    let message = done["error_message"].as_str().unwrap_or_default();
    assert!(message.contains("entered 2000 nodes") && message.contains("max_node_entries"), "{done}");
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    let events = events.as_array().expect("events");
    let started = events.iter().filter(|e| e["event_type"] == "node_started").count();
    assert_eq!(started, 2000, "every entry up to the budget, none after");
    assert!(events.len() < 2000 * 4, "{} events for 2000 node entries", events.len());
    server.stop().await;
}

/// A page of runs has a size budget: a large `input_vars` reads `{"_omitted": {"bytes": N}}` in the list (small
/// ones stay whole), the run itself has it whole, and `full=true` asks for every field whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_runs_leaves_large_variables_out() {
    let server = TestServer::start("runs-page-budget").await;
    server
        .import(json!({"procedure_id": "gate", "version": "1", "workflow_graph": {"start_node": "g", "nodes": {
            "g": {"type": "human_approval", "prompt": "ok?", "on_approve": "end", "on_reject": "end"},
            "end": {"type": "terminate"}}}}))
        .await;
    let text = "x".repeat(100_000);
    let big = server.start_run("gate", json!({"text": text})).await;
    let small = server.start_run("gate", json!({"n": 1})).await;
    let (status, page) = server.call("GET", "/api/runs?limit=20", None).await;
    assert_eq!(status, 200, "{page}");
    let find = |page: &Value, id: &str| page.as_array().and_then(|a| a.iter().find(|r| r["run_id"] == id)).cloned();
    let listed = find(&page, &big).expect("listed");
    assert_eq!(listed["input_vars"], json!({"_omitted": {"bytes": 100_011}}));
    assert_eq!(find(&page, &small).expect("listed")["input_vars"], json!({"n": 1}));
    let (_, whole) = server.call("GET", &format!("/api/runs/{big}"), None).await;
    assert_eq!(whole["input_vars"]["text"].as_str().map(str::len), Some(100_000));
    let (_, full) = server.call("GET", "/api/runs?limit=20&full=true", None).await;
    assert_eq!(find(&full, &big).expect("listed")["input_vars"]["text"].as_str().map(str::len), Some(100_000));
    server.stop().await;
}
