//! `/api/procedures`: import (warnings, duplicates, unknown project), list filters, versions, get (`latest`),
//! update, status, graph, explain, delete.

use serde_json::{Value, json};

use super::{assert_error, column, id, ts};
use crate::support::{TestServer, approval_procedure, chain_procedure, fixture};

/// A minimal valid procedure: one terminate node, plus `extra` root fields.
fn doc(procedure_id: &str, version: &str, extra: Value) -> Value {
    let mut d = json!({"procedure_id": procedure_id, "version": version, "status": "active",
        "workflow_graph": {"start_node": "end", "nodes": {"end": {"type": "terminate", "status": "success"}}}});
    if let (Some(d), Some(extra)) = (d.as_object_mut(), extra.as_object()) {
        d.extend(extra.clone());
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_returns_the_procedure_with_its_warnings_and_refuses_duplicates() {
    let server = TestServer::start("ep-proc-import").await;
    // `orphan` is unreachable: a warning, not an error.
    let mut d = doc("imported", "1.0.0", json!({"name": "Imported", "description": "has an orphan"}));
    d["workflow_graph"]["nodes"]["orphan"] = json!({"type": "terminate"});
    let (status, body) = server.call("POST", "/api/procedures", Some(json!({"ckp_json": d.clone()}))).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["warnings"].as_array().is_some_and(|w| !w.is_empty()), "{body}");
    insta::assert_json_snapshot!("import_201", body, {".id" => id(), ".created_at" => ts()});

    let duplicate = server.call("POST", "/api/procedures", Some(json!({"ckp_json": d}))).await;
    assert_error(&duplicate, 409, "conflict");
    insta::assert_json_snapshot!("import_duplicate_409", duplicate.1);

    // The document may also come as JSON text.
    let text = doc("as_text", "1", json!({})).to_string();
    let (status, body) = server.call("POST", "/api/procedures", Some(json!({"ckp_json": text}))).await;
    assert_eq!((status, body["procedure_id"].as_str()), (201, Some("as_text")), "{body}");

    let unknown_project = server
        .call(
            "POST",
            "/api/procedures",
            Some(json!({"ckp_json": doc("orphaned", "1", json!({})), "project_id": "nope"})),
        )
        .await;
    assert_error(&unknown_project, 404, "not_found");
    let (_, list) = server.call("GET", "/api/procedures", None).await;
    assert_eq!(column(&list, "procedure_id"), ["as_text", "imported"], "nothing stored for refused imports");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_status_project_tags_search_and_metadata() {
    let server = TestServer::start("ep-proc-list").await;
    let (status, project) = server.call("POST", "/api/projects", Some(json!({"name": "Finance"}))).await;
    assert_eq!(status, 201, "{project}");
    let project_id = project["project_id"].as_str().expect("project_id");
    let alpha = doc(
        "alpha",
        "1",
        json!({"retrieval_metadata":
        {"tags": ["billing", "eu"], "domain": "finance", "keywords": ["invoice"]}}),
    );
    let (status, body) =
        server.call("POST", "/api/procedures", Some(json!({"ckp_json": alpha, "project_id": project_id}))).await;
    assert_eq!(status, 201, "{body}");
    let mut beta = doc(
        "beta",
        "1",
        json!({"name": "Beta Refunds", "retrieval_metadata":
        {"tags": ["billing"], "domain": "support", "keywords": ["refund"]}}),
    );
    beta["status"] = json!("draft");
    server.import(beta).await;
    server.import(doc("gamma", "1", json!({"description": "Nightly export 100%"}))).await;

    let mut seen = serde_json::Map::new();
    for query in [
        "",
        "?status=active",
        "?status=draft",
        "?status=archived",
        &format!("?project_id={project_id}"),
        "?tags=billing",
        "?tags=billing,eu",
        "?tags=eu,missing",
        "?search=nightly",
        "?search=REFUND",
        "?search=finance",
        "?search=beta%20refunds",
        "?metadata_search=invoice",
        "?metadata_search=SUPPORT",
        "?metadata_search=nightly",
        "?metadata_search=%25",
        "?status=active&tags=billing",
    ] {
        let (status, list) = server.call("GET", &format!("/api/procedures{query}"), None).await;
        assert_eq!(status, 200, "{query}: {list}");
        let key = if query.contains(project_id) { "?project_id=<project>".to_owned() } else { query.to_owned() };
        seen.insert(key, json!(column(&list, "procedure_id")));
    }
    insta::assert_json_snapshot!("list_filters", seen);
    let (status, none) = server.call("GET", "/api/procedures?status=no_such_status", None).await;
    assert_eq!((status, none), (200, json!([])), "a status no version has matches none");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_get_and_latest() {
    let server = TestServer::start("ep-proc-versions").await;
    server.import(doc("multi", "1.0.0", json!({"description": "first"}))).await;
    server
        .import(doc(
            "multi",
            "2.0.0",
            json!({"description": "second", "provenance": {"source": "test"},
            "retrieval_metadata": {"tags": ["x"]}}),
        ))
        .await;

    let (status, versions) = server.call("GET", "/api/procedures/multi/versions", None).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("versions", versions, {"[].id" => id(), "[].created_at" => ts()});

    let (status, one) = server.call("GET", "/api/procedures/multi/1.0.0", None).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("get_1_0_0", one, {".id" => id(), ".created_at" => ts()});
    let (status, latest) = server.call("GET", "/api/procedures/multi/latest", None).await;
    assert_eq!(status, 200);
    assert_eq!(latest["version"], "2.0.0");
    assert_eq!(latest["provenance"], json!({"source": "test"}));
    assert_eq!(latest["retrieval_metadata"], json!({"tags": ["x"]}));
    assert_eq!(latest["ckp_json"]["description"], "second");

    assert_error(&server.call("GET", "/api/procedures/multi/3.0.0", None).await, 404, "not_found");
    assert_error(&server.call("GET", "/api/procedures/nope/latest", None).await, 404, "not_found");
    assert_error(&server.call("GET", "/api/procedures/nope/versions", None).await, 404, "not_found");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_replaces_the_document_of_the_same_id_and_version() {
    let server = TestServer::start("ep-proc-update").await;
    server.import(doc("upd", "1", json!({"description": "before"}))).await;
    let new = doc("upd", "1", json!({"description": "after", "name": "Updated"}));
    let (status, body) = server.call("PUT", "/api/procedures/upd/1", Some(json!({"ckp_json": new}))).await;
    assert_eq!(status, 200, "{body}");
    insta::assert_json_snapshot!("update_200", body, {".id" => id(), ".created_at" => ts()});
    let (_, got) = server.call("GET", "/api/procedures/upd/1", None).await;
    assert_eq!((got["description"].as_str(), got["ckp_json"]["description"].as_str()), (Some("after"), Some("after")));

    let other_version =
        server.call("PUT", "/api/procedures/upd/1", Some(json!({"ckp_json": doc("upd", "2", json!({}))}))).await;
    assert_error(&other_version, 422, "ckp_mismatch");
    let other_id =
        server.call("PUT", "/api/procedures/upd/1", Some(json!({"ckp_json": doc("other", "1", json!({}))}))).await;
    assert_error(&other_id, 422, "ckp_mismatch");
    let invalid = server
        .call("PUT", "/api/procedures/upd/1", Some(json!({"ckp_json": {"procedure_id": "upd", "version": "1"}})))
        .await;
    assert_error(&invalid, 422, "invalid_ckp");
    let unknown =
        server.call("PUT", "/api/procedures/nope/1", Some(json!({"ckp_json": doc("nope", "1", json!({}))}))).await;
    assert_error(&unknown, 404, "not_found");
    let (_, got) = server.call("GET", "/api/procedures/upd/1", None).await;
    assert_eq!(got["description"], "after", "refused updates changed nothing");
    assert_error(&server.call("GET", "/api/procedures/nope/1", None).await, 404, "not_found");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_are_mirrored_into_the_document_and_checked() {
    let server = TestServer::start("ep-proc-status").await;
    server.import(doc("life", "1", json!({}))).await;
    let (status, body) =
        server.call("PATCH", "/api/procedures/life/1/status", Some(json!({"status": "deprecated"}))).await;
    assert_eq!(status, 200, "{body}");
    insta::assert_json_snapshot!("status_200", body, {".id" => id(), ".created_at" => ts()});
    let (_, got) = server.call("GET", "/api/procedures/life/1", None).await;
    assert_eq!((got["status"].as_str(), got["ckp_json"]["status"].as_str()), (Some("deprecated"), Some("deprecated")));
    // A deprecated procedure cannot be started.
    let run = server.call("POST", "/api/runs", Some(json!({"procedure_id": "life"}))).await;
    assert_error(&run, 422, "procedure_not_runnable");

    let invalid = server.call("PATCH", "/api/procedures/life/1/status", Some(json!({"status": "retired"}))).await;
    assert_error(&invalid, 422, "invalid_status");
    insta::assert_json_snapshot!("status_invalid_422", invalid.1);
    let unknown = server.call("PATCH", "/api/procedures/nope/1/status", Some(json!({"status": "active"}))).await;
    assert_error(&unknown, 404, "not_found");
    // Back to active: runnable again.
    let (status, _) = server.call("PATCH", "/api/procedures/life/1/status", Some(json!({"status": "active"}))).await;
    assert_eq!(status, 200);
    let run_id = server.start_run("life", json!({})).await;
    assert_eq!(server.wait_status(&run_id, &["completed", "failed"]).await["status"], "completed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_gives_nodes_and_edges_for_the_ui() {
    let server = TestServer::start("ep-proc-graph").await;
    server.import(approval_procedure("gated")).await;
    server.import(chain_procedure("chain", 2)).await;
    let (status, graph) = server.call("GET", "/api/procedures/gated/1.0.0/graph", None).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("graph_approval", graph, {".edges[].id" => id()});
    let ids = column(&graph["edges"], "id");
    assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len(), ids.len(), "edge ids are unique");
    // The chain's edges are compared with LangOrch's in examples.rs.
    let (status, graph) = server.call("GET", "/api/procedures/chain/latest/graph", None).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("graph_chain_nodes", graph["nodes"]);
    assert_eq!(graph["edges"].as_array().map(Vec::len), Some(4), "{graph}");
    assert_error(&server.call("GET", "/api/procedures/nope/1/graph", None).await, 404, "not_found");
    assert_error(&server.call("GET", "/api/procedures/gated/9/graph", None).await, 404, "not_found");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reports_the_procedure_and_checks_inputs() {
    let server = TestServer::start("ep-proc-explain").await;
    server.import(fixture("ticket_lookup.ckp.json")).await;
    let path = "/api/procedures/ticket-lookup/1.0.0/explain";
    let (status, plain) = server.call("POST", path, None).await;
    assert_eq!(status, 200, "{plain}");
    insta::assert_json_snapshot!("explain", plain);
    assert!(plain.get("input_check").is_none(), "no inputs, no input_check");

    let (status, bad) = server.call("POST", path, Some(json!({"input_vars": {"ticket_id": 1000}}))).await;
    assert_eq!(status, 200, "{bad}");
    assert_eq!(bad["input_check"], json!({"valid": false, "errors": {"ticket_id": "Must be at most 500"}}));
    let (_, good) = server.call("POST", path, Some(json!({"input_vars": {"ticket_id": 7}}))).await;
    assert_eq!(good["input_check"], json!({"valid": true, "errors": {}}));
    let (status, latest) = server.call("POST", "/api/procedures/ticket-lookup/latest/explain", None).await;
    assert_eq!((status, &latest), (200, &plain), "latest explains the newest version");

    // A document in the body is explained instead; it must be the same procedure and version.
    let mut edited = fixture("ticket_lookup.ckp.json");
    edited["workflow_graph"]["nodes"]["orphan"] = json!({"type": "terminate"});
    let (status, body) = server.call("POST", path, Some(json!({"ckp_json": edited}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ckp"]["unreachable"], json!(["orphan"]), "{body}");
    assert!(body["route_trace"].as_array().is_some_and(|t| t.iter().all(|n| n["node_id"] != "orphan")), "{body}");
    let other = server.call("POST", path, Some(json!({"ckp_json": doc("other", "1", json!({}))}))).await;
    assert_error(&other, 422, "ckp_mismatch");
    let invalid = server.call("POST", path, Some(json!({"ckp_json": {"procedure_id": "ticket-lookup"}}))).await;
    assert_error(&invalid, 422, "invalid_ckp");
    let wrong_type = server.call("POST", path, Some(json!({"input_vars": [1]}))).await;
    assert_error(&wrong_type, 422, "invalid_body");
    assert_error(&server.call("POST", "/api/procedures/nope/1/explain", None).await, 404, "not_found");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_one_version() {
    let server = TestServer::start("ep-proc-delete").await;
    server.import(doc("gone", "1", json!({}))).await;
    server.import(doc("gone", "2", json!({}))).await;
    let refused = server.call("DELETE", "/api/procedures/gone/latest", None).await;
    assert_error(&refused, 422, "version_required");
    let (status, body) = server.call("DELETE", "/api/procedures/gone/2", None).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("delete_200", body);
    assert_error(&server.call("GET", "/api/procedures/gone/2", None).await, 404, "not_found");
    assert_error(&server.call("DELETE", "/api/procedures/gone/2", None).await, 404, "not_found");
    assert_error(&server.call("GET", "/api/procedures/gone/2/graph", None).await, 404, "not_found");
    let (_, latest) = server.call("GET", "/api/procedures/gone/latest", None).await;
    assert_eq!(latest["version"], "1", "the other version stays");
    // A deleted version cannot be started; the same id and version can be imported again.
    let run = server.call("POST", "/api/runs", Some(json!({"procedure_id": "gone", "procedure_version": "2"}))).await;
    assert_error(&run, 404, "not_found");
    server.import(doc("gone", "2", json!({}))).await;

    // A version with a run in progress stays until that run ends.
    server.import(approval_procedure("gated")).await;
    let run_id = server.start_run("gated", json!({})).await;
    server.wait_status(&run_id, &["waiting_approval"]).await;
    assert_error(&server.call("DELETE", "/api/procedures/gated/1.0.0", None).await, 409, "conflict");
    let (status, run) = server.call("GET", &format!("/api/runs/{run_id}"), None).await;
    assert_eq!((status, run["status"].as_str()), (200, Some("waiting_approval")), "{run}");
    assert_eq!(server.call("POST", &format!("/api/runs/{run_id}/cancel"), None).await.0, 200);
    assert_eq!(server.call("DELETE", "/api/procedures/gated/1.0.0", None).await.0, 200);
    let (status, run) = server.call("GET", &format!("/api/runs/{run_id}"), None).await;
    assert_eq!((status, run["status"].as_str()), (200, Some("canceled")), "runs keep their history: {run}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20000_node_procedure_imports_and_a_generated_one_runs() {
    let server = TestServer::start("ep-proc-large").await;
    let big = ckp_core::testing::large_procedure("large", 20_000);
    let (status, body) = server.call("POST", "/api/procedures", Some(json!({"ckp_json": big}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["warnings"], json!([]), "the generated procedure is clean");
    let (status, stored) = server.call("GET", "/api/procedures/large/1", None).await;
    assert_eq!(status, 200, "{stored}");
    let nodes = stored["ckp_json"]["workflow_graph"]["nodes"].as_object().map(serde_json::Map::len);
    assert_eq!(nodes, Some(20_000));
    // The same generator's procedures run to their end: every node kind it uses executes.
    server.import(ckp_core::testing::large_procedure("small", 200)).await;
    let run_id = server.start_run("small", json!({})).await;
    let run = server.wait_status(&run_id, &["completed", "failed"]).await;
    assert_eq!(run["status"], "completed", "{run}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn procedures_over_the_limits_are_413_and_nothing_is_stored() {
    let fits = ckp_core::testing::large_procedure("fits", 100);
    let too_many = ckp_core::testing::large_procedure("too_many", 101);
    // Room for 101 nodes: that document is refused for its nodes, not its bytes.
    let max_bytes = too_many.to_string().len() + 64;
    let server = TestServer::start_with("ep-proc-limits", |c| {
        c.max_procedure_nodes = 100;
        c.max_procedure_bytes = max_bytes;
    })
    .await;
    server.import(fits).await;
    let before = super::store_lists(&server).await;

    let got = server.call("POST", "/api/procedures", Some(json!({"ckp_json": too_many}))).await;
    assert_error(&got, 413, "procedure_too_large");
    let detail = got.1["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("101 nodes") && detail.contains("max_procedure_nodes"), "{detail}");

    let mut too_long = ckp_core::testing::large_procedure("too_long", 90);
    too_long["description"] = json!("x".repeat(max_bytes));
    // As an object and as text, the document is measured the same way.
    for ckp_json in [too_long.clone(), json!(too_long.to_string())] {
        let got = server.call("POST", "/api/procedures", Some(json!({"ckp_json": ckp_json}))).await;
        assert_error(&got, 413, "procedure_too_large");
        let detail = got.1["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("max_procedure_bytes"), "{detail}");
    }

    // An update and an explained document are held to the same limits.
    let bigger = ckp_core::testing::large_procedure("fits", 101);
    assert_error(
        &server.call("PUT", "/api/procedures/fits/1", Some(json!({"ckp_json": bigger.clone()}))).await,
        413,
        "procedure_too_large",
    );
    assert_error(
        &server.call("POST", "/api/procedures/fits/1/explain", Some(json!({"ckp_json": bigger}))).await,
        413,
        "procedure_too_large",
    );
    assert_eq!(super::store_lists(&server).await, before, "nothing stored");
    let (status, _) = server.call("GET", "/api/procedures/too_many/1", None).await;
    assert_eq!(status, 404);
    // The stored procedure still explains and runs.
    assert_eq!(server.call("POST", "/api/procedures/fits/1/explain", None).await.0, 200);
    server.stop().await;
}
