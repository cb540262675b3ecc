//! Refused requests: every one answers the JSON error shape (`code` + `detail`) with the right status, and leaves
//! the store exactly as it was.

use serde_json::{Value, json};

use super::{assert_error, raw, store_lists};
use crate::support::{TestServer, approval_procedure, chain_procedure, fixture};

/// A server with procedures, a completed run, a waiting run (and its approval), a project and an agent.
async fn populated(name: &str) -> TestServer {
    let server = TestServer::start(name).await;
    server.import(chain_procedure("chain", 1)).await;
    server.import(approval_procedure("gate")).await;
    server.import(fixture("ticket_lookup.ckp.json")).await;
    let done = server.start_run("chain", json!({})).await;
    server.wait_status(&done, &["completed"]).await;
    let waiting = server.start_run("gate", json!({})).await;
    server.wait_status(&waiting, &["waiting_approval"]).await;
    assert_eq!(server.call("POST", "/api/projects", Some(json!({"name": "P"}))).await.0, 201);
    let agent = json!({"agent_id": "a", "name": "a", "channel": "web", "base_url": "http://127.0.0.1:9"});
    assert_eq!(server.call("POST", "/api/agents", Some(agent)).await.0, 201);
    server
}

/// Asserts the answer, then that the store did not change.
async fn refused(server: &TestServer, before: &Value, got: (u16, Value), status: u16, code: &str, what: &str) {
    assert_eq!((got.0, got.1["code"].as_str()), (status, Some(code)), "{what}: {}", got.1);
    assert_error(&got, status, code);
    assert_eq!(&store_lists(server).await, before, "{what} changed the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_mistyped_and_unlabelled_bodies() {
    let server = populated("ep-bad-bodies").await;
    let before = store_lists(&server).await;
    let json_ct = Some("application/json");

    let got = raw(&server, "POST", "/api/procedures", json_ct, b"{\"ckp_json\": {".to_vec()).await;
    refused(&server, &before, got, 400, "malformed_json", "truncated JSON").await;
    let got = raw(&server, "POST", "/api/runs", json_ct, b"procedure_id=chain".to_vec()).await;
    refused(&server, &before, got, 400, "malformed_json", "form body labelled JSON").await;
    let got = raw(&server, "POST", "/api/procedures/chain/1.0.0/explain", json_ct, b"{oops".to_vec()).await;
    refused(&server, &before, got, 400, "malformed_json", "malformed explain body").await;
    let got = raw(&server, "POST", "/api/runs", json_ct, Vec::new()).await;
    refused(&server, &before, got, 400, "malformed_json", "an empty body").await;

    let got = server.call("POST", "/api/runs", Some(json!({"procedure_id": 5}))).await;
    refused(&server, &before, got, 422, "invalid_body", "procedure_id as a number").await;
    let got = server.call("POST", "/api/runs", Some(json!({"procedure_id": "chain", "input_vars": [1, 2]}))).await;
    refused(&server, &before, got, 422, "invalid_body", "input_vars as a list").await;
    let got = server.call("POST", "/api/procedures", Some(json!({"ckp_json": 42}))).await;
    refused(&server, &before, got, 422, "invalid_body", "ckp_json as a number").await;
    let got = server.call("PATCH", "/api/procedures/chain/1.0.0/status", Some(json!({"status": true}))).await;
    refused(&server, &before, got, 422, "invalid_body", "status as a boolean").await;
    // PostgreSQL cannot store U+0000 in text: refused up front on every backend.
    let got = server.call("POST", "/api/runs", Some(json!({"procedure_id": "chain", "project_id": "p\u{0}"}))).await;
    refused(&server, &before, got, 422, "invalid_body", "a NUL character in a run's project").await;
    let got = server.call("POST", "/api/projects", Some(json!({"name": "P", "description": {"\u{0}": 1}}))).await;
    refused(&server, &before, got, 422, "invalid_body", "a NUL character in a key").await;
    // In a path: no such run on SQLite, a value PostgreSQL refuses to compare; a client error either way.
    let got = server.call("GET", "/api/runs/a%00b", None).await;
    assert!(
        matches!((got.0, got.1["code"].as_str()), (404, Some("not_found")) | (422, Some("invalid_value"))),
        "{got:?}"
    );
    let got = server
        .call(
            "POST",
            "/api/agents",
            Some(json!({"name": "x", "channel": "web", "base_url": "http://h", "concurrency_limit": "many"})),
        )
        .await;
    refused(&server, &before, got, 422, "invalid_body", "concurrency_limit as a string").await;

    let body = json!({"ckp_json": chain_procedure("unlabelled", 1)}).to_string().into_bytes();
    let got = raw(&server, "POST", "/api/procedures", None, body.clone()).await;
    refused(&server, &before, got, 415, "unsupported_media_type", "no Content-Type").await;
    let got = raw(&server, "POST", "/api/procedures", Some("text/plain"), body.clone()).await;
    refused(&server, &before, got, 415, "unsupported_media_type", "text/plain").await;
    // The control: the same body, labelled JSON with a charset, is accepted.
    let (status, imported) =
        raw(&server, "POST", "/api/procedures", Some("application/json; charset=utf-8"), body).await;
    assert_eq!((status, imported["procedure_id"].as_str()), (201, Some("unlabelled")), "{imported}");
    server.stop().await;
}

/// A JSON array is not the object a body must be (LangOrch/pydantic: 422 "Input should be a valid dictionary").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_bodies_are_not_objects() {
    let server = populated("ep-bad-list-body").await;
    let before = store_lists(&server).await;
    let mut answers = Vec::new();
    for (path, body) in [
        ("/api/runs", json!(["chain"])),
        ("/api/agents", json!(["listed", "n", "web", "http://h"])),
        ("/api/projects", json!(["P"])),
        ("/api/procedures", json!([chain_procedure("listed", 1)])),
    ] {
        let (status, body) = server.call("POST", path, Some(body)).await;
        answers.push((path, status, body["code"].clone()));
    }
    let expected: Vec<_> = answers.iter().map(|(path, ..)| (*path, 422, json!("invalid_body"))).collect();
    assert_eq!(answers, expected);
    assert_eq!(store_lists(&server).await, before, "list bodies changed the store");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413() {
    let server = TestServer::start_with("ep-bad-size", |c| c.max_body_bytes = 1024).await;
    server.import(chain_procedure("chain", 1)).await;
    let before = store_lists(&server).await;
    let mut big = chain_procedure("big", 1);
    big["description"] = json!("x".repeat(4096));
    let got = server.call("POST", "/api/procedures", Some(json!({"ckp_json": big.clone()}))).await;
    refused(&server, &before, got, 413, "body_too_large", "an oversized import").await;
    let got = server.call("PUT", "/api/procedures/chain/1.0.0", Some(json!({"ckp_json": big}))).await;
    refused(&server, &before, got, 413, "body_too_large", "an oversized update").await;
    let got = server
        .call("POST", "/api/runs", Some(json!({"procedure_id": "chain", "input_vars": {"pad": "y".repeat(4096)}})))
        .await;
    refused(&server, &before, got, 413, "body_too_large", "an oversized run").await;
    // A body just under the limit is fine.
    let (status, _) = server
        .call("POST", "/api/runs", Some(json!({"procedure_id": "chain", "input_vars": {"pad": "y".repeat(512)}})))
        .await;
    assert_eq!(status, 201);
    server.stop().await;
}

/// A declared `Content-Length` over the limit is answered 413 at once, before a byte of the body is sent (a client
/// announcing gigabytes does not get to send them), on any route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversize_body_is_refused_before_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with("ep-bad-declared", |c| c.max_body_bytes = 1024).await;
    let before = store_lists(&server).await;
    for path in ["/api/procedures", "/api/runs", "/api/no-such-route"] {
        let addr = server.base.trim_start_matches("http://");
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connects");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.expect("sends the head only");
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut answer))
            .await
            .expect("answered without the body")
            .expect("reads");
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(text.starts_with("HTTP/1.1 413"), "{path}: {text}");
        assert!(text.contains("body_too_large"), "{path}: {text}");
    }
    assert_eq!(store_lists(&server).await, before, "nothing changed");
    server.stop().await;
}

/// The explain body is read without the JSON extractor; its size rejection is still the JSON shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_bodies_over_the_limit_are_413_json() {
    let server = TestServer::start_with("ep-bad-size-explain", |c| c.max_body_bytes = 1024).await;
    server.import(chain_procedure("chain", 1)).await;
    let got = server
        .call("POST", "/api/procedures/chain/1.0.0/explain", Some(json!({"input_vars": {"pad": "y".repeat(4096)}})))
        .await;
    assert_error(&got, 413, "body_too_large");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_404() {
    let server = populated("ep-bad-ids").await;
    let before = store_lists(&server).await;
    for (method, path, body) in [
        ("GET", "/api/runs/nope", None),
        ("DELETE", "/api/runs/nope", None),
        ("POST", "/api/runs/nope/cancel", None),
        ("POST", "/api/runs/nope/retry", None),
        ("GET", "/api/runs/nope/events", None),
        ("GET", "/api/runs/nope/diagnostics", None),
        ("GET", "/api/runs/nope/checkpoints", None),
        ("GET", "/api/runs/nope/artifacts", None),
        ("POST", "/api/runs", Some(json!({"procedure_id": "nope"}))),
        ("GET", "/api/procedures/nope/1", None),
        ("GET", "/api/procedures/nope/versions", None),
        ("DELETE", "/api/procedures/nope/1", None),
        ("PATCH", "/api/procedures/nope/1/status", Some(json!({"status": "active"}))),
        ("GET", "/api/approvals/nope", None),
        ("POST", "/api/approvals/nope/decision", Some(json!({"decision": "approve"}))),
        ("GET", "/api/agents/nope", None),
        ("DELETE", "/api/agents/nope", None),
        ("GET", "/api/projects/nope", None),
        ("DELETE", "/api/projects/nope", None),
    ] {
        let got = server.call(method, path, body).await;
        refused(&server, &before, got, 404, "not_found", &format!("{method} {path}")).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_ckp_lists_every_error_with_its_place() {
    let server = populated("ep-bad-ckp").await;
    let before = store_lists(&server).await;
    let doc = json!({"procedure_id": "broken", "version": "1", "workflow_graph": {"start_node": "a", "nodes": {
        "a": {"type": "logic", "rules": [{"condition": "(", "next_node": "nowhere"}]}}}});
    // As text, so line and column point into what was sent.
    let text = serde_json::to_string_pretty(&doc).expect("text");
    let got = server.call("POST", "/api/procedures", Some(json!({"ckp_json": text}))).await;
    let detail = got.1["detail"].clone();
    refused(&server, &before, got, 422, "invalid_ckp", "an invalid CKP").await;
    let errors = detail["errors"].as_array().expect("errors");
    assert!(errors.len() >= 2, "every error is reported: {detail}");
    for e in errors {
        assert!(e["pointer"].as_str().is_some_and(|p| p.starts_with("/workflow_graph/nodes/a")), "{e}");
        assert!(e["line"].as_u64().is_some_and(|l| l > 1) && e["column"].as_u64().is_some_and(|c| c > 0), "{e}");
        assert!(e["code"].is_string() && e["message"].is_string(), "{e}");
    }
    insta::assert_json_snapshot!("invalid_ckp_422", detail);
    let got = server.call("POST", "/api/procedures", Some(json!({"ckp_json": "{not json"}))).await;
    refused(&server, &before, got, 422, "invalid_ckp", "CKP text that is not JSON").await;
    let got = server.call("POST", "/api/procedures", Some(json!({"ckp_json": {"procedure_id": "x"}}))).await;
    refused(&server, &before, got, 422, "invalid_ckp", "a CKP without version").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_vars_are_422_with_every_variable() {
    let server = populated("ep-bad-inputs").await;
    let before = store_lists(&server).await;
    for (inputs, expected) in [
        (json!({"ticket_id": 1000}), json!({"ticket_id": "Must be at most 500"})),
        (json!({"ticket_id": 0}), json!({"ticket_id": "Must be at least 1"})),
        (json!({"ticket_id": "abc"}), json!({"ticket_id": "Must be a number"})),
    ] {
        let body = json!({"procedure_id": "ticket-lookup", "input_vars": inputs});
        let got = server.call("POST", "/api/runs", Some(body)).await;
        assert_eq!(got.1["detail"], json!({"message": "Invalid input_vars", "errors": expected}), "{inputs}");
        refused(&server, &before, got, 422, "invalid_input_vars", &format!("inputs {inputs}")).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_are_422() {
    let server = populated("ep-bad-query").await;
    let before = store_lists(&server).await;
    let (_, runs) = server.call("GET", "/api/runs?status=waiting_approval", None).await;
    let waiting = runs[0]["run_id"].as_str().expect("run_id").to_owned();
    let (_, projects) = server.call("GET", "/api/projects", None).await;
    let project = projects[0]["project_id"].as_str().expect("project_id").to_owned();
    for path in [
        "/api/runs?limit=abc".to_owned(),
        "/api/runs?offset=x".to_owned(),
        "/api/runs?limit=0".to_owned(),
        "/api/runs?created_from=tomorrow".to_owned(),
        format!("/api/runs/{waiting}/events?after=last"),
        format!("/api/runs/{waiting}/stream?last_event_id=x"),
        format!("/api/projects/{project}/cost-summary?period_days=many"),
        format!("/api/projects/{project}/cost-summary?period_days=400"),
        "/api/runs/cleanup/history".to_owned(),
        "/api/runs/cleanup/history?before=never".to_owned(),
    ] {
        let method = if path.contains("cleanup") { "DELETE" } else { "GET" };
        let got = server.call(method, &path, None).await;
        refused(&server, &before, got, 422, "invalid_query", &path).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let server = populated("ep-bad-routes").await;
    let before = store_lists(&server).await;
    // Other paths belong to the web console (tests/it/console.rs): a missing file there is a 404 too.
    for path in ["/api/nope", "/api/runs/a/b/c/d", "/api", "/openapi.json", "/assets/nope.js"] {
        let got = server.call("GET", path, None).await;
        refused(&server, &before, got, 404, "not_found", path).await;
    }
    for (method, path) in [
        ("DELETE", "/api/health"),
        ("PUT", "/api/runs"),
        ("DELETE", "/api/procedures"),
        ("POST", "/api/approvals"),
        ("PATCH", "/api/agents/a"),
        ("POST", "/api/leases"),
        ("GET", "/api/runs/cleanup/history"),
        ("POST", "/nope"),
        ("PUT", "/"),
    ] {
        let got = server.call(method, path, Some(json!({}))).await;
        refused(&server, &before, got, 405, "method_not_allowed", &format!("{method} {path}")).await;
    }
    server.stop().await;
}

/// LangOrch's clients send fields ckp does not know: every route ignores them, so these requests succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_request_fields_are_ignored() {
    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let server = TestServer::start_with("ep-extra-fields", |c| c.secrets.encryption_key = Some(KEY.into())).await;
    let (status, body) = server
        .call("POST", "/api/procedures", Some(json!({"ckp_json": chain_procedure("extra", 1), "ui_origin": "editor"})))
        .await;
    assert_eq!((status, body["procedure_id"].as_str()), (201, Some("extra")), "{body}");

    let run = json!({"procedure_id": "extra", "input_vars": {}, "client_request_id": "r-1", "priority": 5});
    let (status, body) = server.call("POST", "/api/runs", Some(run)).await;
    assert_eq!(status, 201, "{body}");
    let run_id = body["run_id"].as_str().expect("run_id").to_owned();
    server.wait_status(&run_id, &["completed"]).await;

    let secret = json!({"name": "extra_key", "value": "v-1", "rotation_days": 30});
    let (status, body) = server.call("POST", "/api/secrets", Some(secret)).await;
    assert_eq!((status, body["name"].as_str()), (201, Some("extra_key")), "{body}");
    let update = json!({"description": "rotated", "rotation_days": 60});
    let (status, body) = server.call("PUT", "/api/secrets/extra_key", Some(update)).await;
    assert_eq!((status, body["description"].as_str()), (200, Some("rotated")), "{body}");
    server.stop().await;
}
