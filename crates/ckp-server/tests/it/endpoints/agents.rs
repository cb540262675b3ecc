//! `/api/agents`: register (defaults, lower-cased channel, duplicates, invalid input), list, get, update, delete.

use serde_json::json;

use super::{assert_error, column, store_lists, ts};
use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_fills_defaults_and_refuses_duplicates_and_bad_input() {
    let server = TestServer::start("ep-agents-register").await;
    let body = json!({"name": "Bot One", "channel": "WEB", "base_url": "http://127.0.0.1:9/"});
    let (status, agent) = server.call("POST", "/api/agents", Some(body.clone())).await;
    assert_eq!(status, 201, "{agent}");
    // agent_id `{channel}_{name}`, resource_key `{channel}_default`, channel lower-cased, trailing `/` dropped;
    // nobody answers at 127.0.0.1:9, so it is registered offline (the health checks bring it online).
    assert_eq!(agent["status"], "offline", "{agent}");
    insta::assert_json_snapshot!("register_defaults_201", agent, {".updated_at" => ts()});
    assert_eq!(
        (agent["agent_id"].as_str(), agent["resource_key"].as_str()),
        (Some("web_bot_one"), Some("web_default"))
    );

    let duplicate = server.call("POST", "/api/agents", Some(body)).await;
    assert_error(&duplicate, 409, "conflict");
    let explicit = json!({"agent_id": "custom", "name": "Two", "channel": "Desktop", "base_url": "https://agent.example:8443",
        "concurrency_limit": 3, "resource_key": "desk", "pool_id": "p1",
        "capabilities": [{"name": "click"}, {"name": "export", "type": "workflow", "description": "long", "estimated_duration_s": 30.0, "is_batch": true}]});
    let (status, custom) = server.call("POST", "/api/agents", Some(explicit)).await;
    assert_eq!(status, 201, "{custom}");
    insta::assert_json_snapshot!("register_explicit_201", custom, {".updated_at" => ts()});

    let before = store_lists(&server).await;
    for bad in [
        json!({"name": "x", "channel": "web", "base_url": "ftp://host"}),
        json!({"name": "x", "channel": "web", "base_url": "not a url"}),
        json!({"name": " ", "channel": "web", "base_url": "http://h"}),
        json!({"name": "x", "channel": "", "base_url": "http://h"}),
        json!({"name": "x", "channel": "web", "base_url": "http://h", "concurrency_limit": 0}),
        json!({"name": "x", "channel": "web"}),
        json!({"name": "x", "channel": "web", "base_url": "http://h", "capabilities": "all"}),
    ] {
        assert_error(&server.call("POST", "/api/agents", Some(bad)).await, 422, "invalid_body");
    }
    assert_eq!(store_lists(&server).await, before, "refused registrations stored nothing");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_get_update_and_delete() {
    let server = TestServer::start("ep-agents-crud").await;
    for (id, name) in [("b", "Zeta"), ("a", "Alpha")] {
        let body = json!({"agent_id": id, "name": name, "channel": "api", "base_url": "http://127.0.0.1:9",
            "capabilities": [{"name": "fetch"}]});
        assert_eq!(server.call("POST", "/api/agents", Some(body)).await.0, 201);
    }
    let (status, list) = server.call("GET", "/api/agents", None).await;
    assert_eq!(status, 200);
    assert_eq!(column(&list, "name"), ["Alpha", "Zeta"], "ordered by name");
    let (status, one) = server.call("GET", "/api/agents/a", None).await;
    assert_eq!((status, &one), (200, &list[0]));

    let update =
        json!({"status": "offline", "base_url": "http://127.0.0.1:10/", "concurrency_limit": 4, "pool_id": "pool"});
    let (status, updated) = server.call("PUT", "/api/agents/a", Some(update)).await;
    assert_eq!(status, 200, "{updated}");
    insta::assert_json_snapshot!("update_200", updated, {".updated_at" => ts()});
    assert_eq!(updated["capabilities"], one["capabilities"], "absent fields are unchanged");
    let (status, cleared) = server.call("PUT", "/api/agents/a", Some(json!({"capabilities": []}))).await;
    assert_eq!((status, &cleared["capabilities"], &cleared["status"]), (200, &json!([]), &json!("offline")));
    let (_, got) = server.call("GET", "/api/agents/a", None).await;
    assert_eq!(got, cleared, "the update is stored");
    let busy = server.call("PUT", "/api/agents/a", Some(json!({"status": "busy"}))).await;
    assert_error(&busy, 422, "invalid_body");
    assert_eq!(server.call("GET", "/api/agents/a", None).await.1, cleared, "a refused status changes nothing");

    assert_error(
        &server.call("PUT", "/api/agents/a", Some(json!({"base_url": "file:///etc"}))).await,
        422,
        "invalid_body",
    );
    assert_error(
        &server.call("PUT", "/api/agents/a", Some(json!({"concurrency_limit": 0}))).await,
        422,
        "invalid_body",
    );
    assert_error(&server.call("PUT", "/api/agents/nope", Some(json!({"status": "online"}))).await, 404, "not_found");
    assert_error(&server.call("GET", "/api/agents/nope", None).await, 404, "not_found");

    let (status, body) = server.call("DELETE", "/api/agents/a", None).await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    assert_error(&server.call("GET", "/api/agents/a", None).await, 404, "not_found");
    assert_error(&server.call("DELETE", "/api/agents/a", None).await, 404, "not_found");
    let (_, list) = server.call("GET", "/api/agents", None).await;
    assert_eq!(column(&list, "agent_id"), ["b"]);
    server.stop().await;
}
