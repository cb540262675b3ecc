//! `/api/approvals`: list (status and run filters), get, decision (approve, reject, missing decision, conflicts,
//! unknown ids) and the SSE stream (snapshot first, then updates).

use serde_json::json;

use super::{SseReader, assert_error, column, id, pending_approval, ts};
use crate::support::{TestServer, approval_procedure};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_status_and_run_and_get_returns_one() {
    let server = TestServer::start("ep-appr-list").await;
    server.import(approval_procedure("gate")).await;
    let first = server.start_run("gate", json!({})).await;
    server.wait_status(&first, &["waiting_approval"]).await;
    let second = server.start_run("gate", json!({})).await;
    server.wait_status(&second, &["waiting_approval"]).await;
    let (a1, a2) = (pending_approval(&server, &first).await, pending_approval(&server, &second).await);

    let (status, all) = server.call("GET", "/api/approvals", None).await;
    assert_eq!(status, 200);
    assert_eq!(column(&all, "approval_id"), [a2.as_str(), a1.as_str()], "newest first");
    let (_, pending) = server.call("GET", "/api/approvals?status=pending", None).await;
    assert_eq!(column(&pending, "approval_id"), [a2.as_str(), a1.as_str()]);
    let (_, mine) = server.call("GET", &format!("/api/approvals?run_id={first}"), None).await;
    assert_eq!(column(&mine, "approval_id"), [a1.as_str()]);
    let (_, none) = server.call("GET", "/api/approvals?status=approved", None).await;
    assert_eq!(none, json!([]));
    let (_, none) = server.call("GET", "/api/approvals?status=no_such_status", None).await;
    assert_eq!(none, json!([]));
    let (_, none) = server.call("GET", "/api/approvals?run_id=nope", None).await;
    assert_eq!(none, json!([]));

    let (status, one) = server.call("GET", &format!("/api/approvals/{a1}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(one, mine[0], "get and list agree");
    insta::assert_json_snapshot!("get_pending", one, {
        ".approval_id" => id(), ".run_id" => id(), ".prompt" => "[prompt]", ".created_at" => ts(),
        ".decided_at" => ts(), ".expires_at" => ts()
    });
    // The prompt is rendered with the run's variables.
    assert_eq!(one["prompt"], format!("Approve run {first}?"));
    assert_error(&server.call("GET", "/api/approvals/nope", None).await, 404, "not_found");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_and_reject_resume_the_run_and_a_second_decision_conflicts() {
    let server = TestServer::start("ep-appr-decide").await;
    server.import(approval_procedure("gate")).await;
    let yes = server.start_run("gate", json!({})).await;
    let no = server.start_run("gate", json!({})).await;
    server.wait_status(&yes, &["waiting_approval"]).await;
    server.wait_status(&no, &["waiting_approval"]).await;
    let (a_yes, a_no) = (pending_approval(&server, &yes).await, pending_approval(&server, &no).await);

    // No decision in the body: refused, and the approval stays pending.
    let empty = server.call("POST", &format!("/api/approvals/{a_yes}/decision"), Some(json!({}))).await;
    assert_error(&empty, 422, "decision_required");
    insta::assert_json_snapshot!("decision_missing_422", empty.1);
    let blank = server.call("POST", &format!("/api/approvals/{a_yes}/decision"), Some(json!({"decision": " "}))).await;
    assert_error(&blank, 422, "decision_required");
    let (_, still) = server.call("GET", &format!("/api/approvals/{a_yes}"), None).await;
    assert_eq!(still["status"], "pending");

    let body = json!({"decision": "approve", "decided_by": "alice", "comment": "looks good"});
    let (status, decided) = server.call("POST", &format!("/api/approvals/{a_yes}/decision"), Some(body)).await;
    assert_eq!(status, 200, "{decided}");
    insta::assert_json_snapshot!("decision_approve_200", decided, {
        ".approval_id" => id(), ".run_id" => id(), ".prompt" => "[prompt]", ".created_at" => ts(),
        ".decided_at" => ts(), ".expires_at" => ts(), ".run_status" => "[running or completed]"
    });
    let done = server.wait_status(&yes, &["completed", "failed"]).await;
    assert_eq!(
        (done["status"].as_str(), done["output_vars"]["result"].as_str()),
        (Some("completed"), Some("approved"))
    );

    // `status` wins over `decision`.
    let body = json!({"status": "reject", "decision": "approve"});
    let (status, rejected) = server.call("POST", &format!("/api/approvals/{a_no}/decision"), Some(body)).await;
    assert_eq!(
        (status, rejected["status"].as_str(), rejected["decided_by"].as_str()),
        (200, Some("rejected"), Some("anonymous"))
    );
    let done = server.wait_status(&no, &["completed", "failed"]).await;
    assert_eq!(
        (done["status"].as_str(), done["output_vars"]["result"].as_str()),
        (Some("completed"), Some("rejected"))
    );

    let second =
        server.call("POST", &format!("/api/approvals/{a_yes}/decision"), Some(json!({"decision": "reject"}))).await;
    assert_error(&second, 409, "conflict");
    let (_, kept) = server.call("GET", &format!("/api/approvals/{a_yes}"), None).await;
    assert_eq!((kept["status"].as_str(), kept["decided_by"].as_str()), (Some("approved"), Some("alice")));
    let unknown = server.call("POST", "/api/approvals/nope/decision", Some(json!({"decision": "approve"}))).await;
    assert_error(&unknown, 404, "not_found");

    let (_, approved) = server.call("GET", "/api/approvals?status=approved", None).await;
    assert_eq!(column(&approved, "approval_id"), [a_yes.as_str()]);
    assert_eq!(approved[0]["run_status"], "completed");
    let (_, rejected) = server.call("GET", "/api/approvals?status=rejected", None).await;
    assert_eq!(column(&rejected, "approval_id"), [a_no.as_str()]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sends_a_snapshot_then_updates() {
    let server = TestServer::start("ep-appr-stream").await;
    server.import(approval_procedure("gate")).await;
    let old = server.start_run("gate", json!({})).await;
    server.wait_status(&old, &["waiting_approval"]).await;
    let old_approval = pending_approval(&server, &old).await;

    let resp = server.http.get(server.url("/api/approvals/stream")).send().await.expect("stream");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let mut sse = SseReader::new(resp);
    let snapshot = sse.next().await.expect("snapshot event");
    assert_eq!(snapshot.event.as_deref(), Some("approval_snapshot"));
    assert_eq!(column(&snapshot.data, "approval_id"), [old_approval.as_str()], "{:?}", snapshot.data);

    let new = server.start_run("gate", json!({})).await;
    let update = sse.next().await.expect("update event");
    assert_eq!(update.event.as_deref(), Some("approval_update"), "{update:?}");
    assert_eq!((update.data["run_id"].as_str(), update.data["status"].as_str()), (Some(new.as_str()), Some("pending")));
    assert_eq!(update.id.as_deref(), update.data["approval_id"].as_str());
    insta::assert_json_snapshot!("stream_update_pending", update.data, {
        ".approval_id" => id(), ".run_id" => id(), ".prompt" => "[prompt]", ".created_at" => ts(),
        ".decided_at" => ts(), ".expires_at" => ts()
    });

    // A decision is an update too.
    let approval = update.data["approval_id"].as_str().expect("approval_id").to_owned();
    let (status, _) =
        server.call("POST", &format!("/api/approvals/{approval}/decision"), Some(json!({"decision": "approve"}))).await;
    assert_eq!(status, 200);
    let decided = sse.next().await.expect("update event");
    assert_eq!(decided.event.as_deref(), Some("approval_update"));
    assert_eq!(
        (decided.data["approval_id"].as_str(), decided.data["status"].as_str()),
        (Some(approval.as_str()), Some("approved"))
    );
    drop(sse);
    server.stop().await;
}

/// Open streams end when the server shuts down, so they do not hold the shutdown for its whole grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_server_shuts_down() {
    let server = TestServer::start_with("ep-appr-stream-stop", |c| c.shutdown_grace_ms = 60_000).await;
    server.import(approval_procedure("gate")).await;
    let run_id = server.start_run("gate", json!({})).await;
    server.wait_status(&run_id, &["waiting_approval"]).await;
    let resp = server.http.get(server.url("/api/approvals/stream")).send().await.expect("stream");
    let mut approvals = SseReader::new(resp);
    assert_eq!(approvals.next().await.map(|e| e.event), Some(Some("approval_snapshot".into())));
    let resp = server.http.get(server.url(&format!("/api/runs/{run_id}/stream"))).send().await.expect("stream");
    let mut run = SseReader::new(resp);
    while let Some(e) = run.next().await {
        if e.data["event_type"] == "node_paused" {
            break;
        }
    }
    let stopping = tokio::spawn(server.stop());
    // Bounded below the 60 s grace, so the bug fails the test instead of hanging it (keep-alives never stop).
    let within = std::time::Duration::from_secs(30);
    let (approvals_end, run_end) =
        tokio::join!(tokio::time::timeout(within, approvals.next()), tokio::time::timeout(within, run.next()));
    assert_eq!((approvals_end, run_end), (Ok(None), Ok(None)), "both streams end when the server stops");
    stopping.await.expect("stopped");
}
