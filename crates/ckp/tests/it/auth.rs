//! Secure by default, as a new user meets it: `ckp serve --bind 0.0.0.0:PORT` prints an admin key once; without
//! it the API is 401, with it 200; a viewer key is 403 on `POST /api/runs`; a revoked key is 401 at once; the next
//! start prints nothing. Authentication off beyond loopback needs an explicit flag. `ckp admin` makes users and
//! keys on a stopped server's database.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

struct Server {
    child: Child,
    port: u16,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path, args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["serve", "--bind", "0.0.0.0:0", "--workers", "2", "--data-dir"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ckp serve starts");
    let (tx, stderr) = mpsc::channel();
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    let port = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Server { child, port, stderr }
}

/// Lines the server wrote to stderr within `wait`.
fn stderr_lines(s: &Server, wait: Duration) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(line) = s.stderr.recv_timeout(wait) {
        lines.push(line);
    }
    lines
}

async fn call(port: u16, method: reqwest::Method, path: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("http://127.0.0.1:{port}{path}"));
    if let Some(k) = key {
        req = req.header("X-API-Key", k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_off_loopback_requires_a_key_and_prints_the_first_one_once() {
    let dir = crate::temp_dir("auth-first-key");
    let server = start(&dir, &[]);
    let lines = stderr_lines(&server, Duration::from_millis(1500));
    let keys: Vec<&str> =
        lines.iter().map(|l| l.trim()).filter(|l| l.starts_with("ckp_") && !l.contains(' ')).collect();
    assert_eq!(keys.len(), 1, "one key printed:\n{}", lines.join("\n"));
    let admin = keys[0].to_owned();
    // Never in a log line.
    assert!(lines.iter().filter(|l| l.contains("first admin API key")).all(|l| !l.contains(&admin)));
    let port = server.port;
    assert_eq!(call(port, reqwest::Method::GET, "/api/runs", None, None).await.0, 401);
    assert_eq!(call(port, reqwest::Method::GET, "/api/runs", Some(&admin), None).await.0, 200);
    assert_eq!(call(port, reqwest::Method::GET, "/api/health", None, None).await.0, 200, "health stays public");
    let (status, viewer) = call(
        port,
        reqwest::Method::POST,
        "/api/api-keys",
        Some(&admin),
        Some(json!({"name": "dashboard", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 201, "{viewer}");
    let viewer_key = viewer["key"].as_str().expect("key");
    let (status, _) =
        call(port, reqwest::Method::POST, "/api/runs", Some(viewer_key), Some(json!({"procedure_id": "x"}))).await;
    assert_eq!(status, 403);
    let revoke = format!("/api/api-keys/{}", viewer["key_id"].as_str().expect("id"));
    assert_eq!(call(port, reqwest::Method::DELETE, &revoke, Some(&admin), None).await.0, 204);
    assert_eq!(call(port, reqwest::Method::GET, "/api/runs", Some(viewer_key), None).await.0, 401);
    drop(server);
    // The next start has an administrator already: no new key.
    let again = start(&dir, &[]);
    let lines = stderr_lines(&again, Duration::from_millis(1000));
    assert!(lines.iter().all(|l| !l.trim().starts_with("ckp_")), "{}", lines.join("\n"));
    assert_eq!(call(again.port, reqwest::Method::GET, "/api/runs", Some(&admin), None).await.0, 200);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn auth_off_beyond_loopback_needs_an_explicit_flag_and_warns() {
    let dir = crate::temp_dir("auth-off");
    let out = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["serve", "--bind", "0.0.0.0:0", "--auth", "off", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("allow_insecure_no_auth"), "{err}");
    let server = start(&dir, &["--auth", "off", "--allow-insecure-no-auth", "true"]);
    let lines = stderr_lines(&server, Duration::from_millis(1000));
    assert!(lines.iter().any(|l| l.contains("authentication is OFF")), "{}", lines.join("\n"));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ckp_admin_creates_users_and_keys_that_the_server_accepts() {
    let dir = crate::temp_dir("auth-admin-cli");
    let data = dir.to_str().expect("utf-8");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["admin", "--data-dir", data, "create-user", "--username", "root", "--role", "admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child.stdin.take().expect("stdin").write_all(b"a long password\n").expect("writes");
    let out = child.wait_with_output().expect("ends");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["admin", "--data-dir", data, "create-key", "--name", "ops", "--role", "operator", "--owner", "root"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let key = printed.lines().next().expect("the key on the first line").trim().to_owned();
    assert!(key.starts_with("ckp_"), "{printed}");
    // An administrator exists: the server prints no key, and both the key and the password work.
    let server = start(&dir, &[]);
    let lines = stderr_lines(&server, Duration::from_millis(1000));
    assert!(lines.iter().all(|l| !l.trim().starts_with("ckp_")), "{}", lines.join("\n"));
    let (status, me) = call(server.port, reqwest::Method::GET, "/api/auth/me", Some(&key), None).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("operator")), "{me}");
    let (status, token) = call(
        server.port,
        reqwest::Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"username": "root", "password": "a long password"})),
    )
    .await;
    assert_eq!((status, token["roles"].clone()), (200, json!(["admin"])), "{token}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
