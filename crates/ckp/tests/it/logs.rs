//! `ckp serve --log-format json` as an operator reads it: a run whose agent is unreachable leaves log lines with
//! its run id, the step and the cause; a store failure answers a 5xx with no internal text, whose error id leads
//! to the cause in the log; a secret value never reaches a log line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::serve::call;

struct Logged {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Logged {
    fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Logged {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("data dir");
        let log = dir.join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ckp"))
            .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json", "--data-dir"])
            .arg(dir)
            .env("CKP_EGRESS_ALLOW", "127.0.0.1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("ckp serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
        let base = line.split_whitespace().find(|w| w.starts_with("http://")).expect("address").to_owned();
        Logged { child, base, log }
    }

    /// Every log line so far, each parsed as JSON (a line that is not JSON fails the test).
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .expect("log")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
            .collect()
    }

    /// Waits until a log line satisfies `pred`.
    async fn wait_line(&self, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            if let Some(l) = self.lines().into_iter().find(&pred) {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no such log line in:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of a line: at the top level, or in the span it was logged in.
fn field<'a>(line: &'a Value, name: &str) -> &'a Value {
    match &line[name] {
        Value::Null => &line["span"][name],
        v => v,
    }
}

async fn wait_status(http: &reqwest::Client, base: &str, run: &str) -> Value {
    for _ in 0..200 {
        let (_, body) = call(http, reqwest::Method::GET, format!("{base}/api/runs/{run}"), None).await;
        if matches!(body["status"].as_str(), Some("completed" | "failed")) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_run_the_step_and_the_cause_and_5xx_bodies_only_an_error_id() {
    let dir = std::env::temp_dir().join(format!("ckp-logs-{}", std::process::id()));
    let secret = "s3cr3t-value-for-logs-test";
    // One failed call takes an agent offline, so its state change is logged at once.
    let server = Logged::start(&dir, &[("LANGORCH_SECRET_TOKEN", secret), ("CKP_AGENT_OFFLINE_AFTER", "1")]);
    let http = reqwest::Client::new();
    let started = server.wait_line(|l| l["message"] == "ckp started").await;
    assert_eq!(started["level"], "INFO", "{started}");

    // An agent that answers when it is registered (so it is stored online), then goes away: its port refuses
    // connections when the step is sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gone_addr = listener.local_addr().expect("addr").to_string();
    let gone = tokio::spawn(async move { axum::serve(listener, axum::Router::new()).await });
    let agent = json!({"name": "Gone", "channel": "web", "base_url": format!("http://{gone_addr}"),
                       "capabilities": [{"name": "*"}]});
    let (status, body) = call(&http, reqwest::Method::POST, format!("{}/api/agents", server.base), Some(agent)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "online", "{body}");
    gone.abort();
    let _ = gone.await;
    let procedure = json!({"procedure_id": "unreachable", "version": "1", "workflow_graph": {"start_node": "go", "nodes": {
        "go": {"type": "sequence", "agent": "web", "steps": [
            {"step_id": "press", "action": "click", "token": "{{secrets.TOKEN}}"}
        ], "next_node": "end"},
        "end": {"type": "terminate"}}}});
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/procedures", server.base),
        Some(json!({"ckp_json": procedure})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/runs", server.base),
        Some(json!({"procedure_id": "unreachable"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let run = body["run_id"].as_str().expect("run id").to_owned();
    assert_eq!(wait_status(&http, &server.base, &run).await["status"], "failed");

    let step = server.wait_line(|l| l["message"] == "step attempt failed" && field(l, "run_id") == run.as_str()).await;
    assert_eq!(step["level"], "WARN", "{step}");
    assert_eq!(step["step_id"], "press", "{step}");
    assert_eq!(step["node_id"], "go", "{step}");
    assert_eq!(step["procedure_id"], "unreachable", "{step}");
    let cause = step["error"].as_str().expect("error");
    assert!(cause.contains(&gone_addr) && cause.contains("connect"), "the cause is named: {cause}");
    let failed = server.wait_line(|l| l["message"] == "run failed" && field(l, "run_id") == run.as_str()).await;
    assert_eq!(failed["step_id"], "press", "{failed}");
    let offline = server.wait_line(|l| l["agent"] == "web_gone").await;
    assert_eq!(offline["level"], "WARN", "{offline}");
    assert!(offline["message"].as_str().is_some_and(|m| m.starts_with("agent offline")), "{offline}");

    // A store failure: a table disappears under the running server.
    let db = rusqlite::Connection::open(dir.join("ckp.db")).expect("open the database");
    db.execute_batch("DROP TABLE projects").expect("drop");
    let (status, body) = call(&http, reqwest::Method::GET, format!("{}/api/projects", server.base), None).await;
    assert_eq!(status, 503, "{body}");
    let id = body["error_id"].as_str().expect("an error id").to_owned();
    let text = body.to_string().to_lowercase();
    for internal in ["projects", "sqlite", "no such table", "select"] {
        assert!(!text.contains(internal), "internal text {internal:?} in {body}");
    }
    assert!(body["detail"].as_str().is_some_and(|d| d.contains(&id)), "{body}");
    let logged = server.wait_line(|l| l["error_id"] == id.as_str()).await;
    assert_eq!(logged["level"], "ERROR", "{logged}");
    assert!(logged["error"].as_str().is_some_and(|e| e.contains("no such table")), "the cause is logged: {logged}");

    // An agent that echoes the secret it was sent in its error: the logged cause is masked.
    let echo = axum::Router::new().route(
        "/execute",
        axum::routing::post(|axum::Json(body): axum::Json<Value>| async move {
            axum::Json(json!({"status": "error", "error": format!("bad token {}", body["params"]["token"])}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let echo_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, echo).await });
    let agent = json!({"name": "Echo", "channel": "echo", "base_url": echo_url, "capabilities": [{"name": "*"}]});
    let (status, body) = call(&http, reqwest::Method::POST, format!("{}/api/agents", server.base), Some(agent)).await;
    assert_eq!(status, 201, "{body}");
    let procedure = json!({"procedure_id": "echoing", "version": "1", "workflow_graph": {"start_node": "go", "nodes": {
        "go": {"type": "sequence", "agent": "echo", "steps": [
            {"step_id": "send", "action": "click", "token": "{{secrets.TOKEN}}"}
        ], "next_node": "end"},
        "end": {"type": "terminate"}}}});
    let import = json!({"ckp_json": procedure});
    let (status, body) =
        call(&http, reqwest::Method::POST, format!("{}/api/procedures", server.base), Some(import)).await;
    assert_eq!(status, 201, "{body}");
    let start = json!({"procedure_id": "echoing"});
    let (_, body) = call(&http, reqwest::Method::POST, format!("{}/api/runs", server.base), Some(start)).await;
    let run = body["run_id"].as_str().expect("run id").to_owned();
    assert_eq!(wait_status(&http, &server.base, &run).await["status"], "failed");
    let step = server.wait_line(|l| l["message"] == "step attempt failed" && field(l, "run_id") == run.as_str()).await;
    // The agent saw the value (resolved at dispatch); the log line shows it masked.
    assert!(step["error"].as_str().is_some_and(|e| e.contains("bad token \"***\"")), "{step}");

    let all = std::fs::read_to_string(&server.log).expect("log");
    assert!(!all.contains(secret), "a secret value reached the log:\n{all}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
