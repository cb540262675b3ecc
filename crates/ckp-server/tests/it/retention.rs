//! Retention of runs and the history cleanup through a real server: a run waiting at an approval is never deleted;
//! a retention pass run while runs are created and executed through the API deletes exactly the ended runs its
//! policy selects (and their artifact folders), nothing else, and on SQLite gives the freed pages back.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ckp_server::retention::pass;
use ckp_store::RetentionPolicy;
use serde_json::{Value, json};

use crate::support::{TestServer, approval_procedure, chain_procedure, postgres};

/// A procedure that fails at once.
fn failing(id: &str) -> Value {
    json!({"procedure_id": id, "version": "1.0.0", "status": "active", "workflow_graph": {"start_node": "end",
        "nodes": {"end": {"type": "terminate", "status": "failed"}}}})
}

/// Every run id the API lists.
async fn run_ids(server: &TestServer) -> BTreeSet<String> {
    let (status, runs) = server.call("GET", "/api/runs?limit=1000", None).await;
    assert_eq!(status, 200, "{runs}");
    let runs = runs.as_array().expect("a list of runs");
    runs.iter().map(|r| r["run_id"].as_str().expect("run_id").to_owned()).collect()
}

/// The approval a run waits at.
async fn approval_of(server: &TestServer, run: &str) -> String {
    let (_, approvals) = server.call("GET", &format!("/api/approvals?run_id={run}"), None).await;
    approvals[0]["approval_id"].as_str().expect("approval id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_history_never_deletes_a_run_waiting_at_an_approval() {
    let server = TestServer::start("cleanup-waiting").await;
    server.import(approval_procedure("keep_gate")).await;
    server.import(chain_procedure("keep_chain", 1)).await;
    let waiting = server.start_run("keep_gate", json!({})).await;
    server.wait_status(&waiting, &["waiting_approval"]).await;
    let done = server.start_run("keep_chain", json!({})).await;
    server.wait_status(&done, &["completed"]).await;
    let before = "2100-01-01T00:00:00Z";
    let s = &server;
    let cleanup = |query: String| async move {
        let (status, body) = s.call("DELETE", &format!("/api/runs/cleanup/history?{query}"), None).await;
        assert_eq!(status, 200, "{body}");
        body["deleted_count"].as_i64().expect("deleted_count")
    };
    assert_eq!(cleanup(format!("before={before}&dry_run=true")).await, 1, "only the ended run is counted");
    assert_eq!(cleanup(format!("before={before}&status=waiting_approval")).await, 0);
    assert_eq!(cleanup(format!("before={before}&status=created")).await, 0);
    assert_eq!(cleanup(format!("before={before}")).await, 1);
    assert_eq!(run_ids(&server).await, BTreeSet::from([waiting.clone()]));
    assert_eq!(cleanup(format!("before={before}")).await, 0, "the waiting run stays, however often asked");
    let approval = approval_of(&server, &waiting).await;
    let (status, body) =
        server.call("POST", &format!("/api/approvals/{approval}/decision"), Some(json!({"decision": "approve"}))).await;
    assert_eq!(status, 200, "its approval is still there to decide: {body}");
    server.wait_status(&waiting, &["completed"]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_pass_under_load_deletes_exactly_what_the_policy_says() {
    let server = TestServer::start("retention-load").await;
    server.import(chain_procedure("ret_ok", 2)).await;
    server.import(failing("ret_bad")).await;
    server.import(approval_procedure("ret_gate")).await;
    // Inputs large enough that deleting the runs frees whole pages.
    let blob = json!({"blob": "x".repeat(64 << 10)});
    let mut done = Vec::new();
    for _ in 0..6 {
        let id = server.start_run("ret_ok", blob.clone()).await;
        server.wait_status(&id, &["completed"]).await;
        done.push(id);
    }
    let mut failed = Vec::new();
    for _ in 0..4 {
        let id = server.start_run("ret_bad", blob.clone()).await;
        let run = server.wait_status(&id, &["failed"]).await;
        failed.push((id, run["ended_at"].as_str().expect("ended_at").to_owned()));
    }
    let mut canceled = Vec::new();
    for _ in 0..3 {
        let id = server.start_run("ret_gate", blob.clone()).await;
        server.wait_status(&id, &["waiting_approval"]).await;
        let (status, body) = server.call("POST", &format!("/api/runs/{id}/cancel"), None).await;
        assert_eq!(status, 200, "{body}");
        server.wait_status(&id, &["canceled"]).await;
        canceled.push(id);
    }
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let id = server.start_run("ret_gate", blob.clone()).await;
        server.wait_status(&id, &["waiting_approval"]).await;
        waiting.push(id);
    }
    // Completed: every one so far; failed: the two that ended before the third; canceled: kept.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let policy = RetentionPolicy {
        completed_before: Some(now),
        failed_before: Some(failed[2].1.clone()),
        canceled_before: None,
        max_runs: None,
    };
    let expected: BTreeSet<String> = done.iter().cloned().chain(failed[..2].iter().map(|(id, _)| id.clone())).collect();
    let before = run_ids(&server).await;
    assert_eq!(before.len(), 16);
    // Artifact folders of a deleted run and of a kept one.
    let artifacts = server.dir.join("artifacts");
    for id in [&done[0], &failed[0].0, &canceled[0], &waiting[0]] {
        std::fs::create_dir_all(artifacts.join(id)).expect("artifact folder");
        std::fs::write(artifacts.join(id).join("shot.txt"), "x").expect("artifact file");
    }

    // Load: runs created through the API and executed by the workers while the pass runs.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (base, http, stop) = (server.base.clone(), server.http.clone(), stop.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while !stop.load(Ordering::Relaxed) || ids.len() < 10 {
                let body = json!({"procedure_id": "ret_ok", "input_vars": {"n": ids.len()}});
                let resp = http.post(format!("{base}/api/runs")).json(&body).send().await.expect("sent");
                assert_eq!(resp.status().as_u16(), 201);
                let run: Value = resp.json().await.expect("run");
                ids.push(run["run_id"].as_str().expect("run_id").to_owned());
            }
            ids
        })
    };
    while server.call("GET", "/api/runs?status=completed&limit=1000", None).await.1.as_array().map_or(0, Vec::len)
        < done.len() + 3
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let store = server.store();
    let report = pass(store.as_ref(), &artifacts, &policy, 2).await.expect("retention pass");
    stop.store(true, Ordering::Relaxed);
    let loaded = load.await.expect("load task");
    for id in &loaded {
        server.wait_status(id, &["completed"]).await;
    }

    let deleted: BTreeSet<String> = report.runs.iter().cloned().collect();
    assert_eq!(deleted, expected, "exactly the policy's runs");
    assert!(report.batches >= 4, "batches of 2: {report:?}");
    let expected_left: BTreeSet<String> = before.difference(&expected).cloned().chain(loaded.iter().cloned()).collect();
    assert_eq!(run_ids(&server).await, expected_left, "nothing else, and every run created meanwhile");
    for id in &waiting {
        server.wait_status(id, &["waiting_approval"]).await;
    }
    assert_eq!(report.artifact_dirs, 2);
    assert!(!artifacts.join(&done[0]).exists() && !artifacts.join(&failed[0].0).exists());
    assert!(artifacts.join(&canceled[0]).join("shot.txt").exists() && artifacts.join(&waiting[0]).exists());
    if postgres() {
        assert!(!report.space.enabled, "autovacuum's job on PostgreSQL: {report:?}");
    } else {
        // PRAGMA freelist_count before and after the incremental vacuum.
        assert!(report.space.enabled, "a new database vacuums incrementally: {report:?}");
        assert!(report.space.free_before > 0, "{report:?}");
        assert!(report.space.free_after < report.space.free_before, "{report:?}");
    }
    // A second pass finds nothing.
    let again = pass(store.as_ref(), &artifacts, &policy, 2).await.expect("retention pass");
    assert!(again.runs.is_empty(), "{again:?}");
    server.stop().await;
}
