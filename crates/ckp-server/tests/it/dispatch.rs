//! Steps dispatched by `ckp serve` to a real agent process on 127.0.0.1 over LangOrch's protocol, and the built-in
//! `http_request` executor against a real HTTP server.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::support::TestServer;

/// Headers and raw body of a request an agent received.
type Request = (HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(HeaderMap, Value)>>>);

/// A test agent: `/execute` records what it got and answers per `mode`; `/data` is a plain JSON endpoint.
async fn agent(mode: &'static str) -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/execute",
            post(move |State(seen): State<Seen>, headers: HeaderMap, axum::Json(body): axum::Json<Value>| async move {
                seen.0.lock().expect("lock").push((headers, body.clone()));
                match mode {
                    "fail" => (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"detail": "boom"}))),
                    "refuse" => (StatusCode::OK, axum::Json(json!({"status": "error", "error": "element not found"}))),
                    _ => (
                        StatusCode::OK,
                        axum::Json(json!({"status": "success", "result": {"clicked": body["params"]["selector"]}})),
                    ),
                }
            }),
        )
        .route("/data", get(|| async { axum::Json(json!({"id": 7, "name": "seven"})) }))
        .route(
            "/capabilities",
            get(|| async { axum::Json(json!({"capabilities": ["click", {"name": "type", "type": "tool"}]})) }),
        )
        .with_state(seen.clone());
    (serve_agent(app).await, seen)
}

/// Serves `app` on 127.0.0.1 (an ephemeral port); returns its base URL.
async fn serve_agent(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn clicker(id: &str) -> Value {
    json!({"procedure_id": id, "version": "1", "workflow_graph": {"start_node": "go", "nodes": {
        "go": {"type": "sequence", "agent": "Web", "steps": [
            {"step_id": "press", "action": "click", "selector": "#buy", "output_variable": "clicked"}
        ], "next_node": "end"},
        "end": {"type": "terminate"}
    }}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_goes_to_the_channels_agent_with_langorchs_body_and_headers() {
    let (url, seen) = agent("ok").await;
    let server = TestServer::start("dispatch-ok").await;
    let (status, body) = server
        .call(
            "POST",
            "/api/agents",
            Some(json!({"name": "A", "channel": "WEB", "base_url": url,
                                                   "capabilities": [{"name": "click"}]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    server.import(clicker("clicker")).await;
    let run = server.start_run("clicker", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_vars"]["clicked"], json!({"clicked": "#buy"}), "{done}");
    let calls = seen.0.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1, "dispatched once");
    let (headers, body) = &calls[0];
    assert_eq!(body["action"], "click");
    assert_eq!(body["params"]["selector"], "#buy");
    assert_eq!(
        (body["run_id"].as_str(), body["node_id"].as_str(), body["step_id"].as_str()),
        (Some(run.as_str()), Some("go"), Some("press"))
    );
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("x-run-id"), run);
    assert_eq!(header("x-node-id"), "go");
    assert_eq!(header("x-step-id"), "press");
    assert!(!header("idempotency-key").is_empty(), "an Idempotency-Key is sent");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_failures_fail_the_run_with_a_clear_message() {
    for (mode, expected) in [("fail", "HTTP 500"), ("refuse", "element not found")] {
        let (url, _) = agent(mode).await;
        let server = TestServer::start(&format!("dispatch-{mode}")).await;
        // No capabilities given: they are probed from the agent.
        let agent_body = json!({"name": "A", "channel": "web", "base_url": url});
        let (status, registered) = server.call("POST", "/api/agents", Some(agent_body)).await;
        assert_eq!(status, 201, "{registered}");
        assert_eq!(registered["capabilities"][0]["name"], "click", "{registered}");
        server.import(clicker("clicker")).await;
        let run = server.start_run("clicker", json!({})).await;
        let done = server.wait_status(&run, &["completed", "failed"]).await;
        assert_eq!(done["status"], "failed", "{done}");
        let message = done["error_message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{mode}: {message}");
        server.stop().await;
    }
    // No agent for the channel at all.
    let server = TestServer::start("dispatch-none").await;
    server.import(clicker("clicker")).await;
    let run = server.start_run("clicker", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert!(done["error_message"].as_str().unwrap_or_default().contains("No online agent for channel='web'"), "{done}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_steps_reach_real_servers() {
    let (url, _) = agent("ok").await;
    let server = TestServer::start("dispatch-http").await;
    server
        .import(json!({"procedure_id": "fetch", "version": "1", "workflow_graph": {"start_node": "get", "nodes": {
            "get": {"type": "sequence", "steps": [
                {"step_id": "call", "action": "http_request", "method": "GET", "url": format!("{url}/data"),
                 "output_variable": "response"}
            ], "next_node": "end"},
            "end": {"type": "terminate"}
        }}}))
        .await;
    let run = server.start_run("fetch", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["output_vars"]["response"].to_string().contains("seven"), "{done}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_capable_online_agents_with_closed_circuits_get_steps() {
    let (url, seen) = agent("ok").await;
    // No wait for an agent to come online: an offline one fails the step at once.
    let server = TestServer::start_with("dispatch-select", |c| c.agent_wait_ms = 0).await;
    // Registered with other capabilities: not capable of `click`.
    let other = json!({"name": "B", "channel": "web", "base_url": url, "capabilities": [{"name": "scroll"}]});
    assert_eq!(server.call("POST", "/api/agents", Some(other)).await.0, 201);
    server.import(clicker("clicker")).await;
    let run = server.start_run("clicker", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert!(done["error_message"].as_str().unwrap_or_default().contains("No online agent"), "{done}");
    // A capable one that is offline gets nothing either; online again, it does.
    let capable = json!({"name": "C", "channel": "web", "base_url": url, "capabilities": [{"name": "*"}]});
    assert_eq!(server.call("POST", "/api/agents", Some(capable)).await.0, 201);
    assert_eq!(server.call("PUT", "/api/agents/web_c", Some(json!({"status": "offline"}))).await.0, 200);
    let run = server.start_run("clicker", json!({})).await;
    assert_eq!(server.wait_status(&run, &["completed", "failed"]).await["status"], "failed");
    assert_eq!(server.call("PUT", "/api/agents/web_c", Some(json!({"status": "online"}))).await.0, 200);
    let run = server.start_run("clicker", json!({})).await;
    assert_eq!(server.wait_status(&run, &["completed", "failed"]).await["status"], "completed");
    assert_eq!(seen.0.lock().expect("lock").len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_an_agent_offline_after_repeated_failures_and_back() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let app = Router::new().route(
        "/health",
        get(move || {
            let ok = flag.load(Ordering::SeqCst);
            async move { if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE } }
        }),
    );
    let url = serve_agent(app).await;
    let server = TestServer::start_with("dispatch-health", |c| {
        c.agent_health_ms = 30;
        c.agent_offline_after = 3;
        c.agent_circuit_reset_ms = 200;
    })
    .await;
    let agent = json!({"name": "H", "channel": "web", "base_url": url, "capabilities": [{"name": "*"}]});
    assert_eq!(server.call("POST", "/api/agents", Some(agent)).await.0, 201);
    let poll = |want: &'static str| {
        let server = &server;
        async move {
            for _ in 0..500 {
                let (_, a) = server.call("GET", "/api/agents/web_h", None).await;
                if a["status"] == want {
                    return a;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("agent never {want}");
        }
    };
    // A first check records the heartbeat.
    for _ in 0..500 {
        let (_, a) = server.call("GET", "/api/agents/web_h", None).await;
        if a["last_heartbeat_at"].is_string() {
            assert_eq!(a["status"], "online", "{a}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    healthy.store(false, Ordering::SeqCst);
    let offline = poll("offline").await;
    assert!(
        offline["consecutive_failures"].as_i64().is_some_and(|n| n >= 3),
        "offline only after 3 failures: {offline}"
    );
    assert!(offline["circuit_open_at"].is_string(), "{offline}");
    healthy.store(true, Ordering::SeqCst);
    let back = poll("online").await;
    assert_eq!(back["consecutive_failures"], 0, "{back}");
    assert!(back["circuit_open_at"].is_null(), "a half-open probe closed the circuit: {back}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_hold_each_agent_to_its_concurrency_limit_and_busy_steps_wait() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A slow agent that counts how many calls it serves at once.
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, p) = (now.clone(), peak.clone());
    let app = Router::new().route(
        "/execute",
        post(move || {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let at = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(at, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                axum::Json(json!({"status": "success", "result": {"ok": true}}))
            }
        }),
    );
    let url = serve_agent(app).await;
    let server = TestServer::start("dispatch-leases").await;
    // Two agents of one pool, both on one resource key with room for one call at a time each.
    for name in ["one", "two"] {
        let body = json!({"name": name, "channel": "web", "base_url": url, "pool_id": "p", "concurrency_limit": 1,
                          "resource_key": format!("desk_{name}"), "capabilities": [{"name": "*"}]});
        assert_eq!(server.call("POST", "/api/agents", Some(body)).await.0, 201);
    }
    server.import(clicker("clicker")).await;
    let mut runs = Vec::new();
    for _ in 0..6 {
        runs.push(server.start_run("clicker", json!({})).await);
    }
    for run in &runs {
        let done = server.wait_status(run, &["completed", "failed"]).await;
        assert_eq!(done["status"], "completed", "busy steps wait for a lease instead of failing: {done}");
    }
    assert!(peak.load(Ordering::SeqCst) <= 2, "two agents with a limit of one serve at most two calls at once");
    let (_, leases) = server.call("GET", "/api/leases", None).await;
    let leases = leases.as_array().expect("list").clone();
    assert_eq!(leases.len(), 6, "one lease per dispatch");
    assert!(leases.iter().all(|l| l["released_at"].is_string() && l["is_active"] == false), "all released");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_execute_request_matches_langorchs_agent_protocol_byte_for_byte() {
    let raw: Arc<Mutex<Vec<Request>>> = Arc::default();
    let seen = raw.clone();
    let app = Router::new()
        .route(
            "/execute",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    seen.lock().expect("lock").push((headers, body.to_vec()));
                    axum::Json(json!({"status": "success", "result": null}))
                }
            }),
        )
        .route("/capabilities", get(|| async { axum::Json(json!({"capabilities": ["echo"]})) }));
    let url = serve_agent(app).await;
    let server = TestServer::start("dispatch-bytes").await;
    assert_eq!(
        server.call("POST", "/api/agents", Some(json!({"name": "E", "channel": "api", "base_url": url}))).await.0,
        201
    );
    // The example of langorch.md B §6.1, rendered with A.3's typing: a string that is exactly one placeholder keeps the
    // value's type (`"{{n}}"` → 3, where LangOrch sent "3"); other values keep theirs; keys keep their order.
    server
        .import(json!({"procedure_id": "echo", "version": "1",
            "variables_schema": {"n": {"type": "number"}, "one": {"type": "string"}},
            "workflow_graph": {"start_node": "s1", "nodes": {
                "s1": {"type": "sequence", "agent": "API", "steps": [
                    {"step_id": "e1", "action": "echo", "url": "{{n}}", "nested": {"x": "{{one}}", "raw": 5}, "output_variable": "r"}
                ], "next_node": "end"},
                "end": {"type": "terminate"}
            }}}))
        .await;
    let run = server.start_run("echo", json!({"n": 3, "one": "1"})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_vars"]["r"], json!({}), "a null result reads as {{}}");
    let calls = raw.lock().expect("lock").clone();
    let (headers, body) = &calls[0];
    let expected = format!(
        r#"{{"action":"echo","params":{{"url":3,"nested":{{"x":"1","raw":5}}}},"run_id":"{run}","node_id":"s1","step_id":"e1"}}"#
    );
    assert_eq!(String::from_utf8_lossy(body), expected);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!((header("x-run-id"), header("x-node-id"), header("x-step-id")), (run.clone(), "s1".into(), "e1".into()));
    assert!(!header("idempotency-key").is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_retries_an_agents_5xx_per_its_policy() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/execute",
        post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"detail": "warming up"})))
                } else {
                    (StatusCode::OK, axum::Json(json!({"status": "success", "result": {"attempt": n + 1}})))
                }
            }
        }),
    );
    let url = serve_agent(app).await;
    let server = TestServer::start("dispatch-retry").await;
    let agent = json!({"name": "R", "channel": "web", "base_url": url, "capabilities": [{"name": "*"}]});
    assert_eq!(server.call("POST", "/api/agents", Some(agent)).await.0, 201);
    server
        .import(json!({"procedure_id": "retrying", "version": "1",
        "global_config": {"max_retries": 3, "retry_delay_ms": 10},
        "workflow_graph": {"start_node": "go", "nodes": {
            "go": {"type": "sequence", "agent": "web", "steps": [
                {"step_id": "press", "action": "click", "retry_on_failure": true, "output_variable": "r"}
            ], "next_node": "end"},
            "end": {"type": "terminate"}
        }}}))
        .await;
    let run = server.start_run("retrying", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_vars"]["r"], json!({"attempt": 3}), "{done}");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "two 503s, then the success");
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    let retrying = events.as_array().expect("events").iter().filter(|e| e["event_type"] == "step_retrying").count();
    assert_eq!(retrying, 2, "{events}");
    server.stop().await;
}

/// One execution of a step keeps its `Idempotency-Key` through its retries (an agent whose success answer was lost
/// sees the retry under the key it already applied); another loop iteration is a new execution with a new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_one_step_execution_share_an_idempotency_key_and_loop_iterations_do_not() {
    let keys: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = keys.clone();
    let app = Router::new().route(
        "/execute",
        post(move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let item = body["params"]["item"].as_str().unwrap_or("").to_owned();
                let mut seen = seen.lock().expect("lock");
                // The first call of each item is answered 503 (a proxy in front of a busy agent), the next 200.
                let first = !seen.iter().any(|(i, _)| *i == item);
                seen.push((item.clone(), key));
                if first {
                    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"detail": "try again"})))
                } else {
                    (StatusCode::OK, axum::Json(json!({"status": "success", "result": {"item": item}})))
                }
            }
        }),
    );
    let url = serve_agent(app).await;
    let server = TestServer::start("dispatch-idempotency").await;
    let agent = json!({"name": "K", "channel": "web", "base_url": url, "capabilities": [{"name": "*"}]});
    assert_eq!(server.call("POST", "/api/agents", Some(agent)).await.0, 201);
    server
        .import(json!({"procedure_id": "keyed", "version": "1",
        "global_config": {"max_retries": 2, "retry_delay_ms": 10},
        "variables_schema": {"items": {"type": "array"}},
        "workflow_graph": {"start_node": "each", "nodes": {
            "each": {"type": "loop", "iterator": "items", "iterator_variable": "item", "body_node": "press",
                     "next_node": "end"},
            "press": {"type": "sequence", "agent": "web", "steps": [
                {"step_id": "press", "action": "click", "item": "{{item}}", "retry_on_failure": true}
            ], "next_node": "each"},
            "end": {"type": "terminate"}
        }}}))
        .await;
    let run = server.start_run("keyed", json!({"items": ["a", "b"]})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    let seen = keys.lock().expect("lock").clone();
    let items: Vec<&str> = seen.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(items, ["a", "a", "b", "b"], "each item: a 503, then the retry");
    assert!(seen.iter().all(|(_, k)| k.starts_with(&run)), "keys are the run's: {seen:?}");
    assert_eq!(seen[0].1, seen[1].1, "the retry of one execution reuses its key");
    assert_eq!(seen[2].1, seen[3].1, "the retry of one execution reuses its key");
    assert_ne!(seen[0].1, seen[2].1, "another loop iteration is a new execution with a new key");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_named_in_a_result_are_recorded_and_listed() {
    let app = Router::new().route(
        "/execute",
        post(|| async {
            axum::Json(json!({"status": "success", "result": {
                "screenshot": "after-click.png",
                "artifacts": [{"uri": "https://files.example/report.pdf", "kind": "report", "name": "report.pdf",
                               "mime_type": "application/pdf"}, {"name": "no uri, skipped"}],
                "artifact_uri": "s3://bucket/trace.zip", "artifact_kind": "trace"
            }}))
        }),
    );
    let url = serve_agent(app).await;
    let server = TestServer::start("dispatch-artifacts").await;
    let agent = json!({"name": "S", "channel": "web", "base_url": url, "capabilities": [{"name": "*"}]});
    assert_eq!(server.call("POST", "/api/agents", Some(agent)).await.0, 201);
    server.import(clicker("clicker")).await;
    let run = server.start_run("clicker", json!({})).await;
    assert_eq!(server.wait_status(&run, &["completed", "failed"]).await["status"], "completed");
    let (status, list) = server.call("GET", &format!("/api/runs/{run}/artifacts"), None).await;
    assert_eq!(status, 200, "{list}");
    let got: Vec<(String, String)> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|a| (a["kind"].as_str().unwrap_or("").to_owned(), a["uri"].as_str().unwrap_or("").to_owned()))
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(
        got_sorted,
        vec![
            ("report".to_owned(), "https://files.example/report.pdf".to_owned()),
            ("screenshot".to_owned(), "memory://after-click.png".to_owned()),
            ("trace".to_owned(), "s3://bucket/trace.zip".to_owned()),
        ],
        "{list}"
    );
    let report = list.as_array().expect("list").iter().find(|a| a["kind"] == "report").expect("report").clone();
    assert_eq!((report["name"].as_str(), report["mime_type"].as_str()), (Some("report.pdf"), Some("application/pdf")));
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    let created = events.as_array().expect("events").iter().filter(|e| e["event_type"] == "artifact_created").count();
    assert_eq!(created, 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_steps_call_an_openai_compatible_server_with_retry_after_and_fallback() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let bodies: Arc<Mutex<Vec<(HeaderMap, Value)>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (seen, counter) = (bodies.clone(), calls.clone());
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
            let (seen, counter) = (seen.clone(), counter.clone());
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let model = body["model"].as_str().unwrap_or_default().to_owned();
                seen.lock().expect("lock").push((headers, body));
                // The primary model is rate limited (twice, then overloaded); the fallback answers.
                if model == "primary" {
                    let status = if n == 0 { StatusCode::TOO_MANY_REQUESTS } else { StatusCode::SERVICE_UNAVAILABLE };
                    return (status, [("retry-after", "0")], axum::Json(json!({"error": {"message": "busy"}})));
                }
                (
                    StatusCode::OK,
                    [("retry-after", "0")],
                    axum::Json(json!({"model": model, "choices": [{"message": {"role": "assistant",
                        "content": "{\"sentiment\": \"positive\", \"score\": 0.9}"}}],
                        "usage": {"prompt_tokens": 40, "completion_tokens": 12}})),
                )
            }
        }),
    );
    let url = serve_agent(app).await;
    let server = TestServer::start_with("dispatch-llm", |c| {
        c.llm_base_url = Some(format!("{url}/v1"));
        c.llm_model = "primary".into();
        c.llm_fallback_models = vec!["backup".into()];
        c.llm_api_key = Some("sk-test".into());
    })
    .await;
    server
        .import(json!({"procedure_id": "judge", "version": "1", "workflow_graph": {"start_node": "ask", "nodes": {
            "ask": {"type": "llm_action", "prompt": "Sentiment of: {{text}}", "json_mode": true, "temperature": 0,
                    "outputs": {"sentiment": "json:sentiment"}, "next_node": "end"},
            "end": {"type": "terminate"}
        }}}))
        .await;
    let run = server.start_run("judge", json!({"text": "great product"})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_vars"]["sentiment"], "positive", "{done}");
    assert_eq!(done["total_prompt_tokens"], 40, "{done}");
    assert_eq!(done["total_completion_tokens"], 12, "{done}");
    let bodies = bodies.lock().expect("lock").clone();
    let models: Vec<&str> = bodies.iter().map(|(_, b)| b["model"].as_str().unwrap_or_default()).collect();
    assert_eq!(models, ["primary", "primary", "primary", "backup"], "3 attempts on the primary, then the fallback");
    let (headers, body) = &bodies[3];
    assert_eq!(headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer sk-test"));
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    assert_eq!(body["messages"][0], json!({"role": "user", "content": "Sentiment of: great product"}));
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    assert!(events.as_array().expect("events").iter().any(|e| e["event_type"] == "llm_usage"), "{events}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_call_failures_open_the_circuit_and_a_health_probe_closes_it() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let broken = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let (flag, counter, health_flag) = (broken.clone(), calls.clone(), broken.clone());
    let app = Router::new()
        .route(
            "/execute",
            post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let failing = flag.load(Ordering::SeqCst);
                async move {
                    if failing {
                        (StatusCode::BAD_GATEWAY, axum::Json(json!({"detail": "down"})))
                    } else {
                        (StatusCode::OK, axum::Json(json!({"status": "success", "result": {"ok": true}})))
                    }
                }
            }),
        )
        // A broken agent's health check fails too (so no probe resets the count while it is down).
        .route(
            "/health",
            get(move || {
                let down = health_flag.load(Ordering::SeqCst);
                async move { if down { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK } }
            }),
        );
    let url = serve_agent(app).await;
    let server = TestServer::start_with("dispatch-circuit", |c| {
        // The retries that find the circuit open fail at once instead of waiting for the agent.
        c.agent_wait_ms = 0;
        c.agent_offline_after = 3;
        c.agent_health_ms = 50;
        c.agent_circuit_reset_ms = 300;
    })
    .await;
    let agent = json!({"name": "C", "channel": "web", "base_url": url, "capabilities": [{"name": "*"}]});
    assert_eq!(server.call("POST", "/api/agents", Some(agent)).await.0, 201);
    server
        .import(
            json!({"procedure_id": "flaky", "version": "1", "global_config": {"max_retries": 5, "retry_delay_ms": 1},
            "workflow_graph": {"start_node": "go", "nodes": {
                "go": {"type": "sequence", "agent": "web", "steps": [
                    {"step_id": "press", "action": "click", "retry_on_failure": true}], "next_node": "end"},
                "end": {"type": "terminate"}}}}),
        )
        .await;
    // Three failures in a row (502s, and failed health checks) open the circuit: the remaining retries find no
    // agent to call.
    let run = server.start_run("flaky", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "failed", "{done}");
    // Without the breaker the step would be called 6 times (1 + 5 retries); failed health checks count too.
    let n = calls.load(Ordering::SeqCst);
    assert!((1..=3).contains(&n), "the open circuit stopped the calls after three failures: {n}");
    let (_, a) = server.call("GET", "/api/agents/web_c", None).await;
    assert_eq!(a["status"], "offline", "{a}");
    assert!(a["circuit_open_at"].is_string(), "{a}");
    // The agent recovers; after the reset period a health probe closes the circuit and steps flow again.
    broken.store(false, Ordering::SeqCst);
    for _ in 0..500 {
        let (_, a) = server.call("GET", "/api/agents/web_c", None).await;
        if a["status"] == "online" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let run = server.start_run("flaky", json!({})).await;
    assert_eq!(server.wait_status(&run, &["completed", "failed"]).await["status"], "completed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_budget_stops_the_run_once_the_cost_passes_it() {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            axum::Json(json!({"model": "m", "choices": [{"message": {"content": "long answer"}}],
                              "usage": {"prompt_tokens": 200000, "completion_tokens": 100000}}))
        }),
    );
    let url = serve_agent(app).await;
    let server = TestServer::start_with("dispatch-budget", |c| c.llm_base_url = Some(format!("{url}/v1"))).await;
    server
        .import(json!({"procedure_id": "spender", "version": "1", "global_config": {"max_cost_usd": 0.01},
            "workflow_graph": {"start_node": "ask", "nodes": {
                "ask": {"type": "llm_action", "prompt": "write a lot", "next_node": "again"},
                "again": {"type": "llm_action", "prompt": "and more", "next_node": "end"},
                "end": {"type": "terminate"}}}}))
        .await;
    let run = server.start_run("spender", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["error_message"].as_str().unwrap_or_default().contains("LLM budget exceeded"), "{done}");
    assert!(done["estimated_cost_usd"].as_f64().is_some_and(|c| c > 0.01), "{done}");
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    assert!(events.as_array().expect("events").iter().any(|e| e["event_type"] == "budget_exceeded"), "{events}");
    server.stop().await;
}

/// A free port on 127.0.0.1 that nothing listens on (yet).
fn free_port() -> std::net::SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr")
}

/// The run's events of `event_type`.
async fn events_of(server: &TestServer, run: &str, event_type: &str) -> Vec<Value> {
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    events.as_array().expect("events").iter().filter(|e| e["event_type"] == event_type).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_agent_is_registered_offline_and_a_step_waits_until_it_comes_online() {
    let addr = free_port();
    let server = TestServer::start_with("dispatch-wait", |c| {
        c.agent_health_ms = 50;
        c.agent_circuit_reset_ms = 100;
    })
    .await;
    // Nobody listens there: registered, but offline and with no capabilities (it could not be asked).
    let (status, body) = server
        .call("POST", "/api/agents", Some(json!({"name": "A", "channel": "web", "base_url": format!("http://{addr}")})))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "offline", "{body}");
    assert_eq!(body["capabilities"], json!([]), "{body}");
    server.import(clicker("clicker")).await;
    let run = server.start_run("clicker", json!({})).await;
    // The step waits, and says so in the run's events.
    let mut waiting = Vec::new();
    for _ in 0..500 {
        waiting = events_of(&server, &run, "step_waiting_for_agent").await;
        if !waiting.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(waiting.len(), 1, "one wait event");
    assert_eq!(waiting[0]["step_id"], "press", "{waiting:?}");
    assert_eq!(waiting[0]["payload"]["channel"], "web", "{waiting:?}");
    let message = waiting[0]["payload"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("waiting for an agent on channel 'web'"), "{message}");
    let (_, r) = server.call("GET", &format!("/api/runs/{run}"), None).await;
    assert!(!["completed", "failed"].contains(&r["status"].as_str().unwrap_or_default()), "{r}");

    // The agent starts on that address: a health check brings it online with its capabilities, and the run goes on.
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/execute",
            post(|State(seen): State<Seen>, headers: HeaderMap, axum::Json(body): axum::Json<Value>| async move {
                seen.0.lock().expect("lock").push((headers, body));
                axum::Json(json!({"status": "success", "result": {"clicked": true}}))
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .route("/capabilities", get(|| async { axum::Json(json!({"capabilities": ["click"]})) }))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the agent's address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut agent = Value::Null;
    for _ in 0..500 {
        agent = server.call("GET", "/api/agents/web_a", None).await.1;
        if agent["status"] == "online" && agent["capabilities"][0]["name"] == "click" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(agent["status"], "online", "{agent}");
    assert_eq!(agent["capabilities"][0]["name"], "click", "probed again once online: {agent}");
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(seen.0.lock().expect("lock").len(), 1, "dispatched once");
    assert_eq!(events_of(&server, &run, "step_waiting_for_agent").await.len(), 1, "the wait shown once");
    assert_eq!(events_of(&server, &run, "step_completed").await.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_waiting_for_an_agent_fails_with_a_clear_error_at_the_bound() {
    let addr = free_port();
    let server = TestServer::start_with("dispatch-wait-bound", |c| c.agent_wait_ms = 1_500).await;
    let agent = json!({"name": "A", "channel": "web", "base_url": format!("http://{addr}"),
                       "capabilities": [{"name": "click"}]});
    let (status, body) = server.call("POST", "/api/agents", Some(agent)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "offline", "{body}");
    server.import(clicker("clicker")).await;
    let run = server.start_run("clicker", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["status"], "failed", "{done}");
    let message = done["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains("No online agent for channel='web' with action 'click'")
            && message.contains("web_a (offline)")
            && message.contains("none came online within 1500 ms"),
        "{message}"
    );
    assert_eq!(events_of(&server, &run, "step_waiting_for_agent").await.len(), 1);
    server.stop().await;
}
