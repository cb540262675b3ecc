//! Large documents: a 20,000-node procedure compiles cleanly as one line of compact JSON (the import API's form)
//! and pretty-printed, with every node where the source says it is; the limits refuse a document before reading
//! it; a graph whose edges all miss gets every error.

use std::collections::BTreeSet;

use ckp_core::procedure::Kind;
use ckp_core::testing::large_procedure;
use ckp_core::{Code, Limits, compile, compile_with};
use serde_json::Value;

#[test]
fn a_20000_node_procedure_compiles_in_both_layouts() {
    let doc = large_procedure("big", 20_000);
    for text in [doc.to_string(), serde_json::to_string_pretty(&doc).expect("serializable")] {
        let c = compile(&text);
        assert!(c.diagnostics.is_empty(), "{:#?}", &c.diagnostics[..c.diagnostics.len().min(5)]);
        let p = c.procedure.expect("compiles");
        assert_eq!(p.nodes.len(), 20_000);
        let kinds: BTreeSet<&str> = p.nodes.iter().map(|n| n.kind.type_name()).collect();
        let expected =
            ["logic", "loop", "parallel", "processing", "sequence", "terminate", "transform", "verification"];
        assert_eq!(kinds, expected.into_iter().collect(), "every pass of the compiler has work");
        assert!(p.nodes.iter().any(|n| matches!(&n.kind, Kind::Sequence(s) if !s.handlers.is_empty())));
        assert!(p.nodes.iter().any(|n| n.sla.is_some_and(|s| s.escalation.is_some())));
    }
}

#[test]
fn positions_in_a_one_line_document_count_characters() {
    // The last node of a compact document: its column is its character offset on the only line, accented
    // characters counted once.
    let mut doc = large_procedure("pos-éèà", 50);
    doc["workflow_graph"]["nodes"]["done"]["next_node"] = Value::from("n0");
    let text = doc.to_string();
    let c = compile(&text);
    let d = c.diagnostics.iter().find(|d| d.code == Code::IgnoredField).expect("terminate's next_node is ignored");
    let offset = text.find(r#""next_node":"n0""#).expect("in the text") + r#""next_node":"#.len();
    assert_eq!(d.line, 1);
    assert_eq!(d.column as usize, text[..offset].chars().count() + 1);
}

#[test]
fn limits_refuse_a_document_at_once() {
    let text = large_procedure("capped", 1_000).to_string();
    let c = compile_with(&text, Limits { max_bytes: text.len() - 1, max_nodes: 1_000 });
    assert_eq!(c.diagnostics.len(), 1, "{:#?}", c.diagnostics);
    let d = &c.diagnostics[0];
    assert_eq!((d.code, d.pointer.as_str(), d.line, d.column), (Code::TooLarge, "", 1, 1));
    assert!(d.message.contains("max_procedure_bytes"), "{}", d.message);
    assert!(c.procedure.is_none());

    let c = compile_with(&text, Limits { max_bytes: text.len(), max_nodes: 999 });
    assert_eq!(c.diagnostics.len(), 1, "{:#?}", c.diagnostics);
    let d = &c.diagnostics[0];
    assert_eq!((d.code, d.pointer.as_str()), (Code::TooLarge, "/workflow_graph/nodes"));
    assert!(d.message.contains("1000 nodes") && d.message.contains("max_procedure_nodes"), "{}", d.message);

    assert!(compile_with(&text, Limits { max_bytes: text.len(), max_nodes: 1_000 }).procedure.is_some());
    assert!(compile_with(&text, Limits::NONE).procedure.is_some());
}

#[test]
fn every_missing_edge_is_reported_and_hints_stop_at_their_budget() {
    // Every edge misses its target by one character, so each could get a "did you mean": the first ones do, and
    // the search stops before it compares every miss with every node.
    let mut doc = large_procedure("typos", 5_000);
    let nodes = doc["workflow_graph"]["nodes"].as_object_mut().expect("nodes");
    let mut broken = 0;
    for node in nodes.values_mut() {
        if let Some(Value::String(next)) = node.get_mut("next_node")
            && next.starts_with('n')
        {
            next.replace_range(0..1, "m");
            broken += 1;
        }
    }
    let c = compile(&doc.to_string());
    let missing: Vec<_> = c.diagnostics.iter().filter(|d| d.code == Code::EdgeTargetMissing).collect();
    assert_eq!(missing.len(), broken);
    let hinted = missing.iter().filter(|d| d.message.contains("Did you mean `n")).count();
    assert!(hinted > 0 && hinted < broken / 10, "{hinted} of {broken} hinted");
}
