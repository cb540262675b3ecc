//! `ckp run FILE`: executes a procedure locally with a live timeline, asks approval questions on the terminal
//! (or answers them from `--approve`), and exits 0 only when the run completes.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ckp_engine::journal::PendingApproval;
use ckp_engine::{Decision, Engine, EngineConfig, Event, EventSink, MemoryJournal, RunOutcome};
use serde_json::{Map, Value};

use super::{EXIT_ERRORS, EXIT_UNREADABLE, print_human, read_text};

/// How approvals are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApproveMode {
    /// Approve every request.
    All,
    /// Reject every request.
    RejectAll,
}

/// Options of `ckp run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The CKP file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// An input variable, `name=value` (the value is JSON when it parses as JSON, else a string). Repeatable.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub input: Vec<String>,
    /// A JSON file with an object of input variables (`--input` overrides its keys).
    #[arg(long, value_name = "FILE.json")]
    pub inputs: Option<PathBuf>,
    /// Answer approvals without asking.
    #[arg(long, value_enum)]
    pub approve: Option<ApproveMode>,
    /// Print the raw events as JSON lines on stdout instead of the timeline.
    #[arg(long, value_name = "FORMAT", value_parser = ["json"])]
    pub events: Option<String>,
    /// Answer every external step (agents, MCP, HTTP) with a mock result instead of failing for want of an executor.
    #[arg(long)]
    pub mock_external: bool,
    /// Continue the run RUN_ID of `--db` or `--database-url` (after a crash, or to answer its approvals) instead
    /// of starting one.
    #[arg(long, value_name = "RUN_ID")]
    pub resume: Option<String>,
    /// Where subflows find their child procedures: every `*.ckp.json` in this directory (default: FILE's directory).
    #[arg(long, value_name = "DIR")]
    pub procedures: Option<PathBuf>,
    /// An agent for a channel, `CHANNEL=URL` (LangOrch's `POST {URL}/execute` protocol). Repeatable.
    #[arg(long = "agent", value_name = "CHANNEL=URL")]
    pub agents: Vec<String>,
    /// `ckp serve`'s TOML configuration file (its LLM, MCP, secrets providers and prices; docs/settings.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The settings' flags of `ckp run` (LLM, MCP, database, logs).
    #[command(flatten)]
    pub settings: super::settings::SettingFlags<{ super::settings::RUN }>,
}

/// Agents from `--agent CHANNEL=URL`.
fn agents(args: &RunArgs) -> Result<Option<Arc<dyn ckp_engine::effects::Agents>>, String> {
    let mut agents = Vec::new();
    for a in &args.agents {
        let (channel, url) = a.split_once('=').ok_or_else(|| format!("--agent {a}: expected CHANNEL=URL"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("--agent {a}: the URL must start with http:// or https://"));
        }
        agents.push((channel.trim().to_owned(), url.trim().to_owned()));
    }
    Ok((!agents.is_empty())
        .then(|| Arc::new(ckp_connectors::agents::StaticAgents::new(agents)) as Arc<dyn ckp_engine::effects::Agents>))
}

/// Compiles every `*.ckp.json` of `dir` that compiles (children of subflows).
fn load_procedures(dir: &std::path::Path) -> ckp_engine::engine::ProcedureSet {
    let mut set = Vec::new();
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
    paths.sort();
    for path in paths.into_iter().filter(|p| p.to_string_lossy().ends_with(".ckp.json")) {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Some(p) = ckp_core::compile(&text).procedure
        {
            set.push(Arc::new(p));
        }
    }
    ckp_engine::engine::ProcedureSet(set)
}

/// Prints committed events as a timeline (or JSON lines).
struct Timeline {
    out: Mutex<Box<dyn Write + Send>>,
    json: bool,
    start: Instant,
}

impl EventSink for Timeline {
    fn committed(&self, _run_id: &str, events: &[Event]) {
        let Ok(mut out) = self.out.lock() else { return };
        for e in events {
            let line = if self.json {
                serde_json::to_string(e).unwrap_or_default()
            } else {
                match timeline_line(e) {
                    Some(text) => format!("{:>8.3}s  {text}", self.start.elapsed().as_secs_f64()),
                    None => continue,
                }
            };
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
}

fn timeline_line(e: &Event) -> Option<String> {
    let node = e.node_id.as_deref().unwrap_or("");
    let step = e.step_id.as_deref().unwrap_or("");
    let indent =
        if e.payload.get("loop_index").is_some() || e.payload.get("branch_id").is_some() { "    " } else { "" };
    let tag = match (e.payload.get("branch_id"), e.payload.get("loop_index")) {
        (Some(b), _) => format!(" [branch {}]", b.as_str().unwrap_or("")),
        (None, Some(i)) => format!(" [iteration {i}]"),
        _ => String::new(),
    };
    let s = |k: &str| e.payload.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Some(match e.event_type.as_str() {
        "execution_started" => "run started".to_owned(),
        "execution_resumed" => format!("run resumed ({})", s("resume_reason")),
        "node_started" => format!("{indent}▶ {node}{tag}"),
        "node_completed" => format!("{indent}✓ {node}"),
        "node_paused" => format!("{indent}⏸ {node} waits for a decision"),
        "node_error" => format!("{indent}✗ {node}: {}", s("error")),
        "step_completed" => {
            let ms = e.payload.get("duration_ms").map(|d| format!(" ({d} ms)")).unwrap_or_default();
            format!("{indent}    · {step} {}{ms}", s("action"))
        }
        "step_retrying" => format!(
            "{indent}    ↻ {step} retry {} in {} ms: {}",
            e.payload["attempt"],
            e.payload["delay_ms"],
            s("error")
        ),
        "step_timeout" => format!("{indent}    ⌛ {step} timed out after {} ms", e.payload["timeout_ms"]),
        "step_log" => format!("{indent}    {} {}", s("level"), s("message")),
        "step_mock_applied" => format!("{indent}    ~ {step} {} mocked", s("action")),
        "approval_requested" => format!("approval requested at {node}"),
        "approval_decision_received" => format!("decision at {node}: {}", e.payload["decision"]),
        "llm_usage" => format!(
            "{indent}    LLM {} tokens {}+{} (${:.4})",
            s("model"),
            e.payload["prompt_tokens"],
            e.payload["completion_tokens"],
            e.payload["cost_usd"].as_f64().unwrap_or(0.0)
        ),
        "sla_breached" => {
            format!("{indent}! {node} exceeded its SLA ({} ms > {} ms)", e.payload["elapsed_ms"], e.payload["limit_ms"])
        }
        "run_completed" => "run completed".to_owned(),
        "run_failed" => format!("run failed: {}", e.payload["error"]["message"].as_str().unwrap_or("")),
        "run_canceled" => "run canceled".to_owned(),
        _ => return None,
    })
}

fn parse_inputs(args: &RunArgs) -> Result<Map<String, Value>, String> {
    let mut map = match &args.inputs {
        Some(path) => {
            let text = read_text(path)?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(format!("{}: must hold a JSON object of input variables", path.display())),
                Err(e) => return Err(format!("{}: invalid JSON: {e}", path.display())),
            }
        }
        None => Map::new(),
    };
    for pair in &args.input {
        let Some((name, raw)) = pair.split_once('=') else {
            return Err(format!("--input `{pair}`: write NAME=VALUE"));
        };
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::from(raw));
        map.insert(name.trim().to_owned(), value);
    }
    Ok(map)
}

fn ask(approval: &PendingApproval, input: &mut dyn BufRead, err: &mut dyn Write) -> std::io::Result<Value> {
    writeln!(err, "\n── approval needed at {} ({}) ──", approval.node_id, approval.decision_type)?;
    writeln!(err, "{}", approval.prompt)?;
    if !approval.context_data.is_null() {
        writeln!(err, "context: {}", approval.context_data)?;
    }
    let hint = match approval.decision_type.as_str() {
        "select_option" => format!("choose one of {}", approval.options),
        "provide_input" => "type your input".to_owned(),
        _ => "[a]pprove or [r]eject".to_owned(),
    };
    loop {
        write!(err, "{hint}: ")?;
        err.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "no answer on standard input; use --approve",
            ));
        }
        let answer = line.trim();
        let value = match (approval.decision_type.as_str(), answer.to_ascii_lowercase().as_str()) {
            ("approve_reject", "a" | "approve" | "approved" | "y" | "yes") => Some(Value::from("approved")),
            ("approve_reject", "r" | "reject" | "rejected" | "n" | "no") => Some(Value::from("rejected")),
            ("approve_reject", _) => None,
            (_, "") => None,
            _ => Some(Value::from(answer)),
        };
        if let Some(v) = value {
            return Ok(v);
        }
    }
}

/// Runs `ckp run`.
pub fn run(args: &RunArgs, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    let text = match read_text(&args.file) {
        Ok(t) => t,
        Err(e) => {
            writeln!(err, "ckp: {e}")?;
            return Ok(EXIT_UNREADABLE);
        }
    };
    let compilation = ckp_core::compile(&text);
    let Some(procedure) = compilation.procedure else {
        print_human(err, &args.file.display().to_string(), &compilation.diagnostics)?;
        writeln!(err, "ckp: {} has errors; fix them first", args.file.display())?;
        return Ok(EXIT_ERRORS);
    };
    let inputs = match parse_inputs(args) {
        Ok(m) => m,
        Err(e) => {
            writeln!(err, "ckp: {e}")?;
            return Ok(EXIT_UNREADABLE);
        }
    };
    let config = match ckp_server::settings::load(args.config.as_deref(), &|k| std::env::var(k).ok(), &args.settings.0)
    {
        Ok(loaded) => loaded.config,
        Err(e) => {
            writeln!(err, "ckp: {e}")?;
            return Ok(EXIT_UNREADABLE);
        }
    };
    if let Err(e) = crate::telemetry::init(config.log_format, config.log_filter()) {
        writeln!(err, "ckp: {e}")?;
        return Ok(EXIT_UNREADABLE);
    }
    if config.db.is_some() && config.database_url.is_some() {
        writeln!(err, "ckp: db and database_url are both set: keep the run in one database")?;
        return Ok(EXIT_UNREADABLE);
    }
    let persisted = config.db.is_some() || config.database_url.is_some();
    if args.resume.is_some() && !persisted {
        writeln!(err, "ckp: --resume needs the run's database: --db or --database-url")?;
        return Ok(EXIT_UNREADABLE);
    }
    let agents = match agents(args) {
        Ok(a) => a,
        Err(e) => {
            writeln!(err, "ckp: {e}")?;
            return Ok(EXIT_UNREADABLE);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let json = args.events.is_some();
    let sink_out: Box<dyn Write + Send> = if json { Box::new(std::io::stdout()) } else { Box::new(std::io::stderr()) };
    let timeline = Arc::new(Timeline { out: Mutex::new(sink_out), json, start: Instant::now() });
    let dir = args.procedures.clone().unwrap_or_else(|| args.file.parent().map(PathBuf::from).unwrap_or_default());
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    // The run's database keeps the journal and serves the `db` secrets provider.
    let (journal, store): (Arc<dyn ckp_engine::Journal>, Option<Arc<dyn ckp_store::Store>>) =
        match (&config.db, &config.database_url) {
            (Some(path), _) => match ckp_store::SqliteStore::open(path, ckp_store::SqliteOptions::default()) {
                Ok(store) => {
                    let store = Arc::new(store);
                    (store.clone(), Some(store))
                }
                Err(e) => {
                    writeln!(err, "ckp: {}: {e}", path.display())?;
                    return Ok(EXIT_UNREADABLE);
                }
            },
            (None, Some(url)) => {
                let options = ckp_store::PgOptions { pool_size: 2, ..ckp_store::PgOptions::default() };
                match runtime.block_on(ckp_store::PgStore::connect(url.expose(), options)) {
                    Ok(store) => {
                        let store = Arc::new(store);
                        (store.clone(), Some(store))
                    }
                    Err(e) => {
                        writeln!(err, "ckp: {e}")?;
                        return Ok(EXIT_UNREADABLE);
                    }
                }
            }
            (None, None) => (Arc::new(MemoryJournal::new()), None),
        };
    let built = ckp_server::effects::egress(&config).and_then(|egress| {
        ckp_server::effects::build(&config, egress, agents, |secrets| match store {
            Some(store) => secrets.with_sealed(Arc::new(ckp_server::ports::StorePorts::new(store))),
            None => secrets,
        })
    });
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            writeln!(err, "ckp: {e}")?;
            return Ok(EXIT_UNREADABLE);
        }
    };
    let mcp = built.mcp;
    let engine_config = EngineConfig { mock_external: args.mock_external, ..built.engine };
    let effects = built.effects;
    let engine = Engine::new(journal, effects)
        .with_sink(timeline)
        .with_config(engine_config)
        .with_procedures(Arc::new(load_procedures(&dir)));
    let procedure = Arc::new(procedure);
    let run_id = args.resume.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if persisted && args.resume.is_none() {
        writeln!(err, "run {run_id} (resume with --resume {run_id})")?;
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let outcome = runtime.block_on(async {
        let mut outcome = match &args.resume {
            Some(id) => engine.resume(procedure.clone(), id).await,
            None => engine.start(procedure.clone(), &run_id, inputs).await,
        };
        loop {
            outcome = match outcome {
                Ok(RunOutcome::WaitingApproval(pending)) => {
                    let approval = &pending[0];
                    let value = match args.approve {
                        Some(ApproveMode::All) => Value::from("approved"),
                        Some(ApproveMode::RejectAll) => Value::from("rejected"),
                        None => match ask(approval, &mut input, err) {
                            Ok(v) => v,
                            Err(e) => return Err(e.to_string()),
                        },
                    };
                    let decision = Decision {
                        key: Some(approval.key.clone()),
                        value,
                        decided_by: Some("cli".into()),
                        comment: None,
                    };
                    engine.decide(procedure.clone(), &run_id, decision).await
                }
                Ok(RunOutcome::Sleeping { until }) => {
                    let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                    engine.resume(procedure.clone(), &run_id).await
                }
                Ok(done) => return Ok(done),
                Err(e) => return Err(e.to_string()),
            };
        }
    });
    // Stdio MCP servers end with the run.
    runtime.block_on(mcp.shutdown());
    match outcome {
        Ok(RunOutcome::Completed { outputs }) => {
            if !json {
                serde_json::to_writer_pretty(&mut *out, &outputs)?;
                writeln!(out)?;
            }
            Ok(0)
        }
        Ok(RunOutcome::Failed { error }) => {
            writeln!(err, "ckp: run failed at {}: {}", error.node_id.as_deref().unwrap_or("start"), error.message)?;
            Ok(EXIT_ERRORS)
        }
        Ok(other) => {
            writeln!(err, "ckp: run ended as {other:?}")?;
            Ok(EXIT_ERRORS)
        }
        Err(e) => {
            writeln!(err, "ckp: {e}")?;
            Ok(EXIT_UNREADABLE)
        }
    }
}
