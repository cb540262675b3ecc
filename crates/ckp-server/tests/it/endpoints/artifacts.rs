//! `GET /api/artifacts/{path}`: run-scoped files under `<data_dir>/artifacts/`, never anything outside it.

use std::io::{Read, Write};

use serde_json::json;

use super::assert_error;
use crate::support::{TestServer, chain_procedure};

/// Sends `GET <target>` over a plain socket, so `..` reaches the server as written (HTTP clients normalise it).
fn raw_get(server: &TestServer, target: &str) -> (u16, String) {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    write!(stream, "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("writes");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("reads");
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_a_run_are_served_and_nothing_outside_the_directory() {
    let server = TestServer::start("ep-artifacts").await;
    server.import(chain_procedure("chain", 1)).await;
    let run_id = server.start_run("chain", json!({})).await;
    server.wait_status(&run_id, &["completed"]).await;
    let dir = server.dir.join("artifacts").join(&run_id);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("x.txt"), b"hello artifact\n").expect("write");
    std::fs::write(server.dir.join("secret.txt"), b"outside").expect("write");
    // A symbolic link inside the folder that leads out of it is not followed.
    #[cfg(unix)]
    std::os::unix::fs::symlink(server.dir.join("secret.txt"), dir.join("link.txt")).expect("symlink");
    #[cfg(unix)]
    assert_error(&server.call("GET", &format!("/api/artifacts/{run_id}/link.txt"), None).await, 404, "not_found");

    let resp = server.http.get(server.url(&format!("/api/artifacts/{run_id}/x.txt"))).send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(resp.bytes().await.expect("body").as_ref(), b"hello artifact\n");

    assert_error(&server.call("GET", &format!("/api/artifacts/{run_id}/missing.txt"), None).await, 404, "not_found");
    assert_error(&server.call("GET", "/api/artifacts/nope", None).await, 404, "not_found");
    // `..` percent-encoded (kept by the client) and as written (raw socket): both 404, JSON.
    for path in [
        "/api/artifacts/..%2Fsecret.txt",
        "/api/artifacts/..%2Fckp.db",
        &format!("/api/artifacts/{run_id}%2F..%2F..%2Fsecret.txt"),
    ] {
        assert_error(&server.call("GET", path, None).await, 404, "not_found");
    }
    for target in [
        "/api/artifacts/../secret.txt",
        &format!("/api/artifacts/{run_id}/../../secret.txt"),
        "/api/artifacts//etc/passwd",
    ] {
        let (status, body) = raw_get(&server, target);
        assert_eq!(status, 404, "{target}: {body}");
        assert!(!body.contains("outside"), "{target} leaked a file outside the artifacts directory");
        let body: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{target}: not JSON: {body}"));
        assert_eq!(body["code"], "not_found", "{target}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_artifact_paths_from_results_become_api_urls() {
    let server = TestServer::start("ep-artifacts-paths").await;
    let file = std::path::absolute(server.dir.join("artifacts").join("shots").join("page 1.png")).expect("absolute");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, b"png bytes").expect("write");
    let result = json!({"status": "success", "result": {"screenshot": file.to_string_lossy(), "uri": "s3://bucket/k"}});
    let app =
        axum::Router::new().route("/execute", axum::routing::post(move || async move { axum::Json(result.clone()) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let agent = json!({"name": "C", "channel": "cam", "base_url": url, "capabilities": [{"name": "snap"}]});
    assert_eq!(server.call("POST", "/api/agents", Some(agent)).await.0, 201);
    server
        .import(json!({"procedure_id": "snap", "version": "1", "workflow_graph": {"start_node": "s", "nodes": {
            "s": {"type": "sequence", "agent": "cam", "steps": [{"step_id": "shot", "action": "snap"}], "next_node": "end"},
            "end": {"type": "terminate"}}}}))
        .await;
    let run = server.start_run("snap", json!({})).await;
    assert_eq!(server.wait_status(&run, &["completed", "failed"]).await["status"], "completed");
    let (_, artifacts) = server.call("GET", &format!("/api/runs/{run}/artifacts"), None).await;
    let uris: Vec<&str> = artifacts.as_array().expect("list").iter().filter_map(|a| a["uri"].as_str()).collect();
    assert_eq!(uris, ["/api/artifacts/shots/page%201.png", "s3://bucket/k"], "{artifacts}");
    let resp = server.http.get(server.url(uris[0])).send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().await.expect("body").as_ref(), b"png bytes");
    server.stop().await;
}
