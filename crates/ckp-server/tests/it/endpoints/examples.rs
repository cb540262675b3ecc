//! The 35 request/response pairs captured from LangOrch (`langorch_exchanges.json` beside this file), replayed
//! against ckp in order. Field names must match the captured bodies exactly; ids, timestamps and the values of
//! a different document (names, descriptions) may differ; where LangOrch was wrong, ckp's documented fix is
//! asserted instead (`docs/langorch-api.md`, "LangOrch's defects").

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{assert_error, column, keys};
use crate::support::{TestServer, approval_procedure, chain_procedure};

/// The captured exchanges: `{method, path, body (when replayed), status, response}` each.
fn examples() -> Vec<Value> {
    let mut file: Value = serde_json::from_str(include_str!("langorch_exchanges.json")).expect("exchanges are JSON");
    let all: Vec<Value> = serde_json::from_value(file["exchanges"].take()).expect("a list of exchanges");
    assert_eq!(all.len(), 35);
    all
}

/// The response captured for exchange `i`, after checking its request is the one replayed.
fn captured<'a>(examples: &'a [Value], i: usize, method: &str, path: &str) -> &'a Value {
    let e = &examples[i];
    assert_eq!((e["method"].as_str(), e["path"].as_str()), (Some(method), Some(path)), "#{i}");
    &e["response"]
}

/// The procedure LangOrch checked exchange #20's inputs against: a required number `post_id` in 1..=100.
fn validated_procedure() -> Value {
    json!({"procedure_id": "simple-http-test", "version": "1.0.0",
        "variables_schema": {"required": {"post_id": {"type": "number", "validation": {"min": 1, "max": 100}}}},
        "workflow_graph": {"start_node": "done", "nodes": {"done": {"type": "terminate", "status": "success"}}}})
}

/// The keys of the first element of a captured list.
fn item_keys(list: &Value) -> BTreeSet<String> {
    keys(&list[0])
}

/// The (event_type, node_id, step_id) of each event.
fn trace(events: &Value) -> Vec<(String, Value, Value)> {
    events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["event_type"].as_str().expect("type").to_owned(), e["node_id"].clone(), e["step_id"].clone()))
        .collect()
}

/// True when `small` appears in `big` in order (not necessarily contiguously).
fn is_subsequence<T: PartialEq>(small: &[T], big: &[T]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_captured_langorch_exchanges_replay_with_the_fixes() {
    let ex = examples();
    let server = TestServer::start("ep-examples").await;
    let procedure_out = keys(captured(&ex, 1, "POST", "/api/procedures"));
    let mut imported_keys = procedure_out.clone();
    imported_keys.insert("warnings".into());

    // #0 liveness: LangOrch's body, plus ckp's `leader`.
    let (status, mut body) = server.call("GET", "/api/health", None).await;
    assert!(body.as_object_mut().and_then(|b| b.remove("leader")).is_some_and(|l| l.is_boolean()), "{body}");
    assert_eq!((status, &body), (200, captured(&ex, 0, "GET", "/api/health")));

    // #1 import: ProcedureOut plus `warnings`; status from the document, release channel dev.
    let (status, chain) =
        server.call("POST", "/api/procedures", Some(json!({"ckp_json": chain_procedure("api_demo_chain", 2)}))).await;
    assert_eq!(status, 201, "{chain}");
    assert_eq!(keys(&chain), imported_keys);
    let want = captured(&ex, 1, "POST", "/api/procedures");
    for field in [
        "procedure_id",
        "version",
        "status",
        "effective_date",
        "release_channel",
        "promoted_from_version",
        "promoted_at",
        "promoted_by",
        "project_id",
    ] {
        assert_eq!(chain[field], want[field], "#1 {field}");
    }
    assert_eq!(chain["warnings"], json!([]));

    // #2 duplicate: 409 JSON (LangOrch: 500 text).
    assert_eq!(ex[2]["status"], 500);
    let dup =
        server.call("POST", "/api/procedures", Some(json!({"ckp_json": chain_procedure("api_demo_chain", 2)}))).await;
    assert_error(&dup, 409, "conflict");

    // #3 no version: 422 JSON with a code.
    assert_eq!(ex[3]["status"], 422);
    let mut unversioned = chain_procedure("x", 2);
    unversioned.as_object_mut().map(|d| d.remove("version"));
    let no_version = server.call("POST", "/api/procedures", Some(json!({"ckp_json": unversioned}))).await;
    assert_error(&no_version, 422, "invalid_ckp");
    assert!(no_version.1["detail"]["errors"].to_string().contains("version"), "{}", no_version.1);

    // #4 no ckp_json: 422 JSON with a code.
    assert_eq!(ex[4]["status"], 422);
    let body = ex[4]["body"].clone();
    assert_error(&server.call("POST", "/api/procedures", Some(body)).await, 422, "invalid_body");

    // #5 a dangling next_node: refused at import with its diagnostic (LangOrch: 201, the run failed later).
    assert_eq!(ex[5]["status"], 201);
    let mut broken = chain_procedure("api_demo_broken", 2);
    broken["workflow_graph"]["nodes"]["n0"]["next_node"] = json!("nope");
    let refused = server.call("POST", "/api/procedures", Some(json!({"ckp_json": broken}))).await;
    assert_error(&refused, 422, "invalid_ckp");
    let errors = &refused.1["detail"]["errors"];
    assert_eq!(errors[0]["pointer"], "/workflow_graph/nodes/n0/next_node", "{errors}");
    assert_eq!(errors[0]["code"], "edge-target-missing", "{errors}");

    // #6 the approval procedure; the input-validation fixture for #20.
    let (status, approval) = server
        .call("POST", "/api/procedures", Some(json!({"ckp_json": approval_procedure("api_demo_approval")})))
        .await;
    assert_eq!((status, keys(&approval)), (201, imported_keys.clone()));
    server.import(validated_procedure()).await;

    // #7 list: ProcedureOut[], newest first.
    let (status, list) = server.call("GET", "/api/procedures", None).await;
    assert_eq!(status, 200);
    assert_eq!(item_keys(captured(&ex, 7, "GET", "/api/procedures")), procedure_out);
    assert!(list.as_array().expect("list").iter().all(|p| keys(p) == procedure_out), "{list}");
    assert_eq!(column(&list, "procedure_id"), ["simple-http-test", "api_demo_approval", "api_demo_chain"]);

    // #8 detail: ProcedureOut + ckp_json (an object) + builder_draft + provenance + retrieval_metadata + trigger.
    let (status, detail) = server.call("GET", "/api/procedures/api_demo_chain/1.0.0", None).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&detail), keys(captured(&ex, 8, "GET", "/api/procedures/api_demo_chain/1.0.0")));
    assert_eq!(detail["ckp_json"], chain_procedure("api_demo_chain", 2));

    // #9 versions.
    let (status, versions) = server.call("GET", "/api/procedures/api_demo_chain/versions", None).await;
    assert_eq!(status, 200);
    assert_eq!(item_keys(captured(&ex, 9, "GET", "/api/procedures/api_demo_chain/versions")), keys(&versions[0]));
    assert_eq!(column(&versions, "version"), ["1.0.0"]);

    // #10 graph: the same node, data, position and edge fields; the same chain n0 -> n1 -> check -> done.
    let (status, graph) = server.call("GET", "/api/procedures/api_demo_chain/1.0.0/graph", None).await;
    assert_eq!(status, 200);
    let want = captured(&ex, 10, "GET", "/api/procedures/api_demo_chain/1.0.0/graph");
    assert_eq!(keys(&graph), keys(want));
    for node in graph["nodes"].as_array().expect("nodes") {
        assert_eq!(keys(node), item_keys(&want["nodes"]));
        assert_eq!(keys(&node["data"]), keys(&want["nodes"][0]["data"]));
        assert_eq!(keys(&node["position"]), keys(&want["nodes"][0]["position"]));
    }
    assert!(graph["edges"].as_array().expect("edges").iter().all(|e| keys(e) == item_keys(&want["edges"])));
    assert_eq!(column(&graph["nodes"], "id"), ["n0", "n1", "check", "done"]);
    assert_eq!(graph["nodes"][0]["data"], want["nodes"][0]["data"], "the start node is drawn as LangOrch draws it");
    assert_eq!(graph["nodes"][3]["data"], want["nodes"][3]["data"]);
    let edge = |g: &Value, i: usize| (g["edges"][i]["source"].clone(), g["edges"][i]["target"].clone());
    assert_eq!((edge(&graph, 0), edge(&graph, 1)), (edge(want, 0), edge(want, 1)));

    // #11 unknown procedure.
    let got = server.call("GET", "/api/procedures/nope/1.0.0", None).await;
    assert_eq!(got.1["detail"], captured(&ex, 11, "GET", "/api/procedures/nope/1.0.0")["detail"]);
    assert_error(&got, 404, "not_found");

    // #12 create: RunOut, status created, inputs kept.
    let body = ex[12]["body"].clone();
    let (status, created) = server.call("POST", "/api/runs", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    // LangOrch's RunOut, plus ckp's `rerun_of` (the run a rerun started again; null otherwise).
    let langorch_run_out = keys(captured(&ex, 12, "POST", "/api/runs"));
    let mut run_out = langorch_run_out.clone();
    run_out.insert("rerun_of".into());
    assert_eq!(keys(&created), run_out);
    assert_eq!(created["rerun_of"], Value::Null);
    assert_eq!((created["status"].as_str(), &created["input_vars"]), (Some("created"), &json!({"bench_tag": "api"})));
    assert_eq!(created["thread_id"], created["run_id"]);
    let run_id = created["run_id"].as_str().expect("run_id").to_owned();

    // #13 readable right after the 201 (LangOrch: sometimes 404).
    assert_eq!(ex[13]["status"], 404);
    let (status, got) = server.call("GET", &format!("/api/runs/{run_id}"), None).await;
    assert_eq!((status, keys(&got)), (200, run_out.clone()), "{got}");

    // #14 completed: outputs are the final variables, with run_id and procedure_id.
    let done = server.wait_status(&run_id, &["completed", "failed"]).await;
    assert_eq!(keys(&done), run_out);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        (done["output_vars"]["bench_tag"].as_str(), done["output_vars"]["run_id"].as_str()),
        (Some("api"), Some(run_id.as_str()))
    );
    assert_eq!(done["output_vars"]["procedure_id"], "api_demo_chain");
    assert!(done["duration_seconds"].as_f64().is_some_and(|d| d >= 0.0), "{done}");
    assert!(done["error_message"].is_null() && done["last_node_id"].is_null(), "{done}");

    // #15 events: RunEventOut fields; LangOrch's trace is contained, in order, in ckp's.
    let (status, events) = server.call("GET", &format!("/api/runs/{run_id}/events"), None).await;
    assert_eq!(status, 200);
    let want = &ex[15]["response"];
    let event_out = item_keys(want);
    assert!(events.as_array().expect("events").iter().all(|e| keys(e) == event_out), "{events}");
    assert!(is_subsequence(&trace(want), &trace(&events)), "LangOrch {:?}\nckp {:?}", trace(want), trace(&events));

    // #16 list with limit.
    let (status, page) = server.call("GET", "/api/runs?limit=2", None).await;
    assert_eq!(status, 200);
    assert_eq!(item_keys(captured(&ex, 16, "GET", "/api/runs?limit=2")), langorch_run_out);
    assert_eq!(column(&page, "run_id"), [run_id.as_str()]);
    assert_eq!(keys(&page[0]), run_out);

    // #17 diagnostics.
    let path = format!("/api/runs/{run_id}/diagnostics");
    let (status, diag) = server.call("GET", &path, None).await;
    assert_eq!(status, 200);
    let want = &ex[17]["response"];
    assert_eq!(keys(&diag), keys(want), "{diag}");
    assert_eq!((diag["status"].as_str(), diag["has_retry_event"].as_bool()), (Some("completed"), Some(false)));
    // ckp adds the step record's key.
    let mut entry_keys = item_keys(&want["idempotency_entries"]);
    entry_keys.insert("key".into());
    for entry in diag["idempotency_entries"].as_array().expect("entries") {
        assert_eq!(keys(entry), entry_keys);
    }

    // #18 queue.
    let (status, queue) = server.call("GET", "/api/runs/queue", None).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&queue), keys(captured(&ex, 18, "GET", "/api/runs/queue")));
    assert_eq!((queue["total_pending"].as_i64(), queue["total_done"].as_i64()), (Some(0), Some(1)), "{queue}");

    // #19 unknown procedure.
    let got = server.call("POST", "/api/runs", Some(ex[19]["body"].clone())).await;
    assert_eq!(got.1["detail"], ex[19]["response"]["detail"]);
    assert_error(&got, 404, "not_found");

    // #20 inputs checked against variables_schema: the same detail, plus a code.
    let got = server.call("POST", "/api/runs", Some(ex[20]["body"].clone())).await;
    assert_eq!(got.1["detail"], ex[20]["response"]["detail"]);
    assert_error(&got, 422, "invalid_input_vars");

    // #21-#23 the broken procedure was refused at import, so it cannot be started; a run that fails at run time
    // says why in error_message and emits run_failed (LangOrch: error_message null, no run_failed).
    assert_eq!(ex[22]["response"]["error_message"], Value::Null);
    let got = server.call("POST", "/api/runs", Some(ex[21]["body"].clone())).await;
    assert_error(&got, 404, "not_found");
    let failing = json!({"procedure_id": "api_demo_failing", "version": "1.0.0", "status": "active", "workflow_graph": {
        "start_node": "end", "nodes": {"end": {"type": "terminate", "status": "failed"}}}});
    server.import(failing).await;
    let failed_id = server.start_run("api_demo_failing", json!({})).await;
    let failed = server.wait_status(&failed_id, &["completed", "failed"]).await;
    assert_eq!((failed["status"].as_str(), keys(&failed)), (Some("failed"), run_out.clone()));
    assert!(failed["error_message"].as_str().is_some_and(|m| !m.is_empty()), "{failed}");
    let (_, events) = server.call("GET", &format!("/api/runs/{failed_id}/events"), None).await;
    assert_eq!(column(&events, "event_type").last().map(String::as_str), Some("run_failed"));

    // #24-#25 a run pauses at the approval node.
    let (status, created) = server.call("POST", "/api/runs", Some(ex[24]["body"].clone())).await;
    assert_eq!((status, keys(&created)), (201, run_out.clone()));
    let gated = created["run_id"].as_str().expect("run_id").to_owned();
    let waiting = server.wait_status(&gated, &["waiting_approval"]).await;
    assert_eq!(keys(&waiting), run_out);
    assert_eq!(waiting["last_node_id"], ex[25]["response"]["last_node_id"]);

    // #26 pending approvals with the run's status.
    let (status, pending) = server.call("GET", "/api/approvals?status=pending", None).await;
    assert_eq!(status, 200);
    let want = captured(&ex, 26, "GET", "/api/approvals?status=pending");
    let approval_out = item_keys(want);
    assert_eq!(keys(&pending[0]), approval_out);
    for field in [
        "node_id",
        "decision_type",
        "options",
        "context_data",
        "status",
        "decided_by",
        "decision_payload",
        "comment",
        "decided_at",
        "expires_at",
        "run_status",
    ] {
        assert_eq!(pending[0][field], want[0][field], "#26 {field}");
    }
    // ckp renders the prompt (LangOrch returned the template).
    assert_eq!(pending[0]["prompt"], format!("Approve run {gated}?"));
    let approval_id = pending[0]["approval_id"].as_str().expect("approval_id").to_owned();

    // #27 one approval.
    let (status, one) = server.call("GET", &format!("/api/approvals/{approval_id}"), None).await;
    assert_eq!((status, keys(&one)), (200, keys(&ex[27]["response"])));

    // #28 the decision.
    let decision = ex[28]["body"].clone();
    let (status, decided) =
        server.call("POST", &format!("/api/approvals/{approval_id}/decision"), Some(decision)).await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(keys(&decided), keys(&ex[28]["response"]));
    for field in ["status", "decided_by", "decision_payload", "comment"] {
        assert_eq!(decided[field], ex[28]["response"][field], "#28 {field}");
    }

    // #29 a second decision: 409 (LangOrch: 200, and a second approval_decision_received).
    assert_eq!(ex[29]["status"], 200);
    let again =
        server.call("POST", &format!("/api/approvals/{approval_id}/decision"), Some(ex[29]["body"].clone())).await;
    assert_error(&again, 409, "conflict");

    // #30 completed after the decision.
    let done = server.wait_status(&gated, &["completed", "failed"]).await;
    assert_eq!(keys(&done), run_out);
    assert_eq!(
        (done["status"].as_str(), &done["output_vars"]["result"]),
        (Some("completed"), &ex[30]["response"]["output_vars"]["result"])
    );
    assert_eq!(done["output_vars"]["__approval_decisions"], ex[30]["response"]["output_vars"]["__approval_decisions"]);

    // #31 the approval trace: requested, decided once, resumed, completed.
    let (_, events) = server.call("GET", &format!("/api/runs/{gated}/events"), None).await;
    assert!(events.as_array().expect("events").iter().all(|e| keys(e) == event_out));
    let types = column(&events, "event_type");
    let count = |t: &str| types.iter().filter(|e| *e == t).count();
    let langorch = column(&ex[31]["response"], "event_type");
    assert_eq!(langorch.iter().filter(|t| *t == "approval_decision_received").count(), 2, "LangOrch recorded both");
    assert_eq!(
        (count("approval_requested"), count("approval_decision_received"), count("execution_resumed")),
        (1, 1, 1)
    );
    assert_eq!(types.first().map(String::as_str), Some("run_created"));
    assert_eq!(types.last().map(String::as_str), Some("run_completed"));
    let decided_event =
        events.as_array().expect("events").iter().find(|e| e["event_type"] == "approval_decision_received");
    let want_payload = &ex[31]["response"][11]["payload"];
    assert_eq!(decided_event.map(|e| keys(&e["payload"])), Some(keys(want_payload)));

    // #32-#33 cancel a waiting run.
    let (status, created) = server.call("POST", "/api/runs", Some(ex[32]["body"].clone())).await;
    assert_eq!(status, 201);
    let to_cancel = created["run_id"].as_str().expect("run_id").to_owned();
    server.wait_status(&to_cancel, &["waiting_approval"]).await;
    let (status, canceled) = server.call("POST", &format!("/api/runs/{to_cancel}/cancel"), None).await;
    assert_eq!((status, keys(&canceled)), (200, run_out.clone()));
    for field in ["status", "last_node_id", "error_message"] {
        assert_eq!(canceled[field], ex[33]["response"][field], "#33 {field}");
    }
    assert!(canceled["ended_at"].is_string() && canceled["duration_seconds"].is_number(), "{canceled}");

    // #34 unknown approval.
    let got = server.call("POST", "/api/approvals/does-not-exist/decision", Some(ex[34]["body"].clone())).await;
    assert_error(&got, 404, "not_found");
    server.stop().await;
}

/// The chain's edges as LangOrch's UI gets them (exchange #10): numbered from `e1`, and a logic node's edges
/// (rules and default) animated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_edges_are_drawn_as_langorch_draws_them() {
    let ex = examples();
    let server = TestServer::start("ep-examples-graph").await;
    server.import(chain_procedure("api_demo_chain", 2)).await;
    let (status, graph) = server.call("GET", "/api/procedures/api_demo_chain/1.0.0/graph", None).await;
    assert_eq!(status, 200);
    // (id, animated, label kind): the rule's condition differs between the two documents.
    let shape = |g: &Value| -> Vec<(Value, Value, String)> {
        g["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| {
                let label = e["label"].as_str().expect("label");
                let kind = if label.is_empty() || label == "default" { label.to_owned() } else { "<condition>".into() };
                (e["id"].clone(), e["animated"].clone(), kind)
            })
            .collect()
    };
    assert_eq!(shape(&graph), shape(captured(&ex, 10, "GET", "/api/procedures/api_demo_chain/1.0.0/graph")));
    server.stop().await;
}
