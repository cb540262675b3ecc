//! The rmcp-based connector against the reference server over stdio and streamable HTTP: tools listed, `echo`
//! and `get-sum` (the reference server's "add") called, structured results, tool errors as step errors, one
//! session reused, a new one after the server died, and the child killed at shutdown.

use std::collections::BTreeMap;

use ckp_connectors::mcp::{McpConnector, McpSettings};
use ckp_core::mcp::{McpServer, McpTransport};
use ckp_core::procedure::ErrorKind;
use serde_json::{Map, Value, json};

#[path = "../../../../tests/mcp/support.rs"]
mod support;

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn stdio(command: &str, args: Vec<String>) -> McpServer {
    McpServer {
        transport: McpTransport::Stdio { command: command.into(), args, env: BTreeMap::new(), cwd: None },
        timeout_ms: None,
    }
}

fn connector(name: &str, server: McpServer) -> McpConnector {
    McpConnector::new(McpSettings { servers: BTreeMap::from([(name.to_owned(), server)]), ..McpSettings::default() })
}

/// Lists, calls and fails calls on `c`'s server `name`.
async fn exercise(c: &McpConnector, name: &str) {
    let listed = c.list_tools().await;
    assert_eq!(listed.len(), 1);
    let tools = listed[0].tools.as_ref().expect("tools listed");
    let echo = tools.iter().find(|t| t.name == "echo").expect("echo listed");
    assert_eq!(echo.description.as_deref(), Some("Echoes back the input string"));
    assert_eq!(echo.input_schema["properties"]["message"]["type"], "string", "{}", echo.input_schema);
    assert!(tools.iter().any(|t| t.name == "get-sum"), "{tools:?}");

    let out = c.call(name, None, "echo", args(json!({"message": "hi there"})), None).await.expect("echo");
    assert_eq!(out, json!("Echo: hi there"));
    let out = c.call(name, None, "get-sum", args(json!({"a": 2, "b": 3.5})), None).await.expect("get-sum");
    assert_eq!(out, json!("The sum of 2 and 3.5 is 5.5."));
    let out = c.call(name, None, "get-structured-content", args(json!({"location": "New York"})), None).await;
    assert!(out.expect("structured")["temperature"].is_number());

    let e = c.call(name, None, "get-sum", args(json!({"a": "two", "b": 3})), None).await.expect_err("bad arguments");
    assert_eq!(e.kind, ErrorKind::McpError);
    assert!(e.message.starts_with(&format!("MCP tool '{name}/get-sum' failed: ")), "{}", e.message);
    assert!(e.message.contains("a"), "the server's validation message is kept: {}", e.message);
    let e = c.call(name, None, "no-such-tool", Map::new(), None).await.expect_err("unknown tool");
    assert_eq!(e.kind, ErrorKind::McpError);
    assert!(e.message.contains("no-such-tool"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_server_tools_are_listed_and_called() {
    let (node, script) = support::everything();
    let c = connector("everything", stdio(&node, vec![script.display().to_string(), "stdio".into()]));
    exercise(&c, "everything").await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_server_tools_are_listed_and_called() {
    let (_child, url) = support::everything_http().await;
    let server = McpServer {
        transport: McpTransport::Http { url, headers: BTreeMap::from([("X-Test".into(), "ckp".into())]) },
        timeout_ms: None,
    };
    let c = connector("web", server);
    exercise(&c, "web").await;
    c.shutdown().await;
}

fn alive(pid: &str) -> bool {
    let mut kill = std::process::Command::new("kill");
    kill.args(["-0", pid]).stderr(std::process::Stdio::null());
    kill.status().is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_is_reused_replaced_after_a_crash_and_killed_at_shutdown() {
    let (node, script) = support::everything();
    let dir = std::env::temp_dir().join(format!("ckp-mcp-pids-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let pids = dir.join("pids");
    // The shell records its pid, then becomes the server.
    let line = format!("echo $$ >> '{}'; exec '{node}' '{}' stdio", pids.display(), script.display());
    let c = connector("ev", stdio("sh", vec!["-c".into(), line]));
    let read = || std::fs::read_to_string(&pids).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>();

    assert!(read().is_empty(), "nothing starts before the first call");
    for i in 0..3 {
        let out = c.call("ev", None, "echo", args(json!({"message": i})), None).await;
        assert!(out.is_err(), "a number is not a string: {out:?}");
        c.call("ev", None, "echo", args(json!({"message": format!("{i}")})), None).await.expect("echo");
    }
    let first = read();
    assert_eq!(first.len(), 1, "one process for all calls: {first:?}");

    // The server dies: the next calls reconnect (the first may still see the broken transport).
    let killed = std::process::Command::new("kill").args(["-9", &first[0]]).status().expect("kill");
    assert!(killed.success());
    let mut answered = false;
    for _ in 0..2 {
        if c.call("ev", None, "echo", args(json!({"message": "again"})), None).await.is_ok() {
            answered = true;
            break;
        }
    }
    assert!(answered, "a new session after the crash");
    let second = read();
    assert_eq!(second.len(), 2, "{second:?}");
    assert!(alive(&second[1]));

    c.shutdown().await;
    assert!(!alive(&second[1]), "the server process is gone after shutdown");
    let e = c.call("ev", None, "echo", args(json!({"message": "late"})), None).await.expect_err("closed");
    assert!(e.message.contains("ckp is shutting down"), "{}", e.message);
    assert_eq!(read().len(), 2, "no process is started after shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_servers_are_errors_not_hangs() {
    let c = McpConnector::new(McpSettings {
        servers: BTreeMap::from([
            ("gone".to_owned(), stdio("/nonexistent/mcp-server", Vec::new())),
            ("dead".to_owned(), stdio("sh", vec!["-c".into(), "echo 'cannot start: no config' >&2; exit 3".into()])),
            (
                "closed".to_owned(),
                McpServer {
                    transport: McpTransport::Http { url: "http://127.0.0.1:9/mcp".into(), headers: BTreeMap::new() },
                    timeout_ms: Some(5_000),
                },
            ),
        ]),
        ..McpSettings::default()
    });
    let listed = c.list_tools().await;
    let error = |name: &str| {
        listed.iter().find(|s| s.server == name).and_then(|s| s.tools.as_ref().err()).cloned().unwrap_or_default()
    };
    assert!(error("gone").contains("cannot start `/nonexistent/mcp-server`"), "{}", error("gone"));
    assert!(error("dead").contains("cannot start: no config"), "stderr is shown: {}", error("dead"));
    assert!(error("closed").contains("MCP server `closed` is unreachable"), "{}", error("closed"));
    let e = c.call("gone", None, "echo", Map::new(), None).await.expect_err("fails");
    assert_eq!(e.kind, ErrorKind::McpError);
    assert!(e.message.starts_with("MCP tool 'gone/echo' is unreachable: cannot start"), "{}", e.message);
}
