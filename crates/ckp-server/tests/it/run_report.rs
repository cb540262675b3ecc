//! A run's timeline and cost (`GET /api/runs/{id}/timeline`, `/cost`) against a real OpenAI-compatible server on
//! 127.0.0.1 and an approval wait; and the LLM counters of `/api/metrics` for the same calls.

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};

use crate::support::TestServer;

/// An LLM server answering with the model named in the request and fixed usage.
async fn llm() -> String {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|axum::Json(req): axum::Json<Value>| async move {
            axum::Json(json!({"model": req["model"], "choices": [{"message": {"content": "fine"}}],
                              "usage": {"prompt_tokens": 1000, "completion_tokens": 500}}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn procedure() -> Value {
    json!({"procedure_id": "report", "version": "1", "workflow_graph": {"start_node": "draft", "nodes": {
        "draft": {"type": "llm_action", "prompt": "draft", "model": "house-a", "next_node": "review"},
        "review": {"type": "llm_action", "prompt": "review", "model": "house-b", "next_node": "again"},
        "again": {"type": "llm_action", "prompt": "again", "model": "house-a", "next_node": "parse"},
        "parse": {"type": "sequence", "steps": [
            {"step_id": "p", "action": "parse_json", "source": "{\"ok\": true}", "output_variable": "parsed"}
        ], "next_node": "gate"},
        "gate": {"type": "human_approval", "prompt": "ok?", "on_approve": "end", "on_reject": "end"},
        "end": {"type": "terminate"}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_and_cost_describe_a_run_with_llm_calls_and_an_approval() {
    let url = llm().await;
    let server = TestServer::start_with("run-report", |c| {
        c.llm_base_url = Some(url);
        c.llm_prices = ckp_engine::pricing::PriceTable::parse_overrides(
            r#"{"house-a": {"prompt": 0.01, "completion": 0.02}, "house-b": {"prompt": 0.1, "completion": 0.2}}"#,
        )
        .expect("prices");
    })
    .await;
    server.import(procedure()).await;
    let run = server.start_run("report", json!({})).await;
    let r = server.wait_status(&run, &["waiting_approval", "failed"]).await;
    assert_eq!(r["status"], "waiting_approval", "{r}");

    // While it waits: the approval node is waiting, its wait open.
    let (status, t) = server.call("GET", &format!("/api/runs/{run}/timeline"), None).await;
    assert_eq!(status, 200, "{t}");
    let ids: Vec<&str> = t["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["node_id"].as_str()).collect();
    assert_eq!(ids, ["draft", "review", "again", "parse", "gate"], "{t}");
    assert_eq!(t["nodes"][4]["status"], "waiting", "{t}");
    assert_eq!(t["nodes"][0]["status"], "completed");
    assert_eq!(t["nodes"][0]["node_type"], "llm_action");
    assert!(t["nodes"][0]["execution_ms"].as_i64().is_some_and(|ms| ms >= 0), "{t}");
    assert_eq!(t["waits"][0]["kind"], "approval");
    assert_eq!(t["waits"][0]["node_id"], "gate");
    assert!(t["waits"][0]["ended_at"].is_null());

    server.decide(&run, "approved").await;
    server.wait_status(&run, &["completed"]).await;

    let (_, t) = server.call("GET", &format!("/api/runs/{run}/timeline"), None).await;
    let nodes = t["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 6, "the approval node once, then the end: {t}");
    assert!(nodes.iter().all(|n| n["status"] == "completed" && n["ended_at"].is_string()), "{t}");
    assert!(t["waits"][0]["ended_at"].is_string(), "the decision closed the wait: {t}");
    assert_eq!(t["status"], "completed");
    assert!(t["ended_at"].is_string());

    let (status, c) = server.call("GET", &format!("/api/runs/{run}/cost"), None).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["total"]["calls"], 3);
    assert_eq!(c["total"]["prompt_tokens"], 3000);
    assert_eq!(c["total"]["completion_tokens"], 1500);
    // house-a: 2 × (1 × 0.01 + 0.5 × 0.02) = 0.04; house-b: 0.1 + 0.1 = 0.2.
    let close = |v: &Value, want: f64| v.as_f64().is_some_and(|x| (x - want).abs() < 1e-9);
    assert!(close(&c["total"]["cost_usd"], 0.24), "{c}");
    assert_eq!(c["by_model"][0]["model"], "house-b", "most expensive first: {c}");
    assert!(close(&c["by_model"][0]["cost_usd"], 0.2), "{c}");
    assert_eq!(c["by_model"][1]["calls"], 2);
    let nodes: Vec<(&str, &str)> = c["by_node"]
        .as_array()
        .expect("by_node")
        .iter()
        .filter_map(|n| Some((n["node_id"].as_str()?, n["model"].as_str()?)))
        .collect();
    assert_eq!(nodes, [("draft", "house-a"), ("review", "house-b"), ("again", "house-a")]);
    // The run row's totals agree.
    let (_, r) = server.call("GET", &format!("/api/runs/{run}"), None).await;
    assert!(close(&r["estimated_cost_usd"], 0.24), "{r}");

    // The same calls in the metrics.
    let text = reqwest::get(server.url("/api/metrics")).await.expect("scrape").text().await.expect("text");
    for line in [
        "ckp_llm_tokens_total{model=\"house-a\",type=\"prompt\"} 2000",
        "ckp_llm_tokens_total{model=\"house-b\",type=\"completion\"} 500",
        "ckp_llm_cost_usd_total{model=\"house-b\"} 0.2",
        "ckp_node_duration_seconds_count{node_type=\"llm_action\"} 3",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }

    assert_eq!(server.call("GET", "/api/runs/nope/timeline", None).await.0, 404);
    assert_eq!(server.call("GET", "/api/runs/nope/cost", None).await.0, 404);
    server.stop().await;
}
