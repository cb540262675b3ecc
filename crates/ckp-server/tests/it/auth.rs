//! Authentication and authorization over HTTP: the authorization matrix generated from `/api/openapi.json`
//! (every operation × no credential, each role, another project's operator), sessions (login in LangOrch's shape,
//! refresh, logout, revocation at once), API keys, approvals with an identity, rate limits, the audit log, CORS and
//! security headers.

use std::collections::BTreeMap;

use ckp_server::auth::Role;
use ckp_server::auth::policy::{Access, RULES, lookup};
use reqwest::Method;
use serde_json::{Value, json};

use crate::endpoints::pending_approval;
use crate::support::{TestServer, approval_procedure};

/// A server with authentication on and a world to probe: projects A and B, a procedure and a run paused at an
/// approval in A, a user, and one global API key per role plus a key acting only in B as operator.
struct World {
    server: TestServer,
    keys: BTreeMap<&'static str, String>,
    a: String,
    b: String,
    run: String,
    approval: String,
    user: String,
}

async fn send(server: &TestServer, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = server.http.request(method, server.url(path));
    if let Some(k) = key {
        req = req.header("X-API-Key", k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let streaming = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if streaming {
        return (status, Value::Null);
    }
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn key(server: &TestServer, admin: Option<&str>, role: &str, project: Option<&str>) -> String {
    let (status, body) = send(
        server,
        Method::POST,
        "/api/api-keys",
        admin,
        Some(json!({"name": format!("{role} key"), "role": role, "project_id": project})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().expect("key").to_owned()
}

async fn world(name: &str) -> World {
    // Built with authentication off (loopback), then restarted with it on: what a team does when it secures ckp.
    let server = TestServer::start(name).await;
    let (_, a) = server.call("POST", "/api/projects", Some(json!({"name": "A"}))).await;
    let (_, b) = server.call("POST", "/api/projects", Some(json!({"name": "B"}))).await;
    let (a, b) = (a["project_id"].as_str().expect("A").to_owned(), b["project_id"].as_str().expect("B").to_owned());
    let (status, body) = server
        .call("POST", "/api/procedures", Some(json!({"ckp_json": approval_procedure("gate_a"), "project_id": a})))
        .await;
    assert_eq!(status, 201, "{body}");
    let run = server.start_run("gate_a", json!({})).await;
    server.wait_status(&run, &["waiting_approval"]).await;
    let approval = pending_approval(&server, &run).await;
    let (status, user) = server
        .call("POST", "/api/users", Some(json!({"username": "ann", "password": "correct horse", "role": "viewer"})))
        .await;
    assert_eq!(status, 201, "{user}");
    let mut keys = BTreeMap::new();
    for role in ["viewer", "approver", "operator", "manager", "admin"] {
        keys.insert(role, key(&server, None, role, None).await);
    }
    keys.insert("other", key(&server, None, "operator", Some(&b)).await);
    // Many refusals follow from one address: the failure limit is not what these tests probe.
    let server = server
        .restart_with(|c| {
            c.auth = "on".into();
            c.auth_failures_per_minute = 1000;
        })
        .await;
    World { server, keys, a, b, run, approval, user: user["user_id"].as_str().expect("user").to_owned() }
}

/// A path of the OpenAPI document with every parameter naming an object of project A (and the search's required
/// text, which matches project A's procedure and run).
fn concrete(path: &str, w: &World) -> String {
    if path == "/api/search" {
        return "/api/search?q=gate".into();
    }
    path.replace("{run_id}", &w.run)
        .replace("{approval_id}", &w.approval)
        .replace("{procedure_id}", "gate_a")
        .replace("{version}", "1.0.0")
        .replace("{project_id}", &w.a)
        .replace("{user_id}", &w.user)
        .replace("{key_id}", "no-such-key")
        .replace("{agent_id}", "no-such-agent")
        .replace("{lease_id}", "no-such-lease")
        .replace("{checkpoint_id}", "latest")
        .replace("{name}", "no-such-secret")
        .replace("{secret_name}", "no-such-secret")
}

/// A body that gets past validation for the operations that change project A's objects, so the authorization
/// check (not a 422) decides the answer.
fn body(method: &Method, path: &str, w: &World) -> Option<Value> {
    match (method.as_str(), path) {
        ("POST", "/api/procedures") => Some(json!({"ckp_json": approval_procedure("gate_new"), "project_id": w.a})),
        ("PUT", "/api/procedures/{procedure_id}/{version}") => Some(json!({"ckp_json": approval_procedure("gate_a")})),
        ("PATCH", "/api/procedures/{procedure_id}/{version}/status") => Some(json!({"status": "active"})),
        ("PUT", "/api/procedures/{procedure_id}/{version}/builder-draft") => Some(json!({"draft": {"layout": {}}})),
        ("POST", "/api/procedures/{procedure_id}/{version}/test-runs") => {
            Some(json!({"ckp_json": approval_procedure("gate_a")}))
        }
        ("POST", "/api/procedures/validate") => Some(json!({"ckp_json": approval_procedure("gate_a")})),
        ("POST", "/api/runs") => Some(json!({"procedure_id": "gate_a"})),
        ("POST", "/api/approvals/{approval_id}/decision") => Some(json!({"decision": "approve"})),
        // LangOrch's retry, without a body.
        ("POST", "/api/runs/{run_id}/retry") => None,
        ("PUT", "/api/projects/{project_id}") => Some(json!({"description": "probed"})),
        ("POST", _) | ("PUT", _) | ("PATCH", _) => Some(json!({})),
        _ => None,
    }
}

/// Operations whose success would break the probes that follow (they are checked for their refusals only).
fn destructive(method: &Method, path: &str) -> bool {
    matches!(
        (method.as_str(), path),
        ("DELETE", "/api/runs/{run_id}")
            | ("POST", "/api/runs/{run_id}/cancel")
            | ("DELETE", "/api/procedures/{procedure_id}/{version}")
            | ("DELETE", "/api/users/{user_id}")
            | ("POST", "/api/approvals/{approval_id}/decision")
            | ("DELETE", "/api/runs/cleanup/history")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_each_role_as_its_rule_says() {
    let w = world("auth-matrix").await;
    let (status, doc) = send(&w.server, Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("item") {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let rule = lookup(&method, path).unwrap_or_else(|| panic!("{method} {path} has no rule in auth/policy.rs"));
            operations.push((method, path.clone(), *rule));
        }
    }
    // The table names only real routes: every rule is an operation of the document (or one of the two routes
    // the document does not describe).
    for r in RULES {
        let documented = operations.iter().any(|(m, p, _)| m.as_str() == r.method && p == r.path);
        assert!(documented || ["/api/openapi.json", "/api/artifacts/{*path}"].contains(&r.path), "stale rule {r:?}");
    }
    let mut problems = Vec::new();
    for (method, path, rule) in &operations {
        let url = concrete(path, &w);
        let body = body(method, path, &w);
        // No credential.
        let (status, answer) = send(&w.server, method.clone(), &url, None, body.clone()).await;
        let expected_401 = !matches!(rule.access, Access::Public | Access::Signed);
        if expected_401 != (status == 401 && answer["detail"] == "Authentication required") {
            problems.push(format!("{method} {path} without a credential: {status} {answer}"));
        }
        // Each global role (a signed route answers its own signature's check, whoever calls).
        for role in Role::ALL.into_iter().filter(|_| rule.access != Access::Signed) {
            let required = match rule.access {
                Access::Server(r) | Access::Project(r) => Some(r),
                _ => None,
            };
            let allowed = required.is_none_or(|r| role >= r);
            if allowed && destructive(method, path) {
                continue;
            }
            let (status, answer) =
                send(&w.server, method.clone(), &url, Some(&w.keys[role.as_str()]), body.clone()).await;
            let refused = status == 401 || status == 403;
            // `GET /api/users/{id}` is a manager's or the user's own: a refusal below manager is its rule.
            let self_only = path == "/api/users/{user_id}" && method == Method::GET && role < Role::Manager;
            if allowed == refused && !self_only {
                problems.push(format!("{method} {path} as {role}: {status} {answer}"));
            }
        }
        // An operator of project B on project A's objects: they do not exist for it.
        let other = &w.keys["other"];
        let (status, answer) = send(&w.server, method.clone(), &url, Some(other), body.clone()).await;
        let expected: &[u16] = match rule.access {
            Access::Server(_) => &[403],
            Access::Project(r) if r > Role::Operator => &[403],
            Access::Project(_) if path.contains('{') || method != Method::GET => &[404],
            Access::Project(_) => &[200],
            Access::Authenticated => &[200, 201, 204, 400, 403, 404, 422],
            Access::Public | Access::Signed => continue,
        };
        if !expected.contains(&status) {
            problems.push(format!("{method} {path} as project B's operator: {status} {answer}"));
        }
        // Lists show it nothing of project A.
        if status == 200 && method == Method::GET && !path.contains('{') {
            let text = answer.to_string();
            for id in [&w.run, &w.approval, &w.a] {
                if text.contains(id.as_str()) {
                    problems.push(format!("GET {path} shows project B's operator {id} of project A"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    // The artifact route, outside the document: guarded too.
    let (status, _) = send(&w.server, Method::GET, &format!("/api/artifacts/{}/x.txt", w.run), None, None).await;
    assert_eq!(status, 401);
    let (status, _) =
        send(&w.server, Method::GET, &format!("/api/artifacts/{}/x.txt", w.run), Some(other_key(&w)), None).await;
    assert_eq!(status, 404);
    let _ = &w.b;
}

fn other_key(w: &World) -> &str {
    &w.keys["other"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_log_in_as_langorch_does_refresh_once_and_end_at_once() {
    let w = world("auth-sessions").await;
    let s = &w.server;
    // LangOrch's login request and TokenResponse.
    let (status, token) =
        send(s, Method::POST, "/api/auth/login", None, Some(json!({"username": "ann", "password": "correct horse"})))
            .await;
    assert_eq!(status, 200, "{token}");
    assert_eq!((token["token_type"].as_str(), token["identity"].as_str()), (Some("bearer"), Some("ann")));
    assert_eq!(token["roles"], json!(["viewer"]));
    assert!(token["expires_in"].as_u64().is_some_and(|n| n > 0));
    let bearer = |t: &Value| format!("Bearer {}", t["access_token"].as_str().unwrap_or_default());
    let get = |auth: String, path: &'static str| {
        let req = s.http.get(s.url(path)).header("Authorization", auth);
        async move { req.send().await.expect("sent").status().as_u16() }
    };
    assert_eq!(get(bearer(&token), "/api/runs").await, 200);
    let me = s.http.get(s.url("/api/auth/me")).header("Authorization", bearer(&token)).send().await.expect("me");
    let me: Value = me.json().await.expect("json");
    assert_eq!((me["identity"].as_str(), me["role"].as_str()), (Some("ann"), Some("viewer")));
    // A viewer cannot start a run.
    let post = s
        .http
        .post(s.url("/api/runs"))
        .header("Authorization", bearer(&token))
        .json(&json!({"procedure_id": "gate_a"}));
    assert_eq!(post.send().await.expect("sent").status().as_u16(), 403);
    // Wrong password and unknown user: the same 401 and text.
    for (user, pw) in [("ann", "wrong password"), ("nobody", "correct horse")] {
        let (status, body) =
            send(s, Method::POST, "/api/auth/login", None, Some(json!({"username": user, "password": pw}))).await;
        assert_eq!((status, body["detail"].as_str()), (401, Some("Invalid username or password")));
    }
    // Refresh: a new pair; the old refresh token used again ends the session.
    let (status, fresh) =
        send(s, Method::POST, "/api/auth/refresh", None, Some(json!({"refresh_token": token["refresh_token"]}))).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(get(bearer(&fresh), "/api/runs").await, 200);
    let (status, _) =
        send(s, Method::POST, "/api/auth/refresh", None, Some(json!({"refresh_token": token["refresh_token"]}))).await;
    assert_eq!(status, 401);
    assert_eq!(get(bearer(&fresh), "/api/runs").await, 401, "a replayed refresh token ends the session");
    // Logout ends the session at once.
    let (_, second) =
        send(s, Method::POST, "/api/auth/login", None, Some(json!({"username": "ann", "password": "correct horse"})))
            .await;
    assert_eq!(get(bearer(&second), "/api/runs").await, 200);
    let out =
        s.http.post(s.url("/api/auth/logout")).header("Authorization", bearer(&second)).send().await.expect("out");
    assert_eq!(out.status().as_u16(), 204);
    assert_eq!(get(bearer(&second), "/api/runs").await, 401);
    // Disabling the user ends their sessions at once.
    let (_, third) =
        send(s, Method::POST, "/api/auth/login", None, Some(json!({"username": "ann", "password": "correct horse"})))
            .await;
    assert_eq!(get(bearer(&third), "/api/runs").await, 200);
    let (status, _) = send(
        s,
        Method::PUT,
        &format!("/api/users/{}", w.user),
        Some(&w.keys["admin"]),
        Some(json!({"is_active": false})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(get(bearer(&third), "/api/runs").await, 401);
    let (status, _) =
        send(s, Method::POST, "/api/auth/login", None, Some(json!({"username": "ann", "password": "correct horse"})))
            .await;
    assert_eq!(status, 401, "a disabled user cannot sign in");
    // A user imported from LangOrch with its bcrypt hash signs in with the same password (and again once rehashed).
    let legacy = bcrypt::hash("langorch pw", 4).expect("hash");
    let (status, body) = send(
        s,
        Method::POST,
        "/api/users",
        Some(&w.keys["admin"]),
        Some(json!({"username": "old", "password_hash": legacy, "role": "operator"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for _ in 0..2 {
        let (status, _) =
            send(s, Method::POST, "/api/auth/login", None, Some(json!({"username": "old", "password": "langorch pw"})))
                .await;
        assert_eq!(status, 200);
    }
    let (status, _) = send(
        s,
        Method::POST,
        "/api/users",
        Some(&w.keys["admin"]),
        Some(json!({"username": "bad", "password_hash": "plaintext"})),
    )
    .await;
    assert_eq!(status, 422);
    // A forged token (signed with another key) is refused.
    let forged = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl";
    assert_eq!(get(format!("Bearer {forged}"), "/api/runs").await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_capped_by_their_creator_and_refused_once_revoked() {
    let w = world("auth-keys").await;
    let s = &w.server;
    let admin = w.keys["admin"].as_str();
    // LangOrch's X-API-Key and the Bearer form both work.
    assert_eq!(send(s, Method::GET, "/api/runs", Some(admin), None).await.0, 200);
    let bearer = s.http.get(s.url("/api/runs")).header("Authorization", format!("Bearer {admin}"));
    assert_eq!(bearer.send().await.expect("sent").status().as_u16(), 200);
    assert_eq!(send(s, Method::GET, "/api/runs", Some("ckp_0000_wrong"), None).await.0, 401);
    // The key appears once; lists show its prefix only.
    let (status, made) =
        send(s, Method::POST, "/api/api-keys", Some(admin), Some(json!({"name": "ci", "role": "viewer"}))).await;
    assert_eq!(status, 201, "{made}");
    let secret = made["key"].as_str().expect("key").to_owned();
    let (_, list) = send(s, Method::GET, "/api/api-keys", Some(admin), None).await;
    assert!(!list.to_string().contains(&secret), "a list never holds a key");
    assert!(list.to_string().contains(made["prefix"].as_str().expect("prefix")));
    // A viewer key is 403 on POST /api/runs; revoked, it is 401 on the next request.
    let (status, _) = send(s, Method::POST, "/api/runs", Some(&secret), Some(json!({"procedure_id": "gate_a"}))).await;
    assert_eq!(status, 403);
    let (status, _) = send(
        s,
        Method::DELETE,
        &format!("/api/api-keys/{}", made["key_id"].as_str().unwrap_or_default()),
        Some(admin),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(send(s, Method::GET, "/api/runs", Some(&secret), None).await.0, 401);
    // An operator cannot make an admin key.
    let (status, _) = send(
        s,
        Method::POST,
        "/api/api-keys",
        Some(&w.keys["operator"]),
        Some(json!({"name": "escalate", "role": "admin"})),
    )
    .await;
    assert_eq!(status, 403);
    // Secrets and hashes never come back.
    let (_, users) = send(s, Method::GET, "/api/users", Some(admin), None).await;
    assert!(!users.to_string().contains("argon2"), "{users}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_search_and_reruns_keep_to_the_callers_projects() {
    let w = world("auth-console").await;
    let s = &w.server;
    let (viewer, other) = (&w.keys["viewer"], &w.keys["other"]);
    // Project A's paused run counts for a global viewer, not for project B's operator.
    let (status, stats) = send(s, Method::GET, "/api/runs/stats", Some(viewer), None).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!((stats["totals"]["created"].as_i64(), stats["totals"]["waiting_approval"].as_i64()), (Some(1), Some(1)));
    assert_eq!(stats["by_procedure"][0]["procedure_id"], "gate_a");
    for path in ["/api/runs/stats", &format!("/api/runs/stats?project_id={}", w.a)] {
        let (status, stats) = send(s, Method::GET, path, Some(other), None).await;
        assert_eq!(status, 200, "{stats}");
        assert_eq!(
            stats["totals"],
            json!({"created": 0, "completed": 0, "failed": 0, "canceled": 0, "running": 0,
            "waiting_approval": 0}),
            "{path}"
        );
        assert_eq!(stats["by_procedure"], json!([]), "{path}");
    }
    let (_, hits) = send(s, Method::GET, "/api/search?q=gate", Some(viewer), None).await;
    assert_eq!(
        (hits["procedures"].as_array().map(Vec::len), hits["runs"][0]["run_id"].as_str()),
        (Some(1), Some(w.run.as_str()))
    );
    let (_, hits) = send(s, Method::GET, &format!("/api/search?q={}", &w.run[..8]), Some(other), None).await;
    assert_eq!(hits, json!({"procedures": [], "runs": [], "agents": []}));
    // A rerun needs an operator of the run's project: a viewer is refused, project B's operator does not see it.
    let body = json!({"input_vars": {}});
    let retry = format!("/api/runs/{}/retry", w.run);
    assert_eq!(send(s, Method::POST, &retry, Some(viewer), Some(body.clone())).await.0, 403);
    assert_eq!(send(s, Method::POST, &retry, Some(other), Some(body)).await.0, 404);
    let (_, reruns) = send(s, Method::GET, &format!("/api/runs?rerun_of={}", w.run), Some(viewer), None).await;
    assert_eq!(reruns, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_decided_by_the_authenticated_caller() {
    let w = world("auth-approvals").await;
    let s = &w.server;
    // The body's decided_by is ignored: the key's identity decides.
    let (status, decided) = send(
        s,
        Method::POST,
        &format!("/api/approvals/{}/decision", w.approval),
        Some(&w.keys["approver"]),
        Some(json!({"decision": "approve", "decided_by": "someone else"})),
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    let decided_by = decided["decided_by"].as_str().unwrap_or_default();
    assert!(decided_by.starts_with("api-key:ckp_"), "{decided}");
    // The audit log has the decision, with who and from where.
    let (status, audit) = send(s, Method::GET, "/api/audit?category=approvals", Some(&w.keys["manager"]), None).await;
    assert_eq!(status, 200, "{audit}");
    let event = &audit["events"][0];
    assert_eq!((event["action"].as_str(), event["actor"].as_str()), (Some("decide"), Some(decided_by)));
    assert_eq!(event["resource_id"].as_str(), Some(w.approval.as_str()));
    assert_eq!(event["source_ip"].as_str(), Some("127.0.0.1"));
    assert_eq!(event["outcome"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_eyes_rule_and_approval_levels_limit_who_decides() {
    let server = TestServer::start("auth-four-eyes").await;
    let mut doc = approval_procedure("gate_m");
    doc["workflow_graph"]["nodes"]["gate"]["approval_level"] = json!("manager");
    server.import(doc).await;
    server.import(approval_procedure("gate_s")).await;
    let mut named = approval_procedure("gate_u");
    named["workflow_graph"]["nodes"]["gate"]["approvers"] = json!(["user:ann"]);
    server.import(named).await;
    let (status, _) = server
        .call("POST", "/api/users", Some(json!({"username": "ann", "password": "correct horse", "role": "approver"})))
        .await;
    assert_eq!(status, 201);
    let operator = key(&server, None, "operator", None).await;
    let approver = key(&server, None, "approver", None).await;
    let manager = key(&server, None, "manager", None).await;
    let server = server
        .restart_with(|c| {
            c.auth = "on".into();
            c.approval_four_eyes = true;
        })
        .await;
    let start = |id: &'static str, k: String| {
        let req = server.http.post(server.url("/api/runs")).header("X-API-Key", k).json(&json!({"procedure_id": id}));
        async move {
            req.send().await.expect("sent").json::<Value>().await.expect("json")["run_id"]
                .as_str()
                .expect("run")
                .to_owned()
        }
    };
    let run = start("gate_s", operator.clone()).await;
    let waiting = wait_with(&server, &run, &operator, "waiting_approval").await;
    assert!(waiting["triggered_by"].as_str().is_some_and(|t| t.starts_with("api-key:ckp_")), "{waiting}");
    let approval = pending_approval_with(&server, &run, &operator).await;
    let path = format!("/api/approvals/{approval}/decision");
    let (status, body) =
        send(&server, Method::POST, &path, Some(&operator), Some(json!({"decision": "approve"}))).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("four_eyes")), "{body}");
    let (status, _) = send(&server, Method::POST, &path, Some(&approver), Some(json!({"decision": "approve"}))).await;
    assert_eq!(status, 200);
    // A manager-level approval needs a manager.
    let run = start("gate_m", operator.clone()).await;
    wait_with(&server, &run, &operator, "waiting_approval").await;
    let approval = pending_approval_with(&server, &run, &operator).await;
    let path = format!("/api/approvals/{approval}/decision");
    let (status, _) = send(&server, Method::POST, &path, Some(&approver), Some(json!({"decision": "approve"}))).await;
    assert_eq!(status, 403);
    let (status, _) = send(&server, Method::POST, &path, Some(&manager), Some(json!({"decision": "approve"}))).await;
    assert_eq!(status, 200);
    // An approval naming its approvers: only they decide, whatever the role of others.
    let run = start("gate_u", operator.clone()).await;
    wait_with(&server, &run, &operator, "waiting_approval").await;
    let approval = pending_approval_with(&server, &run, &operator).await;
    let path = format!("/api/approvals/{approval}/decision");
    let (status, body) = send(&server, Method::POST, &path, Some(&manager), Some(json!({"decision": "approve"}))).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_an_approver")), "{body}");
    let (_, token) = send(
        &server,
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"username": "ann", "password": "correct horse"})),
    )
    .await;
    let resp = server
        .http
        .post(server.url(&path))
        .bearer_auth(token["access_token"].as_str().unwrap_or_default())
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let decided: Value = resp.json().await.expect("json");
    assert_eq!(decided["decided_by"], "ann");
}

async fn wait_with(server: &TestServer, run: &str, key: &str, status: &str) -> Value {
    for _ in 0..1000 {
        let (_, r) = send(server, Method::GET, &format!("/api/runs/{run}"), Some(key), None).await;
        if r["status"] == status {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("run {run} never reached {status}");
}

async fn pending_approval_with(server: &TestServer, run: &str, key: &str) -> String {
    let (_, list) =
        send(server, Method::GET, &format!("/api/approvals?run_id={run}&status=pending"), Some(key), None).await;
    list[0]["approval_id"].as_str().expect("a pending approval").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_rate_limited_and_answers_carry_security_headers() {
    let server = TestServer::start_with("auth-limits", |c| {
        c.auth = "on".into();
        c.auth_failures_per_minute = 3;
        c.cors_origins = vec!["https://console.example".into()];
    })
    .await;
    for _ in 0..3 {
        let (status, _) =
            send(&server, Method::POST, "/api/auth/login", None, Some(json!({"username": "x", "password": "y"}))).await;
        assert_eq!(status, 401);
    }
    let resp = server
        .http
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "x", "password": "y"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 429);
    let wait: u64 = resp.headers()["retry-after"].to_str().unwrap_or_default().parse().unwrap_or_default();
    assert!((1..=60).contains(&wait), "{wait}");
    // The address is over its allowance for API keys too (guessing keys is the same attack).
    let (status, _) = send(&server, Method::GET, "/api/runs", Some("ckp_0000_guess"), None).await;
    assert_eq!(status, 429);
    // Security headers on every answer, an error included.
    let resp = server.http.get(server.url("/api/runs")).send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    for h in ["x-content-type-options", "x-frame-options", "content-security-policy", "referrer-policy"] {
        assert!(resp.headers().contains_key(h), "{h}");
    }
    // CORS: closed to unknown origins, open to the configured one (preflight answered before authentication).
    let preflight = |origin: &'static str| {
        server
            .http
            .request(Method::OPTIONS, server.url("/api/runs"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
    };
    let open = preflight("https://console.example").await.expect("sent");
    assert_eq!(open.headers()["access-control-allow-origin"], "https://console.example");
    let closed = preflight("https://evil.example").await.expect("sent");
    assert!(!closed.headers().contains_key("access-control-allow-origin"));
}

#[test]
fn docs_auth_routes_md_is_up_to_date() {
    let path = format!("{}/../../docs/auth-routes.md", env!("CARGO_MANIFEST_DIR"));
    let generated = ckp_server::auth::policy::markdown();
    if std::env::var("CKP_UPDATE_DOCS").is_ok() {
        std::fs::write(&path, &generated).expect("writes docs/auth-routes.md");
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "docs/auth-routes.md is stale: run CKP_UPDATE_DOCS=1 cargo nextest run -p ckp-server docs_auth_routes_md_is_up_to_date"
    );
}
