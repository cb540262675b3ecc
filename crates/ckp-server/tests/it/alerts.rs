//! Alert webhooks against a real HTTP receiver on 127.0.0.1: a failed run is one signed alert with LangOrch's
//! fields (and ckp's), the signature verifies with the configured secret, and a burst is cut at the rate limit.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use crate::support::TestServer;

type Got = Arc<Mutex<Vec<(HeaderMap, String)>>>;

async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    let app = Router::new()
        .route(
            "/alerts",
            post(|State(got): State<Got>, headers: HeaderMap, body: String| async move {
                got.lock().expect("lock").push((headers, body));
                "ok"
            }),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/alerts"), got)
}

fn failing() -> Value {
    json!({"procedure_id": "alerting", "version": "1", "workflow_graph": {"start_node": "parse", "nodes": {
        "parse": {"type": "sequence", "steps": [{"step_id": "p", "action": "parse_json", "source": "{nope"}],
                  "next_node": "end"},
        "end": {"type": "terminate"}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_one_signed_alert_and_bursts_are_rate_limited() {
    let (url, got) = receiver().await;
    let server = TestServer::start_with("alerts", move |c| {
        c.alert_webhook_url = Some(url);
        c.alert_webhook_secret = Some(ckp_connectors::settings::Secret::new("s3cret".into()));
        c.alert_max_per_minute = 3;
    })
    .await;
    server.import(failing()).await;
    let first = server.start_run("alerting", json!({})).await;
    server.wait_status(&first, &["failed"]).await;
    let mut alerts = Vec::new();
    for _ in 0..200 {
        alerts = got.lock().expect("lock").clone();
        if !alerts.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(alerts.len(), 1, "one failure, one alert");
    let (headers, body) = &alerts[0];
    let alert: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(alert["event"], "run_failed");
    assert_eq!(alert["run_id"], first.as_str());
    assert_eq!(alert["procedure_id"], "alerting");
    assert_eq!(alert["procedure_version"], "1");
    assert!(alert["error"].as_str().is_some_and(|e| e.contains("parse_json")), "{alert}");
    assert_eq!(headers["x-ckp-event"], "run_failed");
    // The signature: t=<unix>,v1=<HMAC-SHA256 of "t.body"> with the secret.
    let signature = headers["x-ckp-signature"].to_str().expect("ascii");
    let t: i64 =
        signature.split(',').next().and_then(|p| p.strip_prefix("t=")).and_then(|t| t.parse().ok()).expect("t");
    assert_eq!(signature, ckp_server::triggers::webhook::ckp_signature("s3cret", t, body.as_bytes()));
    assert_ne!(signature, ckp_server::triggers::webhook::ckp_signature("other", t, body.as_bytes()));

    // Four more failures in the same minute: two more alerts (3 per minute), two cut.
    for _ in 0..4 {
        let run = server.start_run("alerting", json!({})).await;
        server.wait_status(&run, &["failed"]).await;
    }
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = reqwest::get(server.url("/api/metrics")).await.expect("scrape").text().await.expect("text");
        if metrics.contains("ckp_alerts_total{event=\"run_failed\",outcome=\"sent\"} 3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(metrics.contains("ckp_alerts_total{event=\"run_failed\",outcome=\"sent\"} 3"), "{metrics}");
    assert!(metrics.contains("ckp_alerts_total{event=\"run_failed\",outcome=\"rate_limited\"} 2"), "{metrics}");
    assert_eq!(got.lock().expect("lock").len(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_circuit_opens_raises_one_alert() {
    let (url, got) = receiver().await;
    // An agent that answers every call with a 500.
    let agent = Router::new().route(
        "/execute",
        post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"detail": "down"}))) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let agent_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, agent).await;
    });
    let server = TestServer::start_with("alerts-circuit", move |c| {
        c.alert_webhook_url = Some(url);
        c.agent_offline_after = 2;
    })
    .await;
    let (status, body) = server
        .call(
            "POST",
            "/api/agents",
            Some(json!({"name": "Flaky", "channel": "web", "base_url": agent_url,
                                                    "capabilities": [{"name": "click"}]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    server
        .import(json!({"procedure_id": "clicks", "version": "1", "workflow_graph": {"start_node": "go", "nodes": {
            "go": {"type": "sequence", "agent": "web", "steps": [{"step_id": "c", "action": "click"}], "next_node": "end"},
            "end": {"type": "terminate"}}}}))
        .await;
    // Two failing calls open the circuit (agent_offline_after = 2); a third run finds no agent online.
    for _ in 0..3 {
        let run = server.start_run("clicks", json!({})).await;
        server.wait_status(&run, &["failed", "paused", "running"]).await;
    }
    let mut circuit = Vec::new();
    for _ in 0..200 {
        circuit = got
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|(_, b)| serde_json::from_str::<Value>(b).ok())
            .filter(|a| a["event"] == "agent_circuit_open")
            .collect();
        if !circuit.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(circuit.len(), 1, "{circuit:?}");
    assert_eq!(circuit[0]["agent_name"], "Flaky");
    assert_eq!(circuit[0]["channel"], "web");
    assert_eq!(circuit[0]["consecutive_failures"], 2);
    assert!(circuit[0].get("base_url").is_none(), "no agent URL (it may hold credentials) in an alert");
    server.stop().await;
}
