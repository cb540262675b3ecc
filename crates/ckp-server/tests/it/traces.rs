//! OpenTelemetry traces against a real OTLP receiver on 127.0.0.1 (`tests/otlp/receiver.py`, decoding with the
//! OpenTelemetry project's protobuf classes; `CKP_PYTHON` from `scripts/test`): a run with an agent step, an LLM
//! node and a subflow gives spans with the right parents, attributes and links; the agent and the LLM server
//! receive the `traceparent` of their span; a run paused at an approval resumes in a new trace linked to its first;
//! the caller's `traceparent` on `POST /api/runs` is the first trace's parent.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::support::TestServer;

/// The receiver process and the spans it printed so far.
struct Receiver {
    child: Child,
    url: String,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    fn start() -> Receiver {
        let python = std::env::var("CKP_PYTHON").unwrap_or_else(|_| {
            panic!("CKP_PYTHON must name a Python with opentelemetry-proto (scripts/test installs it)")
        });
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/otlp/receiver.py");
        let mut child = Command::new(&python)
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{python}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = lines.next().and_then(Result::ok).unwrap_or_else(|| panic!("the receiver did not start"));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
                sink.lock().expect("lock").push(v);
            }
        });
        Receiver { child, url: format!("http://127.0.0.1:{}", port.trim()), spans }
    }

    /// Waits (up to 20 s) until spans named `name` number at least `n`; returns all spans.
    async fn wait_for(&self, name: &str, n: usize) -> Vec<Value> {
        for _ in 0..400 {
            let spans = self.spans.lock().expect("lock").clone();
            assert!(spans.iter().all(|s| s.get("error").is_none()), "the receiver could not decode: {spans:?}");
            if spans.iter().filter(|s| s["name"] == name).count() >= n {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} spans named {name}: {:?}", self.spans.lock().expect("lock"));
    }
}

#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<HeaderMap>>>);

/// An agent and an OpenAI-compatible LLM on one 127.0.0.1 server, recording the headers they receive.
async fn peers() -> (String, Heard) {
    let heard = Heard::default();
    let app = Router::new()
        .route(
            "/execute",
            post(|State(h): State<Heard>, headers: HeaderMap| async move {
                h.0.lock().expect("lock").push(headers);
                axum::Json(json!({"status": "success", "result": {"clicked": true}}))
            }),
        )
        .route("/capabilities", get(|| async { axum::Json(json!({"capabilities": ["click"]})) }))
        .route(
            "/v1/chat/completions",
            post(|State(h): State<Heard>, headers: HeaderMap| async move {
                h.0.lock().expect("lock").push(headers);
                axum::Json(json!({"model": "house-model", "choices": [{"message": {"content": "ok"}}],
                                  "usage": {"prompt_tokens": 12, "completion_tokens": 5}}))
            }),
        )
        .with_state(heard.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), heard)
}

fn parent() -> Value {
    json!({"procedure_id": "traced", "version": "1", "workflow_graph": {"start_node": "click", "nodes": {
        "click": {"type": "sequence", "agent": "WEB", "steps": [
            {"step_id": "press", "action": "click", "selector": "#go"}], "next_node": "tool"},
        "tool": {"type": "sequence", "steps": [
            {"step_id": "m", "action": "mcp:meta/meta", "output_variable": "heard_meta"}], "next_node": "ask"},
        "ask": {"type": "llm_action", "prompt": "summarise", "model": "house-model", "next_node": "child"},
        "child": {"type": "subflow", "procedure_id": "traced-child", "version": "1", "next_node": "gate"},
        "gate": {"type": "human_approval", "prompt": "ok?", "on_approve": "end", "on_reject": "end"},
        "end": {"type": "terminate"}}}})
}

fn child() -> Value {
    json!({"procedure_id": "traced-child", "version": "1", "workflow_graph": {"start_node": "note", "nodes": {
        "note": {"type": "sequence", "steps": [{"step_id": "n", "action": "log", "message": "in the child"}],
                 "next_node": "end"},
        "end": {"type": "terminate"}}}})
}

fn by_id(spans: &[Value]) -> HashMap<String, Value> {
    spans.iter().map(|s| (s["span_id"].as_str().unwrap_or_default().to_owned(), s.clone())).collect()
}

fn one<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = spans.iter().filter(|s| s["name"] == name).collect();
    assert_eq!(found.len(), 1, "one span named {name}: {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_traced_with_nested_spans_links_and_propagation() {
    let receiver = Receiver::start();
    let (peer, heard) = peers().await;
    let (otlp, peer_url) = (receiver.url.clone(), peer.clone());
    let server = TestServer::start_with("traces", move |c| {
        c.otel_exporter_otlp_endpoint = Some(otlp);
        c.otel_exporter_otlp_headers =
            Some(ckp_connectors::settings::Secret::new("Authorization=Bearer%20t0ken".into()));
        c.llm_base_url = Some(format!("{peer_url}/v1"));
        let (node, script) = crate::mcp::reference::node_script("meta-echo.mjs");
        let transport = ckp_core::mcp::McpTransport::Stdio {
            command: node,
            args: vec![script.display().to_string()],
            env: std::collections::BTreeMap::new(),
            cwd: None,
        };
        c.mcp_servers.insert("meta".into(), ckp_core::mcp::McpServer { transport, timeout_ms: None });
    })
    .await;
    let (status, body) = server
        .call(
            "POST",
            "/api/agents",
            Some(json!({"name": "A", "channel": "WEB", "base_url": peer, "capabilities": [{"name": "click"}]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    server.import(child()).await;
    server.import(parent()).await;

    // Created with the caller's trace context: the first segment joins the caller's trace.
    let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let resp = reqwest::Client::new()
        .post(server.url("/api/runs"))
        .header("traceparent", caller)
        .json(&json!({"procedure_id": "traced", "input_vars": {}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 201);
    let run = resp.json::<Value>().await.expect("json")["run_id"].as_str().expect("id").to_owned();
    server.wait_status(&run, &["waiting_approval"]).await;

    let spans = receiver.wait_for("run traced", 1).await;
    let first = one(&spans, "run traced").clone();
    assert_eq!(first["trace_id"], "0af7651916cd43dd8448eb211c80319c", "joined the caller's trace");
    assert_eq!(first["parent_span_id"], "b7ad6b7169203331");
    assert_eq!(first["attributes"]["ckp.run.id"], run.as_str());
    assert_eq!(first["attributes"]["ckp.run.outcome"], "waiting");
    assert_eq!(first["resource"]["service.name"], "ckp");
    assert_eq!(first["content_type"], "application/x-protobuf");
    assert_eq!(first["authorization"], "Bearer t0ken", "OTEL_EXPORTER_OTLP_HEADERS sent");
    let trace = first["trace_id"].as_str().expect("trace").to_owned();
    let root = first["span_id"].as_str().expect("root").to_owned();
    let ids = by_id(&spans);
    let parent_name = |s: &Value| ids.get(s["parent_span_id"].as_str().unwrap_or_default()).map(|p| p["name"].clone());

    // Nodes under the run, steps under their node, the LLM call under its node.
    for node in ["node click", "node ask", "node child", "node gate"] {
        let s = one(&spans, node);
        assert_eq!(s["trace_id"], trace.as_str(), "{node}");
        assert_eq!(s["parent_span_id"], root.as_str(), "{node} under the run");
    }
    let press = one(&spans, "step click");
    assert_eq!(parent_name(press), Some(json!("node click")));
    assert_eq!(press["attributes"]["ckp.step.id"], "press");
    let chat = one(&spans, "chat house-model");
    assert_eq!(parent_name(chat), Some(json!("node ask")));
    assert_eq!(chat["kind"], 3, "an LLM call is a CLIENT span");
    assert_eq!(chat["attributes"]["gen_ai.operation.name"], "chat");
    assert_eq!(chat["attributes"]["gen_ai.request.model"], "house-model");
    assert_eq!(chat["attributes"]["gen_ai.usage.input_tokens"], 12);
    assert_eq!(chat["attributes"]["gen_ai.usage.output_tokens"], 5);
    // The subflow's child run under the subflow node, its node and step under it, in the same trace.
    let child_run = one(&spans, "run traced-child");
    assert_eq!(parent_name(child_run), Some(json!("node child")));
    assert_eq!(child_run["trace_id"], trace.as_str());
    assert_eq!(parent_name(one(&spans, "node note")), Some(json!("run traced-child")));
    assert_eq!(parent_name(one(&spans, "step log")), Some(json!("node note")));
    // The approval node was left open by the pause, with the request as an event.
    let gate = one(&spans, "node gate");
    assert_eq!(gate["attributes"]["ckp.node.left_open"], "waiting");
    assert!(gate["events"].as_array().is_some_and(|e| e.contains(&json!("approval_requested"))), "{gate}");

    // The agent and the LLM got the traceparent of their own spans.
    let heard = heard.0.lock().expect("lock").clone();
    let tps: Vec<String> =
        heard.iter().filter_map(|h| h.get("traceparent")?.to_str().ok().map(str::to_owned)).collect();
    assert_eq!(
        tps,
        [
            format!("00-{trace}-{}-01", press["span_id"].as_str().expect("id")),
            format!("00-{trace}-{}-01", chat["span_id"].as_str().expect("id")),
        ],
        "agent then LLM"
    );

    // Decided: the run resumes in a new trace, linked to its first segment.
    server.decide(&run, "approved").await;
    let done = server.wait_status(&run, &["completed"]).await;
    // The MCP server got the traceparent of its step's span in the request's `_meta` (SEP-414).
    let tool_step = spans.iter().find(|s| s["attributes"]["ckp.step.id"] == "m").expect("the MCP step's span");
    assert_eq!(parent_name(tool_step), Some(json!("node tool")));
    assert_eq!(
        done["output_vars"]["heard_meta"]["traceparent"],
        format!("00-{trace}-{}-01", tool_step["span_id"].as_str().expect("id")),
        "{done}"
    );
    let spans = receiver.wait_for("run traced", 2).await;
    let second = spans.iter().filter(|s| s["name"] == "run traced").nth(1).expect("second segment").clone();
    assert_ne!(second["trace_id"], trace.as_str(), "a resumed run is a new trace");
    assert_eq!(second["parent_span_id"], "", "a root");
    assert_eq!(second["links"], json!([{"trace_id": trace, "span_id": root}]), "linked to its first segment");
    assert_eq!(second["attributes"]["ckp.run.outcome"], "completed");
    assert_eq!(second["attributes"]["ckp.run.segment"], "resumed");
    // The rest of the run (the approval node's decision, the end) is in the new trace.
    let resumed: Vec<&str> =
        spans.iter().filter(|s| s["trace_id"] == second["trace_id"]).filter_map(|s| s["name"].as_str()).collect();
    assert!(resumed.contains(&"node gate") && resumed.contains(&"node end"), "{resumed:?}");
    server.stop().await;
}
