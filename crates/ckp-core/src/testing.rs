//! Generated CKP documents of any size, for tests and benchmarks that need a large procedure which compiles
//! cleanly and runs to completion without any external effect.
//!
//! Nothing here is used by the compiler itself; it only builds JSON.

use serde_json::{Map, Value, json};

/// Nodes in one block of [`large_procedure`].
const BLOCK_NODES: usize = 8;
/// Chain nodes between two blocks.
const BLOCK_EVERY: usize = 12;

/// A valid procedure of exactly `nodes` nodes (at least 2): a chain of `sequence` nodes with one internal step
/// each, and after every 12 of them a block of 8 nodes that exercises the other passes of the compiler: a `logic` node with two
/// branches that join again, a `loop` whose body is a `processing` node, and a `parallel` node whose branches are a
/// `transform` and a `verification` node; error handlers with fallbacks and an SLA escalation add their edges, and
/// templates and conditions read variables that steps write. The last node is a `terminate`; every node is
/// reachable and no variable is read without being written, so the document compiles without a diagnostic.
pub fn large_procedure(procedure_id: &str, nodes: usize) -> Value {
    // The order of the path: `Some(i)` is the chain node `n{i}`, `None` a block; the last node is `done`.
    let mut path = Vec::new();
    let mut left = nodes.max(2) - 1;
    let mut i = 0;
    while left > 0 {
        path.push(Some(i));
        left -= 1;
        // A block sits between two chain nodes; one every `BLOCK_EVERY` chain nodes while there is room.
        if i % BLOCK_EVERY == BLOCK_EVERY - 1 && left > BLOCK_NODES {
            path.push(None);
            left -= BLOCK_NODES;
        }
        i += 1;
    }
    let mut out = Map::new();
    let mut blocks = 0;
    let entry = |step: Option<&Option<usize>>, blocks: usize| match step {
        Some(Some(i)) => format!("n{i}"),
        Some(None) => format!("b{blocks}_route"),
        None => "done".to_owned(),
    };
    for (at, step) in path.iter().enumerate() {
        match step {
            Some(i) => {
                out.insert(format!("n{i}"), sequence(*i, &entry(path.get(at + 1), blocks)));
            }
            None => {
                insert_block(&mut out, blocks, &entry(path.get(at + 1), blocks + 1));
                blocks += 1;
            }
        }
    }
    out.insert("done".into(), json!({"type": "terminate", "status": "success", "outputs": {"last": "last"}}));
    json!({
        "procedure_id": procedure_id,
        "version": "1",
        "status": "active",
        "variables_schema": {
            "items": {"type": "array", "default": [1, 2, 3]},
            "threshold": {"type": "number", "default": 1}
        },
        "workflow_graph": {"start_node": "n0", "nodes": out}
    })
}

/// A chain node: one internal step, and on every tenth node an error handler and an SLA that lead to `done`.
fn sequence(i: usize, next: &str) -> Value {
    let mut node = json!({
        "type": "sequence",
        "steps": [{"step_id": "set", "action": "set_variable", "variable": "last", "value": format!("n{i}-{{{{threshold}}}}")}],
        "next_node": next
    });
    if i.is_multiple_of(10) {
        node["error_handlers"] = json!([{"error_type": "*", "action": "escalate", "fallback_node": "done"}]);
        node["sla"] = json!({"max_duration_ms": 60000, "on_breach": "escalate", "escalation_handler": "done"});
    }
    node
}

/// The eight nodes of block `b`, entered at `b{b}_route` and left for `exit`.
fn insert_block(out: &mut Map<String, Value>, b: usize, exit: &str) {
    let id = |name: &str| format!("b{b}_{name}");
    let nodes = [
        (
            "route",
            json!({"type": "logic",
                   "rules": [{"condition": "{{threshold}} > 0 and {{last}} is_not_empty", "next_node": id("high")}],
                   "default_next_node": id("low")}),
        ),
        ("high", set_node("side", "high", &id("each"))),
        ("low", set_node("side", "low", &id("each"))),
        (
            "each",
            json!({"type": "loop", "iterator": "items", "iterator_variable": "item", "index_variable": "index",
                   "body_node": id("body"), "collect_variable": "collected", "max_iterations": 10,
                   "next_node": id("split")}),
        ),
        (
            "body",
            json!({"type": "processing", "operations": [
                {"action": "set_variable", "variable": "current", "value": "{{item}}"},
                {"action": "append_to_array", "array": "seen", "value": "{{index}}"}
            ], "next_node": id("each")}),
        ),
        (
            "split",
            json!({"type": "parallel", "branches": [
                {"branch_id": "filter", "start_node": id("filter")},
                {"branch_id": "check", "start_node": id("check")}
            ], "wait_strategy": "all", "next_node": exit}),
        ),
        (
            "filter",
            json!({"type": "transform", "transformations": [
                {"type": "filter", "source_variable": "items", "expression": "{{item}} > {{threshold}}", "output_variable": "big"}
            ]}),
        ),
        (
            "check",
            json!({"type": "verification", "checks": [
                {"id": "seen", "condition": "{{seen}} is_not_empty", "on_fail": "warn", "message": "nothing seen after {{current}}"}
            ]}),
        ),
    ];
    for (name, node) in nodes {
        out.insert(id(name), node);
    }
}

fn set_node(variable: &str, value: &str, next: &str) -> Value {
    json!({"type": "sequence", "steps": [{"step_id": "set", "action": "set_variable", "variable": variable, "value": value}],
           "next_node": next})
}
