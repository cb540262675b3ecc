//! `ckp bench`: a load generator against a running server over HTTP, the way users measure (like pgbench). It
//! imports a procedure (a generated K-node chain, an approval procedure, or any CKP file), runs N runs at
//! concurrency C, follows each run's SSE stream to its terminal event (one request per run, woken by commits: no
//! polling load on the server), and reports throughput, latency percentiles from POST to terminal status,
//! approval decision → completed latency and, given the server's pid, its CPU per run and RSS.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

/// What the runs execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// K `sequence` nodes with two internal steps each, then `logic` and `terminate`.
    Chain,
    /// A step, a human approval (approved by the bench as soon as it is asked), a terminate.
    Approval,
    /// A procedure of K nodes that exercises every pass of the compiler (`ckp_core::testing::large_procedure`):
    /// for measuring import, which the report times.
    Large,
}

/// Options of `ckp bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// API key sent as `X-API-Key` with every request (a server with authentication on).
    #[arg(long, env = "CKP_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The generated procedure to run (ignored with --file).
    #[arg(long, value_enum, default_value_t = Workload::Chain)]
    pub workload: Workload,
    /// Run this CKP file instead (imported under a fresh procedure id); approvals it asks are approved.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Input variables (a JSON object) for every run.
    #[arg(long, value_name = "JSON")]
    pub inputs: Option<String>,
    /// Chain length.
    #[arg(short = 'k', long, default_value_t = 10)]
    pub k: usize,
    /// Runs.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub runs: usize,
    /// Runs in flight at once.
    #[arg(short = 'c', long, default_value_t = 32)]
    pub concurrency: usize,
    /// Runs before measuring (not counted).
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// The server's process id: report its CPU time per run and its resident memory.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print the generated procedure (`--workload`, `-k`) as JSON and exit, without a server: the input of
    /// `ckp validate` measurements in BENCHMARKS.md.
    #[arg(long, hide = true)]
    pub print_procedure: bool,
}

/// The K-node chain of the performance budget (DESIGN §6).
pub fn chain(id: &str, k: usize) -> Value {
    let mut nodes = Map::new();
    for i in 0..k {
        let next = if i + 1 < k { format!("n{}", i + 1) } else { "check".into() };
        nodes.insert(
            format!("n{i}"),
            json!({"type": "sequence", "steps": [
                {"step_id": "set", "action": "set_variable", "variable": "last", "value": format!("n{i}")},
                {"step_id": "log", "action": "log", "message": "at {{last}}"}
            ], "next_node": next}),
        );
    }
    nodes.insert(
        "check".into(),
        json!({"type": "logic", "rules": [{"condition": format!("last == 'n{}'", k.saturating_sub(1)), "next_node": "done"}],
               "default_next_node": "fail"}),
    );
    nodes.insert("done".into(), json!({"type": "terminate", "status": "success"}));
    nodes.insert("fail".into(), json!({"type": "terminate", "status": "failed"}));
    json!({"procedure_id": id, "version": "1", "status": "active", "workflow_graph": {"start_node": "n0", "nodes": nodes}})
}

/// The approval procedure: one step, one approval, the end.
pub fn approval(id: &str) -> Value {
    json!({"procedure_id": id, "version": "1", "status": "active", "workflow_graph": {"start_node": "prepare", "nodes": {
        "prepare": {"type": "sequence", "steps": [{"step_id": "set", "action": "set_variable", "variable": "stage", "value": "asked"}],
                    "next_node": "gate"},
        "gate": {"type": "human_approval", "prompt": "bench {{run_id}}", "on_approve": "done", "on_reject": "done"},
        "done": {"type": "terminate", "status": "success"}
    }}})
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    total: Duration,
    decision: Option<Duration>,
    completed: bool,
}

/// The report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Workload description.
    pub workload: String,
    /// Runs measured.
    pub runs: usize,
    /// Concurrency.
    pub concurrency: usize,
    /// Runs that did not complete.
    pub not_completed: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// `POST /api/procedures` of the procedure, milliseconds.
    pub import_ms: f64,
    /// Runs per second.
    pub runs_per_second: f64,
    /// Nodes per second (chain: K + 2 per run).
    pub nodes_per_second: Option<f64>,
    /// POST → terminal, milliseconds: p50, p95, p99.
    pub latency_ms: [f64; 3],
    /// Decision → terminal, milliseconds: p50, p95, p99 (approval workloads).
    pub decision_ms: Option<[f64; 3]>,
    /// Server CPU time per run, microseconds.
    pub server_cpu_us_per_run: Option<f64>,
    /// Server resident memory right after the runs, MiB.
    pub server_rss_mib: Option<f64>,
    /// Server resident memory once it has been quiet for [`SETTLE`], MiB (it gives freed memory back when the
    /// load stops).
    pub server_rss_settled_mib: Option<f64>,
}

/// How long the bench waits after the runs before reading the server's settled RSS.
pub const SETTLE: Duration = Duration::from_secs(3);

fn percentiles(mut v: Vec<Duration>) -> [f64; 3] {
    if v.is_empty() {
        return [0.0; 3];
    }
    v.sort();
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1000.0
    };
    [at(0.50), at(0.95), at(0.99)]
}

/// User + system CPU time of a process, in seconds (Linux `/proc`; USER_HZ is 100).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Resident memory of a process, MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct Bench {
    http: reqwest::Client,
    url: String,
    procedure_id: String,
    inputs: Value,
}

impl Bench {
    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| format!("POST {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("POST {path}: {status}: {body}"));
        }
        Ok(body)
    }

    /// One run: POST, then its event stream until the terminal event, approving what it asks.
    async fn one(&self) -> Result<Sample, String> {
        let start = Instant::now();
        let run = self.post("/api/runs", json!({"procedure_id": self.procedure_id, "input_vars": self.inputs})).await?;
        let run_id = run["run_id"].as_str().ok_or("no run_id in the answer")?.to_owned();
        let mut decided: Option<Instant> = None;
        let mut last_id = 0i64;
        // A stream can end early (a server restart); reconnect from the last event seen.
        for _ in 0..10 {
            let resp = self
                .http
                .get(format!("{}/api/runs/{run_id}/stream", self.url))
                .header("Last-Event-ID", last_id.to_string())
                .send()
                .await
                .map_err(|e| format!("stream: {e}"))?;
            let mut resp = resp;
            let mut buf = String::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| format!("stream: {e}"))? {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    if let Some(id) = block.lines().find_map(|l| l.strip_prefix("id:")) {
                        last_id = id.trim().parse().unwrap_or(last_id);
                    }
                    let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else { continue };
                    // Only the few events the bench acts on are parsed; the rest are counted by id only, so the
                    // load generator spends little of the machine it shares with the server.
                    const KINDS: [(&str, &str); 4] = [
                        ("approval_requested", "\"event_type\":\"approval_requested\""),
                        ("run_completed", "\"event_type\":\"run_completed\""),
                        ("run_failed", "\"event_type\":\"run_failed\""),
                        ("run_canceled", "\"event_type\":\"run_canceled\""),
                    ];
                    let kind = KINDS.into_iter().find(|(_, pattern)| data.contains(pattern)).map(|(t, _)| t);
                    match kind {
                        Some("approval_requested") => {
                            let event: Value = serde_json::from_str(data.trim()).unwrap_or_default();
                            let approval = event["payload"]["approval_id"].as_str().unwrap_or_default().to_owned();
                            decided = Some(Instant::now());
                            self.post(
                                &format!("/api/approvals/{approval}/decision"),
                                json!({"decision": "approve", "decided_by": "ckp-bench"}),
                            )
                            .await?;
                        }
                        Some(t) => {
                            let end = Instant::now();
                            return Ok(Sample {
                                total: end - start,
                                decision: decided.map(|d| end - d),
                                completed: t == "run_completed",
                            });
                        }
                        None => {}
                    }
                }
            }
        }
        Err(format!("run {run_id}: the stream ended before the run did"))
    }
}

async fn drive(bench: Arc<Bench>, n: usize, concurrency: usize) -> Result<(Vec<Sample>, Duration), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (bench, next) = (bench.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                samples.push(bench.one().await?);
            }
            Ok::<_, String>(samples)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    Ok((all, start.elapsed()))
}

/// Runs the benchmark and prints the report.
pub fn run(args: &BenchArgs, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    if args.print_procedure {
        return match procedure(args, "bench") {
            Ok((doc, _, _)) => writeln!(out, "{doc}").map(|()| 0),
            Err(e) => writeln!(err, "ckp bench: {e}").map(|()| super::EXIT_UNREADABLE),
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match runtime.block_on(bench(args)) {
        Ok(report) => {
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report).unwrap_or_default())?;
            } else {
                print_report(out, &report)?;
            }
            Ok(if report.not_completed == 0 { 0 } else { super::EXIT_ERRORS })
        }
        Err(e) => {
            writeln!(err, "ckp bench: {e}")?;
            Ok(super::EXIT_UNREADABLE)
        }
    }
}

/// The procedure the runs execute, imported as `id`: its document, a description and its nodes per run.
fn procedure(args: &BenchArgs, id: &str) -> Result<(Value, String, Option<usize>), String> {
    Ok(match &args.file {
        Some(path) => {
            let text = super::read_text(path)?;
            let mut doc: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(o) = doc.as_object_mut() {
                o.insert("procedure_id".into(), Value::from(id));
            }
            (doc, format!("file {}", path.display()), None)
        }
        None => match args.workload {
            Workload::Chain => {
                (chain(id, args.k.max(1)), format!("chain K={}", args.k.max(1)), Some(args.k.max(1) + 2))
            }
            Workload::Approval => (approval(id), "approval".into(), Some(3)),
            Workload::Large => {
                let k = args.k.max(2);
                (ckp_core::testing::large_procedure(id, k), format!("large K={k}"), None)
            }
        },
    })
}

async fn bench(args: &BenchArgs) -> Result<Report, String> {
    if args.runs == 0 || args.concurrency == 0 {
        return Err("--runs and --concurrency must be at least 1".into());
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let id = format!("bench_{}", &suffix[..12]);
    let (doc, description, nodes_per_run) = procedure(args, &id)?;
    let inputs = match &args.inputs {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("--inputs is not JSON: {e}"))?,
        None => json!({}),
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .default_headers(auth_headers(args.api_key.as_deref())?)
        .build()
        .map_err(|e| e.to_string())?;
    let bench = Arc::new(Bench { http, url: args.url.trim_end_matches('/').to_owned(), procedure_id: id, inputs });
    let imported = Instant::now();
    bench.post("/api/procedures", json!({"ckp_json": doc})).await?;
    let import_ms = imported.elapsed().as_secs_f64() * 1000.0;
    if args.warmup > 0 {
        drive(bench.clone(), args.warmup, args.concurrency).await?;
    }
    let cpu_before = args.pid.and_then(cpu_seconds);
    let (samples, wall) = drive(bench, args.runs, args.concurrency).await?;
    let cpu_after = args.pid.and_then(cpu_seconds);
    let n = samples.len();
    let runs_per_second = n as f64 / wall.as_secs_f64();
    let decisions: Vec<Duration> = samples.iter().filter_map(|s| s.decision).collect();
    Ok(Report {
        workload: description,
        runs: n,
        concurrency: args.concurrency,
        not_completed: samples.iter().filter(|s| !s.completed).count(),
        seconds: wall.as_secs_f64(),
        import_ms,
        runs_per_second,
        nodes_per_second: nodes_per_run.map(|k| runs_per_second * k as f64),
        latency_ms: percentiles(samples.iter().map(|s| s.total).collect()),
        decision_ms: (!decisions.is_empty()).then(|| percentiles(decisions)),
        server_cpu_us_per_run: match (cpu_before, cpu_after) {
            (Some(a), Some(b)) => Some((b - a) * 1e6 / n as f64),
            _ => None,
        },
        server_rss_mib: args.pid.and_then(rss_mib),
        server_rss_settled_mib: match args.pid {
            Some(pid) => {
                tokio::time::sleep(SETTLE).await;
                rss_mib(pid)
            }
            None => None,
        },
    })
}

fn print_report(out: &mut dyn Write, r: &Report) -> std::io::Result<()> {
    writeln!(out, "ckp bench: {}, {} runs at concurrency {} in {:.2} s", r.workload, r.runs, r.concurrency, r.seconds)?;
    writeln!(out, "  import (ms)             {:>10.1}", r.import_ms)?;
    writeln!(out, "  runs/s                  {:>10.1}", r.runs_per_second)?;
    if let Some(n) = r.nodes_per_second {
        writeln!(out, "  nodes/s                 {n:>10.0}")?;
    }
    let [p50, p95, p99] = r.latency_ms;
    writeln!(out, "  POST → terminal (ms)    p50 {p50:.2}  p95 {p95:.2}  p99 {p99:.2}")?;
    if let Some([p50, p95, p99]) = r.decision_ms {
        writeln!(out, "  decision → terminal (ms) p50 {p50:.2}  p95 {p95:.2}  p99 {p99:.2}")?;
    }
    if let Some(cpu) = r.server_cpu_us_per_run {
        writeln!(out, "  server CPU per run      {cpu:>10.0} µs")?;
    }
    if let Some(rss) = r.server_rss_mib {
        writeln!(out, "  server RSS              {rss:>10.1} MiB")?;
    }
    if let Some(rss) = r.server_rss_settled_mib {
        writeln!(out, "  server RSS, quiet {}s    {rss:>10.1} MiB", SETTLE.as_secs())?;
    }
    writeln!(out, "  not completed           {:>10}", r.not_completed)?;
    Ok(())
}

/// `X-API-Key` for every request when a key is given.
fn auth_headers(key: Option<&str>) -> Result<reqwest::header::HeaderMap, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = key {
        let mut value = reqwest::header::HeaderValue::from_str(key.trim())
            .map_err(|_| "--api-key: not a valid header value".to_owned())?;
        value.set_sensitive(true);
        headers.insert("x-api-key", value);
    }
    Ok(headers)
}
