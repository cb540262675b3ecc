//! `/api/runs`: create, get, list (filters, order, pagination, time window), events, diagnostics, checkpoints,
//! cancel, retry, delete, history cleanup, queue, metrics summary, artifacts list and the event stream.

use serde_json::{Value, json};

use super::{SseReader, assert_error, column, id, pending_approval, raw, secs, store_lists, ts};
use crate::support::{TestServer, approval_procedure, chain_procedure};

/// A procedure whose only step sleeps for ten minutes (a durable timer: the run is not executing meanwhile).
fn sleeper(procedure_id: &str) -> Value {
    json!({"procedure_id": procedure_id, "version": "1", "status": "active", "workflow_graph": {"start_node": "w", "nodes": {
        "w": {"type": "sequence", "steps": [{"step_id": "nap", "action": "wait", "wait_ms": 600_000}], "next_node": "end"},
        "end": {"type": "terminate", "status": "success"}
    }}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_answers_the_created_run_which_is_readable_at_once_and_completes() {
    let server = TestServer::start("ep-runs-create").await;
    server.import(chain_procedure("chain", 2)).await;
    let body = json!({"procedure_id": "chain", "procedure_version": "1.0.0", "input_vars": {"tag": "t"}});
    let (status, created) = server.call("POST", "/api/runs", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    insta::assert_json_snapshot!("create_201", created, {
        ".run_id" => id(), ".thread_id" => id(), ".created_at" => ts(), ".updated_at" => ts()
    });
    let run_id = created["run_id"].as_str().expect("run_id");
    let (status, got) = server.call("GET", &format!("/api/runs/{run_id}"), None).await;
    assert_eq!(status, 200, "readable right after the 201: {got}");
    let done = server.wait_status(run_id, &["completed", "failed"]).await;
    insta::assert_json_snapshot!("get_completed", done, {
        ".run_id" => id(), ".thread_id" => id(), ".output_vars.run_id" => id(), ".created_at" => ts(),
        ".updated_at" => ts(), ".started_at" => ts(), ".ended_at" => ts(), ".duration_seconds" => secs()
    });

    assert_error(&server.call("GET", "/api/runs/nope", None).await, 404, "not_found");
    let unknown = server.call("POST", "/api/runs", Some(json!({"procedure_id": "nope"}))).await;
    assert_error(&unknown, 404, "not_found");
    let unknown_version =
        server.call("POST", "/api/runs", Some(json!({"procedure_id": "chain", "procedure_version": "9"}))).await;
    assert_error(&unknown_version, 404, "not_found");
    let mut later = chain_procedure("later", 1);
    later["effective_date"] = json!("2999-01-01");
    server.import(later).await;
    let not_yet = server.call("POST", "/api/runs", Some(json!({"procedure_id": "later"}))).await;
    assert_error(&not_yet, 422, "procedure_not_effective");
    let (_, list) = server.call("GET", "/api/runs", None).await;
    assert_eq!(column(&list, "run_id"), [run_id], "refused creates stored nothing");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_orders_and_paginates() {
    let server = TestServer::start("ep-runs-list").await;
    server.import(chain_procedure("alpha", 1)).await;
    server.import(chain_procedure("beta", 1)).await;
    server.import(approval_procedure("gate")).await;
    let mut created = Vec::new();
    for p in ["alpha", "alpha", "beta", "gate"] {
        let (status, run) = server.call("POST", "/api/runs", Some(json!({"procedure_id": p}))).await;
        assert_eq!(status, 201, "{run}");
        let run_id = run["run_id"].as_str().expect("id").to_owned();
        let expected: &[&str] = if p == "gate" { &["waiting_approval"] } else { &["completed"] };
        server.wait_status(&run_id, expected).await;
        created.push((run_id, run["created_at"].as_str().expect("created_at").to_owned()));
    }
    let [a1, a2, b1, g1] = [0, 1, 2, 3].map(|i| created[i].0.as_str());
    let ids = |list: &Value| column(list, "run_id");
    let get = |query: String| {
        let server = &server;
        async move {
            let (status, list) = server.call("GET", &format!("/api/runs{query}"), None).await;
            assert_eq!(status, 200, "{query}: {list}");
            list
        }
    };
    assert_eq!(ids(&get(String::new()).await), [g1, b1, a2, a1], "newest first by default");
    assert_eq!(ids(&get("?order=asc".into()).await), [a1, a2, b1, g1]);
    assert_eq!(ids(&get("?procedure_id=alpha".into()).await), [a2, a1]);
    assert_eq!(ids(&get("?status=waiting_approval".into()).await), [g1]);
    assert_eq!(ids(&get("?status=completed&procedure_id=beta".into()).await), [b1]);
    assert!(ids(&get("?status=failed".into()).await).is_empty());
    assert!(ids(&get("?status=no_such_status".into()).await).is_empty(), "a status no run has matches none");
    assert_eq!(ids(&get("?limit=2".into()).await), [g1, b1]);
    assert_eq!(ids(&get("?limit=2&offset=2".into()).await), [a2, a1]);
    assert_eq!(ids(&get("?limit=2&offset=1&order=asc".into()).await), [a2, b1]);
    assert!(ids(&get("?offset=4".into()).await).is_empty());
    // The time window is inclusive at both ends.
    let (b1_at, a2_at) = (&created[2].1, &created[1].1);
    assert_eq!(ids(&get(format!("?created_from={b1_at}")).await), [g1, b1]);
    assert_eq!(ids(&get(format!("?created_to={a2_at}")).await), [a2, a1]);
    assert_eq!(ids(&get(format!("?created_from={a2_at}&created_to={b1_at}")).await), [b1, a2]);
    assert!(ids(&get("?created_from=2999-01-01".into()).await).is_empty());
    assert_eq!(get("?created_to=2999-01-01T00:00:00".into()).await.as_array().map(Vec::len), Some(4));

    for bad in ["?limit=0", "?limit=1001", "?limit=ten", "?offset=-1", "?created_from=yesterday", "?created_to=1"] {
        assert_error(&server.call("GET", &format!("/api/runs{bad}"), None).await, 422, "invalid_query");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_run_from_run_created_to_run_completed_in_event_id_order() {
    let server = TestServer::start("ep-runs-events").await;
    server.import(chain_procedure("chain", 2)).await;
    let run_id = server.start_run("chain", json!({})).await;
    server.wait_status(&run_id, &["completed"]).await;
    let (status, events) = server.call("GET", &format!("/api/runs/{run_id}/events"), None).await;
    assert_eq!(status, 200);
    let list = events.as_array().expect("list");
    let event_ids: Vec<i64> = list.iter().map(|e| e["event_id"].as_i64().expect("event_id")).collect();
    assert!(event_ids.windows(2).all(|w| w[0] < w[1]), "event_id strictly increasing: {event_ids:?}");
    assert_eq!(list.first().map(|e| &e["event_type"]), Some(&json!("run_created")));
    assert_eq!(list.last().map(|e| &e["event_type"]), Some(&json!("run_completed")));
    assert!(list.iter().all(|e| e["run_id"] == run_id.as_str()));
    insta::assert_json_snapshot!("events", events, {
        "[].event_id" => id(), "[].run_id" => id(), "[].created_at" => ts(), "[].payload.outputs.run_id" => id(),
        "[].payload.duration_ms" => secs()
    });
    // `after` pages through the same list.
    let (_, tail) = server.call("GET", &format!("/api/runs/{run_id}/events?after={}", event_ids[2]), None).await;
    assert_eq!(tail.as_array().map(Vec::as_slice), Some(&list[3..]));
    assert_error(&server.call("GET", "/api/runs/nope/events", None).await, 404, "not_found");
    assert_error(&server.call("GET", &format!("/api/runs/{run_id}/events?after=x"), None).await, 422, "invalid_query");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_and_checkpoints_describe_the_run() {
    let server = TestServer::start("ep-runs-diag").await;
    server.import(approval_procedure("gate")).await;
    let run_id = server.start_run("gate", json!({"who": "me"})).await;
    server.wait_status(&run_id, &["waiting_approval"]).await;

    let (status, diag) = server.call("GET", &format!("/api/runs/{run_id}/diagnostics"), None).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("diagnostics_waiting", diag, {
        ".run_id" => id(), ".thread_id" => id(), ".idempotency_entries[].updated_at" => ts()
    });

    let (status, list) = server.call("GET", &format!("/api/runs/{run_id}/checkpoints"), None).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("checkpoints", list, {
        "[].checkpoint_id" => id(), "[].parent_checkpoint_id" => id(), "[].thread_id" => id(), "[].created_at" => ts()
    });
    let checkpoint_id = list[0]["checkpoint_id"].as_str().expect("checkpoint_id");
    let (status, state) = server.call("GET", &format!("/api/runs/{run_id}/checkpoints/{checkpoint_id}"), None).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["checkpoint_id"], checkpoint_id);
    assert_eq!(state["thread_id"], run_id.as_str());
    assert_eq!(state["channel_values"]["who"], "me", "{state}");
    assert_eq!(state["channel_values"]["stage"], "prepared", "{state}");
    assert_eq!(state["metadata"], list[0], "{state}");

    let base = format!("/api/runs/{run_id}/checkpoints");
    assert_error(&server.call("GET", &format!("{base}/not-a-checkpoint"), None).await, 404, "not_found");
    assert_error(&server.call("GET", &format!("{base}/0"), None).await, 404, "not_found");
    assert_error(&server.call("GET", "/api/runs/nope/checkpoints", None).await, 404, "not_found");
    assert_error(&server.call("GET", "/api/runs/nope/checkpoints/1", None).await, 404, "not_found");
    assert_error(&server.call("GET", "/api/runs/nope/diagnostics", None).await, 404, "not_found");

    // After the decision the run completes and its newest checkpoint replaces the old one.
    let approval = pending_approval(&server, &run_id).await;
    let (status, _) =
        server.call("POST", &format!("/api/approvals/{approval}/decision"), Some(json!({"decision": "approve"}))).await;
    assert_eq!(status, 200);
    server.wait_status(&run_id, &["completed"]).await;
    let (_, diag) = server.call("GET", &format!("/api/runs/{run_id}/diagnostics"), None).await;
    assert_eq!((diag["status"].as_str(), diag["error_events"].as_i64()), (Some("completed"), Some(0)), "{diag}");
    let (_, events) = server.call("GET", &format!("/api/runs/{run_id}/events"), None).await;
    assert_eq!(diag["total_events"].as_u64(), events.as_array().map(|e| e.len() as u64), "{diag}");
    let (_, after) = server.call("GET", &base, None).await;
    let newest = after[0]["checkpoint_id"].as_str().expect("checkpoint_id");
    assert_ne!(newest, checkpoint_id);
    let (status, state) = server.call("GET", &format!("{base}/{newest}"), None).await;
    assert_eq!((status, state["channel_values"]["result"].as_str()), (200, Some("approved")), "{state}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_voids_the_approval_and_retry_runs_again() {
    let server = TestServer::start("ep-runs-cancel").await;
    server.import(approval_procedure("gate")).await;
    let run_id = server.start_run("gate", json!({})).await;
    server.wait_status(&run_id, &["waiting_approval"]).await;
    let approval = pending_approval(&server, &run_id).await;

    let (status, canceled) = server.call("POST", &format!("/api/runs/{run_id}/cancel"), None).await;
    assert_eq!(status, 200, "{canceled}");
    insta::assert_json_snapshot!("cancel_200", canceled, {
        ".run_id" => id(), ".thread_id" => id(), ".created_at" => ts(), ".updated_at" => ts(),
        ".started_at" => ts(), ".ended_at" => ts(), ".duration_seconds" => secs()
    });
    let (_, a) = server.call("GET", &format!("/api/approvals/{approval}"), None).await;
    assert_eq!(a["status"], "canceled", "{a}");
    let again = server.call("POST", &format!("/api/runs/{run_id}/cancel"), None).await;
    assert_error(&again, 409, "conflict");
    let decide =
        server.call("POST", &format!("/api/approvals/{approval}/decision"), Some(json!({"decision": "approve"}))).await;
    assert_error(&decide, 409, "conflict");

    let (status, retried) = server.call("POST", &format!("/api/runs/{run_id}/retry"), None).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(
        (retried["ended_at"].clone(), retried["error_message"].clone()),
        (Value::Null, Value::Null),
        "{retried}"
    );
    server.wait_status(&run_id, &["waiting_approval"]).await;
    let approval = pending_approval(&server, &run_id).await;
    let (status, _) =
        server.call("POST", &format!("/api/approvals/{approval}/decision"), Some(json!({"decision": "approve"}))).await;
    assert_eq!(status, 200);
    let done = server.wait_status(&run_id, &["completed", "failed", "canceled"]).await;
    assert_eq!(
        (done["status"].as_str(), done["output_vars"]["result"].as_str()),
        (Some("completed"), Some("approved"))
    );
    let (_, events) = server.call("GET", &format!("/api/runs/{run_id}/events"), None).await;
    let types = column(&events, "event_type");
    for t in ["run_canceled", "run_retry_requested", "run_completed"] {
        assert_eq!(types.iter().filter(|e| *e == t).count(), 1, "{t} once: {types:?}");
    }
    let (_, diag) = server.call("GET", &format!("/api/runs/{run_id}/diagnostics"), None).await;
    assert_eq!(diag["has_retry_event"], true);

    assert_error(&server.call("POST", &format!("/api/runs/{run_id}/retry"), None).await, 409, "conflict");
    assert_error(&server.call("POST", &format!("/api/runs/{run_id}/cancel"), None).await, 409, "conflict");
    assert_error(&server.call("POST", "/api/runs/nope/retry", None).await, 404, "not_found");
    assert_error(&server.call("POST", "/api/runs/nope/cancel", None).await, 404, "not_found");
    server.stop().await;
}

/// LangOrch answers a retry with the run back in `created` (queued, not yet executing), like a new run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_answers_the_queued_run_as_created() {
    let server = TestServer::start("ep-runs-retry-status").await;
    server.import(approval_procedure("gate")).await;
    let run_id = server.start_run("gate", json!({})).await;
    server.wait_status(&run_id, &["waiting_approval"]).await;
    let (status, _) = server.call("POST", &format!("/api/runs/{run_id}/cancel"), None).await;
    assert_eq!(status, 200);
    let (status, retried) = server.call("POST", &format!("/api/runs/{run_id}/retry"), None).await;
    assert_eq!(status, 200);
    assert_eq!(retried["status"], "created", "{retried}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_run_is_canceled_at_once_and_shows_in_the_queue() {
    let server = TestServer::start("ep-runs-sleep").await;
    server.import(sleeper("nap")).await;
    let run_id = server.start_run("nap", json!({})).await;
    // Paused on a durable timer: its job is queued for later, no worker holds it.
    let sleeping = server.wait_status(&run_id, &["paused"]).await;
    assert!(sleeping["ended_at"].is_null(), "{sleeping}");
    // The worker commits the pause, then hands the job back to the queue: wait for the hand-back.
    let mut queue = Value::Null;
    for _ in 0..500 {
        let (status, q) = server.call("GET", "/api/runs/queue", None).await;
        assert_eq!(status, 200);
        queue = q;
        if queue["total_running"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    insta::assert_json_snapshot!("queue_with_a_sleeping_run", queue, {
        ".next_jobs[].job_id" => id(), ".next_jobs[].run_id" => id(), ".next_jobs[].available_at" => ts()
    });
    let (status, canceled) = server.call("POST", &format!("/api/runs/{run_id}/cancel"), None).await;
    assert_eq!((status, canceled["status"].as_str()), (200, Some("canceled")), "{canceled}");
    let (_, queue) = server.call("GET", "/api/runs/queue", None).await;
    assert_eq!(queue["next_jobs"], json!([]), "{queue}");
    assert_eq!(queue["total_pending"], 0, "{queue}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_metrics_summary_count_runs() {
    let server = TestServer::start("ep-runs-metrics").await;
    let (status, empty) = server.call("GET", "/api/runs/queue", None).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("queue_empty", empty);
    server.import(chain_procedure("chain", 1)).await;
    server.import(approval_procedure("gate")).await;
    for _ in 0..2 {
        let run_id = server.start_run("chain", json!({})).await;
        server.wait_status(&run_id, &["completed"]).await;
    }
    let waiting = server.start_run("gate", json!({})).await;
    server.wait_status(&waiting, &["waiting_approval"]).await;
    let (status, queue) = server.call("GET", "/api/runs/queue", None).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("queue_after_runs", queue);
    let (status, metrics) = server.call("GET", "/api/runs/metrics/summary", None).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("metrics_summary", metrics);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_run_and_what_it_owns() {
    let server = TestServer::start("ep-runs-delete").await;
    server.import(approval_procedure("gate")).await;
    let run_id = server.start_run("gate", json!({})).await;
    server.wait_status(&run_id, &["waiting_approval"]).await;
    let approval = pending_approval(&server, &run_id).await;
    let (status, body) = server.call("DELETE", &format!("/api/runs/{run_id}"), None).await;
    assert_eq!(status, 200, "{body}");
    insta::assert_json_snapshot!("delete_200", body, {".run_id" => id()});
    assert_eq!(body["run_id"], run_id.as_str());
    assert_error(&server.call("GET", &format!("/api/runs/{run_id}"), None).await, 404, "not_found");
    assert_error(&server.call("GET", &format!("/api/runs/{run_id}/events"), None).await, 404, "not_found");
    assert_error(&server.call("GET", &format!("/api/approvals/{approval}"), None).await, 404, "not_found");
    assert_error(&server.call("DELETE", &format!("/api/runs/{run_id}"), None).await, 404, "not_found");
    let (_, runs) = server.call("GET", "/api/runs", None).await;
    assert_eq!(runs, json!([]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_cleanup_deletes_old_runs_by_status() {
    let server = TestServer::start("ep-runs-cleanup").await;
    server.import(chain_procedure("chain", 1)).await;
    server.import(approval_procedure("gate")).await;
    let mut done = Vec::new();
    for _ in 0..2 {
        let run_id = server.start_run("chain", json!({})).await;
        server.wait_status(&run_id, &["completed"]).await;
        done.push(run_id);
    }
    let waiting = server.start_run("gate", json!({})).await;
    server.wait_status(&waiting, &["waiting_approval"]).await;

    let missing = server.call("DELETE", "/api/runs/cleanup/history", None).await;
    assert_error(&missing, 422, "invalid_query");
    let bad = server.call("DELETE", "/api/runs/cleanup/history?before=soon", None).await;
    assert_error(&bad, 422, "invalid_query");
    let (status, none) = server.call("DELETE", "/api/runs/cleanup/history?before=2000-01-01T00:00:00Z", None).await;
    assert_eq!(status, 200);
    let unknown = "/api/runs/cleanup/history?before=2999-01-01T00:00:00Z&status=no_such_status";
    let (status, kept) = server.call("DELETE", unknown, None).await;
    assert_eq!((status, &kept["deleted_count"], &kept["status"]), (200, &json!(0), &json!("no_such_status")));
    insta::assert_json_snapshot!("cleanup_nothing_before_2000", none);

    // A dry run counts what the same call would delete, and deletes nothing.
    let completed = "/api/runs/cleanup/history?before=2999-01-01T00:00:00Z&status=completed";
    let (status, dry) = server.call("DELETE", &format!("{completed}&dry_run=true"), None).await;
    assert_eq!((status, &dry["deleted_count"], &dry["dry_run"]), (200, &json!(2), &json!(true)), "{dry}");
    let (_, runs) = server.call("GET", "/api/runs", None).await;
    assert_eq!(runs.as_array().map(Vec::len), Some(3), "a dry run deletes nothing: {runs}");
    let all = "/api/runs/cleanup/history?before=2999-01-01T00:00:00Z&dry_run=true";
    let (_, dry_all) = server.call("DELETE", all, None).await;
    assert_eq!(dry_all["deleted_count"], 2, "a run waiting at an approval is never taken: {dry_all}");
    let bad_flag = server.call("DELETE", &format!("{completed}&dry_run=maybe"), None).await;
    assert_error(&bad_flag, 422, "invalid_query");

    let (status, body) = server.call("DELETE", &format!("{completed}&dry_run=false"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted_count"], dry["deleted_count"], "what the dry run counted");
    insta::assert_json_snapshot!("cleanup_completed", body);
    let (_, runs) = server.call("GET", "/api/runs", None).await;
    assert_eq!(column(&runs, "run_id"), [waiting.as_str()], "only the waiting run is left");
    for run_id in &done {
        assert_error(&server.call("GET", &format!("/api/runs/{run_id}"), None).await, 404, "not_found");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_list_and_event_stream_of_a_run() {
    let server = TestServer::start("ep-runs-stream").await;
    server.import(chain_procedure("chain", 1)).await;
    let run_id = server.start_run("chain", json!({})).await;
    server.wait_status(&run_id, &["completed"]).await;
    let (status, artifacts) = server.call("GET", &format!("/api/runs/{run_id}/artifacts"), None).await;
    assert_eq!((status, artifacts), (200, json!([])));
    assert_error(&server.call("GET", "/api/runs/nope/artifacts", None).await, 404, "not_found");

    // A finished run's stream replays every event and ends.
    let resp = server.http.get(server.url(&format!("/api/runs/{run_id}/stream"))).send().await.expect("stream");
    assert_eq!(resp.status().as_u16(), 200);
    let mut sse = SseReader::new(resp);
    let mut streamed = Vec::new();
    while let Some(e) = sse.next().await {
        assert_eq!(e.event.as_deref(), Some("run_event"));
        assert_eq!(e.id, e.data["event_id"].as_i64().map(|i| i.to_string()));
        streamed.push(e.data);
    }
    let (_, events) = server.call("GET", &format!("/api/runs/{run_id}/events"), None).await;
    assert_eq!(column(&json!(streamed), "event_type"), column(&events, "event_type"));
    assert_error(&server.call("GET", "/api/runs/nope/stream", None).await, 404, "not_found");
    let resp = server
        .http
        .get(server.url(&format!("/api/runs/{run_id}/stream")))
        .header("Last-Event-ID", "not-a-number")
        .send()
        .await
        .expect("stream");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("json error");
    assert_error(&(status, body), 422, "invalid_header");
    server.stop().await;
}

/// A procedure with a required number input `n` in 1..=100 that completes at once.
fn numbered(procedure_id: &str) -> Value {
    json!({"procedure_id": procedure_id, "version": "1.0.0", "status": "active",
        "variables_schema": {"required": {"n": {"type": "number", "validation": {"min": 1, "max": 100}}}},
        "workflow_graph": {"start_node": "done", "nodes": {"done": {"type": "terminate", "status": "success"}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_with_inputs_starts_a_new_run_linked_to_the_original() {
    let server = TestServer::start("ep-runs-rerun").await;
    let (status, project) = server.call("POST", "/api/projects", Some(json!({"name": "P"}))).await;
    assert_eq!(status, 201, "{project}");
    let project = project["project_id"].as_str().expect("project_id").to_owned();
    let (status, body) = server
        .call("POST", "/api/procedures", Some(json!({"ckp_json": numbered("numbered"), "project_id": project})))
        .await;
    assert_eq!(status, 201, "{body}");
    let start = json!({"procedure_id": "numbered", "input_vars": {"n": 5}, "case_id": "case-1"});
    let (status, original) = server.call("POST", "/api/runs", Some(start)).await;
    assert_eq!(status, 201, "{original}");
    assert_eq!(original["rerun_of"], Value::Null);
    let original_id = original["run_id"].as_str().expect("run_id").to_owned();
    let original = server.wait_status(&original_id, &["completed"]).await;

    let retry = format!("/api/runs/{original_id}/retry");
    let (status, rerun) = server.call("POST", &retry, Some(json!({"input_vars": {"n": 7}}))).await;
    assert_eq!(status, 200, "{rerun}");
    insta::assert_json_snapshot!("rerun_200", rerun, {
        ".run_id" => id(), ".thread_id" => id(), ".project_id" => id(), ".rerun_of" => id(),
        ".created_at" => ts(), ".updated_at" => ts()
    });
    let rerun_id = rerun["run_id"].as_str().expect("run_id").to_owned();
    assert_ne!(rerun_id, original_id);
    assert_eq!(rerun["rerun_of"], original_id.as_str());
    assert_eq!((&rerun["project_id"], &rerun["case_id"]), (&json!(project), &json!("case-1")), "copied");
    assert_eq!(rerun["input_vars"], json!({"n": 7}));
    let done = server.wait_status(&rerun_id, &["completed"]).await;
    assert_eq!(done["rerun_of"], original_id.as_str(), "read back");
    let (_, after) = server.call("GET", &format!("/api/runs/{original_id}"), None).await;
    assert_eq!(after, original, "the original is left as it was");
    // A second rerun; the list filter finds both, and only them.
    let (status, second) = server.call("POST", &retry, Some(json!({"input_vars": {"n": 9}}))).await;
    assert_eq!(status, 200, "{second}");
    let (status, list) = server.call("GET", &format!("/api/runs?rerun_of={original_id}&order=asc"), None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(column(&list, "run_id"), [rerun_id.clone(), second["run_id"].as_str().expect("id").to_owned()]);
    let (_, none) = server.call("GET", &format!("/api/runs?rerun_of={rerun_id}"), None).await;
    assert_eq!(none, json!([]));
    assert_error(&server.call("GET", "/api/runs?rerun_of=%00", None).await, 422, "invalid_query");

    // Refusals change nothing.
    let before = store_lists(&server).await;
    let bad = server.call("POST", &retry, Some(json!({"input_vars": {"n": 1000}}))).await;
    assert_eq!(bad.1["detail"], json!({"message": "Invalid input_vars", "errors": {"n": "Must be at most 100"}}));
    assert_error(&bad, 422, "invalid_input_vars");
    assert_error(&server.call("POST", &retry, Some(json!({}))).await, 422, "invalid_body");
    assert_error(&server.call("POST", &retry, Some(json!({"input_vars": [1]}))).await, 422, "invalid_body");
    assert_error(&raw(&server, "POST", &retry, Some("application/json"), b"{".to_vec()).await, 400, "malformed_json");
    let text = br#"{"input_vars": {"n": 7}}"#.to_vec();
    assert_error(&raw(&server, "POST", &retry, Some("text/plain"), text).await, 415, "unsupported_media_type");
    let nope = server.call("POST", "/api/runs/nope/retry", Some(json!({"input_vars": {"n": 7}}))).await;
    assert_error(&nope, 404, "not_found");
    // Without a body (an empty one, whatever its type, or `null`), a completed run is not retried in place.
    assert_error(&server.call("POST", &retry, None).await, 409, "conflict");
    assert_error(&raw(&server, "POST", &retry, Some("application/json"), Vec::new()).await, 409, "conflict");
    assert_error(&raw(&server, "POST", &retry, Some("application/json"), b" null ".to_vec()).await, 409, "conflict");
    // A run that has not ended is not run again.
    server.import(sleeper("sleepy")).await;
    let sleeping = server.start_run("sleepy", json!({})).await;
    server.wait_status(&sleeping, &["paused"]).await;
    let busy = server.call("POST", &format!("/api/runs/{sleeping}/retry"), Some(json!({"input_vars": {}}))).await;
    assert_error(&busy, 409, "conflict");
    let (_, list) = server.call("GET", "/api/runs?limit=1000", None).await;
    let mut expected = before["/api/runs?limit=1000"].as_array().expect("runs").clone();
    expected.retain(|r| r["run_id"] != sleeping.as_str());
    let mut now = list.as_array().expect("runs").clone();
    now.retain(|r| r["run_id"] != sleeping.as_str());
    assert_eq!(now.len(), expected.len(), "refused reruns stored nothing");
    server.stop().await;
}
