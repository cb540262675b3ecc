//! Scale-out on PostgreSQL with real processes: API-only and worker-only `ckp` processes on one database (each test
//! in a schema of its own), workers SIGKILLed at random moments, decisions spread over two API processes, the
//! leader killed (a one-second schedule keeps firing each tick once across it), and an SSE client on the API
//! process following runs that other processes execute.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::serve::{call, procedures};

/// A `ckp serve` or `ckp worker` process.
struct Proc {
    child: Child,
    /// `http://…` for a process serving the API.
    base: Option<String>,
}

impl Proc {
    fn base(&self) -> &str {
        self.base.as_deref().expect("this process serves the API")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `ckp <args> --database-url <url>` and waits for its first line (it is ready then).
fn spawn(args: &[&str], url: &str) -> Proc {
    // Short leases: a killed worker's runs are taken back within a couple of seconds even when its death is not
    // seen at once.
    spawn_leased(args, url, 2000)
}

/// [`spawn`] with leases of `lease_ms`.
fn spawn_leased(args: &[&str], url: &str, lease_ms: u64) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(args)
        .args(["--database-url", url])
        .env("CKP_LEASE_MS", lease_ms.to_string())
        .env("CKP_EGRESS_ALLOW", "127.0.0.1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ckp starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("first line");
    assert!(line.contains("database postgres://"), "unexpected first line: {line:?}");
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).map(str::to_owned);
    Proc { child, base }
}

fn api(url: &str) -> Proc {
    spawn(&["serve", "--no-workers", "--bind", "127.0.0.1:0"], url)
}

fn worker(url: &str) -> Proc {
    spawn(&["worker", "--workers", "8"], url)
}

async fn schema(name: &str) -> String {
    let base =
        std::env::var("CKP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    ckp_store::PgStore::create_schema(&base, name)
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (or set CKP_TEST_DATABASE_URL)")
}

async fn import(http: &reqwest::Client, base: &str, doc: Value) {
    let (status, body) =
        call(http, reqwest::Method::POST, format!("{base}/api/procedures"), Some(json!({"ckp_json": doc}))).await;
    assert_eq!(status, 201, "{body}");
}

async fn start_run(http: &reqwest::Client, base: &str, procedure_id: &str, i: usize) -> String {
    let (status, body) = call(
        http,
        reqwest::Method::POST,
        format!("{base}/api/runs"),
        Some(json!({"procedure_id": procedure_id, "input_vars": {"i": i}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["run_id"].as_str().expect("id").to_owned()
}

/// Reads a run's SSE stream to its end; the `(id, event type)` of each event.
async fn follow(http: &reqwest::Client, base: &str, run_id: &str) -> Vec<(i64, String)> {
    let text = http
        .get(format!("{base}/api/runs/{run_id}/stream"))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("stream")
        .text()
        .await
        .expect("stream ends after the terminal event");
    let mut out = Vec::new();
    let mut id = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse::<i64>().ok();
        } else if let Some(v) = line.strip_prefix("data:") {
            let event: Value = serde_json::from_str(v.trim()).expect("event JSON");
            let event_type = event["event_type"].as_str().unwrap_or_default().to_owned();
            out.push((id.take().expect("every event has an id"), event_type));
        }
    }
    out
}

/// A run's events: ids strictly increasing, no event twice (a resume after a crash may add an
/// `execution_resumed`), exactly one start and one end.
async fn assert_clean_history(http: &reqwest::Client, base: &str, run_id: &str) -> Vec<Value> {
    let (_, events) = call(http, reqwest::Method::GET, format!("{base}/api/runs/{run_id}/events"), None).await;
    let events = events.as_array().expect("events").clone();
    let mut seen = HashSet::new();
    let mut last = 0;
    for e in &events {
        let id = e["event_id"].as_i64().expect("event id");
        assert!(id > last, "event ids increase in run {run_id}");
        last = id;
        if e["event_type"] != "execution_resumed" {
            let key = (e["event_type"].clone(), e["node_id"].clone(), e["step_id"].clone());
            assert!(seen.insert(key), "duplicate event in run {run_id}: {e}");
        }
    }
    for t in ["run_created", "execution_started", "run_completed"] {
        assert_eq!(events.iter().filter(|e| e["event_type"] == t).count(), 1, "{t} in run {run_id}");
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_api_and_two_workers_lose_nothing_when_workers_are_killed() {
    let url = schema("scale_chaos").await;
    let http = reqwest::Client::new();
    let api = api(&url);
    let mut workers = [worker(&url), worker(&url)];
    let base = api.base().to_owned();
    for p in procedures() {
        import(&http, &base, p).await;
    }
    import(
        &http,
        &base,
        json!({"procedure_id": "k9_expire", "version": "1", "workflow_graph": {"start_node": "g", "nodes": {
            "g": {"type": "human_approval", "prompt": "quick?", "timeout_ms": 1200,
                  "on_approve": "end", "on_reject": "end", "on_timeout": "late"},
            "late": {"type": "sequence", "steps": [{"step_id": "set", "action": "set_variable", "variable": "result", "value": "expired"}], "next_node": "end"},
            "end": {"type": "terminate"}}}}),
    )
    .await;
    let kinds = ["k9_wait", "k9_gate", "k9_both", "k9_expire"];
    let mut runs: HashMap<String, &str> = HashMap::new();
    for i in 0..1000 {
        let kind = kinds[i % kinds.len()];
        runs.insert(start_run(&http, &base, kind, i).await, kind);
    }
    // One run followed over SSE on the API process while the workers execute it.
    let followed = runs.iter().find(|(_, k)| **k == "k9_both").map(|(id, _)| id.clone()).expect("a k9_both run");
    let stream = tokio::spawn({
        let (http, base, id) = (http.clone(), base.clone(), followed.clone());
        async move { follow(&http, &base, &id).await }
    });

    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut decided = HashSet::new();
    let mut kills = 0;
    let mut next_kill = tokio::time::Instant::now() + Duration::from_millis(700);
    loop {
        if kills < 3 && tokio::time::Instant::now() >= next_kill {
            // A worker dies at a random moment (mid-commit, mid-claim, holding leases or the leader lock) and a
            // replacement starts.
            let victim = usize::from(rand_bit());
            workers[victim].kill();
            workers[victim] = worker(&url);
            kills += 1;
            next_kill = tokio::time::Instant::now() + Duration::from_millis(900 + 137 * kills);
        }
        let (_, pending) =
            call(&http, reqwest::Method::GET, format!("{base}/api/approvals?status=pending"), None).await;
        for a in pending.as_array().expect("list") {
            let run = a["run_id"].as_str().expect("run").to_owned();
            if runs.get(&run) == Some(&"k9_expire") {
                continue;
            }
            let id = a["approval_id"].as_str().expect("id").to_owned();
            if decided.insert(id.clone()) {
                let (status, body) = call(
                    &http,
                    reqwest::Method::POST,
                    format!("{base}/api/approvals/{id}/decision"),
                    Some(json!({"decision": "approve"})),
                )
                .await;
                assert_eq!(status, 200, "{body}");
            }
        }
        let mut list = Vec::new();
        for offset in [0, 500] {
            let page = format!("{base}/api/runs?limit=500&offset={offset}");
            let (status, page) = call(&http, reqwest::Method::GET, page, None).await;
            assert_eq!(status, 200, "{page}");
            list.extend(page.as_array().expect("runs").iter().cloned());
        }
        let terminal = list
            .iter()
            .filter(|r| ["completed", "failed", "canceled"].contains(&r["status"].as_str().unwrap_or("")))
            .count();
        if terminal == runs.len() && kills == 3 {
            for r in &list {
                let id = r["run_id"].as_str().expect("id");
                assert_eq!(r["status"], "completed", "{r}");
                let expected = match runs[id] {
                    "k9_wait" => "waited",
                    "k9_gate" => "approved",
                    "k9_both" => "both",
                    _ => "expired",
                };
                assert_eq!(r["output_vars"]["result"], expected, "{r}");
            }
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{terminal} of {} runs terminal after 180 s", runs.len());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(decided.len(), runs.values().filter(|k| matches!(**k, "k9_gate" | "k9_both")).count());
    for (id, kind) in &runs {
        let events = assert_clean_history(&http, &base, id).await;
        if *kind == "k9_expire" {
            let expiries = events.iter().filter(|e| e["event_type"] == "approval_decision_received").count();
            assert_eq!(expiries, 1, "the approval of {id} expired exactly once");
        }
    }
    // The SSE client saw the other processes' events in order, each once, ending with the terminal one.
    let streamed = stream.await.expect("stream task");
    let (_, stored) = call(&http, reqwest::Method::GET, format!("{base}/api/runs/{followed}/events"), None).await;
    let stored: Vec<(i64, String)> = stored
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["event_id"].as_i64().expect("id"), e["event_type"].as_str().expect("type").to_owned()))
        .collect();
    assert_eq!(streamed, stored, "the stream shows every stored event once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_runs_resume_on_another_long_before_its_leases_expire() {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    const RUNS: usize = 8;
    /// Leases far longer than the test's wait: only the dead process's lock going away can explain a resume.
    const LEASE_MS: u64 = 60_000;
    let url = schema("scale_failover").await;
    // A slow agent: every call takes 1.5 s. It records each call's run, Idempotency-Key and arrival.
    let calls: Arc<Mutex<Vec<(String, String, Instant)>>> = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/execute",
        axum::routing::post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let run = body["run_id"].as_str().unwrap_or("").to_owned();
                seen.lock().expect("lock").push((run, key, Instant::now()));
                tokio::time::sleep(Duration::from_millis(1500)).await;
                axum::Json(json!({"status": "success", "result": {"done": true}}))
            }
        }),
    );
    let agent_url = crate::serve::spawn_agent(app).await;
    let http = reqwest::Client::new();
    // The API process starts first and leads (it runs the reclaim); the workers come after.
    let api = spawn_leased(&["serve", "--no-workers", "--bind", "127.0.0.1:0"], &url, LEASE_MS);
    let base = api.base().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while call(&http, reqwest::Method::GET, format!("{base}/api/health"), None).await.1["leader"] != true {
        assert!(tokio::time::Instant::now() < deadline, "the API process leads within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let agent = json!({"name": "Slow", "channel": "web", "base_url": agent_url, "capabilities": [{"name": "*"}],
                       "concurrency_limit": RUNS});
    assert_eq!(call(&http, reqwest::Method::POST, format!("{base}/api/agents"), Some(agent)).await.0, 201);
    import(
        &http,
        &base,
        json!({"procedure_id": "slow_step", "version": "1", "workflow_graph": {"start_node": "go", "nodes": {
            "go": {"type": "sequence", "agent": "web",
                   "steps": [{"step_id": "work", "action": "work", "output_variable": "r"}], "next_node": "end"},
            "end": {"type": "terminate"}}}}),
    )
    .await;
    let mut victim = spawn_leased(&["worker", "--workers", "8"], &url, LEASE_MS);
    let mut runs = Vec::new();
    for i in 0..RUNS {
        runs.push(start_run(&http, &base, "slow_step", i).await);
    }
    // Every run's step is in flight on the victim (the only worker process yet).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while calls.lock().expect("lock").len() < RUNS {
        assert!(tokio::time::Instant::now() < deadline, "the victim calls the agent for every run within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let survivor = spawn_leased(&["worker", "--workers", "8"], &url, LEASE_MS);
    victim.kill();
    let killed = Instant::now();
    // Every run completes on the survivor, far sooner than the 60 s leases (a bounded wait, not a timing claim).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for run in &runs {
        loop {
            let (_, r) = call(&http, reqwest::Method::GET, format!("{base}/api/runs/{run}"), None).await;
            if r["status"] == "completed" {
                break;
            }
            assert_ne!(r["status"], "failed", "{r}");
            assert!(tokio::time::Instant::now() < deadline, "run {run} not completed 20 s after the kill: {r}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_clean_history(&http, &base, run).await;
    }
    let calls = calls.lock().expect("lock").clone();
    let mut resumed = Duration::ZERO;
    for run in &runs {
        let mine: Vec<&(String, String, Instant)> = calls.iter().filter(|(r, _, _)| r == run).collect();
        // Called by the victim, then once again by the survivor, under the same Idempotency-Key.
        assert_eq!(mine.len(), 2, "run {run}: {mine:?}");
        assert!(!mine[0].1.is_empty() && mine[0].1 == mine[1].1, "one Idempotency-Key for run {run}: {mine:?}");
        assert!(mine[0].2 < killed && mine[1].2 > killed, "run {run}: {mine:?}");
        resumed = resumed.max(mine[1].2 - killed);
    }
    // The figure BENCHMARKS.md records (printed with --no-capture).
    println!("failover: {RUNS} runs of a SIGKILLed worker resumed on another within {} ms", resumed.as_millis());
    drop(survivor);
}

/// A pseudo-random bit from the clock (no test dependency on a random number generator).
fn rand_bit() -> bool {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() & 1 == 1)
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_decisions_over_two_api_processes_have_one_winner() {
    let url = schema("scale_decisions").await;
    let http = reqwest::Client::new();
    let (a, b, _w) = (api(&url), api(&url), worker(&url));
    let gate = procedures().into_iter().nth(1).expect("k9_gate");
    import(&http, a.base(), gate).await;
    let run = start_run(&http, a.base(), "k9_gate", 0).await;
    let approval = loop {
        let (_, list) =
            call(&http, reqwest::Method::GET, format!("{}/api/approvals?run_id={run}", b.base()), None).await;
        if let Some(id) = list.as_array().and_then(|l| l.first()).and_then(|a| a["approval_id"].as_str()) {
            break id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut calls = Vec::new();
    for i in 0..100 {
        let base = if i % 2 == 0 { a.base() } else { b.base() }.to_owned();
        let (http, approval) = (http.clone(), approval.clone());
        let decision = if i % 3 == 0 { "reject" } else { "approve" };
        calls.push(tokio::spawn(async move {
            call(
                &http,
                reqwest::Method::POST,
                format!("{base}/api/approvals/{approval}/decision"),
                Some(json!({"decision": decision, "decided_by": format!("user{i}")})),
            )
            .await
            .0
        }));
    }
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.expect("call"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 99, "{statuses:?}");
    let events = loop {
        let (_, r) = call(&http, reqwest::Method::GET, format!("{}/api/runs/{run}", a.base()), None).await;
        if r["status"] == "completed" {
            break assert_clean_history(&http, a.base(), &run).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let decisions = events.iter().filter(|e| e["event_type"] == "approval_decision_received").count();
    assert_eq!(decisions, 1, "one decision recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_takes_over_the_leader_role_within_seconds() {
    let url = schema("scale_leader").await;
    let http = reqwest::Client::new();
    let mut first = api(&url);
    let second = api(&url);
    let leader_of = |p: &Proc| {
        let (http, base) = (http.clone(), p.base().to_owned());
        async move { call(&http, reqwest::Method::GET, format!("{base}/api/health"), None).await.1["leader"] == true }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (l1, l2) = (leader_of(&first).await, leader_of(&second).await);
        assert!(!(l1 && l2), "never two leaders");
        if l1 || l2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "a leader is elected within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Kill whichever leads; the other takes over.
    let (mut leader, follower) = if leader_of(&first).await { (first, second) } else { (second, first) };
    leader.kill();
    let killed = tokio::time::Instant::now();
    while !leader_of(&follower).await {
        assert!(killed.elapsed() < Duration::from_secs(10), "the follower leads within 10 s of the leader's death");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first = follower;
    assert!(leader_of(&first).await);
}

/// Whether the process at `base` holds the leader lock (its `/api/health` says so).
async fn leads(http: &reqwest::Client, base: &str) -> bool {
    call(http, reqwest::Method::GET, format!("{base}/api/health"), None).await.1["leader"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_trigger_fires_every_tick_once_across_a_leader_kill() {
    use chrono::{DateTime, Utc};
    let url = schema("scale_trigger_ticks").await;
    let http = reqwest::Client::new();
    let mut procs = vec![api(&url), api(&url)];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let leader = loop {
        let (a, b) = (leads(&http, procs[0].base()).await, leads(&http, procs[1].base()).await);
        assert!(!(a && b), "never two leaders");
        if a || b {
            break usize::from(b);
        }
        assert!(tokio::time::Instant::now() < deadline, "a leader is elected within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let doc = json!({"procedure_id": "every_second", "version": "1",
        "trigger": {"type": "scheduled", "schedule": "* * * * * *"},
        "workflow_graph": {"start_node": "end", "nodes": {"end": {"type": "terminate"}}}});
    import(&http, procs[1 - leader].base(), doc).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    // The leader dies mid-schedule (SIGKILL: it may be inside a tick's transaction); the other process takes over.
    let mut victim = procs.remove(leader);
    let survivor = procs.pop().expect("the other process");
    victim.kill();
    let killed: DateTime<Utc> = Utc::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !leads(&http, survivor.base()).await {
        assert!(tokio::time::Instant::now() < deadline, "the survivor leads within 15 s of the leader's death");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took_over = Utc::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(survivor);
    // Every process is gone: a store opened now reads what they recorded (and leads nothing that matters).
    let store = ckp_store::PgStore::connect(&url, ckp_store::PgOptions::default()).await.expect("connects");
    let fires = ckp_store::TriggerStore::trigger_fires(&store, "every_second", "1", 10_000).await.expect("fires");
    let mut ticks: Vec<DateTime<Utc>> = Vec::new();
    let mut fired_runs = HashSet::new();
    for f in &fires {
        // Default catch-up window (60 s) is far longer than the takeover: no tick may be skipped.
        assert_eq!((f.outcome.as_str(), &f.reason), ("started", &None), "every tick starts a run: {f:?}");
        let at = f.scheduled_at.as_deref().expect("a tick has its time");
        ticks.push(DateTime::parse_from_rfc3339(at).expect("RFC 3339").with_timezone(&Utc));
        assert!(fired_runs.insert(f.run_id.clone().expect("a started fire has its run")), "one run per fire: {f:?}");
    }
    ticks.sort();
    assert!(ticks.len() >= 8, "about 12 s of ticks recorded: {ticks:?}");
    for pair in ticks.windows(2) {
        assert_ne!(pair[0], pair[1], "tick {} fired twice", pair[0]);
        assert_eq!(
            pair[1] - pair[0],
            chrono::TimeDelta::seconds(1),
            "ticks missing between {} and {}",
            pair[0],
            pair[1]
        );
    }
    let (first, last) = (ticks[0], ticks[ticks.len() - 1]);
    assert!(first < killed && last > took_over, "ticks from {first} to {last} span the kill at {killed}");
    // No run of the schedule exists without its fire: the runs are exactly the fires' runs.
    let filter = ckp_store::RunFilter {
        procedure_id: Some("every_second".into()),
        limit: 10_000,
        ..ckp_store::RunFilter::default()
    };
    let runs = ckp_store::RunStore::list_runs(&store, filter).await.expect("runs");
    let run_ids: HashSet<Option<String>> = runs.iter().map(|r| Some(r.run_id.clone())).collect();
    assert_eq!(run_ids, fired_runs.into_iter().map(Some).collect::<HashSet<_>>(), "the runs are the fires' runs");
    for r in &runs {
        assert_eq!((r.trigger_type.as_deref(), r.triggered_by.as_deref()), (Some("schedule"), Some("scheduler")));
    }
    println!("trigger failover: {} ticks from {first} to {last}, leader killed at {killed}", ticks.len());
}

/// A PostgreSQL server of this test's own (initdb in a temporary directory, run as the `postgres` user on a free
/// port), so restarting it disturbs no other test.
struct PrivatePostgres {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start(name: &str) -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries (Debian: /usr/lib/postgresql/*/bin) are needed for this test")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").exists())
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = std::env::temp_dir().join(format!("ckp-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("data dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let pg = PrivatePostgres { bin, dir, port };
        if running_as_root() {
            let out = Command::new("chown").args(["-R", "postgres"]).arg(&pg.dir).output().expect("chown");
            assert!(out.status.success(), "chown: {}", String::from_utf8_lossy(&out.stderr));
        }
        let (initdb, data) = (pg.bin.join("initdb"), pg.dir.join("data"));
        Self::as_postgres(&[&initdb.to_string_lossy(), "-A", "trust", "-U", "postgres", "-D", &data.to_string_lossy()]);
        pg.ctl("start");
        pg
    }

    /// Runs a command as the `postgres` user when this test runs as root (initdb refuses root).
    fn as_postgres(args: &[&str]) {
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(args);
            c
        } else {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        let out = cmd.output().expect("command runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn ctl(&self, action: &str) {
        let ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.display());
        Self::as_postgres(&[
            &ctl.to_string_lossy(),
            action,
            "-w",
            "-m",
            "fast",
            "-D",
            &data.to_string_lossy(),
            "-l",
            &log.to_string_lossy(),
            "-o",
            &opts,
        ]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"))
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(ctl);
            c
        } else {
            Command::new(ctl)
        };
        let _ = cmd.args(["stop", "-m", "immediate", "-D"]).arg(data).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_no_run() {
    let pg = PrivatePostgres::start("restart");
    let url = pg.url();
    let http = reqwest::Client::new();
    let (api, _w1, _w2) = (api(&url), worker(&url), worker(&url));
    let base = api.base().to_owned();
    let procs = procedures();
    import(&http, &base, procs[0].clone()).await;
    let mut runs = Vec::new();
    for i in 0..300 {
        runs.push(start_run(&http, &base, "k9_wait", i).await);
    }
    // Every connection of every process is cut while the runs sleep in durable timers and execute.
    tokio::time::sleep(Duration::from_millis(400)).await;
    pg.ctl("restart");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut done = 0;
        for id in &runs {
            let (status, r) = call(&http, reqwest::Method::GET, format!("{base}/api/runs/{id}"), None).await;
            if status == 200 && r["status"] == "completed" {
                assert_eq!(r["output_vars"]["result"], "waited", "{r}");
                done += 1;
            }
        }
        if done == runs.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{done} of {} runs completed 90 s after the restart",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for id in &runs {
        assert_clean_history(&http, &base, id).await;
    }
    // New work is accepted and done after the restart too.
    let late = start_run(&http, &base, "k9_wait", 1000).await;
    loop {
        let (_, r) = call(&http, reqwest::Method::GET, format!("{base}/api/runs/{late}"), None).await;
        if r["status"] == "completed" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "a run started after the restart completes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
