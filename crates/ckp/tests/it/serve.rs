//! `ckp serve` as a real process: 200 runs mixing durable waits and approvals, SIGKILL mid-flight, restart,
//! decide: every run completes, no step completes twice, no event is duplicated.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub(crate) struct Serve {
    pub(crate) child: Child,
    pub(crate) base: String,
}

// A test that fails, or ends with its server running, leaves no process behind.
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &std::path::Path) -> Serve {
    serve_with_env(data_dir, &[])
}

pub(crate) fn serve_with_env(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "8", "--data-dir"])
        .arg(data_dir)
        // The tests' agents listen on 127.0.0.1, which the egress policy closes by default.
        .env("CKP_EGRESS_ALLOW", "127.0.0.1")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ckp serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("first line");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the first line gives the address")
        .to_owned();
    Serve { child, base }
}

pub(crate) async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub(crate) fn procedures() -> Vec<Value> {
    let wait = |ms: u64| json!({"step_id": "pause", "action": "log", "message": "waited", "wait_ms": ms});
    let set = |v: &str| json!({"step_id": "set", "action": "set_variable", "variable": "result", "value": v});
    vec![
        json!({"procedure_id": "k9_wait", "version": "1", "workflow_graph": {"start_node": "a", "nodes": {
            "a": {"type": "sequence", "steps": [{"step_id": "id", "action": "generate_id", "output_variable": "uid"}], "next_node": "w"},
            "w": {"type": "sequence", "steps": [wait(2500)], "next_node": "b"},
            "b": {"type": "sequence", "steps": [set("waited")], "next_node": "end"},
            "end": {"type": "terminate"}}}}),
        json!({"procedure_id": "k9_gate", "version": "1", "workflow_graph": {"start_node": "a", "nodes": {
            "a": {"type": "sequence", "steps": [set("asked")], "next_node": "g"},
            "g": {"type": "human_approval", "prompt": "ok?", "on_approve": "b", "on_reject": "end"},
            "b": {"type": "sequence", "steps": [set("approved")], "next_node": "end"},
            "end": {"type": "terminate"}}}}),
        json!({"procedure_id": "k9_both", "version": "1", "workflow_graph": {"start_node": "w", "nodes": {
            "w": {"type": "sequence", "steps": [wait(1500)], "next_node": "g"},
            "g": {"type": "human_approval", "prompt": "ok?", "on_approve": "b", "on_reject": "end"},
            "b": {"type": "sequence", "steps": [set("both")], "next_node": "end"},
            "end": {"type": "terminate"}}}}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_survives_kill_9_with_200_runs_in_flight() {
    let dir = std::env::temp_dir().join(format!("ckp-serve-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let http = reqwest::Client::new();
    let mut server = serve(&dir);
    for p in procedures() {
        let (status, body) =
            call(&http, reqwest::Method::POST, format!("{}/api/procedures", server.base), Some(json!({"ckp_json": p})))
                .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut runs: HashMap<String, &str> = HashMap::new();
    for i in 0..200 {
        let kind = ["k9_wait", "k9_gate", "k9_both"][i % 3];
        let (status, body) = call(
            &http,
            reqwest::Method::POST,
            format!("{}/api/runs", server.base),
            Some(json!({"procedure_id": kind, "input_vars": {"i": i}})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        runs.insert(body["run_id"].as_str().expect("id").to_owned(), kind);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();

    let mut server = serve(&dir);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut decided = HashSet::new();
    loop {
        let (_, pending) =
            call(&http, reqwest::Method::GET, format!("{}/api/approvals?status=pending", server.base), None).await;
        for a in pending.as_array().expect("list") {
            let id = a["approval_id"].as_str().expect("id").to_owned();
            if decided.insert(id.clone()) {
                let (status, body) = call(
                    &http,
                    reqwest::Method::POST,
                    format!("{}/api/approvals/{id}/decision", server.base),
                    Some(json!({"decision": "approve"})),
                )
                .await;
                assert_eq!(status, 200, "{body}");
            }
        }
        let (_, list) = call(&http, reqwest::Method::GET, format!("{}/api/runs?limit=1000", server.base), None).await;
        let list = list.as_array().expect("runs").clone();
        let terminal = list
            .iter()
            .filter(|r| ["completed", "failed", "canceled"].contains(&r["status"].as_str().unwrap_or("")))
            .count();
        if terminal == runs.len() {
            for r in &list {
                let id = r["run_id"].as_str().expect("id");
                assert_eq!(r["status"], "completed", "{r}");
                let expected = match runs[id] {
                    "k9_wait" => "waited",
                    "k9_gate" => "approved",
                    _ => "both",
                };
                assert_eq!(r["output_vars"]["result"], expected, "{r}");
            }
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{terminal} of {} runs terminal after 60 s", runs.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(decided.len(), runs.values().filter(|k| **k != "k9_wait").count(), "each approval decided once");
    for id in runs.keys() {
        let (_, events) =
            call(&http, reqwest::Method::GET, format!("{}/api/runs/{id}/events", server.base), None).await;
        let mut seen = HashSet::new();
        let mut last_id = 0;
        for e in events.as_array().expect("events") {
            let eid = e["event_id"].as_i64().expect("event id");
            assert!(eid > last_id, "event ids increase");
            last_id = eid;
            let key = (e["event_type"].clone(), e["node_id"].clone(), e["step_id"].clone());
            // A run resumes once after its timer or decision and once more if the crash interrupted it.
            if e["event_type"] != "execution_resumed" {
                assert!(seen.insert(key), "duplicate event in run {id}: {e}");
            }
        }
        for t in ["run_created", "execution_started", "run_completed"] {
            let n = events.as_array().expect("events").iter().filter(|e| e["event_type"] == t).count();
            assert_eq!(n, 1, "{t} in run {id}");
        }
    }
    server.child.kill().expect("stop");
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ckp serve`'s arguments as clap parses them from `flags`.
pub(crate) fn serve_args(flags: &[&str]) -> ckp::cmd::serve::ServeArgs {
    use clap::Parser;
    match ckp::Cli::try_parse_from(["ckp", "serve"].iter().chain(flags)).expect("valid flags").command {
        ckp::Command::Serve(args) => args,
        other => panic!("not serve: {other:?}"),
    }
}

#[test]
fn serve_settings_layer_defaults_file_environment_and_flags() {
    use ckp::cmd::serve::config;
    let dir = std::env::temp_dir().join(format!("ckp-serve-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("ckp.toml");
    std::fs::write(&file, "bind = \"0.0.0.0:9000\"\nworkers = 3\nsynchronous = \"full\"\n").expect("write");
    let env = |k: &str| match k {
        "CKP_WORKERS" => Some("5".to_owned()),
        "CKP_DATA_DIR" => Some("/srv/ckp".to_owned()),
        _ => None,
    };
    let args = serve_args(&["--config", &file.display().to_string(), "--bind", "127.0.0.1:7000"]);
    let c = config(&args, env).expect("valid");
    assert_eq!(c.bind, "127.0.0.1:7000", "flags win");
    assert_eq!(c.workers, 5, "the environment beats the file");
    assert_eq!(c.synchronous, "full", "the file beats the defaults");
    assert_eq!(c.data_dir, std::path::PathBuf::from("/srv/ckp"));
    assert_eq!(c.db_path(), std::path::PathBuf::from("/srv/ckp/ckp.db"));
    assert_eq!(c.max_body_bytes, 4 * 1024 * 1024, "defaults fill the rest");
    std::fs::write(&file, "wrokers = 3\n").expect("write");
    let err = config(&serve_args(&["--config", &file.display().to_string()]), |_| None).expect_err("typo");
    assert!(err.contains("wrokers"), "{err}");
    let bad_env = |k: &str| (k == "CKP_WORKERS").then(|| "many".to_owned());
    let err = config(&serve_args(&[]), bad_env).expect_err("not a number");
    assert!(err.contains("CKP_WORKERS"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_refuses_a_bad_configuration_with_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["serve", "--bind", "127.0.0.1:0", "--synchronous", "sometimes", "--data-dir"])
        .arg(std::env::temp_dir().join(format!("ckp-serve-bad-{}", std::process::id())))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("synchronous must be normal or full"), "{stderr}");
}

#[test]
fn bench_measures_a_running_server() {
    let dir = std::env::temp_dir().join(format!("ckp-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = serve(&dir);
    let pid = server.child.id().to_string();
    for workload in ["chain", "approval"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ckp"))
            .args(["bench", "--url", &server.base, "--workload", workload, "-n", "20", "-c", "4", "-k", "3"])
            .args(["--json", "--pid", &pid])
            .output()
            .expect("bench runs");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        assert_eq!(report["runs"], 20, "{report}");
        assert_eq!(report["not_completed"], 0, "{report}");
        assert!(report["runs_per_second"].as_f64().is_some_and(|r| r > 0.0), "{report}");
        assert!(report["latency_ms"][0].as_f64().is_some_and(|p| p > 0.0), "{report}");
        assert!(report["server_rss_mib"].as_f64().is_some_and(|m| m > 0.0), "{report}");
        assert!(report["server_rss_settled_mib"].as_f64().is_some_and(|m| m > 0.0), "{report}");
        assert!(report["server_cpu_us_per_run"].is_number(), "{report}");
        assert_eq!(report["decision_ms"].is_array(), workload == "approval", "{report}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["bench", "--url", "http://127.0.0.1:9", "-n", "1"])
        .output()
        .expect("bench runs");
    assert_eq!(out.status.code(), Some(2), "an unreachable server is a clear error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ckp bench:"));
    server.child.kill().expect("stop");
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_interrupted_by_kill_9_is_sent_again_with_the_same_idempotency_key() {
    use std::sync::{Arc, Mutex};
    // An agent whose first call never answers in time: ckp is killed while it waits.
    let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new()
        .route(
            "/execute",
            axum::routing::post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    let first = {
                        let mut calls = seen.lock().expect("lock");
                        calls.push((key, body["run_id"].as_str().unwrap_or("").to_owned()));
                        calls.len() == 1
                    };
                    if first {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    axum::Json(json!({"status": "success", "result": {"done": true}}))
                }
            }),
        )
        .route("/health", axum::routing::get(|| async { "ok" }));
    let agent_url = spawn_agent(app).await;

    let dir = std::env::temp_dir().join(format!("ckp-serve-idem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let http = reqwest::Client::new();
    let mut server = serve(&dir);
    let agent = json!({"name": "A", "channel": "web", "base_url": agent_url, "capabilities": [{"name": "click"}]});
    assert_eq!(call(&http, reqwest::Method::POST, format!("{}/api/agents", server.base), Some(agent)).await.0, 201);
    let procedure = json!({"procedure_id": "k9_agent", "version": "1", "workflow_graph": {"start_node": "go", "nodes": {
        "go": {"type": "sequence", "agent": "web", "steps": [{"step_id": "press", "action": "click", "output_variable": "r"}],
               "next_node": "end"},
        "end": {"type": "terminate"}}}});
    let imported = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/procedures", server.base),
        Some(json!({"ckp_json": procedure})),
    )
    .await;
    assert_eq!(imported.0, 201, "{}", imported.1);
    let (_, run) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/runs", server.base),
        Some(json!({"procedure_id": "k9_agent"})),
    )
    .await;
    let run_id = run["run_id"].as_str().expect("run id").to_owned();
    // The intent is committed before the call: once the agent has it, kill ckp.
    for _ in 0..500 {
        if !calls.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();

    let mut server = serve(&dir);
    let status = wait_terminal(&http, &server.base, &run_id).await;
    assert_eq!(status, "completed");
    let calls = calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 2, "sent again after the crash: {calls:?}");
    assert!(!calls[0].0.is_empty());
    assert_eq!(calls[0], calls[1], "the same Idempotency-Key and run");
    let (_, events) =
        call(&http, reqwest::Method::GET, format!("{}/api/runs/{run_id}/events", server.base), None).await;
    let completed = events.as_array().expect("events").iter().filter(|e| e["event_type"] == "step_completed").count();
    assert_eq!(completed, 1);
    server.child.kill().expect("stop");
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_the_agent_and_nothing_else() {
    const SECRET: &str = "s3cr3t-VALUE-9f1c";
    let (agent_url, got) = recording_agent(json!({"authorized": true})).await;
    let dir = std::env::temp_dir().join(format!("ckp-serve-secret-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = serve_with_env(&dir, &[("LANGORCH_SECRET_API_TOKEN", SECRET)]);
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let agent = json!({"name": "A", "channel": "api", "base_url": agent_url, "capabilities": [{"name": "call"}]});
    assert_eq!(call(&http, reqwest::Method::POST, format!("{base}/api/agents"), Some(agent)).await.0, 201);
    let procedure = json!({"procedure_id": "secretive", "version": "1", "workflow_graph": {"start_node": "go", "nodes": {
        "go": {"type": "sequence", "agent": "api", "steps": [
            {"step_id": "auth", "action": "call", "token": "{{secrets.api_token}}", "header": "Bearer {{secrets.api_token}}",
             "output_variable": "r"}], "next_node": "end"},
        "end": {"type": "terminate"}}}});
    let imported =
        call(&http, reqwest::Method::POST, format!("{base}/api/procedures"), Some(json!({"ckp_json": procedure})))
            .await;
    assert_eq!(imported.0, 201, "{}", imported.1);
    let (_, run) =
        call(&http, reqwest::Method::POST, format!("{base}/api/runs"), Some(json!({"procedure_id": "secretive"})))
            .await;
    let id = run["run_id"].as_str().expect("id").to_owned();
    let status = wait_terminal(&http, &server.base, &id).await;
    assert_eq!(status, "completed");
    let calls = got.lock().expect("lock").clone();
    assert_eq!(calls[0]["params"]["token"], SECRET, "the agent gets the value");
    assert_eq!(calls[0]["params"]["header"], format!("Bearer {SECRET}"));
    // Every API answer about the run, and the server's output, is free of it.
    let (_, cps) = call(&http, reqwest::Method::GET, format!("{base}/api/runs/{id}/checkpoints"), None).await;
    let cp = cps[0]["checkpoint_id"].as_str().unwrap_or_default().to_owned();
    for path in [
        format!("/api/runs/{id}"),
        format!("/api/runs/{id}/events"),
        format!("/api/runs/{id}/diagnostics"),
        format!("/api/runs/{id}/checkpoints"),
        format!("/api/runs/{id}/checkpoints/{cp}"),
        format!("/api/runs/{id}/artifacts"),
        "/api/runs".to_owned(),
        "/api/procedures/secretive/1".to_owned(),
    ] {
        let resp = http.get(format!("{base}{path}")).send().await.expect("get");
        let text = resp.text().await.expect("body");
        assert!(!text.contains(SECRET), "{path} leaks the secret: {text}");
    }
    let stream = http.get(format!("{base}/api/runs/{id}/stream")).send().await.expect("stream");
    let text = stream.text().await.expect("stream body");
    assert!(text.contains("run_completed") && !text.contains(SECRET), "{text}");
    server.child.kill().expect("stop");
    let _ = server.child.wait();
    // Checkpoints, step records and run rows are stored as text (events are compressed: the API checks above
    // cover them).
    for file in ["ckp.db", "ckp.db-wal"] {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(SECRET), "{file} holds the secret");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An agent on 127.0.0.1 whose `/execute` answers success with `result` and keeps every request body it got;
/// returns its base URL and the bodies.
pub(crate) async fn recording_agent(result: Value) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let got: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = std::sync::Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/execute",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let (seen, result) = (seen.clone(), result.clone());
            async move {
                seen.lock().expect("lock").push(body);
                axum::Json(json!({"status": "success", "result": result}))
            }
        }),
    );
    (spawn_agent(app).await, got)
}

/// Serves `app` on 127.0.0.1 (an ephemeral port) as a test agent; returns its base URL.
pub(crate) async fn spawn_agent(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// Polls a run until it completes or fails (10 s at most); returns its status.
pub(crate) async fn wait_terminal(http: &reqwest::Client, base: &str, run_id: &str) -> Value {
    let mut status = Value::Null;
    for _ in 0..1000 {
        let (_, r) = call(http, reqwest::Method::GET, format!("{base}/api/runs/{run_id}"), None).await;
        status = r["status"].clone();
        if status == "completed" || status == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ckp_run_uses_agents_given_on_the_command_line() {
    let app = axum::Router::new().route(
        "/execute",
        axum::routing::post(|axum::Json(body): axum::Json<Value>| async move {
            axum::Json(json!({"status": "success", "result": {"echo": body["params"]["text"]}}))
        }),
    );
    let url = spawn_agent(app).await;
    let dir = std::env::temp_dir().join(format!("ckp-run-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("echo.ckp.json");
    let doc = json!({"procedure_id": "echo_cli", "version": "1", "workflow_graph": {"start_node": "go", "nodes": {
        "go": {"type": "sequence", "agent": "Web", "steps": [
            {"step_id": "say", "action": "echo", "text": "hello", "output_variable": "said"}], "next_node": "end"},
        "end": {"type": "terminate"}}}});
    std::fs::write(&file, doc.to_string()).expect("write");
    let run = |extra: Vec<String>| {
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_ckp")).arg("run").arg(&file).args(extra).output().expect("runs")
        })
    };
    let out = run(vec!["--agent".into(), format!("web={url}")]).await.expect("joined");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let outputs: Value = serde_json::from_slice(&out.stdout).expect("outputs");
    assert_eq!(outputs["said"], json!({"echo": "hello"}));
    let out = run(vec!["--agent".into(), "web".into()]).await.expect("joined");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected CHANNEL=URL"));
    let out = run(vec![]).await.expect("joined");
    assert_ne!(out.status.code(), Some(0), "no agent for the channel");
    assert!(String::from_utf8_lossy(&out.stderr).contains("channel='web'"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_paused_on_an_async_workflow_survives_kill_9_and_its_callback_resumes_it() {
    use std::sync::{Arc, Mutex};
    // A workflow agent that accepts the work and keeps the callback URL it was given.
    let calls: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/execute",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(body);
                (axum::http::StatusCode::ACCEPTED, axum::Json(json!({"status": "accepted"})))
            }
        }),
    );
    let agent_url = spawn_agent(app).await;
    let dir = std::env::temp_dir().join(format!("ckp-serve-workflow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let http = reqwest::Client::new();
    let mut server = serve(&dir);
    let agent = json!({"name": "W", "channel": "erp", "base_url": agent_url,
                       "capabilities": [{"name": "post_invoice", "type": "workflow"}]});
    assert_eq!(call(&http, reqwest::Method::POST, format!("{}/api/agents", server.base), Some(agent)).await.0, 201);
    let procedure = json!({"procedure_id": "k9_workflow", "version": "1", "workflow_graph": {"start_node": "go", "nodes": {
        "go": {"type": "sequence", "agent": "erp", "steps": [
            {"step_id": "post", "action": "post_invoice", "output_variable": "invoice"}], "next_node": "end"},
        "end": {"type": "terminate"}}}});
    let body = Some(json!({"ckp_json": procedure}));
    assert_eq!(call(&http, reqwest::Method::POST, format!("{}/api/procedures", server.base), body).await.0, 201);
    let body = Some(json!({"procedure_id": "k9_workflow"}));
    let (_, run) = call(&http, reqwest::Method::POST, format!("{}/api/runs", server.base), body).await;
    let run_id = run["run_id"].as_str().expect("run id").to_owned();
    let status_of = |base: String| {
        let (http, run_id) = (http.clone(), run_id.clone());
        async move { call(&http, reqwest::Method::GET, format!("{base}/api/runs/{run_id}"), None).await.1["status"].clone() }
    };
    for _ in 0..1000 {
        if status_of(server.base.clone()).await == "paused" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status_of(server.base.clone()).await, "paused");
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();

    // Restarted (on another port), the run is still paused and the workflow is not dispatched again.
    let mut server = serve(&dir);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_of(server.base.clone()).await, "paused");
    let callback_url = {
        let calls = calls.lock().expect("lock");
        assert_eq!(calls.len(), 1, "dispatched once");
        calls[0]["params"]["callback_url"].as_str().expect("callback_url").to_owned()
    };
    // The token was signed before the crash with the secret kept in the data directory.
    let path = &callback_url[callback_url.find("/api/").expect("path")..];
    let body = Some(json!({"status": "success", "output": {"invoice_no": "INV-1"}}));
    let (status, answer) = call(&http, reqwest::Method::POST, format!("{}{path}", server.base), body).await;
    assert_eq!((status, &answer["resumed"]), (200, &json!(true)), "{answer}");
    assert_eq!(wait_terminal(&http, &server.base, &run_id).await, "completed");
    let (_, run) = call(&http, reqwest::Method::GET, format!("{}/api/runs/{run_id}", server.base), None).await;
    assert_eq!(run["output_vars"]["invoice"], json!({"invoice_no": "INV-1"}), "{run}");
    assert_eq!(calls.lock().expect("lock").len(), 1, "the workflow was dispatched exactly once");
    server.child.kill().expect("stop");
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// One process per SQLite database: a second `ckp serve` or `ckp run --db` on a database in use exits at once,
/// naming the holder's PID; once the holder is gone (even by SIGKILL) the database opens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_a_database_in_use_exits_naming_the_holder() {
    let dir = std::env::temp_dir().join(format!("ckp-serve-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut first = serve(&dir);
    let holder = first.child.id();
    let second = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("a second ckp serve runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second serve must not start: {stderr}");
    assert!(stderr.contains(&format!("in use by another ckp process (pid {holder})")), "{stderr}");
    let fixture =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ticket_lookup.ckp.json");
    let run = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["run", "--input", "ticket_id=7", "--db"])
        .arg(dir.join("ckp.db"))
        .arg(&fixture)
        .output()
        .expect("ckp run runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "ckp run --db must not open it: {stderr}");
    assert!(stderr.contains(&format!("(pid {holder})")), "{stderr}");

    first.child.kill().expect("SIGKILL");
    let _ = first.child.wait();
    let mut again = serve(&dir);
    let http = reqwest::Client::new();
    let (status, _) = call(&http, reqwest::Method::GET, format!("{}/api/health", again.base), None).await;
    assert_eq!(status, 200, "the lock died with its holder");
    let _ = again.child.kill();
    let _ = again.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
