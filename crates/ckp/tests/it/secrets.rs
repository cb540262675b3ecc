//! Secrets through a real `ckp serve`: the env provider, ckp's encrypted store (`/api/secrets`) and a Vault-like
//! server (`crates/ckp-connectors/tests/vault_server.py`), each from a procedure's `secrets_config`. The agent gets
//! the values; no value appears in any API answer (runs, events, SSE, checkpoints, diagnostics, approvals,
//! `/api/secrets`), in the database files or in the server's output, even when the agent echoes it back or puts it
//! in an error.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{call, recording_agent, serve_with_env, spawn_agent, wait_terminal};

const ENV_VALUE: &str = "env-s3cret-4e1d";
const DB_VALUE: &str = "db-s3cret-77aa";
const VAULT_VALUE: &str = "vault-s3cret-c0de";
const VAULT_ROOT: &str = "vault-root-t0ken-5b";
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The Vault-like test server of ckp-connectors; killed on drop.
struct Vault(std::process::Child, String);

impl Drop for Vault {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vault() -> Vault {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ckp-connectors/tests/vault_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([VAULT_ROOT, "role", "secret-id", "3600"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("port line");
    let port = line.trim().strip_prefix("PORT ").expect("PORT n").to_owned();
    Vault(child, format!("http://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_env_store_and_vault_reach_the_agent_and_nothing_else() {
    let vault = vault();
    let http = reqwest::Client::new();
    let wrote = http
        .post(format!("{}/v1/secret/data/langorch/db", vault.1))
        .header("X-Vault-Token", VAULT_ROOT)
        .json(&json!({"data": {"username": "app", "password": VAULT_VALUE}}))
        .send()
        .await
        .expect("vault write");
    assert!(wrote.status().is_success());

    // The agent echoes its parameters back, and puts them into its error for the `fail` action.
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/execute",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(body.clone());
                let params = &body["params"];
                if body["action"] == "fail" {
                    let message = format!("upstream refused credential {}", params["key"].as_str().unwrap_or(""));
                    return axum::Json(json!({"status": "error", "error": {"message": message}}));
                }
                axum::Json(json!({"status": "success", "result": {"echo": params}}))
            }
        }),
    );
    let agent_url = spawn_agent(app).await;

    let dir = std::env::temp_dir().join(format!("ckp-serve-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "2", "--data-dir"])
        .arg(&dir)
        .envs([
            ("LANGORCH_SECRET_ENV_TOKEN", ENV_VALUE),
            ("CKP_SECRETS_ENCRYPTION_KEY", KEY),
            ("CKP_VAULT_ADDR", vault.1.as_str()),
            ("CKP_VAULT_TOKEN", VAULT_ROOT),
            ("CKP_EGRESS_ALLOW", "127.0.0.1"),
            ("RUST_LOG", "debug"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ckp serve starts");
    let output = Arc::new(Mutex::new(String::new()));
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    output.lock().expect("lock").push_str(&first);
    let base = first.split_whitespace().find(|w| w.starts_with("http://")).expect("address").to_owned();
    let mut readers = Vec::new();
    for mut stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(child.stderr.take().expect("stderr"))] {
        let output = output.clone();
        readers.push(std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            output.lock().expect("lock").push_str(&text);
        }));
    }

    let (status, stored) = call(
        &http,
        Method::POST,
        format!("{base}/api/secrets"),
        Some(json!({"name": "payments/key", "value": DB_VALUE})),
    )
    .await;
    assert_eq!(status, 201, "{stored}");
    let agent = json!({"name": "A", "channel": "api", "base_url": agent_url, "capabilities": [{"name": "echo"}, {"name": "fail"}]});
    assert_eq!(call(&http, Method::POST, format!("{base}/api/agents"), Some(agent)).await.0, 201);

    let echo = |key: &str| json!({"step_id": "use", "action": "echo", "key": key, "header": format!("Bearer {key}"), "output_variable": "r"});
    let procedures = [
        json!({"procedure_id": "from_env", "version": "1", "workflow_graph": {"start_node": "go", "nodes": {
            "go": {"type": "sequence", "agent": "api", "steps": [echo("{{secrets.env_token}}")], "next_node": "end"},
            "end": {"type": "terminate"}}}}),
        json!({"procedure_id": "from_db", "version": "1",
            "global_config": {"secrets_config": {"provider": "database", "secret_references": {"psp": "payments/key"}}},
            "workflow_graph": {"start_node": "go", "nodes": {
                "go": {"type": "sequence", "agent": "api", "steps": [echo("{{secrets.psp}}")], "next_node": "end"},
                "end": {"type": "terminate"}}}}),
        json!({"procedure_id": "from_vault", "version": "1",
            "global_config": {"secrets_config": {"type": "hashicorp_vault", "secret_references": {"pw": {"key": "db#password"}}}},
            "workflow_graph": {"start_node": "go", "nodes": {
                "go": {"type": "sequence", "agent": "api", "steps": [echo("{{secrets.pw}}")], "next_node": "ask"},
                "ask": {"type": "human_approval", "prompt": "Use {{r.echo.key}}?", "on_approve": "bad", "on_reject": "end"},
                "bad": {"type": "sequence", "agent": "api", "steps": [{"step_id": "f", "action": "fail", "key": "{{secrets.pw}}"}], "next_node": "end"},
                "end": {"type": "terminate"}}}}),
    ];
    for p in procedures {
        let (status, body) =
            call(&http, Method::POST, format!("{base}/api/procedures"), Some(json!({"ckp_json": p}))).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut runs = Vec::new();
    for id in ["from_env", "from_db", "from_vault"] {
        let (status, run) =
            call(&http, Method::POST, format!("{base}/api/runs"), Some(json!({"procedure_id": id}))).await;
        assert_eq!(status, 201, "{run}");
        runs.push(run["run_id"].as_str().expect("run_id").to_owned());
    }
    for run in &runs[..2] {
        assert_eq!(wait_terminal(&http, &base, run).await, "completed");
    }
    let vault_run = runs[2].clone();
    let mut approvals = Value::Null;
    for _ in 0..1000 {
        approvals = call(&http, Method::GET, format!("{base}/api/approvals?run_id={vault_run}"), None).await.1;
        if approvals.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let approval_id = approvals[0]["approval_id"].as_str().expect("an approval").to_owned();
    assert_eq!(approvals[0]["prompt"], "Use ***?", "the echoed value was masked before it reached the variables");
    let approval = call(&http, Method::GET, format!("{base}/api/approvals/{approval_id}"), None).await.1;
    let decided = call(
        &http,
        Method::POST,
        format!("{base}/api/approvals/{approval_id}/decision"),
        Some(json!({"decision": "approved", "decided_by": "t"})),
    )
    .await;
    assert_eq!(decided.0, 200, "{}", decided.1);
    assert_eq!(wait_terminal(&http, &base, &vault_run).await, "failed");

    let calls = got.lock().expect("lock").clone();
    let mut keys: Vec<&str> = calls.iter().filter_map(|c| c["params"]["key"].as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, [DB_VALUE, ENV_VALUE, VAULT_VALUE, VAULT_VALUE], "the agent gets each value");

    let (_, run) = call(&http, Method::GET, format!("{base}/api/runs/{vault_run}"), None).await;
    assert!(
        run["error_message"].as_str().is_some_and(|m| m.contains("upstream refused credential ***")),
        "the run's error keeps its meaning, without the value: {run}"
    );
    let mut answers = vec![approvals.to_string(), approval.to_string(), decided.1.to_string()];
    let mut paths = vec!["/api/runs".to_owned(), "/api/secrets".to_owned(), "/api/secrets/payments%2Fkey".to_owned()];
    paths.push("/api/approvals".into());
    for id in &runs {
        let (_, cps) = call(&http, Method::GET, format!("{base}/api/runs/{id}/checkpoints"), None).await;
        for cp in cps.as_array().into_iter().flatten() {
            paths.push(format!("/api/runs/{id}/checkpoints/{}", cp["checkpoint_id"].as_str().unwrap_or_default()));
        }
        for tail in ["", "/events", "/diagnostics", "/checkpoints", "/artifacts", "/stream"] {
            paths.push(format!("/api/runs/{id}{tail}"));
        }
    }
    for path in paths {
        let resp = http.get(format!("{base}{path}")).send().await.expect("get");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        answers.push(format!("{path}: {}", resp.text().await.expect("body")));
    }
    let events = call(&http, Method::GET, format!("{base}/api/runs/{}/events", runs[0]), None).await.1;
    assert!(events.to_string().contains("step_completed"), "the event list is really there: {events}");
    for text in &answers {
        for value in [ENV_VALUE, DB_VALUE, VAULT_VALUE] {
            assert!(!text.contains(value), "an API answer leaks {value}: {text}");
        }
    }

    let _ = child.kill();
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    let logs = output.lock().expect("lock").clone();
    assert!(logs.contains("listening on"), "the output was captured: {logs}");
    for file in ["ckp.db", "ckp.db-wal"] {
        let bytes = String::from_utf8_lossy(&std::fs::read(dir.join(file)).unwrap_or_default()).into_owned();
        for value in [ENV_VALUE, DB_VALUE, VAULT_VALUE] {
            assert!(!bytes.contains(value), "{file} holds {value}");
            assert!(!logs.contains(value), "the server's output holds {value}: {logs}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A procedure choosing the env provider with an empty prefix reads under the server's prefix: `secrets.X` is
/// `LANGORCH_SECRET_X`, and ckp's own settings (`CKP_*`) stay out of reach whatever it asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_env_provider_reads_only_under_the_servers_prefix() {
    const LLM_KEY: &str = "sk-llm-k3y-91";
    let (agent_url, got) = recording_agent(json!({})).await;
    let dir = std::env::temp_dir().join(format!("ckp-serve-env-prefix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let env = [
        ("LANGORCH_SECRET_X", ENV_VALUE),
        ("CKP_SECRETS_ENCRYPTION_KEY", KEY),
        ("CKP_LLM_API_KEY", LLM_KEY),
        ("CKP_EGRESS_ALLOW", "127.0.0.1"),
    ];
    let server = serve_with_env(&dir, &env);
    let (http, base) = (reqwest::Client::new(), server.base.clone());
    let agent = json!({"name": "A", "channel": "api", "base_url": agent_url, "capabilities": [{"name": "echo"}]});
    assert_eq!(call(&http, Method::POST, format!("{base}/api/agents"), Some(agent)).await.0, 201);
    let ask = |prefix: &str| {
        json!({"procedure_id": format!("env{}", prefix.len()), "version": "1",
            "global_config": {"secrets_config": {"provider": "env", "prefix": prefix}},
            "workflow_graph": {"start_node": "go", "nodes": {
                "go": {"type": "sequence", "agent": "api", "steps": [{"step_id": "use", "action": "echo",
                    "x": "{{secrets.X}}", "key": "{{secrets.CKP_SECRETS_ENCRYPTION_KEY}}",
                    "llm": "{{secrets.CKP_LLM_API_KEY}}", "lower": "{{secrets.ckp_llm_api_key}}"}], "next_node": "end"},
                "end": {"type": "terminate"}}}})
    };
    // An empty prefix, and one that tries to leave the server's (both taken under it).
    for (prefix, x) in [("", ENV_VALUE), ("CKP_", "{{secrets.X}}")] {
        let p = ask(prefix);
        let (status, body) =
            call(&http, Method::POST, format!("{base}/api/procedures"), Some(json!({"ckp_json": p}))).await;
        assert_eq!(status, 201, "{body}");
        let id = format!("env{}", prefix.len());
        let (status, run) =
            call(&http, Method::POST, format!("{base}/api/runs"), Some(json!({"procedure_id": id}))).await;
        assert_eq!(status, 201, "{run}");
        assert_eq!(wait_terminal(&http, &base, run["run_id"].as_str().expect("run_id")).await, "completed");
        let params = got.lock().expect("lock").pop().expect("the agent was called")["params"].clone();
        assert_eq!(params["x"], x, "prefix {prefix:?}: {params}");
        let text = params.to_string();
        assert!(!text.contains(KEY) && !text.contains(LLM_KEY), "prefix {prefix:?}: ckp's settings leaked: {text}");
        assert_eq!(params["llm"], "{{secrets.CKP_LLM_API_KEY}}", "absent, so left as written: {params}");
    }
    let mut server = server;
    server.child.kill().expect("stop");
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
