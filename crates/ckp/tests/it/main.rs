//! End-to-end tests of the `ckp` binary: exit statuses and golden output of validate, explain and graph.

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

const SIMPLE: &str = "../shared/fixtures/simple_http_test.ckp.json";
const PRODUCT: &str = "../shared/fixtures/product_enrichment_pipeline.ckp.json";
const BROKEN: &str = "crates/ckp/tests/data/broken.ckp.json";
const SYNTAX: &str = "crates/ckp/tests/data/syntax.ckp.json";
const EVERYTHING: &str = "examples/everything.ckp.json";

#[test]
fn validate_fixtures_passes() {
    let out = ckp(&["validate", SIMPLE, PRODUCT, EVERYTHING]);
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
    let out = ckp(&["validate", "--format", "json", BROKEN, SIMPLE]);
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
    let out = ckp(&["validate", SIMPLE, "no/such/file.ckp.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such/file.ckp.json: cannot read"));
    assert!(text(&out.stdout).contains("simple_http_test.ckp.json: ok"));
}

#[test]
fn explain_human() {
    let out = ckp(&["explain", PRODUCT]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("explain_product", text(&out.stdout));
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
    let out = ckp(&["graph", PRODUCT, "--format", "mermaid"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("graph_product_mermaid", text(&out.stdout));
    let out = ckp(&["graph", PRODUCT, "--format", "dot"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("graph_product_dot", text(&out.stdout));
}
