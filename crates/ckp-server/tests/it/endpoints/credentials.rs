//! `GET /api/agent-credentials/{secret_name}`: a real agent on 127.0.0.1 receives `{{secret_grants.NAME}}`'s token,
//! trades it for the value through the run's provider (here ckp's store, by the procedure's alias), and neither the
//! token nor the value is left in the run, its events or its checkpoint; the refusals (tampered, expired, another
//! key, another secret, no header, an unknown secret, a deleted run) with snapshot bodies.

use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::State;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ckp_connectors::workflow::CallbackSigner;
use serde_json::{Value, json};

use super::assert_error;
use crate::support::TestServer;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const VALUE: &str = "psp-gr4nted-value-9f3e";
const CALLBACK_SECRET: &str = "grant-test-callback-secret";

/// What the agent saw: the params it got, and the server's answer to its exchange.
#[derive(Clone, Default)]
struct Agent {
    server: Arc<OnceLock<String>>,
    seen: Arc<Mutex<Vec<(Value, u16, Value)>>>,
}

/// An agent that exchanges `params.token` at `/api/agent-credentials/{params.secret}` and echoes what it obtained.
async fn agent() -> (String, Agent) {
    let state = Agent::default();
    let app = axum::Router::new()
        .route(
            "/execute",
            post(|State(agent): State<Agent>, axum::Json(body): axum::Json<Value>| async move {
                let params = body["params"].clone();
                let base = agent.server.get().cloned().unwrap_or_default();
                let secret = params["secret"].as_str().unwrap_or_default();
                let resp = reqwest::Client::new()
                    .get(format!("{base}/api/agent-credentials/{secret}"))
                    .bearer_auth(params["token"].as_str().unwrap_or_default())
                    .send()
                    .await
                    .expect("exchange sent");
                let status = resp.status().as_u16();
                let answer: Value = resp.json().await.expect("JSON answer");
                agent.seen.lock().expect("lock").push((params.clone(), status, answer.clone()));
                axum::Json(json!({"status": "success",
                                  "result": {"obtained": answer["value"], "token": params["token"], "auth": params["auth"]}}))
            }),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), state)
}

fn procedure() -> Value {
    json!({"procedure_id": "granted", "version": "1",
        "global_config": {"secrets_config": {"provider": "database", "secret_references": {"psp": "payments/key"}}},
        "workflow_graph": {"start_node": "pay", "nodes": {
            "pay": {"type": "sequence", "agent": "Pay", "steps": [{"step_id": "charge", "action": "charge",
                "secret": "psp", "token": "{{secret_grants.psp}}", "auth": "Bearer {{secret_grants.psp}}",
                "output_variable": "charged"}], "next_node": "check"},
            "check": {"type": "human_approval", "prompt": "Charged with {{charged.token}}?", "on_approve": "end", "on_reject": "end"},
            "end": {"type": "terminate"}}}})
}

async fn get_with(server: &TestServer, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = server.http.get(server.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    if status == 401 {
        assert_eq!(resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    }
    (status, resp.json().await.expect("JSON"))
}

async fn started(name: &str) -> TestServer {
    TestServer::start_with(name, |c| {
        c.secrets.encryption_key = Some(KEY.into());
        c.callback_secret = Some(CALLBACK_SECRET.into());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_trades_its_grant_for_the_value_and_nothing_keeps_either() {
    let (url, agent) = agent().await;
    let server = started("ep-grants-flow").await;
    let _ = agent.server.set(server.base.clone());
    let (status, body) =
        server.call("POST", "/api/secrets", Some(json!({"name": "payments/key", "value": VALUE}))).await;
    assert_eq!(status, 201, "{body}");
    let registered = json!({"name": "P", "channel": "Pay", "base_url": url, "capabilities": [{"name": "charge"}]});
    assert_eq!(server.call("POST", "/api/agents", Some(registered)).await.0, 201);
    server.import(procedure()).await;
    let run_id = server.start_run("granted", json!({})).await;
    server.wait_status(&run_id, &["waiting_approval"]).await;

    let (params, status, answer) = agent.seen.lock().expect("lock").first().cloned().expect("the agent was called");
    assert_eq!((status, &answer), (200, &json!({"value": VALUE})), "the exchange through the run's provider");
    let token = params["token"].as_str().expect("a token").to_owned();
    assert_eq!(params["auth"], format!("Bearer {token}"), "rendered inside text too");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).expect("payload")).expect("base64url"))
            .expect("JSON claims");
    assert_eq!(
        (&claims["sub"], &claims["aud"], &claims["secret_name"]),
        (&json!(run_id), &json!("agent_credential"), &json!("psp"))
    );
    assert_eq!(claims["exp"].as_i64().zip(claims["iat"].as_i64()).map(|(e, i)| e - i), Some(300));

    // Everything the API keeps about the run, while it waits (its checkpoint holds the step record) and after.
    let (_, checkpoints) = server.call("GET", &format!("/api/runs/{run_id}/checkpoints"), None).await;
    let cpid = checkpoints[0]["checkpoint_id"].as_str().expect("checkpoint id").to_owned();
    let (status, checkpoint) = server.call("GET", &format!("/api/runs/{run_id}/checkpoints/{cpid}"), None).await;
    assert_eq!(status, 200, "{checkpoint}");
    assert_eq!(checkpoint["channel_values"]["charged"]["obtained"], "***", "the echoed value is masked");
    assert_eq!(checkpoint["channel_values"]["charged"]["token"], "***", "the echoed token is masked");
    let (_, approvals) = server.call("GET", &format!("/api/approvals?run_id={run_id}"), None).await;
    let approval = approvals[0]["approval_id"].as_str().expect("approval").to_owned();
    let decided = server
        .call("POST", &format!("/api/approvals/{approval}/decision"), Some(json!({"decision": "approved"})))
        .await;
    assert_eq!(decided.0, 200, "{}", decided.1);
    let run = server.wait_status(&run_id, &["completed"]).await;
    let (_, events) = server.call("GET", &format!("/api/runs/{run_id}/events"), None).await;
    let (_, diagnostics) = server.call("GET", &format!("/api/runs/{run_id}/diagnostics"), None).await;
    for (what, kept) in [
        ("checkpoint", &checkpoint),
        ("run", &run),
        ("events", &events),
        ("approvals", &approvals),
        ("diagnostics", &diagnostics),
    ] {
        let text = kept.to_string();
        assert!(!text.contains(&token), "the token is in the {what}: {text}");
        assert!(!text.contains(VALUE), "the value is in the {what}: {text}");
        assert!(!text.contains(CALLBACK_SECRET), "the key is in the {what}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals() {
    let server = started("ep-grants-refusals").await;
    let (status, body) =
        server.call("POST", "/api/secrets", Some(json!({"name": "payments/key", "value": VALUE}))).await;
    assert_eq!(status, 201, "{body}");
    server
        .import(json!({"procedure_id": "plain", "version": "1",
        "global_config": {"secrets_config": {"provider": "database", "secret_references": {"psp": "payments/key"}}},
        "workflow_graph": {"start_node": "end", "nodes": {"end": {"type": "terminate"}}}}))
        .await;
    let run_id = server.start_run("plain", json!({})).await;
    let key = CallbackSigner::new(CALLBACK_SECRET).grant_key();
    let now = chrono::Utc::now().timestamp();
    let grant = |secret: &str, exp: i64| {
        key.sign(&json!({"sub": run_id, "aud": "agent_credential", "secret_name": secret, "iat": now, "exp": exp}))
    };
    let valid = grant("psp", now + 300);
    let path = "/api/agent-credentials/psp";
    let ok = get_with(&server, path, Some(&valid)).await;
    assert_eq!(ok, (200, json!({"value": VALUE})));
    insta::assert_json_snapshot!("credential_200", ok.1, {".value" => "[value]"});

    let missing = get_with(&server, path, None).await;
    assert_error(&missing, 401, "not_authenticated");
    insta::assert_json_snapshot!("credential_401_missing_header", missing.1);
    let basic = server.http.get(server.url(path)).basic_auth("u", Some("p")).send().await.expect("sent");
    assert_eq!(basic.status().as_u16(), 401, "another scheme is no bearer token");

    let mut tampered = valid.clone();
    let at = valid.find('.').expect("a dot") + 3;
    let swapped = if &valid[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, swapped);
    let invalid = get_with(&server, path, Some(&tampered)).await;
    assert_error(&invalid, 401, "invalid_grant");
    insta::assert_json_snapshot!("credential_401_invalid", invalid.1);
    let foreign = CallbackSigner::new("another server").grant_key().issue(&run_id, "psp", now);
    assert_error(&get_with(&server, path, Some(&foreign)).await, 401, "invalid_grant");
    let audience = key.sign(&json!({"sub": run_id, "aud": "other", "secret_name": "psp", "exp": now + 300}));
    assert_error(&get_with(&server, path, Some(&audience)).await, 401, "invalid_grant");
    assert_error(&get_with(&server, path, Some("not-a-jwt")).await, 401, "invalid_grant");

    let expired = get_with(&server, path, Some(&grant("psp", now - 1))).await;
    assert_error(&expired, 401, "grant_expired");
    insta::assert_json_snapshot!("credential_401_expired", expired.1);

    let other = get_with(&server, "/api/agent-credentials/other", Some(&valid)).await;
    assert_error(&other, 403, "grant_other_secret");
    insta::assert_json_snapshot!("credential_403", other.1);

    let unknown = get_with(&server, "/api/agent-credentials/nope", Some(&grant("nope", now + 300))).await;
    assert_error(&unknown, 404, "not_found");
    insta::assert_json_snapshot!("credential_404", unknown.1);

    let (status, _) = server.call("DELETE", &format!("/api/runs/{run_id}"), None).await;
    assert_eq!(status, 200);
    assert_error(&get_with(&server, path, Some(&valid)).await, 404, "not_found");
    server.stop().await;
}
