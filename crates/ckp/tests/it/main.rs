//! End-to-end tests of the `ckp` binary: exit statuses and golden output of validate, explain and graph.
#![expect(clippy::panic, reason = "test helpers fail by panicking")]

mod auth;
mod bounds;
mod brokers;
mod config;
mod connections;
mod logs;
mod mcp;
mod scale;
mod secrets;
mod serve;
mod tls;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The workspace root, so that file names in the output are stable relative paths.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ckp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ckp")).args(args).current_dir(root()).output().expect("ckp runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}

/// The fixture procedures, relative to the workspace root (`ckp` runs there).
const LOOKUP: &str = "tests/fixtures/ticket_lookup.ckp.json";
const REVIEW: &str = "tests/fixtures/article_review.ckp.json";
const BROKEN: &str = "crates/ckp/tests/data/broken.ckp.json";
const SYNTAX: &str = "crates/ckp/tests/data/syntax.ckp.json";
const EVERYTHING: &str = "examples/everything.ckp.json";

#[test]
fn validate_fixtures_passes() {
    let out = ckp(&["validate", LOOKUP, REVIEW, EVERYTHING]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("validate_fixtures", text(&out.stdout));
}

#[test]
fn validate_broken_file_reports_every_problem() {
    let out = ckp(&["validate", BROKEN]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("validate_broken", text(&out.stdout));
}

#[test]
fn validate_json_format() {
    let out = ckp(&["validate", "--format", "json", BROKEN, LOOKUP]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(report[0]["ok"], false);
    assert_eq!(report[1]["ok"], true);
    let first = &report[0]["diagnostics"][0];
    for key in ["severity", "code", "message", "pointer", "line", "column"] {
        assert!(first.get(key).is_some(), "missing {key} in {first}");
    }
    insta::assert_json_snapshot!("validate_broken_json", report);
}

#[test]
fn validate_syntax_error_points_at_line_and_column() {
    let out = ckp(&["validate", SYNTAX]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with(&format!("{SYNTAX}:6:5: error[json-syntax]: invalid JSON")), "{stdout}");
}

#[test]
fn validate_unreadable_input_exits_2() {
    let out = ckp(&["validate", LOOKUP, "no/such/file.ckp.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such/file.ckp.json: cannot read"));
    assert!(text(&out.stdout).contains("ticket_lookup.ckp.json: ok"));
}

/// A temporary directory of this test process, created empty.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ckp-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn validate_passes_a_generated_20000_node_procedure_and_applies_the_limits() {
    let dir = temp_dir("validate-large");
    // `ckp bench --print-procedure` writes the generated procedure BENCHMARKS.md measures.
    let out = ckp(&["bench", "--workload", "large", "-k", "20000", "--print-procedure"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let big = dir.join("big.ckp.json");
    std::fs::write(&big, &out.stdout).expect("written");
    let big = big.to_string_lossy().into_owned();
    let out = ckp(&["validate", &big]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), format!("{big}: ok\n"));

    // The limits come from the server's settings: flag, environment or the configuration file.
    let out = ckp(&["validate", "--max-procedure-nodes", "19999", &big]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .contains("error[too-large]: the document has 20000 nodes; the limit is 19999 nodes (max_procedure_nodes)"),
        "{stdout}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["validate", &big])
        .env("CKP_MAX_PROCEDURE_BYTES", "1000")
        .output()
        .expect("ckp runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("{big}:1:1: error[too-large]: the document is ")), "{stdout}");
    assert!(stdout.contains("the limit is 1000 bytes (max_procedure_bytes)"), "{stdout}");
    let config = dir.join("ckp.toml");
    std::fs::write(&config, "max_procedure_nodes = 100\n").expect("written");
    let out = ckp(&["validate", "--config", &config.to_string_lossy(), &big]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("(max_procedure_nodes)"), "{}", text(&out.stdout));
    let out = ckp(&["validate", "--max-procedure-nodes", "0", &big]);
    assert_eq!(out.status.code(), Some(2), "an invalid limit is refused like any setting");
    assert!(text(&out.stderr).contains("--max-procedure-nodes \"0\""), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explain_human() {
    let out = ckp(&["explain", REVIEW]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("explain_review", text(&out.stdout));
    let out = ckp(&["explain", EVERYTHING]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("explain_everything", text(&out.stdout));
}

#[test]
fn explain_json() {
    let out = ckp(&["explain", "--format", "json", EVERYTHING]);
    assert_eq!(out.status.code(), Some(0));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(e["start_node"], "prepare");
    assert_eq!(e["external_actions"][0]["channel"], "api");
    assert_eq!(e["llm_calls"][0]["model"], "gpt-4o");
    assert_eq!(e["approvals"][0]["node_id"], "approve");
}

#[test]
fn explain_refuses_a_broken_file() {
    let out = ckp(&["explain", BROKEN]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error[edge-target-missing]"));
}

#[test]
fn graph_mermaid_and_dot() {
    let out = ckp(&["graph", REVIEW, "--format", "mermaid"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("graph_review_mermaid", text(&out.stdout));
    let out = ckp(&["graph", REVIEW, "--format", "dot"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("graph_review_dot", text(&out.stdout));
}

fn ckp_with_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(args)
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ckp runs");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("ckp ends")
}

#[test]
fn run_completes_and_prints_outputs_and_a_timeline() {
    let out = ckp(&["run", LOOKUP, "--input", "ticket_id=3"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("outputs JSON");
    assert_eq!(outputs["result"], "ok");
    assert_eq!(outputs["ticket"]["id"], 3);
    let timeline = text(&out.stderr);
    for line in ["run started", "▶ load_ticket", "· build_ticket set_variable", "INFO Loaded ticket 3", "run completed"]
    {
        assert!(timeline.contains(line), "missing `{line}` in:\n{timeline}");
    }
}

#[test]
fn run_with_invalid_input_fails() {
    let out = ckp(&["run", LOOKUP, "--input", "ticket_id=1000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("ticket_id: Must be at most 500"), "{}", text(&out.stderr));
}

#[test]
fn run_answers_approvals_from_flags_and_from_the_terminal() {
    let out = ckp(&["run", REVIEW, "--input", "article_id=4", "--approve", "all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = ckp(&["run", REVIEW, "--input", "article_id=4", "--approve", "reject-all"]);
    assert_eq!(out.status.code(), Some(1), "a rejected run does not complete");
    let out = ckp_with_stdin(&["run", REVIEW, "--input", "article_id=4"], "maybe\na\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Publish article 4?"), "{stderr}");
    assert!(stderr.contains("decision at editor_gate: \"approved\""), "{stderr}");
}

#[test]
fn run_external_steps_need_an_executor_or_mock() {
    let file = "crates/ckp/tests/data/web_step.ckp.json";
    let out = ckp(&["run", file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("No executor registered for channel='web', action='navigate'"), "{stderr}");
    assert!(stderr.contains("--mock-external"), "{stderr}");
    let out = ckp(&["run", file, "--mock-external"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("~ nav navigate mocked"));
}

#[test]
fn run_events_json_prints_raw_events() {
    let out = ckp(&["run", LOOKUP, "--events", "json", "--input", "ticket_id=2"]);
    assert_eq!(out.status.code(), Some(0));
    let types: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("one JSON event per line")["event_type"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("run_created"));
    assert_eq!(types.last().map(String::as_str), Some("run_completed"));
    assert!(types.contains(&"step_log".to_owned()));
}

#[test]
fn run_finds_subflow_children_beside_the_file() {
    let out = ckp(&["run", "crates/ckp/tests/data/parent.ckp.json", "--input", "amount=4"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("outputs JSON");
    assert_eq!(outputs["doubled"], 8);
}

#[test]
fn run_with_db_survives_kill_9_and_resumes() {
    use std::io::Read as _;
    let dir = std::env::temp_dir().join(format!("ckp-cli-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("runs.db");
    let db_arg = db.to_string_lossy().into_owned();
    let file = "crates/ckp/tests/data/timer.ckp.json";
    let mut child = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["run", "--db", &db_arg, file])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ckp runs");
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let mut stderr = String::new();
    child.stderr.take().map(|mut s| s.read_to_string(&mut stderr));
    let run_id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split_whitespace().next()))
        .unwrap_or_else(|| panic!("no run id in: {stderr}"))
        .to_owned();
    let out = ckp(&["run", "--db", &db_arg, "--resume", &run_id, file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("outputs");
    assert_eq!(outputs["done"], true);
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let store = ckp_store::SqliteStore::open(&db, ckp_store::SqliteOptions::default()).expect("opens");
    let events = runtime.block_on(store.events(&run_id)).expect("events");
    let logs: Vec<_> = events.iter().filter(|e| e.event_type == "step_log").collect();
    assert_eq!(logs.len(), 1, "the step after the timer ran once");
    let uid_in_log = logs[0].payload["message"].as_str().unwrap_or("").trim_start_matches("waited for ").to_owned();
    assert_eq!(outputs["uid"], uid_in_log.as_str(), "generate_id kept its value across the crash");
    for kind in ["run_created", "execution_started", "run_completed"] {
        assert_eq!(events.iter().filter(|e| e.event_type == kind).count(), 1, "{kind} once");
    }
    let mut seen = std::collections::HashSet::new();
    for e in &events {
        assert!(seen.insert((e.event_type.clone(), e.node_id.clone(), e.step_id.clone())), "duplicate {e:?}");
    }
}

#[test]
fn migrate_creates_and_upgrades_the_database() {
    let dir = std::env::temp_dir().join(format!("ckp-cli-migrate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("nested").join("ckp.db");
    let db_arg = db.to_string_lossy().into_owned();
    for _ in 0..2 {
        let out = ckp(&["migrate", "--db", &db_arg]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("schema at version"), "{}", text(&out.stdout));
    }
    assert!(db.exists());
    std::fs::write(dir.join("garbage.db"), b"not a database").expect("write");
    let out = ckp(&["migrate", "--db", &dir.join("garbage.db").to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
}
