//! The operations on what the compiler produces: a processing node and a transform node compiled from CKP,
//! their fields rendered the way the engine renders them, then run here.

use ckp_core::procedure::Kind;
use serde_json::{Value, json};

use super::{FakeEnv, obj};
use crate::ops::{OpErrorKind, apply_transform, run_internal};

fn procedure(nodes: Value) -> ckp_core::Procedure {
    let doc = json!({
        "procedure_id": "ops",
        "version": "1.0.0",
        "workflow_graph": {"start_node": "work", "nodes": nodes}
    });
    let compilation = ckp_core::compile_value(&doc);
    assert!(!compilation.has_errors(), "{:#?}", compilation.diagnostics);
    compilation.procedure.expect("compiled")
}

#[test]
fn processing_operations_run_on_rendered_fields() {
    let p = procedure(json!({
        "work": {"type": "processing", "operations": [
            {"action": "set_variable", "variable": "order_total", "value": "{{order.total}}"},
            {"action": "append_to_array", "array": "totals", "value": "{{order.total}}"},
            {"action": "calculate", "expression": "{{order.total}} * 1.2", "output_variable": "gross"},
            {"action": "extract_regex", "source": "{{order.ref}}", "pattern": "ORD-(\\d+)", "output_variable": "num"},
            {"action": "validate_schema", "source": "{{order}}", "schema": {"type": "object", "required": ["total"]}},
            {"action": "validate_schema", "source": "{{order}}", "schema": {"required": ["missing"]}}
        ], "next_node": "end"},
        "end": {"type": "terminate"}
    }));
    let Kind::Processing(ops) = &p.node(p.start).kind else { panic!("not a processing node") };
    let mut vars = obj(json!({"order": {"total": 50, "ref": "see ORD-981"}}));
    let mut env = FakeEnv::new();
    let mut results = Vec::new();
    for op in ops {
        let fields = match op.fields.render(&vars) {
            Value::Object(m) => m,
            other => panic!("fields render to an object, got {other}"),
        };
        let out = run_internal(op.action, &fields, op.schema.as_ref(), op.pattern.as_ref(), &mut vars, &mut env);
        results.push(out);
    }
    assert_eq!(vars.get("order_total"), Some(&json!(50)), "a single placeholder keeps the number");
    assert_eq!(vars.get("totals"), Some(&json!([50])));
    assert_eq!(results[2].as_ref().ok().and_then(|o| o.value.clone()), Some(json!(60)));
    assert_eq!(results[3].as_ref().ok().and_then(|o| o.value.clone()), Some(json!("981")));
    assert!(ops[3].pattern.is_some(), "the compiler precompiled the pattern");
    assert_eq!(results[4].as_ref().ok().and_then(|o| o.value.clone()), Some(json!({"valid": true})));
    let e = results[5].as_ref().expect_err("invalid order");
    assert_eq!(e.kind, OpErrorKind::Validation);
    assert!(e.message.contains("missing"), "{}", e.message);
}

#[test]
fn transformations_run_as_compiled() {
    let p = procedure(json!({
        "work": {"type": "transform", "transformations": [
            {"type": "filter", "source_variable": "orders", "expression": "{{item.total}} > {{threshold}}", "output_variable": "big"},
            {"type": "aggregate", "source_variable": "orders", "expression": "sum", "output_variable": "sum", "params": {"field": "total"}},
            {"type": "sort", "source_variable": "orders", "expression": "total", "output_variable": "sorted", "params": {"descending": true}},
            {"type": "map", "source_variable": "orders", "expression": "{{item.id}}", "output_variable": "ids"},
            {"type": "unique", "source_variable": "tags", "output_variable": "uniq"},
            {"type": "join", "source_variable": "orders", "output_variable": "joined", "params": {"with": "names", "on": "id"}},
            {"type": "pivot", "source_variable": "orders", "output_variable": "pv", "params": {"index": "id", "columns": "kind", "values": "total"}}
        ], "next_node": "end"},
        "end": {"type": "terminate"}
    }));
    let Kind::Transform(ts) = &p.node(p.start).kind else { panic!("not a transform node") };
    let mut vars = obj(json!({
        "threshold": 15,
        "orders": [{"id": 1, "total": 10, "kind": "a"}, {"id": 2, "total": 30, "kind": "b"}],
        "tags": ["x", "y", "x"],
        "names": [{"id": 2, "name": "two"}]
    }));
    for t in ts {
        let value = apply_transform(t, &vars).unwrap_or_else(|e| panic!("{}: {e}", t.output));
        vars.insert(t.output.clone(), value);
    }
    let get = |k: &str| vars.get(k).cloned().unwrap_or(Value::Null);
    assert_eq!(get("big"), json!([{"id": 2, "total": 30, "kind": "b"}]));
    assert_eq!(get("sum"), json!(40));
    assert_eq!(get("sorted")[0]["id"], json!(2));
    assert_eq!(get("ids"), json!([1, 2]));
    assert_eq!(get("uniq"), json!(["x", "y"]));
    assert_eq!(get("joined"), json!([{"id": 2, "total": 30, "kind": "b", "name": "two"}]));
    assert_eq!(get("pv"), json!([{"id": 1, "a": 10}, {"id": 2, "b": 30}]));
}
