//! LangOrch's legacy MCP fallback (langorch.md B §6.2) against a real HTTP server on 127.0.0.1: the request's path,
//! body and headers, the result mapping, `isError`, HTTP errors, and the circuit breaker opening, refusing without
//! calling, and closing after its window.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ckp_connectors::mcp::legacy::LegacyMcp;
use ckp_core::procedure::ErrorKind;
use ckp_engine::effects::AgentRequest;
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Value)>>>;

/// A LangOrch-style MCP HTTP server: `POST /tools/{name}` answers by tool name; `fail` gives HTTP 500 while
/// `failing` is set.
async fn tool_server() -> (String, Seen, Arc<Mutex<bool>>) {
    let seen: Seen = Arc::default();
    let failing = Arc::new(Mutex::new(true));
    let state = (seen.clone(), failing.clone());
    let app = Router::new()
        .route(
            "/base/tools/{name}",
            post(
                |State((seen, failing)): State<(Seen, Arc<Mutex<bool>>)>,
                 Path(name): Path<String>,
                 headers: HeaderMap,
                 axum::Json(body): axum::Json<Value>| async move {
                    seen.lock().expect("lock").push((name.clone(), headers, body.clone()));
                    let ok = |v: Value| (StatusCode::OK, axum::Json(v));
                    match name.as_str() {
                        "lookup" => ok(json!({"result": {"found": body["arguments"]["id"]}, "isError": false})),
                        "bare" => ok(json!({"value": 1})),
                        "broken" => ok(json!({"isError": true, "error": "no such record"})),
                        "silent" => ok(json!({"isError": true})),
                        _ if *failing.lock().expect("lock") => {
                            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"detail": "down"})))
                        }
                        _ => ok(json!({"result": "recovered"})),
                    }
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/base/"), seen, failing)
}

fn req(action: &str, params: Value, step_id: &str) -> AgentRequest {
    crate::agent_request("tools", action, params, step_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_errors_and_headers_follow_langorch() {
    let (base, seen, _) = tool_server().await;
    let mcp = LegacyMcp::new(base);
    assert_eq!(mcp.call(&req("lookup", json!({"id": 7}), "s1")).await.expect("ok"), json!({"found": 7}));
    assert_eq!(mcp.call(&req("bare", json!({}), "")).await.expect("ok"), json!({"value": 1}), "no result: the body");
    let e = mcp.call(&req("broken", json!({}), "s")).await.expect_err("isError");
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::McpError, "MCP tool 'broken' failed: no such record"));
    let e = mcp.call(&req("silent", json!({}), "s")).await.expect_err("isError");
    assert_eq!(e.message, "MCP tool 'silent' failed: Unknown MCP error");
    let e = mcp.call(&req("other", json!({}), "s")).await.expect_err("500");
    assert_eq!((e.message.as_str(), e.http_status), ("MCP tool 'other' failed: HTTP 500", Some(500)));

    let seen = seen.lock().expect("lock");
    let (name, headers, body) = &seen[0];
    assert_eq!(name, "lookup");
    assert_eq!(body, &json!({"arguments": {"id": 7}}));
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(
        (h("x-run-id"), h("x-node-id"), h("x-step-id")),
        (Some("run-1".into()), Some("n1".into()), Some("s1".into()))
    );
    assert_eq!(seen[1].1.get("x-step-id"), None, "an empty step id is not sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_after_five_failures_and_closes_after_its_window() {
    let (base, seen, failing) = tool_server().await;
    let mcp = LegacyMcp::new(base).with_breaker_window(Duration::from_millis(300));
    for _ in 0..5 {
        let e = mcp.call(&req("flaky", json!({}), "s")).await.expect_err("500");
        assert!(e.message.ends_with("HTTP 500"), "{}", e.message);
    }
    let e = mcp.call(&req("flaky", json!({}), "s")).await.expect_err("open");
    assert!(e.message.starts_with("MCP circuit breaker open (failed 5× consecutively; resets in "), "{}", e.message);
    assert_eq!(seen.lock().expect("lock").len(), 5, "an open breaker does not call the server");

    *failing.lock().expect("lock") = false;
    let mut recovered = None;
    for _ in 0..100 {
        match mcp.call(&req("flaky", json!({}), "s")).await {
            Ok(v) => {
                recovered = Some(v);
                break;
            }
            Err(e) => {
                assert!(e.message.starts_with("MCP circuit breaker open"), "{}", e.message);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert_eq!(recovered, Some(json!("recovered")), "the call after the window goes through");
    assert_eq!(seen.lock().expect("lock").len(), 6);
}
