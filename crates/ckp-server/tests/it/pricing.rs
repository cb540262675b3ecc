//! The LLM price table of `ckp serve` (`llm_prices`, merged over the defaults) against a real OpenAI-compatible
//! server on 127.0.0.1.

use axum::Router;
use axum::routing::post;
use serde_json::json;

use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_prices_set_the_runs_cost() {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            axum::Json(json!({"model": "house-model-2025", "choices": [{"message": {"content": "hi"}}],
                              "usage": {"prompt_tokens": 1000, "completion_tokens": 2000}}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let procedure = json!({"procedure_id": "ask", "version": "1", "workflow_graph": {"start_node": "ask", "nodes": {
        "ask": {"type": "llm_action", "prompt": "hello", "next_node": "end"},
        "end": {"type": "terminate"}}}});
    // Unknown to the defaults: priced as gpt-4 (0.03 + 2 × 0.06).
    let server = TestServer::start_with("prices-default", |c| c.llm_base_url = Some(format!("{url}/v1"))).await;
    server.import(procedure.clone()).await;
    let run = server.start_run("ask", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["estimated_cost_usd"], json!(0.15), "{done}");
    server.stop().await;
    // Configured: the house model's own prices.
    let server = TestServer::start_with("prices-configured", |c| {
        c.llm_base_url = Some(format!("{url}/v1"));
        c.llm_prices =
            ckp_engine::pricing::PriceTable::parse_overrides(r#"{"house-model": {"prompt": 0.5, "completion": 0.25}}"#)
                .expect("prices");
    })
    .await;
    server.import(procedure).await;
    let run = server.start_run("ask", json!({})).await;
    let done = server.wait_status(&run, &["completed", "failed"]).await;
    assert_eq!(done["estimated_cost_usd"], json!(1.0), "{done}");
    let (_, events) = server.call("GET", &format!("/api/runs/{run}/events"), None).await;
    let usage = events.as_array().expect("events").iter().find(|e| e["event_type"] == "llm_usage").cloned();
    assert_eq!(usage.map(|u| u["payload"]["cost_usd"].clone()), Some(json!(1.0)));
    server.stop().await;
}
