//! The fixture procedures (`tests/fixtures/` at the repository root) compile cleanly, and documents survive import → export.

use std::path::PathBuf;

use ckp_core::model::parse_document;
use ckp_core::{Severity, compile};
use serde_json::Value;

/// Every `*.ckp.json` in the repository's `tests/fixtures/`.
fn fixture_paths() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".ckp.json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    paths
}

#[test]
fn fixtures_validate_without_errors() {
    for path in fixture_paths() {
        let text = std::fs::read_to_string(&path).expect("readable");
        let c = compile(&text);
        let errors: Vec<_> = c.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        assert!(c.procedure.is_some(), "{}", path.display());
    }
}

/// Drops object members whose value is null: `null` and absent mean the same in CKP.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[test]
fn import_then_export_loses_nothing() {
    let mut texts: Vec<String> =
        fixture_paths().iter().map(|p| std::fs::read_to_string(p).expect("readable")).collect();
    texts.push(include_str!("../../../../examples/everything.ckp.json").to_owned());
    for text in texts {
        let parsed = parse_document(&text);
        let doc = parsed.document.unwrap_or_else(|| panic!("{:#?}", parsed.diagnostics));
        let exported = serde_json::to_value(&doc).expect("serializable");
        let original: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(without_nulls(&exported), without_nulls(&original));
        let again: ckp_core::model::Document = serde_json::from_value(exported.clone()).expect("re-import");
        assert_eq!(again, doc);
    }
}

#[test]
fn the_everything_example_uses_every_node_type_and_compiles_cleanly() {
    let c = compile(include_str!("../../../../examples/everything.ckp.json"));
    assert!(c.diagnostics.iter().all(|d| d.severity == Severity::Warning), "{:#?}", c.diagnostics);
    let p = c.procedure.expect("compiles");
    let mut types: Vec<&str> = p.nodes.iter().map(|n| n.kind.type_name()).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), 11, "{types:?}");
}
