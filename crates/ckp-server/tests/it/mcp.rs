//! MCP through `ckp serve`: the reference server (`@modelcontextprotocol/server-everything`) over stdio and over
//! streamable HTTP, configured in the server or declared by the procedure; `GET /api/actions` lists their tools;
//! procedures call `echo` and `get-sum` (its "add"); a tool error is a step error with the tool's message, caught by
//! an `MCPToolError` handler. And LangOrch's legacy fallback (`mcp_base_url`) for channels without agents.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use ckp_core::mcp::{McpServer, McpTransport};
use serde_json::{Value, json};

use crate::support::TestServer;

#[path = "../../../../tests/mcp/support.rs"]
pub(crate) mod reference;

fn stdio_everything() -> McpServer {
    let (node, script) = reference::everything();
    McpServer {
        transport: McpTransport::Stdio {
            command: node,
            args: vec![script.display().to_string(), "stdio".into()],
            env: BTreeMap::new(),
            cwd: None,
        },
        timeout_ms: None,
    }
}

fn http(url: &str) -> McpServer {
    McpServer { transport: McpTransport::Http { url: url.into(), headers: BTreeMap::new() }, timeout_ms: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_list_the_tools_of_configured_servers_and_the_errors_of_unreachable_ones() {
    let (_web, url) = reference::everything_http().await;
    let server = TestServer::start_with("mcp-actions", |c| {
        c.mcp_servers.insert("everything".into(), stdio_everything());
        c.mcp_servers.insert("web".into(), http(&url));
        c.mcp_servers.insert("broken".into(), {
            let mut s = stdio_everything();
            s.transport = McpTransport::Stdio {
                command: "/nonexistent/server".into(),
                args: vec![],
                env: BTreeMap::new(),
                cwd: None,
            };
            s
        });
    })
    .await;
    let (status, body) = server.call("GET", "/api/actions", None).await;
    assert_eq!(status, 200, "{body}");
    let servers = &body["mcp_servers"];
    for (name, transport) in [("everything", "stdio"), ("web", "http")] {
        assert_eq!(servers[name]["transport"], transport, "{body}");
        let echo = &servers[name]["tools"][format!("mcp:{name}/echo")];
        assert_eq!(echo["tool"], "echo", "{body}");
        assert_eq!(echo["description"], "Echoes back the input string");
        assert_eq!(echo["input_schema"]["properties"]["message"]["type"], "string");
        assert_eq!(echo["input_schema"]["required"], json!(["message"]));
        assert!(servers[name]["tools"][format!("mcp:{name}/get-sum")].is_object(), "{body}");
    }
    assert_eq!(servers["broken"]["transport"], "stdio");
    let error = servers["broken"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("MCP server `broken` is unreachable: cannot start `/nonexistent/server`"), "{body}");
    assert!(body["internal"].is_array(), "the rest of the catalogue is unchanged: {body}");
    server.stop().await;
}

/// Calls echo on `echo_server` and get-sum on `sum_server`, then a get-sum with a bad argument caught by an
/// `MCPToolError` handler.
fn calls(id: &str, echo_server: &str, sum_server: &str, global_config: Value) -> Value {
    json!({"procedure_id": id, "version": "1", "global_config": global_config, "workflow_graph": {"start_node": "call", "nodes": {
        "call": {"type": "sequence", "steps": [
            {"step_id": "e", "action": format!("mcp:{echo_server}/echo"), "message": "hi {{who}}", "output_variable": "echoed"},
            {"step_id": "s", "action": format!("mcp:{sum_server}/get-sum"), "a": "{{x}}", "b": 3, "output_variable": "sum"}
        ], "next_node": "bad"},
        "bad": {"type": "sequence", "steps": [
            {"step_id": "b", "action": format!("mcp:{sum_server}/get-sum"), "a": "two", "b": 1, "output_variable": "never"}
        ], "error_handlers": [{"error_type": "MCPToolError", "action": "ignore", "notify_on_error": true, "fallback_node": "caught"}],
           "next_node": "end"},
        "caught": {"type": "sequence", "steps": [{"step_id": "c", "action": "set_variable", "variable": "caught", "value": true}], "next_node": "end"},
        "end": {"type": "terminate", "status": "success"}
    }}})
}

async fn check_calls(server: &TestServer, id: &str) {
    let run = server.start_run(id, json!({"who": "ckp", "x": 4})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    let vars = &done["output_vars"];
    assert_eq!(vars["echoed"], "Echo: hi ckp", "{done}");
    assert_eq!(vars["sum"], "The sum of 4 and 3 is 7.", "{done}");
    assert_eq!(vars["caught"], true, "{done}");
    assert!(vars.get("never").is_none(), "{done}");
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    let note = events
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["event_type"] == "step_error_notification")
        .unwrap_or_else(|| panic!("no step_error_notification in {events}"));
    assert_eq!(note["payload"]["error_type"], "mcp_error", "{note}");
    let message = note["payload"]["error"].as_str().unwrap_or_default();
    assert!(message.starts_with("MCP tool '"), "{message}");
    assert!(message.contains("/get-sum' failed: ") && message.contains("number"), "the tool's own message: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn procedures_call_tools_of_configured_servers_over_stdio_and_http() {
    let (_web, url) = reference::everything_http().await;
    let server = TestServer::start_with("mcp-calls", |c| {
        c.mcp_servers.insert("everything".into(), stdio_everything());
        c.mcp_servers.insert("web".into(), http(&url));
    })
    .await;
    server.import(calls("mcp-stdio", "everything", "everything", json!({}))).await;
    check_calls(&server, "mcp-stdio").await;
    server.import(calls("mcp-http", "web", "web", json!({}))).await;
    check_calls(&server, "mcp-http").await;

    // Without a handler the run fails with the tool's message.
    let failing = json!({"procedure_id": "mcp-fail", "version": "1", "workflow_graph": {"start_node": "n", "nodes": {
        "n": {"type": "sequence", "steps": [{"step_id": "u", "action": "mcp:everything/no-such-tool"}], "next_node": "end"},
        "end": {"type": "terminate"}
    }}});
    server.import(failing).await;
    let run = server.start_run("mcp-fail", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "failed", "{done}");
    let message = done["error_message"].as_str().unwrap_or_default();
    assert!(message.starts_with("MCP tool 'everything/no-such-tool' failed: "), "{done}");
    assert!(message.contains("no-such-tool"), "{done}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn procedures_declare_their_own_servers_and_unknown_servers_are_clear_errors() {
    let (_web, url) = reference::everything_http().await;
    let (node, script) = reference::everything();
    let declared = json!({"mcp_servers": {
        "mine": {"command": node, "args": [script.display().to_string(), "stdio"]},
        "remote": {"url": url}
    }});
    // By default a procedure may not start a program on the server's host: import is refused, nothing stored.
    let fenced = TestServer::start("mcp-declared-fenced").await;
    let refused = async |method: &str, path: &str| {
        let doc = json!({"ckp_json": calls("mcp-declared", "mine", "remote", declared.clone())});
        let (status, body) = fenced.call(method, path, Some(doc)).await;
        assert_eq!((status, &body["code"]), (422, &json!("refused_by_settings")), "{method} {path}: {body}");
        let message = body["detail"].as_str().unwrap_or_default();
        assert!(message.contains("mcp_stdio_allow (CKP_MCP_STDIO_ALLOW)") && message.contains("`mine`"), "{message}");
    };
    refused("POST", "/api/procedures").await;
    assert_eq!(fenced.call("GET", "/api/procedures", None).await.1, json!([]), "nothing stored");
    // Nor through a replacement of an imported version.
    fenced.import(calls("mcp-declared", "everything", "everything", json!({}))).await;
    refused("PUT", "/api/procedures/mcp-declared/1").await;
    let (_, stored) = fenced.call("GET", "/api/procedures/mcp-declared/1", None).await;
    assert!(stored["ckp_json"]["global_config"].get("mcp_servers").is_none(), "the old version is kept: {stored}");
    fenced.stop().await;

    let server = TestServer::start_with("mcp-declared", |c| c.mcp_stdio_allow = vec![node.clone()]).await;
    server.import(calls("mcp-declared", "mine", "remote", declared)).await;
    check_calls(&server, "mcp-declared").await;

    let unknown = json!({"procedure_id": "mcp-unknown", "version": "1", "workflow_graph": {"start_node": "n", "nodes": {
        "n": {"type": "sequence", "steps": [{"step_id": "u", "action": "mcp:elsewhere/echo", "message": "x"}], "next_node": "end"},
        "end": {"type": "terminate"}
    }}});
    server.import(unknown).await;
    let run = server.start_run("mcp-unknown", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error_message"].as_str().unwrap_or_default().contains("MCP server `elsewhere` is not configured"),
        "{done}"
    );

    let (status, body) = server
        .call(
            "POST",
            "/api/procedures",
            Some(json!({"ckp_json": calls("mcp-bad", "x", "x", json!({"mcp_servers": {"x": {"url": "ftp://nope"}}}))})),
        )
        .await;
    assert_eq!(status, 422, "a bad declaration is refused at import: {body}");
    assert!(body.to_string().contains("must start with http://"), "{body}");
    server.stop().await;
}

/// A LangOrch-style MCP HTTP server: `POST /tools/{name}`; `lookup` answers, `broken` is a tool error, anything
/// else is an HTTP 500. Returns its base URL and the tool names it was asked for.
async fn legacy_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/tools/{name}",
        post(move |Path(name): Path<String>, axum::Json(body): axum::Json<Value>| {
            let log = log.clone();
            async move {
                log.lock().expect("lock").push(name.clone());
                match name.as_str() {
                    "lookup" => (StatusCode::OK, axum::Json(json!({"result": {"id": body["arguments"]["id"]}}))),
                    "broken" => (StatusCode::OK, axum::Json(json!({"isError": true, "error": "record locked"}))),
                    _ => (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"detail": "down"}))),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn legacy_step(id: &str, action: &str) -> Value {
    json!({"procedure_id": id, "version": "1", "workflow_graph": {"start_node": "n", "nodes": {
        "n": {"type": "sequence", "agent": "Tools", "steps": [
            {"step_id": "t", "action": action, "id": "{{id}}", "output_variable": "out"}
        ], "next_node": "end"},
        "end": {"type": "terminate"}
    }}})
}

async fn legacy_run(server: &TestServer, id: &str) -> Value {
    let run = server.start_run(id, json!({"id": 7})).await;
    server.wait_status(&run, &["completed", "failed"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_fallback_serves_channels_without_agents() {
    let (base, seen) = legacy_server().await;
    let server = TestServer::start_with("mcp-legacy", |c| c.mcp_base_url = Some(base)).await;
    for (id, action) in [("ok", "lookup"), ("tool-error", "broken"), ("down", "flaky")] {
        server.import(legacy_step(id, action)).await;
    }
    let done = legacy_run(&server, "ok").await;
    assert_eq!(done["output_vars"]["out"], json!({"id": 7}), "{done}");
    let done = legacy_run(&server, "tool-error").await;
    assert_eq!(done["error_message"], "MCP tool 'broken' failed: record locked", "{done}");
    for _ in 0..5 {
        let done = legacy_run(&server, "down").await;
        assert_eq!(done["error_message"], "MCP tool 'flaky' failed: HTTP 500", "{done}");
    }
    let asked = seen.lock().expect("lock").len();
    let done = legacy_run(&server, "down").await;
    let message = done["error_message"].as_str().unwrap_or_default();
    assert!(message.starts_with("MCP circuit breaker open (failed 5× consecutively; resets in "), "{done}");
    assert_eq!(seen.lock().expect("lock").len(), asked, "the open breaker kept the call from the server");
    server.stop().await;
}
