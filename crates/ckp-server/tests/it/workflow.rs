//! Workflow-type agent capabilities against a real agent process on 127.0.0.1 (CKP.md A.2.6, langorch.md B §5.14,
//! §6.4): async dispatch pauses the run durably without holding a worker, the signed callback resumes it exactly
//! once, failures and timeouts go through the step's error handling, and sync mode is an ordinary call.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use crate::support::TestServer;

const SECRET: &str = "workflow-test-secret";

/// The bodies a workflow agent received on `/execute`.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Value>>>);

impl Seen {
    fn all(&self) -> Vec<Value> {
        self.0.lock().expect("lock").clone()
    }
}

/// A workflow agent: `/execute` records the body and accepts the work (202), or, for a sync call (no
/// `callback_url`), answers LangOrch's envelope at once.
async fn workflow_agent() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/execute",
            post(|State(seen): State<Seen>, axum::Json(body): axum::Json<Value>| async move {
                seen.0.lock().expect("lock").push(body.clone());
                if body["params"]["callback_url"].is_string() {
                    (StatusCode::ACCEPTED, axum::Json(json!({"status": "accepted"})))
                } else {
                    (
                        StatusCode::OK,
                        axum::Json(json!({"status": "success", "result": {"synced": body["params"]["order"]}})),
                    )
                }
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

/// A procedure whose `book` step runs the `book_trip` workflow, then records what it got.
fn booking(id: &str, mode: Option<&str>, handler: bool) -> Value {
    let mut step =
        json!({"step_id": "book", "action": "book_trip", "order": "{{order}}", "output_variable": "booking"});
    if let Some(m) = mode {
        step["workflow_dispatch_mode"] = json!(m);
    }
    let mut node = json!({"type": "sequence", "agent": "Travel", "steps": [
        {"step_id": "prep", "action": "set_variable", "variable": "stage", "value": "booking"},
        step
    ], "next_node": "after"});
    if handler {
        node["error_handlers"] = json!([{"error_type": "*", "action": "ignore", "fallback_node": "rescue"}]);
    }
    json!({"procedure_id": id, "version": "1", "variables_schema": {"order": {"type": "string", "default": "A-1"}},
        "workflow_graph": {"start_node": "go", "nodes": {
        "go": node,
        "after": {"type": "sequence", "steps": [
            {"step_id": "note", "action": "set_variable", "variable": "stage", "value": "booked"}
        ], "next_node": "end"},
        "rescue": {"type": "sequence", "steps": [
            {"step_id": "note", "action": "set_variable", "variable": "stage", "value": "rescued"}
        ], "next_node": "end"},
        "end": {"type": "terminate", "status": "success"}
    }}})
}

async fn start(name: &str, timeout_minutes: f64) -> TestServer {
    TestServer::start_with(name, |c| {
        c.callback_secret = Some(SECRET.into());
        c.workflow_callback_timeout_minutes = timeout_minutes;
        c.workers = 1;
    })
    .await
}

async fn register(server: &TestServer, url: &str) {
    let agent = json!({"name": "T", "channel": "travel", "base_url": url,
                       "capabilities": [{"name": "book_trip", "type": "workflow"}]});
    let (status, body) = server.call("POST", "/api/agents", Some(agent)).await;
    assert_eq!(status, 201, "{body}");
}

fn token(run_id: &str) -> String {
    use ckp_connectors::secrets::crypto::{hex, hmac_sha256};
    hex(&hmac_sha256(SECRET.as_bytes(), run_id.as_bytes()))
}

async fn callback(server: &TestServer, run_id: &str, body: Value) -> (u16, Value) {
    server.call("POST", &format!("/api/runs/{run_id}/callback?token={}", token(run_id)), Some(body)).await
}

async fn event_types(server: &TestServer, run_id: &str) -> Vec<String> {
    let (_, events) = server.call("GET", &format!("/api/runs/{run_id}/events"), None).await;
    events.as_array().expect("events").iter().map(|e| e["event_type"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_dispatch_pauses_the_run_and_the_callback_completes_it() {
    let (url, seen) = workflow_agent().await;
    let server = start("wf-async", 60.0).await;
    register(&server, &url).await;
    server.import(booking("trip", None, false)).await;
    let run = server.start_run("trip", json!({"order": "B-7"})).await;
    let paused = server.wait_status(&run, &["paused", "completed", "failed"]).await;
    assert_eq!(paused["status"], "paused", "{paused}");

    let calls = seen.all();
    assert_eq!(calls.len(), 1, "dispatched once");
    let params = &calls[0]["params"];
    assert_eq!(params["order"], "B-7");
    assert_eq!(
        params["callback_url"].as_str().unwrap_or_default(),
        format!("{}/api/runs/{run}/callback?token={}", server.base, token(&run)),
        "{params}"
    );
    let context = &params["_workflow_context"];
    assert_eq!(
        (&context["dispatch_mode"], &context["channel"], &context["run_id"], &context["current_step_id"]),
        (&json!("async"), &json!("Travel"), &json!(run), &json!("book")),
        "{context}"
    );
    assert_eq!(context["node_steps"][1]["params"]["order"], "{{order}}", "node_steps carry params as written");
    let types = event_types(&server, &run).await;
    assert!(types.ends_with(&["workflow_delegated".into(), "node_paused".into()]), "{types:?}");

    // The paused run holds no worker: with one worker, another run executes meanwhile.
    server.import(crate::support::chain_procedure("other", 2)).await;
    let other = server.start_run("other", json!({})).await;
    assert_eq!(server.wait_status(&other, &["completed", "failed"]).await["status"], "completed");

    let (status, body) =
        callback(&server, &run, json!({"status": "success", "output": {"confirmation": "CF-9"}})).await;
    assert_eq!((status, &body["resumed"], &body["status"]), (200, &json!(true), &json!("queued")), "{body}");
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    let outputs = &done["output_vars"];
    assert_eq!(outputs["confirmation"], "CF-9", "merged into vars: {outputs}");
    assert_eq!(outputs["booking"], json!({"confirmation": "CF-9"}), "the step's output_variable: {outputs}");
    assert_eq!(outputs["stage"], "booked");
    assert_eq!(seen.all().len(), 1, "resuming did not dispatch the workflow again");
    // The node re-executes after the callback without repeating what was committed before the pause.
    let expected = [
        "run_created",
        "execution_started",
        "node_started",
        "step_started",
        "step_completed",
        "step_started",
        "workflow_delegated",
        "node_paused",
        "workflow_callback_received",
        "workflow_output_ready",
        "execution_resumed",
        "step_completed",
        "node_completed",
        "node_started",
        "step_started",
        "step_completed",
        "node_completed",
        "node_started",
        "node_completed",
        "run_completed",
    ];
    assert_eq!(event_types(&server, &run).await, expected);

    // A callback for a finished run changes nothing.
    let (status, body) =
        callback(&server, &run, json!({"output": {"x": 1}, "node_id": "go", "step_id": "other"})).await;
    assert_eq!((status, &body["status"]), (200, &json!("completed")), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_wrong_steps_and_concurrent_duplicates_change_nothing() {
    let (url, _) = workflow_agent().await;
    let server = start("wf-guard", 60.0).await;
    register(&server, &url).await;
    server.import(booking("trip", None, false)).await;
    let run = server.start_run("trip", json!({})).await;
    assert_eq!(server.wait_status(&run, &["paused", "failed"]).await["status"], "paused");
    let before = event_types(&server, &run).await;

    for query in ["", "?token=", "?token=00", &format!("?token={}", token("another-run"))] {
        let (status, body) =
            server.call("POST", &format!("/api/runs/{run}/callback{query}"), Some(json!({"output": {}}))).await;
        assert_eq!(status, 403, "{query}");
        insta::assert_json_snapshot!("callback_403", body);
    }
    let (status, body) = callback(&server, "no-such-run", json!({})).await;
    assert_eq!(status, 404);
    insta::assert_json_snapshot!("callback_404", body);
    let (status, body) = callback(&server, &run, json!({"node_id": "go", "step_id": "prep"})).await;
    assert_eq!(status, 400, "{body}");
    insta::assert_json_snapshot!("callback_400_other_step", body);
    let (status, body) = callback(&server, &run, json!({"status": "maybe"})).await;
    assert_eq!(status, 422, "{body}");
    insta::assert_json_snapshot!("callback_422_status", body);
    // A run that waits for an approval, not a callback.
    server.import(crate::support::approval_procedure("gate")).await;
    let gated = server.start_run("gate", json!({})).await;
    server.wait_status(&gated, &["waiting_approval"]).await;
    let (status, body) = callback(&server, &gated, json!({})).await;
    assert_eq!(status, 409, "{body}");
    insta::assert_json_snapshot!("callback_409_not_paused", body, {".detail" => "[message with the run id]"});
    assert!(body["detail"].as_str().unwrap_or_default().contains("is not paused (status=waiting_approval)"), "{body}");
    assert_eq!(event_types(&server, &run).await, before, "refused callbacks wrote nothing");
    assert_eq!(server.call("GET", &format!("/api/runs/{run}"), None).await.1["status"], "paused");

    // Twenty callbacks at once: one resumes the run, the others are duplicates.
    let mut calls = Vec::new();
    for i in 0..20 {
        let body = json!({"status": "success", "output": {"winner": i}, "node_id": "go", "step_id": "book"});
        calls.push(callback(&server, &run, body));
    }
    let answers = futures_util::future::join_all(calls).await;
    let resumed: Vec<&Value> = answers.iter().filter(|(_, b)| b["resumed"] == true).map(|(_, b)| b).collect();
    assert_eq!(resumed.len(), 1, "{answers:?}");
    insta::assert_json_snapshot!("callback_200_resumed", resumed[0], {".run_id" => "[run id]"});
    let duplicate = answers.iter().find(|(_, b)| b["status"] == "duplicate").map(|(_, b)| b);
    insta::assert_json_snapshot!("callback_200_duplicate", duplicate, {".run_id" => "[run id]"});
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert!(body["resumed"] == true || body["status"] == "duplicate", "{body}");
    }
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    let types = event_types(&server, &run).await;
    assert_eq!(types.iter().filter(|t| *t == "workflow_callback_received").count(), 1, "{types:?}");
    let (status, body) = callback(&server, &run, json!({"node_id": "go", "step_id": "book"})).await;
    assert_eq!((status, &body["status"]), (200, &json!("duplicate")), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_callback_is_the_steps_error() {
    let (url, _) = workflow_agent().await;
    let server = start("wf-fail", 60.0).await;
    register(&server, &url).await;
    // Without a handler the run fails with the workflow's error.
    server.import(booking("trip", None, false)).await;
    let run = server.start_run("trip", json!({})).await;
    assert_eq!(server.wait_status(&run, &["paused", "failed"]).await["status"], "paused");
    let (status, body) = callback(&server, &run, json!({"status": "failure", "error": "no seats left"})).await;
    assert_eq!((status, &body["resumed"]), (200, &json!(true)), "{body}");
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!((&done["status"], &done["error_message"]), (&json!("failed"), &json!("no seats left")), "{done}");
    // With an error handler the run takes its fallback.
    server.import(booking("trip-handled", None, true)).await;
    let run = server.start_run("trip-handled", json!({})).await;
    assert_eq!(server.wait_status(&run, &["paused", "failed"]).await["status"], "paused");
    callback(&server, &run, json!({"status": "failure", "error": {"message": "no seats"}})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!((&done["status"], &done["output_vars"]["stage"]), (&json!("completed"), &json!("rescued")), "{done}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_callback_times_out_and_a_paused_run_can_be_cancelled() {
    let (url, _) = workflow_agent().await;
    // 0.005 minutes = 300 ms.
    let server = start("wf-timeout", 0.005).await;
    register(&server, &url).await;
    server.import(booking("trip", None, false)).await;
    let run = server.start_run("trip", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error_message"], "Workflow webhook callback timed out after 0.005 minutes.", "{done}");
    assert!(event_types(&server, &run).await.contains(&"workflow_callback_timeout".to_owned()));
    // A late callback finds the run finished.
    let (status, body) = callback(&server, &run, json!({"output": {"late": true}})).await;
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");
    server.stop().await;

    let server = start("wf-cancel", 60.0).await;
    register(&server, &url).await;
    server.import(booking("trip", None, false)).await;
    let run = server.start_run("trip", json!({})).await;
    assert_eq!(server.wait_status(&run, &["paused", "failed"]).await["status"], "paused");
    let (status, body) = server.call("POST", &format!("/api/runs/{run}/cancel"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.wait_status(&run, &["canceled"]).await["status"], "canceled");
    let (status, body) = callback(&server, &run, json!({"output": {}})).await;
    assert_eq!((status, &body["status"]), (200, &json!("canceled")), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_is_an_ordinary_call_with_the_workflow_context() {
    let (url, seen) = workflow_agent().await;
    let server = start("wf-sync", 60.0).await;
    register(&server, &url).await;
    server.import(booking("trip", Some("sync"), false)).await;
    let run = server.start_run("trip", json!({"order": "S-1"})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_vars"]["booking"], json!({"synced": "S-1"}), "{done}");
    let calls = seen.all();
    assert_eq!(calls.len(), 1);
    assert!(calls[0]["params"].get("callback_url").is_none(), "{}", calls[0]);
    assert_eq!(calls[0]["params"]["_workflow_context"]["dispatch_mode"], "sync");
    assert!(!event_types(&server, &run).await.contains(&"workflow_delegated".to_owned()));
    server.stop().await;
}
