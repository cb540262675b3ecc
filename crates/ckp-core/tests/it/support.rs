//! Helpers: a minimal valid document to patch, and assertions on diagnostics.

use ckp_core::{Code, Compilation, compile};
use serde_json::{Value, json};

/// A small valid procedure: a → (logic) → end.
pub fn base() -> Value {
    json!({
        "procedure_id": "p",
        "version": "1.0.0",
        "variables_schema": {"required": {"amount": {"type": "number"}}},
        "workflow_graph": {
            "start_node": "a",
            "nodes": {
                "a": {
                    "type": "sequence",
                    "steps": [{"step_id": "s1", "action": "set_variable", "variable": "x", "value": "{{amount}}"}],
                    "next_node": "check"
                },
                "check": {
                    "type": "logic",
                    "rules": [{"condition": "{{x}} > 10", "next_node": "end"}],
                    "default_next_node": "end"
                },
                "end": {"type": "terminate", "status": "success"}
            }
        }
    })
}

/// Compiles the base document after `patch`.
pub fn with(patch: impl FnOnce(&mut Value)) -> Compilation {
    let mut doc = base();
    patch(&mut doc);
    compile(&serde_json::to_string_pretty(&doc).expect("serializable"))
}

/// The node object `id` of a document.
pub fn node<'a>(doc: &'a mut Value, id: &str) -> &'a mut Value {
    &mut doc["workflow_graph"]["nodes"][id]
}

/// Adds a node.
pub fn add(doc: &mut Value, id: &str, node: Value) {
    doc["workflow_graph"]["nodes"][id] = node;
}

/// Asserts that `c` has a diagnostic with `code` at `pointer`, and returns its message.
#[track_caller]
pub fn expect(c: &Compilation, code: Code, pointer: &str) -> String {
    match c.diagnostics.iter().find(|d| d.code == code && d.pointer == pointer) {
        Some(d) => {
            assert!(d.line > 0 && d.column > 0, "diagnostic not located: {d:?}");
            d.message.clone()
        }
        None => panic!("expected {code} at {pointer}, got {:#?}", c.diagnostics),
    }
}

/// Asserts that `c` has no diagnostic with `code`.
#[track_caller]
pub fn expect_no(c: &Compilation, code: Code) {
    let found: Vec<_> = c.diagnostics.iter().filter(|d| d.code == code).collect();
    assert!(found.is_empty(), "unexpected {code}: {found:#?}");
}

/// Asserts that compilation succeeded with no diagnostics at all.
#[track_caller]
pub fn expect_clean(c: &Compilation) {
    assert!(c.diagnostics.is_empty(), "expected no diagnostics, got {:#?}", c.diagnostics);
    assert!(c.procedure.is_some());
}
