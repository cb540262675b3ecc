//! Authoring through the API: validation at JSON pointers, builder drafts with a revision check, versions that
//! have run are never replaced, and test runs of a draft (mocks, overrides, stop at a node, hidden snapshots that
//! resume like any run).

use serde_json::{Value, json};

use crate::support::{TestServer, approval_procedure};

/// A procedure whose first step needs a `WEB` agent (none is registered in these tests), then an approval.
fn agent_procedure() -> Value {
    json!({"procedure_id": "author", "version": "1.0.0", "status": "active",
    "variables_schema": {"customer": {"type": "string", "required": true}},
    "workflow_graph": {"start_node": "open", "nodes": {
        "open": {"type": "sequence", "agent": "WEB", "steps": [
            {"step_id": "visit", "action": "navigate", "url": "https://example.test/{{customer}}", "output_variable": "page"},
            {"step_id": "read", "action": "extract_text", "selector": "#total", "output_variable": "total"}
        ], "next_node": "gate"},
        "gate": {"type": "human_approval", "prompt": "Pay {{total}}?", "on_approve": "paid", "on_reject": "done"},
        "paid": {"type": "sequence", "steps": [{"step_id": "s", "action": "set_variable", "variable": "paid", "value": true}],
                 "next_node": "done"},
        "done": {"type": "terminate", "status": "success", "outputs": {"total": "{{total}}"}}
    }}})
}

async fn events(server: &TestServer, run_id: &str) -> Vec<Value> {
    let (status, body) = server.call("GET", &format!("/api/runs/{run_id}/events"), None).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["event_type"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_answers_every_diagnostic_at_its_pointer_and_line() {
    let server = TestServer::start_with("author-validate", |c| c.max_procedure_nodes = 50).await;
    let (status, ok) =
        server.call("POST", "/api/procedures/validate", Some(json!({"ckp_json": agent_procedure()}))).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(
        (ok["valid"].as_bool(), ok["procedure_id"].as_str(), ok["version"].as_str()),
        (Some(true), Some("author"), Some("1.0.0"))
    );
    assert_eq!(ok["errors"], json!([]));

    // As typed: an edge to a missing node, found at its pointer, line and column of this very text.
    let mut doc = agent_procedure();
    doc["workflow_graph"]["nodes"]["gate"]["on_approve"] = json!("nowhere");
    let text = serde_json::to_string_pretty(&doc).expect("text");
    let (status, bad) = server.call("POST", "/api/procedures/validate", Some(json!({"ckp_json": text}))).await;
    assert_eq!(status, 200, "{bad}");
    assert_eq!(bad["valid"], false);
    let errors = bad["errors"].as_array().expect("errors");
    let missing = errors
        .iter()
        .find(|e| e["pointer"] == "/workflow_graph/nodes/gate/on_approve")
        .unwrap_or_else(|| panic!("no error at the edge: {bad}"));
    assert_eq!(missing["severity"], "error");
    let line = text.lines().position(|l| l.contains("\"nowhere\"")).expect("the line") + 1;
    assert_eq!(missing["line"].as_u64(), Some(line as u64), "{missing}");

    // Not JSON at all: one syntax error where the text breaks.
    let (status, broken) = server
        .call("POST", "/api/procedures/validate", Some(json!({"ckp_json": "{\n  \"procedure_id\": \"x\",\n  oops\n}"})))
        .await;
    assert_eq!(status, 200, "{broken}");
    assert_eq!(broken["valid"], false);
    assert_eq!(broken["errors"][0]["code"], "json-syntax", "{broken}");
    assert_eq!(broken["errors"][0]["line"], 3, "{broken}");

    // Over the server's limits: 413, as an import would be.
    let big = ckp_core::testing::large_procedure("big", 60);
    let (status, body) = server.call("POST", "/api/procedures/validate", Some(json!({"ckp_json": big}))).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "procedure_too_large");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_drafts_keep_revisions_and_refuse_a_stale_write() {
    let server = TestServer::start("author-drafts").await;
    server.import(agent_procedure()).await;
    let path = "/api/procedures/author/1.0.0/builder-draft";
    let (status, none) = server.call("GET", path, None).await;
    assert_eq!(status, 200, "{none}");
    assert_eq!((none["draft"].clone(), none["revision"].as_i64()), (Value::Null, Some(0)));

    // Two editors read revision 0; the first write lands, the second gets the stored draft back.
    let mine = json!({"ckp": agent_procedure(), "layout": {"open": {"x": 10, "y": 20}}, "base_version": "1.0.0"});
    let (status, first) = server.call("PUT", path, Some(json!({"draft": mine, "revision": 0}))).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["revision"], 1);
    assert_eq!(first["draft"], mine);
    let theirs = json!({"ckp": {"procedure_id": "author"}, "layout": {}, "base_version": "1.0.0"});
    let (status, conflict) = server.call("PUT", path, Some(json!({"draft": theirs, "revision": 0}))).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["code"], "draft_conflict");
    assert_eq!(conflict["detail"]["current"]["revision"], 1);
    assert_eq!(conflict["detail"]["current"]["draft"], mine);
    let (_, kept) = server.call("GET", path, None).await;
    assert_eq!(kept["draft"], mine, "a refused write changes nothing");

    // Resolved by writing over the revision now known; a write without revision (LangOrch's clients) lands.
    let (status, second) = server.call("PUT", path, Some(json!({"draft": theirs, "revision": 1}))).await;
    assert_eq!((status, second["revision"].as_i64()), (200, Some(2)), "{second}");
    let (status, blind) = server.call("PUT", path, Some(json!({"draft": mine}))).await;
    assert_eq!((status, blind["revision"].as_i64()), (200, Some(3)), "{blind}");

    // Bad input changes nothing.
    let (status, body) = server.call("PUT", path, Some(json!({"draft": [1, 2]}))).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) =
        server.call("PUT", "/api/procedures/author/9.9.9/builder-draft", Some(json!({"draft": {}}))).await;
    assert_eq!(status, 404);
    let (_, still) = server.call("GET", path, None).await;
    assert_eq!(still["revision"], 3);

    let (status, deleted) = server.call("DELETE", path, None).await;
    assert_eq!((status, deleted["deleted"].as_bool()), (200, Some(true)), "{deleted}");
    let (_, gone) = server.call("GET", path, None).await;
    assert_eq!(gone["revision"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_has_run_is_never_replaced() {
    let server = TestServer::start("author-replace").await;
    server.import(approval_procedure("kept")).await;
    let mut changed = approval_procedure("kept");
    changed["description"] = json!("edited before any run");
    let (status, body) =
        server.call("PUT", "/api/procedures/kept/1.0.0", Some(json!({"ckp_json": changed.clone()}))).await;
    assert_eq!(status, 200, "a version without runs can still be edited in place: {body}");

    let run = server.start_run("kept", json!({})).await;
    server.wait_status(&run, &["waiting_approval"]).await;
    changed["description"] = json!("edited after a run");
    let (status, body) =
        server.call("PUT", "/api/procedures/kept/1.0.0", Some(json!({"ckp_json": changed.clone()}))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "version_has_runs");
    let (_, stored) = server.call("GET", "/api/procedures/kept/1.0.0", None).await;
    assert_eq!(stored["ckp_json"]["description"], "edited before any run");

    // The change goes into a new version; the waiting run finishes on the document it started with.
    changed["version"] = json!("1.0.1");
    server.import(changed).await;
    server.decide(&run, "approved").await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!((done["status"].as_str(), done["procedure_version"].as_str()), (Some("completed"), Some("1.0.0")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_run_executes_the_draft_with_mocks_overrides_and_a_stop() {
    let server = TestServer::start("author-test-runs").await;
    server.import(agent_procedure()).await;
    let path = "/api/procedures/author/1.0.0/test-runs";

    // The stored document cannot run here (no WEB agent); the draft's test run mocks the agent's steps.
    let mut draft = agent_procedure();
    draft["workflow_graph"]["nodes"]["gate"]["prompt"] = json!("Pay {{total}} now?");
    let (status, run) = server
        .call(
            "POST",
            path,
            Some(json!({"ckp_json": draft.clone(), "input_vars": {"customer": "acme"},
                                        "test_data_overrides": {"read": "42.00"}})),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let run_id = run["run_id"].as_str().expect("run_id").to_owned();
    let snapshot = run["procedure_version"].as_str().expect("version").to_owned();
    assert!(snapshot.starts_with("1.0.0+test.") && snapshot.len() == "1.0.0+test.".len() + 8, "{snapshot}");
    server.wait_status(&run_id, &["waiting_approval"]).await;
    let seen = events(&server, &run_id).await;
    assert!(types(&seen).contains(&"step_mock_applied"), "{:?}", types(&seen));
    assert!(types(&seen).contains(&"step_test_override_applied"), "{:?}", types(&seen));
    let (_, approvals) = server.call("GET", &format!("/api/approvals?run_id={run_id}"), None).await;
    assert_eq!(approvals[0]["prompt"], "Pay 42.00 now?", "the draft's prompt, rendered with the override");

    // The snapshot is stored for the run to resume on, but it is no version of the catalog.
    let (_, versions) = server.call("GET", "/api/procedures/author/versions", None).await;
    let listed: Vec<&str> = versions.as_array().expect("list").iter().filter_map(|v| v["version"].as_str()).collect();
    assert_eq!(listed, ["1.0.0"]);
    let (_, latest) = server.call("GET", "/api/procedures/author/latest", None).await;
    assert_eq!(latest["version"], "1.0.0");
    let (_, all) = server.call("GET", "/api/procedures", None).await;
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    server.decide(&run_id, "approved").await;
    let done = server.wait_status(&run_id, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_vars"]["total"], "42.00", "{done}");

    // The same test again runs the same snapshot.
    let (status, again) = server
        .call(
            "POST",
            path,
            Some(json!({"ckp_json": draft.clone(), "input_vars": {"customer": "acme"},
                                        "test_data_overrides": {"read": "42.00"}})),
        )
        .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["procedure_version"].as_str(), Some(snapshot.as_str()));

    // Stop at a node: the run completes on reaching it, which does not execute.
    let (status, stopped) = server
        .call(
            "POST",
            path,
            Some(json!({"ckp_json": draft.clone(), "input_vars": {"customer": "acme"}, "stop_at_node": "gate"})),
        )
        .await;
    assert_eq!(status, 201, "{stopped}");
    let stopped_id = stopped["run_id"].as_str().expect("run_id");
    let end = server.wait_status(stopped_id, &["completed", "failed", "waiting_approval"]).await;
    assert_eq!(end["status"], "completed", "{end}");
    let (_, approvals) = server.call("GET", &format!("/api/approvals?run_id={stopped_id}"), None).await;
    assert_eq!(approvals, json!([]));

    // Real calls when asked: with no WEB agent registered the step fails, as the stored version would.
    let (status, real) = server
        .call(
            "POST",
            path,
            Some(json!({"ckp_json": draft.clone(), "input_vars": {"customer": "acme"}, "mock_external_calls": false})),
        )
        .await;
    assert_eq!(status, 201, "{real}");
    let failed = server.wait_status(real["run_id"].as_str().expect("run_id"), &["completed", "failed"]).await;
    assert_eq!(failed["status"], "failed", "{failed}");

    // Bad input: a stop node that does not exist, another procedure, inputs the schema refuses, a reserved version.
    let cases = [
        (json!({"ckp_json": draft.clone(), "stop_at_node": "nope", "input_vars": {"customer": "a"}}), "unknown_node"),
        (json!({"ckp_json": approval_procedure("other"), "input_vars": {}}), "ckp_mismatch"),
        (json!({"ckp_json": draft.clone(), "input_vars": {}}), "invalid_input_vars"),
    ];
    for (body, code) in cases {
        let (status, answer) = server.call("POST", path, Some(body)).await;
        assert_eq!((status, answer["code"].as_str()), (422, Some(code)), "{answer}");
    }
    let mut reserved = agent_procedure();
    reserved["version"] = json!("2.0.0+test.deadbeef");
    let (status, answer) = server.call("POST", "/api/procedures", Some(json!({"ckp_json": reserved}))).await;
    assert_eq!((status, answer["code"].as_str()), (422, Some("reserved_version")), "{answer}");
    server.stop().await;
}
