//! Bounded runs through a real `ckp serve` with its default settings: a procedure that doubles a variable fails at
//! the variable cap with the server's peak RSS under 200 MiB, and a 200,000-item loop (600,000 events and more) commits
//! its events in batches while it runs instead of holding them until it ends.

use std::time::Duration;

use serde_json::{Value, json};

use crate::serve::{Serve, call, serve_with_env};

/// The peak resident set of a process (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in kB");
    kib / 1024
}

async fn import(http: &reqwest::Client, server: &Serve, doc: Value) {
    let (status, body) =
        call(http, reqwest::Method::POST, format!("{}/api/procedures", server.base), Some(json!({"ckp_json": doc})))
            .await;
    assert_eq!(status, 201, "{body}");
}

/// Starts a run and polls it (up to `secs`) until it ends; the run.
async fn run_to_end(http: &reqwest::Client, server: &Serve, procedure_id: &str, inputs: Value, secs: u64) -> Value {
    let (status, body) = call(
        http,
        reqwest::Method::POST,
        format!("{}/api/runs", server.base),
        Some(json!({"procedure_id": procedure_id, "input_vars": inputs})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["run_id"].as_str().expect("run id").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, run) = call(http, reqwest::Method::GET, format!("{}/api/runs/{id}", server.base), None).await;
        if run["status"] == "completed" || run["status"] == "failed" {
            return run;
        }
        assert!(tokio::time::Instant::now() < deadline, "run {id} did not end in {secs} s: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubling_variable_fails_at_the_cap_with_bounded_memory() {
    let dir = std::env::temp_dir().join(format!("ckp-bounds-double-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = serve_with_env(&dir, &[]);
    let http = reqwest::Client::new();
    let double = json!({"step_id": "double", "action": "set_variable", "variable": "x", "value": "{{x}}{{x}}"});
    import(
        &http,
        &server,
        json!({"procedure_id": "doubling", "version": "1", "workflow_graph": {"start_node": "grow", "nodes": {
            "grow": {"type": "sequence", "steps": vec![double; 40], "next_node": "end"},
            "end": {"type": "terminate"}
        }}}),
    )
    .await;
    let run = run_to_end(&http, &server, "doubling", json!({"x": "ab"}), 120).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error_message"].as_str().unwrap_or_default();
    assert!(error.contains("variable `x` would take") && error.contains("max_variable_bytes"), "{error}");
    let peak = peak_rss_mib(server.child.id());
    assert!(peak < 200, "the server's peak RSS was {peak} MiB");
    let _ = server.child.kill();
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_000_item_loop_streams_its_events_while_it_runs() {
    let dir = std::env::temp_dir().join(format!("ckp-bounds-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = serve_with_env(&dir, &[]);
    let http = reqwest::Client::new();
    import(
        &http,
        &server,
        json!({"procedure_id": "long_loop", "version": "1", "workflow_graph": {"start_node": "each", "nodes": {
            "each": {"type": "loop", "iterator": "items", "iterator_variable": "it", "body_node": "body", "next_node": "end"},
            "body": {"type": "processing", "operations": [
                {"action": "calculate", "expression": "{{it}} * 2", "output_variable": "double"}
            ], "next_node": "each"},
            "end": {"type": "terminate"}
        }}}),
    )
    .await;
    let items: Vec<u32> = (0..200_000).collect();
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/runs", server.base),
        Some(json!({"procedure_id": "long_loop", "input_vars": {"items": items}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["run_id"].as_str().expect("run id").to_owned();
    // The loop is one top-level node: its events are committed in batches while it runs, not once at its end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let mut seen_while_running = 0;
    let run = loop {
        let (_, run) = call(&http, reqwest::Method::GET, format!("{}/api/runs/{id}", server.base), None).await;
        if run["status"] == "completed" || run["status"] == "failed" {
            break run;
        }
        let (_, later) = call(
            &http,
            reqwest::Method::GET,
            format!("{}/api/runs/{id}/events?after={}&limit=1", server.base, seen_while_running + 20_000),
            None,
        )
        .await;
        if let Some(e) = later.as_array().and_then(|a| a.first()) {
            let (_, run) = call(&http, reqwest::Method::GET, format!("{}/api/runs/{id}", server.base), None).await;
            if run["status"] == "running" {
                seen_while_running = e["event_id"].as_i64().unwrap_or_default();
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "the loop did not end in 600 s: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["status"], "completed", "{run}");
    assert!(seen_while_running > 0, "no event was committed while the loop ran");
    let (_, last) =
        call(&http, reqwest::Method::GET, format!("{}/api/runs/{id}/events?after=500000&limit=100", server.base), None)
            .await;
    assert!(last.as_array().is_some_and(|a| !a.is_empty()), "three events or more per iteration, every one committed");
    let _ = server.child.kill();
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
