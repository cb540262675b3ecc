//! `GET /api/runs/stats` and `GET /api/search`: what the console reads across resources, with their bounds and
//! refusals (visibility across projects is probed by the authorization matrix in `auth.rs`).

use chrono::DateTime;
use serde_json::{Value, json};

use super::{assert_error, column, store_lists};
use crate::support::{TestServer, approval_procedure, chain_procedure};

fn failing(procedure_id: &str) -> Value {
    json!({"procedure_id": procedure_id, "version": "1.0.0", "status": "active",
        "workflow_graph": {"start_node": "end", "nodes": {"end": {"type": "terminate", "status": "failed"}}}})
}

fn sum(stats: &Value, field: &str) -> i64 {
    stats["buckets"].as_array().expect("buckets").iter().map(|b| b[field].as_i64().expect("count")).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_runs_per_bucket_with_gauges_and_the_busiest_procedures() {
    let server = TestServer::start("ep-stats").await;
    server.import(chain_procedure("alpha", 1)).await;
    server.import(failing("broken")).await;
    server.import(approval_procedure("gate")).await;
    for _ in 0..2 {
        let id = server.start_run("alpha", json!({})).await;
        server.wait_status(&id, &["completed"]).await;
    }
    let id = server.start_run("broken", json!({})).await;
    server.wait_status(&id, &["failed"]).await;
    let waiting = server.start_run("gate", json!({})).await;
    server.wait_status(&waiting, &["waiting_approval"]).await;
    let canceled = server.start_run("gate", json!({})).await;
    server.wait_status(&canceled, &["waiting_approval"]).await;
    let (status, _) = server.call("POST", &format!("/api/runs/{canceled}/cancel"), None).await;
    assert_eq!(status, 200);

    let (status, stats) = server.call("GET", "/api/runs/stats", None).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["bucket_seconds"], 3600);
    let buckets = stats["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 24, "every hour bucket, zeros included");
    let time = |v: &Value| DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("RFC 3339");
    assert_eq!(stats["from"], buckets[0]["start"]);
    for pair in buckets.windows(2) {
        assert_eq!((time(&pair[1]["start"]) - time(&pair[0]["start"])).num_seconds(), 3600);
    }
    let to = time(&stats["to"]);
    let last = time(&buckets[23]["start"]);
    assert!(last <= to && (to - last).num_seconds() < 3600, "the last bucket holds `to`: {stats}");
    assert_eq!(
        stats["totals"],
        json!({"created": 5, "completed": 2, "failed": 1, "canceled": 1, "running": 0, "waiting_approval": 1})
    );
    assert_eq!((sum(&stats, "created"), sum(&stats, "completed")), (5, 2));
    let by = stats["by_procedure"].as_array().expect("by_procedure");
    assert_eq!(
        column(&stats["by_procedure"], "procedure_id"),
        ["alpha", "gate", "broken"],
        "busiest first, ties by id"
    );
    assert_eq!(
        (by[0]["total"].as_i64(), by[0]["completed"].as_i64(), by[0]["failed"].as_i64()),
        (Some(2), Some(2), Some(0))
    );
    assert_eq!(by[0]["failure_rate"], 0.0);
    let (p50, p95) = (by[0]["p50_seconds"].as_f64().expect("p50"), by[0]["p95_seconds"].as_f64().expect("p95"));
    assert!((0.0..60.0).contains(&p50) && p50 <= p95, "{}", by[0]);
    assert_eq!(by[0]["cost_usd"], 0.0);
    assert_eq!(by[1]["failure_rate"], Value::Null, "gate: none completed or failed");
    assert_eq!((by[2]["failed"].as_i64(), by[2]["failure_rate"].as_f64()), (Some(1), Some(1.0)));

    // Filters.
    let (_, alpha) = server.call("GET", "/api/runs/stats?procedure_id=alpha", None).await;
    assert_eq!((alpha["totals"]["created"].as_i64(), alpha["totals"]["waiting_approval"].as_i64()), (Some(2), Some(0)));
    let (_, other) = server.call("GET", "/api/runs/stats?project_id=nope", None).await;
    assert_eq!((other["totals"]["created"].as_i64(), other["by_procedure"].clone()), (Some(0), json!([])));
    // Longer windows: hour buckets up to 72 hours, day buckets beyond.
    for (hours, width, count) in [(1, 3600, 1), (72, 3600, 72), (73, 86_400, 4), (2160, 86_400, 90)] {
        let (status, s) = server.call("GET", &format!("/api/runs/stats?hours={hours}"), None).await;
        assert_eq!(status, 200, "{s}");
        assert_eq!((s["bucket_seconds"].as_i64(), s["buckets"].as_array().map(Vec::len)), (Some(width), Some(count)));
        assert_eq!(s["totals"]["created"], 5, "hours={hours}");
    }
    for bad in ["hours=0", "hours=2161", "hours=-1", "hours=abc", "project_id=%00"] {
        assert_error(&server.call("GET", &format!("/api/runs/stats?{bad}"), None).await, 422, "invalid_query");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_procedures_runs_and_agents_and_refuses_bad_queries() {
    let server = TestServer::start("ep-search").await;
    server.import(chain_procedure("Invoice_Flow", 1)).await;
    let mut v2 = chain_procedure("Invoice_Flow", 1);
    v2["version"] = json!("2.0.0");
    server.import(v2).await;
    server.import(chain_procedure("payroll", 1)).await;
    let first = server.start_run("Invoice_Flow", json!({})).await;
    let second = server.start_run("Invoice_Flow", json!({})).await;
    let agent = json!({"name": "Invoice Bot", "channel": "web", "base_url": "http://127.0.0.1:9/"});
    let (status, body) = server.call("POST", "/api/agents", Some(agent)).await;
    assert_eq!(status, 201, "{body}");

    let (status, hits) = server.call("GET", "/api/search?q=iNvOiCe", None).await;
    assert_eq!(status, 200, "{hits}");
    assert_eq!(
        hits["procedures"],
        json!([{"procedure_id": "Invoice_Flow", "version": "2.0.0", "name": "Invoice_Flow", "status": "active",
                "project_id": null}]),
        "the latest version only"
    );
    assert_eq!(column(&hits["runs"], "run_id"), [second.clone(), first.clone()], "newest first");
    assert_eq!(hits["runs"][0]["procedure_version"], "2.0.0");
    assert!(DateTime::parse_from_rfc3339(hits["runs"][0]["created_at"].as_str().expect("time")).is_ok());
    assert_eq!(
        hits["agents"],
        json!([{"agent_id": "web_invoice_bot", "name": "Invoice Bot", "status": "offline", "channel": "web"}])
    );
    // A run by the start of its id, not by any other part of it.
    let (_, by_id) = server.call("GET", &format!("/api/search?q={}", &first[..13].to_uppercase()), None).await;
    assert!(column(&by_id["runs"], "run_id").contains(&first), "{by_id}");
    let (_, inside) = server.call("GET", &format!("/api/search?q={}", &first[20..]), None).await;
    assert_eq!(inside["runs"], json!([]), "{inside}");
    // Wildcards match themselves; limits bound each list.
    let (_, wild) = server.call("GET", "/api/search?q=%25", None).await;
    assert_eq!(wild, json!({"procedures": [], "runs": [], "agents": []}));
    let (_, under) = server.call("GET", "/api/search?q=e_f", None).await;
    assert_eq!(column(&under["procedures"], "procedure_id"), ["Invoice_Flow"]);
    let (_, one) = server.call("GET", "/api/search?q=invoice&limit=1", None).await;
    assert_eq!(column(&one["runs"], "run_id"), [second]);

    let before = store_lists(&server).await;
    let long = "x".repeat(201);
    let max = "é".repeat(200);
    let (status, _) = server.call("GET", &format!("/api/search?q={max}"), None).await;
    assert_eq!(status, 200, "200 characters are allowed, however many bytes");
    for bad in ["", "?q=", &format!("?q={long}"), "?q=a&limit=0", "?q=a&limit=51", "?q=a&limit=x", "?q=%00"] {
        assert_error(&server.call("GET", &format!("/api/search{bad}"), None).await, 422, "invalid_query");
    }
    assert_eq!(store_lists(&server).await, before);
    server.stop().await;
}
