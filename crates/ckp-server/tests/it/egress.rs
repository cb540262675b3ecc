//! The egress policy through a real server: `http_request` steps and agent registration against real HTTP servers
//! on 127.0.0.1, refused by default (by address, by a name resolving to loopback, after a redirect, the cloud
//! metadata address, ckp's own API) and opened by `egress_allow` exactly as far as it lists.

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use serde_json::{Value, json};

use crate::support::TestServer;

/// A server on 127.0.0.1: `/data` answers JSON, `/away?to=URL` redirects there. Returns its port.
async fn peer() -> u16 {
    let app = Router::new().route("/data", get(|| async { axum::Json(json!({"seven": 7})) })).route(
        "/away",
        get(|axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>| async move {
            Redirect::temporary(q.get("to").map_or("/data", String::as_str))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// One `http_request` step to `url` with up to 2 retries; the run when it ended.
async fn fetch(server: &TestServer, id: &str, url: &str) -> Value {
    server
        .import(json!({"procedure_id": id, "version": "1", "workflow_graph": {"start_node": "get", "nodes": {
            "get": {"type": "sequence", "steps": [
                {"step_id": "call", "action": "http_request", "method": "GET", "url": url,
                 "retry": {"max_retries": 2, "delay_ms": 10}, "output_variable": "response"}
            ], "next_node": "end"},
            "end": {"type": "terminate"}
        }}}))
        .await;
    let run = server.start_run(id, json!({})).await;
    server.wait_status(&run, &["completed", "failed"]).await
}

/// Asserts the run failed on the egress policy, naming `destination` and the setting, without a retry.
async fn refused(server: &TestServer, run: &Value, destination: &str) {
    assert_eq!(run["status"], "failed", "{run}");
    let message = run["error_message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("egress to {destination}")), "{destination}: {message}");
    assert!(message.contains("egress_allow (CKP_EGRESS_ALLOW)") || message.contains("ckp's own address"), "{message}");
    let run_id = run["run_id"].as_str().expect("run_id");
    let (_, events) = server.call("GET", &format!("/api/runs/{run_id}/events"), None).await;
    let retries = events.as_array().into_iter().flatten().filter(|e| e["event_type"] == "step_retrying").count();
    assert_eq!(retries, 0, "a refusal is not retried: {events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_is_refused_private_destinations_by_default() {
    let port = peer().await;
    let server = TestServer::start_with("egress-default", |c| c.egress_allow.clear()).await;
    let by_address = fetch(&server, "by-address", &format!("http://127.0.0.1:{port}/data")).await;
    refused(&server, &by_address, &format!("127.0.0.1:{port}")).await;
    let by_name = fetch(&server, "by-name", &format!("http://localhost:{port}/data")).await;
    refused(&server, &by_name, "localhost (").await;
    let metadata = fetch(&server, "metadata", "http://169.254.169.254/latest/meta-data/").await;
    refused(&server, &metadata, "169.254.169.254:80").await;
    let mapped = fetch(&server, "mapped", &format!("http://[::ffff:127.0.0.1]:{port}/data")).await;
    refused(&server, &mapped, &format!("127.0.0.1:{port}")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_list_opens_exactly_what_it_lists() {
    let (open, closed) = (peer().await, peer().await);
    let server = TestServer::start_with("egress-allow", |c| c.egress_allow = vec![format!("127.0.0.1:{open}")]).await;
    let done = fetch(&server, "listed", &format!("http://127.0.0.1:{open}/data")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_vars"]["response"]["body"], json!({"seven": 7}), "{done}");
    let other_port = fetch(&server, "other-port", &format!("http://127.0.0.1:{closed}/data")).await;
    refused(&server, &other_port, &format!("127.0.0.1:{closed}")).await;
    // An address:port entry opens the address where a URL names it, not a name resolving to it.
    let by_name = fetch(&server, "by-name", &format!("http://localhost:{open}/data")).await;
    refused(&server, &by_name, "localhost (").await;
    // A redirect from the listed server to one that is not is refused at the hop.
    let hop = format!("http://127.0.0.1:{open}/away?to=http://127.0.0.1:{closed}/data");
    let redirected = fetch(&server, "redirected", &hop).await;
    refused(&server, &redirected, &format!("127.0.0.1:{closed}")).await;
    let to_name = format!("http://127.0.0.1:{open}/away?to=http://localhost:{closed}/data");
    let redirected = fetch(&server, "redirected-name", &to_name).await;
    refused(&server, &redirected, "localhost (").await;
    // Within the list, redirects are followed.
    let inside = fetch(&server, "inside", &format!("http://127.0.0.1:{open}/away?to=/data")).await;
    assert_eq!(inside["status"], "completed", "{inside}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ckps_own_api_is_refused_even_when_its_address_is_listed() {
    let server = TestServer::start("egress-own").await;
    let own = server.base.clone();
    let done = fetch(&server, "own", &format!("{own}/api/health")).await;
    refused(&server, &done, own.trim_start_matches("http://")).await;
    let port = own.rsplit(':').next().expect("port");
    let by_name = fetch(&server, "own-by-name", &format!("http://localhost:{port}/api/health")).await;
    refused(&server, &by_name, "localhost (").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_an_agent_at_a_refused_address_is_422_naming_the_setting() {
    let port = peer().await;
    let server = TestServer::start_with("egress-agents", |c| c.egress_allow.clear()).await;
    for url in [format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}"), "http://169.254.169.254".into()]
    {
        let agent = json!({"name": "A", "channel": "web", "base_url": url, "capabilities": [{"name": "*"}]});
        let (status, body) = server.call("POST", "/api/agents", Some(agent)).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["code"], "egress_refused", "{body}");
        assert!(body.to_string().contains("egress_allow (CKP_EGRESS_ALLOW)"), "{body}");
    }
    let (_, agents) = server.call("GET", "/api/agents", None).await;
    assert_eq!(agents, json!([]), "nothing stored");
    server.stop().await;

    let server = TestServer::start_with("egress-agents-allowed", |c| c.egress_allow = vec!["localhost".into()]).await;
    let agent = json!({"name": "A", "channel": "web", "base_url": format!("http://localhost:{port}"), "capabilities": [{"name": "*"}]});
    let (status, body) = server.call("POST", "/api/agents", Some(agent)).await;
    assert_eq!(status, 201, "{body}");
    let moved = json!({"base_url": "http://10.0.0.1:80"});
    let (status, body) = server.call("PUT", "/api/agents/web_a", Some(moved)).await;
    assert_eq!((status, &body["code"]), (422, &json!("egress_refused")), "{body}");
    server.stop().await;
}
