//! `GET /api/metrics` after a mixed workload, parsed by the Python `prometheus_client` parser (installed by
//! `scripts/test` into a venv found through `CKP_PYTHON`): every family well formed, and the counts equal to the
//! runs, steps, decisions and requests performed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{TestServer, approval_procedure, chain_procedure};

/// The parser: families as JSON (`name`, `type`, samples as `[name, labels, value]`); it raises on anything
/// that is not valid exposition text.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type,
                "samples": [[s.name, s.labels, s.value] for s in f.samples]})
print(json.dumps(out))
"#;

/// A parsed exposition: sample values by name and sorted labels.
struct Scrape {
    families: Vec<Value>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let python = std::env::var("CKP_PYTHON").unwrap_or_else(|_| {
            panic!("CKP_PYTHON must name a Python with prometheus_client (scripts/test installs it)")
        });
        let mut child = Command::new(&python)
            .args(["-c", PARSE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{python}: {e}"));
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("writes");
        let out = child.wait_with_output().expect("parser ran");
        assert!(
            out.status.success(),
            "prometheus_client refused the exposition: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let families: Vec<Value> = serde_json::from_slice(&out.stdout).expect("parser output is JSON");
        Scrape { families }
    }

    /// The value of the sample `name` with exactly `labels`, if present.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        self.families.iter().flat_map(|f| f["samples"].as_array().cloned().unwrap_or_default()).find_map(|s| {
            let got: BTreeMap<String, String> = serde_json::from_value(s[1].clone()).unwrap_or_default();
            (s[0] == name && got == want).then(|| s[2].as_f64()).flatten()
        })
    }

    /// The family `name`'s type.
    fn kind(&self, name: &str) -> Option<&str> {
        self.families.iter().find(|f| f["name"] == name).and_then(|f| f["type"].as_str())
    }
}

/// The `ckp_*` and `langorch_*` names in `text`.
fn regex_lite_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices("ckp_").chain(text.match_indices("langorch_")) {
        let preceded = text[..i].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let name: String = text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !preceded {
            names.insert(name);
        }
    }
    names
}

fn failing_procedure(id: &str) -> Value {
    json!({"procedure_id": id, "version": "1.0.0", "status": "active", "workflow_graph": {"start_node": "parse", "nodes": {
        "parse": {"type": "sequence", "steps": [{"step_id": "p", "action": "parse_json", "source": "{not json"}],
                  "next_node": "done"},
        "done": {"type": "terminate", "status": "success"}
    }}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_mixed_workload_and_parse_as_prometheus_text() {
    let server = TestServer::start("metrics-mixed").await;
    server.import(chain_procedure("m_chain", 3)).await;
    server.import(failing_procedure("m_fail")).await;
    server.import(approval_procedure("m_gate")).await;

    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(server.start_run("m_chain", json!({})).await);
    }
    for _ in 0..3 {
        runs.push(server.start_run("m_fail", json!({})).await);
    }
    let approve = server.start_run("m_gate", json!({})).await;
    let reject = server.start_run("m_gate", json!({})).await;
    let cancel = server.start_run("m_gate", json!({})).await;
    for run in &runs[..5] {
        server.wait_status(run, &["completed"]).await;
    }
    for run in &runs[5..] {
        server.wait_status(run, &["failed"]).await;
    }
    for (run, decision) in [(&approve, "approved"), (&reject, "rejected")] {
        server.wait_status(run, &["waiting_approval"]).await;
        server.decide(run, decision).await;
        server.wait_status(run, &["completed"]).await;
    }
    server.wait_status(&cancel, &["waiting_approval"]).await;
    let (status, body) = server.call("POST", &format!("/api/runs/{cancel}/cancel"), None).await;
    assert_eq!(status, 200, "{body}");
    // A request the router refuses is counted under its route too.
    let (status, _) = server.call("GET", "/api/runs/does-not-exist", None).await;
    assert_eq!(status, 404);

    let response = reqwest::get(server.url("/api/metrics")).await.expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.expect("body");
    let m = Scrape::parse(&text);
    let v = |name: &str, labels: &[(&str, &str)]| {
        m.value(name, labels).unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}"))
    };

    // Runs, by procedure and status.
    assert_eq!(v("ckp_runs_created_total", &[("procedure", "m_chain"), ("trigger", "api")]), 5.0);
    assert_eq!(v("ckp_runs_created_total", &[("procedure", "m_gate"), ("trigger", "api")]), 3.0);
    assert_eq!(v("ckp_runs_finished_total", &[("procedure", "m_chain"), ("status", "completed")]), 5.0);
    assert_eq!(v("ckp_runs_finished_total", &[("procedure", "m_fail"), ("status", "failed")]), 3.0);
    assert_eq!(v("ckp_runs_finished_total", &[("procedure", "m_gate"), ("status", "completed")]), 2.0);
    assert_eq!(v("ckp_runs_finished_total", &[("procedure", "m_gate"), ("status", "canceled")]), 1.0);
    assert_eq!(v("ckp_run_duration_seconds_count", &[("status", "completed")]), 7.0);
    // LangOrch's families, under its names and labels.
    assert_eq!(m.kind("langorch_run_duration_seconds"), Some("summary"));
    assert_eq!(v("langorch_run_completed_total", &[("status", "completed")]), 7.0);
    assert_eq!(v("langorch_run_completed_total", &[("status", "failed")]), 3.0);
    assert_eq!(v("langorch_run_failures_total", &[]), 3.0);
    assert_eq!(v("langorch_run_duration_seconds_count", &[("status", "failed")]), 3.0);
    assert!(v("langorch_run_started_total", &[]) >= 11.0, "every run executed at least once");
    assert_eq!(v("langorch_step_execution_total", &[("node_id", "parse"), ("status", "failed")]), 3.0);
    assert_eq!(v("langorch_step_execution_total", &[("node_id", "n0"), ("status", "completed")]), 10.0);
    // Steps and nodes.
    assert_eq!(v("ckp_steps_total", &[("action", "parse_json"), ("result", "failed")]), 3.0);
    assert_eq!(v("ckp_steps_total", &[("action", "log"), ("result", "completed")]), 15.0);
    assert_eq!(m.kind("ckp_node_duration_seconds"), Some("histogram"));
    // 5 chains × 3 sequence nodes, 3 approval runs × 2 before/after nodes minus the canceled one's second.
    assert_eq!(v("ckp_node_duration_seconds_count", &[("node_type", "sequence")]), 15.0 + 3.0 + 2.0);
    assert_eq!(v("ckp_node_duration_seconds_count", &[("node_type", "logic")]), 5.0);
    // Approvals.
    assert_eq!(v("ckp_approvals_requested_total", &[]), 3.0);
    assert_eq!(v("ckp_approval_decisions_total", &[("decision", "approved")]), 1.0);
    assert_eq!(v("ckp_approval_decisions_total", &[("decision", "rejected")]), 1.0);
    assert_eq!(v("ckp_approval_wait_seconds_count", &[]), 2.0);
    // HTTP, by declared route (never the raw path).
    assert_eq!(v("ckp_http_requests_total", &[("method", "POST"), ("route", "/api/runs"), ("status", "201")]), 11.0);
    assert_eq!(
        v("ckp_http_requests_total", &[("method", "GET"), ("route", "/api/runs/{run_id}"), ("status", "404")]),
        1.0
    );
    assert!(!text.contains("does-not-exist"), "a raw path became a label");
    // The leader's gauges from the database.
    assert_eq!(v("ckp_runs", &[("status", "completed")]), 7.0);
    assert_eq!(v("ckp_runs", &[("status", "failed")]), 3.0);
    assert_eq!(v("ckp_runs", &[("status", "canceled")]), 1.0);
    assert_eq!(v("ckp_runs", &[("status", "waiting_approval")]), 0.0);
    assert_eq!(v("langorch_queue_depth", &[("queue_type", "run_queue")]), 0.0);
    assert_eq!(v("ckp_workers_busy", &[]), 0.0);
    assert!(v("ckp_commit_duration_seconds_count", &[]) >= 11.0);
    // Every metric the shipped Grafana dashboard queries is a family of the exposition.
    let dashboard =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana/ckp-dashboard.json"))
            .expect("the dashboard is in the repository");
    let names = regex_lite_names(&dashboard);
    assert!(names.len() >= 20, "{names:?}");
    for name in names {
        let family = name.strip_suffix("_bucket").unwrap_or(&name);
        assert!(text.contains(&format!("# TYPE {family} ")), "the dashboard reads {name}, which ckp does not expose");
    }
    // No run id became a label.
    for run in runs.iter().chain([&approve, &reject, &cancel]) {
        assert!(!text.contains(run.as_str()), "run id {run} in the exposition");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_viewer_when_authentication_is_on() {
    let server = TestServer::start_with("metrics-auth", |c| c.auth = "on".into()).await;
    let (status, _) = server.call("GET", "/api/metrics", None).await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_pushed_to_a_gateway_under_the_process_key() {
    use axum::extract::{Path, State};
    type Pushed = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;
    let pushed: Pushed = Default::default();
    let app = axum::Router::new()
        .route(
            "/metrics/job/{job}/instance/{instance}",
            axum::routing::put(
                |State(p): State<Pushed>, Path((job, instance)): Path<(String, String)>, body: String| async move {
                    p.lock().expect("lock").push((job, instance, body));
                    ""
                },
            ),
        )
        .with_state(pushed.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let server = TestServer::start_with("metrics-push", move |c| {
        c.metrics_push_url = Some(url);
        c.metrics_push_job = "ckp-test".into();
        c.metrics_push_interval_ms = 50;
    })
    .await;
    let mut got = Vec::new();
    for _ in 0..200 {
        got = pushed.lock().expect("lock").clone();
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (job, instance, body) = got.first().cloned().expect("a push");
    assert_eq!(job, "ckp-test");
    assert!(body.contains(&format!("ckp_process_info{{process=\"{instance}\"")), "the key names this process: {body}");
    Scrape::parse(&body);
    server.stop().await;
}
