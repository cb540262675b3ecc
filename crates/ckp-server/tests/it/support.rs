//! A real server for API tests: `ckp_server::serve::start` on 127.0.0.1 with an ephemeral port and its own data
//! directory, driven over HTTP with reqwest.

use std::path::PathBuf;

use ckp_server::console::Console;
use ckp_server::serve::{Running, ServeConfig, start_with_console};
use serde_json::{Value, json};

/// Whether this test run uses PostgreSQL (`CKP_TEST_BACKEND=postgres`) instead of SQLite files: the whole API
/// suite runs on both (`scripts/test` runs it twice).
pub fn postgres() -> bool {
    std::env::var("CKP_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The database PostgreSQL tests use (each server gets a schema of its own there).
pub fn pg_test_url() -> String {
    std::env::var("CKP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A running server and a client for it.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// The data directory (removed on drop).
    pub dir: PathBuf,
    config: ServeConfig,
    console: Console,
    running: Option<Running>,
}

impl TestServer {
    /// Starts a server with default settings and `workers` embedded workers.
    pub async fn start(name: &str) -> TestServer {
        Self::start_with(name, |_| {}).await
    }

    /// Starts a server after `adjust` changed its configuration.
    pub async fn start_with(name: &str, adjust: impl FnOnce(&mut ServeConfig)) -> TestServer {
        Self::start_full(name, Console::built(), adjust).await
    }

    /// Starts a server with default settings serving `console` for the paths no API route claims.
    pub async fn start_console(name: &str, console: Console) -> TestServer {
        Self::start_full(name, console, |_| {}).await
    }

    async fn start_full(name: &str, console: Console, adjust: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let dir = std::env::temp_dir().join(format!("ckp-api-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // The tests' agents, HTTP and MCP servers listen on 127.0.0.1, which the egress policy closes by default.
        let mut config = ServeConfig {
            bind: "127.0.0.1:0".into(),
            data_dir: dir.clone(),
            workers: 4,
            egress_allow: vec!["127.0.0.1".into()],
            ..ServeConfig::default()
        };
        adjust(&mut config);
        if postgres() {
            let schema: String =
                name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
            let url = ckp_store::PgStore::create_schema(&pg_test_url(), &format!("api_{schema}"))
                .await
                .expect("PostgreSQL must be running on 127.0.0.1:5432 (or set CKP_TEST_DATABASE_URL)");
            config.database_url = Some(url.into());
            config.db_pool_size = 8;
        }
        let running = start_with_console(&config, console).await.expect("server starts");
        let base = format!("http://{}", running.addr.expect("serves HTTP"));
        TestServer { base, http: reqwest::Client::new(), dir, config, console, running: Some(running) }
    }

    /// Shuts the server down gracefully and starts it again on the same data directory.
    pub async fn restart(self) -> TestServer {
        self.restart_with(|_| {}).await
    }

    /// Shuts the server down gracefully, changes its configuration with `adjust`, and starts it again on the same
    /// data directory.
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut ServeConfig)) -> TestServer {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        adjust(&mut self.config);
        let running = start_with_console(&self.config, self.console).await.expect("server restarts");
        self.base = format!("http://{}", running.addr.expect("serves HTTP"));
        self.running = Some(running);
        self
    }

    /// The store the server serves.
    pub fn store(&self) -> std::sync::Arc<dyn ckp_store::Store> {
        self.running.as_ref().expect("running").store().clone()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with an optional JSON body; returns the status and the body as JSON (`Value::String` when
    /// the body is not JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    /// Imports a CKP document (201 expected) and returns the response.
    pub async fn import(&self, ckp: Value) -> Value {
        let (status, body) = self.call("POST", "/api/procedures", Some(json!({"ckp_json": ckp}))).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Starts a run (201 expected); returns its id.
    pub async fn start_run(&self, procedure_id: &str, inputs: Value) -> String {
        let (status, body) =
            self.call("POST", "/api/runs", Some(json!({"procedure_id": procedure_id, "input_vars": inputs}))).await;
        assert_eq!(status, 201, "{body}");
        body["run_id"].as_str().expect("run_id").to_owned()
    }

    /// Decides the first approval `run_id` waits at with `decision` (200 expected).
    pub async fn decide(&self, run_id: &str, decision: &str) {
        let (_, approvals) = self.call("GET", &format!("/api/approvals?run_id={run_id}"), None).await;
        let id = approvals[0]["approval_id"].as_str().unwrap_or_else(|| panic!("no approval: {approvals}")).to_owned();
        let (status, body) =
            self.call("POST", &format!("/api/approvals/{id}/decision"), Some(json!({"decision": decision}))).await;
        assert_eq!(status, 200, "{body}");
    }

    /// Polls the run until its status is one of `statuses` (10 s at most); returns the run.
    pub async fn wait_status(&self, run_id: &str, statuses: &[&str]) -> Value {
        for _ in 0..1000 {
            let (_, run) = self.call("GET", &format!("/api/runs/{run_id}"), None).await;
            if statuses.iter().any(|s| run["status"] == *s) {
                return run;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("run {run_id} never reached {statuses:?}");
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fixture procedure of the repository's `tests/fixtures/`, as JSON.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// A procedure that waits for one approval, then sets `result`.
pub fn approval_procedure(id: &str) -> Value {
    json!({"procedure_id": id, "version": "1.0.0", "status": "active", "workflow_graph": {"start_node": "prepare", "nodes": {
        "prepare": {"type": "sequence", "description": "before approval",
                    "steps": [{"step_id": "set", "action": "set_variable", "variable": "stage", "value": "prepared"}],
                    "next_node": "gate"},
        "gate": {"type": "human_approval", "prompt": "Approve run {{run_id}}?", "on_approve": "ok", "on_reject": "no"},
        "ok": {"type": "sequence", "steps": [{"step_id": "s", "action": "set_variable", "variable": "result", "value": "approved"}],
               "next_node": "done"},
        "no": {"type": "sequence", "steps": [{"step_id": "s", "action": "set_variable", "variable": "result", "value": "rejected"}],
               "next_node": "done"},
        "done": {"type": "terminate", "status": "success"}
    }}})
}

/// A chain of `k` sequence nodes with two internal steps each, then logic and terminate.
pub fn chain_procedure(id: &str, k: usize) -> Value {
    let mut nodes = serde_json::Map::new();
    for i in 0..k {
        let next = if i + 1 < k { format!("n{}", i + 1) } else { "check".into() };
        nodes.insert(
            format!("n{i}"),
            json!({"type": "sequence", "description": format!("chain node {i}"), "steps": [
            {"step_id": "set", "action": "set_variable", "variable": "last", "value": format!("n{i}")},
            {"step_id": "log", "action": "log", "message": "at {{last}}"}
        ], "next_node": next}),
        );
    }
    nodes.insert("check".into(), json!({"type": "logic", "rules": [{"condition": "last != ''", "next_node": "done"}], "default_next_node": "done"}));
    nodes.insert("done".into(), json!({"type": "terminate", "status": "success"}));
    json!({"procedure_id": id, "version": "1.0.0", "status": "active", "workflow_graph": {"start_node": "n0", "nodes": nodes}})
}
