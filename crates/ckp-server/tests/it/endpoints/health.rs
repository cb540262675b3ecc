//! `GET /api/health` and `GET /api/actions` (ckp's internal actions, plus the capabilities of registered agents
//! by channel).

use serde_json::json;

use super::assert_error;
use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_ok() {
    let server = TestServer::start("ep-health").await;
    let (status, body) = server.call("GET", "/api/health", None).await;
    assert_eq!(status, 200);
    // The one server of a schema becomes its leader within a second on PostgreSQL, and always is on SQLite.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut body = body;
    while body["leader"] != true && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        body = server.call("GET", "/api/health", None).await.1;
    }
    insta::assert_json_snapshot!("health", body);
    assert_error(&server.call("POST", "/api/health", Some(json!({}))).await, 405, "method_not_allowed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_list_internal_actions_and_agent_capabilities_by_channel() {
    let server = TestServer::start("ep-actions").await;
    let (status, before) = server.call("GET", "/api/actions", None).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("actions_internal_only", before);

    for (id, caps) in [
        ("a1", json!([{"name": "click"}, {"name": "type_text"}])),
        ("a2", json!([{"name": "click"}, {"name": "scroll"}])),
    ] {
        let body = json!({"agent_id": id, "name": id, "channel": "Web", "base_url": "http://127.0.0.1:9/", "capabilities": caps});
        let (status, agent) = server.call("POST", "/api/agents", Some(body)).await;
        assert_eq!(status, 201, "{agent}");
    }
    let (status, after) = server.call("GET", "/api/actions", None).await;
    assert_eq!(status, 200);
    assert_eq!(after["internal"], before["internal"]);
    // One entry per channel (lower-cased), each capability once, in registration order.
    assert_eq!(after["web"], json!(["click", "type_text", "scroll"]), "{after}");
    assert_eq!(after.as_object().map(|o| o.len()), Some(2), "{after}");
    server.stop().await;
}
