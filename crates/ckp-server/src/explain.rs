//! The explain report in LangOrch's shape (`docs/langorch-api.md`, "Explain report"), so its UI and clients read it:
//! nodes with their steps and error handlers, edges with conditions, variables, a route trace, external calls and the
//! policy summary. ckp's own, richer analysis (terminals, LLM calls, approvals, subflows, unreachable nodes, variables
//! read and written) is added under `ckp`.

use ckp_core::Procedure;
use ckp_core::compile::{VariableUses, successors};
use ckp_core::procedure::InternalAction;
use serde_json::{Map, Value, json};

fn field(v: &Value, key: &str) -> Value {
    v.get(key).cloned().unwrap_or(Value::Null)
}

/// How a step's action is bound when the procedure is compiled: `internal`, `mcp_tool`, or null (resolved at run
/// time: an agent of the node's channel, the MCP fallback, or a built-in executor).
fn binding_kind(action: &str) -> Value {
    if action.starts_with("mcp:") {
        "mcp_tool".into()
    } else if InternalAction::parse(action).is_some() {
        "internal".into()
    } else {
        Value::Null
    }
}

/// The report for procedure `p` (compiled from `doc`), with `inputs` checked against its schema when given.
pub fn report(doc: &Value, p: &Procedure, uses: &VariableUses, inputs: Option<&Map<String, Value>>) -> Value {
    let empty = Map::new();
    let nodes_doc = doc.pointer("/workflow_graph/nodes").and_then(Value::as_object).unwrap_or(&empty);
    let mut nodes = Vec::new();
    let mut external = Vec::new();
    for (id, n) in nodes_doc {
        let kind = n.get("type").and_then(Value::as_str).unwrap_or_default();
        let steps: Vec<Value> = n
            .get("steps")
            .and_then(Value::as_array)
            .map(|steps| {
                steps
                    .iter()
                    .map(|s| {
                        let action = s.get("action").and_then(Value::as_str).unwrap_or_default();
                        let binding = binding_kind(action);
                        if binding == "mcp_tool" {
                            external.push(json!({"node_id": id, "step_id": field(s, "step_id"), "action": action,
                                "binding_kind": "mcp_tool", "binding_ref": action.trim_start_matches("mcp:"),
                                "agent_hint": field(n, "agent"), "timeout_ms": field(s, "timeout_ms")}));
                        }
                        json!({"step_id": field(s, "step_id"), "action": action, "timeout_ms": field(s, "timeout_ms"),
                               "retry_on_failure": field(s, "retry_on_failure"),
                               "output_variable": field(s, "output_variable"), "binding_kind": binding})
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (binding, reference) = match kind {
            "llm_action" => ("llm", field(n, "model")),
            "subflow" => ("subflow", field(n, "procedure_id")),
            "human_approval" => ("human", Value::Null),
            _ => ("", Value::Null),
        };
        if !binding.is_empty() {
            external.push(json!({"node_id": id, "step_id": null, "action": kind, "binding_kind": binding,
                "binding_ref": reference, "agent_hint": field(n, "agent"), "timeout_ms": field(n, "timeout_ms")}));
        }
        let side_effects = !binding.is_empty()
            || steps.iter().any(|s| s["binding_kind"] != "internal")
            || matches!(kind, "parallel" | "loop") && n.get("agent").is_some();
        let handlers: Vec<Value> = n
            .get("error_handlers")
            .and_then(Value::as_array)
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        json!({"error_type": field(h, "error_type"), "action": field(h, "action"),
                               "max_retries": field(h, "max_retries"), "delay_ms": field(h, "delay_ms"),
                               "fallback_node": field(h, "fallback_node")})
                    })
                    .collect()
            })
            .unwrap_or_default();
        nodes.push(json!({
            "id": id, "type": kind, "agent": field(n, "agent"), "description": field(n, "description"),
            "is_checkpoint": n.get("is_checkpoint").and_then(Value::as_bool).unwrap_or(false),
            "sla": field(n, "sla"), "timeout_ms": field(n, "timeout_ms"), "has_side_effects": side_effects,
            "steps": steps, "error_handlers": handlers,
        }));
    }
    let mut edges = Vec::new();
    let mut trace = Vec::new();
    let mut order = vec![p.start];
    let mut seen = vec![false; p.nodes.len()];
    seen[p.start] = true;
    let mut head = 0;
    while head < order.len() {
        let i = order[head];
        head += 1;
        let next = successors(p, i);
        let node = p.node(i);
        for (label, to) in &next {
            let condition = if label.is_empty() { Value::Null } else { Value::from(label.as_str()) };
            edges.push(json!({"from": node.id, "to": p.node(*to).id, "condition": condition}));
            if !seen[*to] {
                seen[*to] = true;
                order.push(*to);
            }
        }
        if next.is_empty() {
            edges.push(json!({"from": node.id, "to": "__end__", "condition": null}));
        }
        let targets: Vec<&str> = next.iter().map(|(_, t)| p.node(*t).id.as_str()).collect();
        trace.push(json!({"node_id": node.id, "type": node.kind.type_name(), "next_nodes": targets,
                          "is_terminal": next.is_empty()}));
    }
    let ckp = serde_json::to_value(ckp_core::explain::explain(p, uses)).unwrap_or_default();
    let required: Vec<Value> =
        ckp.pointer("/variables/required_inputs").and_then(Value::as_array).cloned().unwrap_or_default();
    let provided: Vec<Value> = inputs.map(|i| i.keys().map(|k| Value::from(k.as_str())).collect()).unwrap_or_default();
    let missing: Vec<Value> = required.iter().filter(|r| !provided.contains(r)).cloned().collect();
    let config = doc.get("global_config").cloned().unwrap_or_else(|| json!({}));
    let retry = config
        .get("retry_policy")
        .cloned()
        .unwrap_or_else(|| json!({"max_retries": 3, "retry_delay_ms": 1000, "backoff_multiplier": 2.0}));
    let mut out = json!({
        "procedure_id": p.id,
        "version": p.version,
        "nodes": nodes,
        "edges": edges,
        "variables": {
            "schema": doc.get("variables_schema").cloned().unwrap_or_else(|| json!({})),
            "required": required,
            "produced": ckp.pointer("/variables/written").cloned().unwrap_or_else(|| json!([])),
            "missing_inputs": missing,
            "provided": provided,
        },
        "route_trace": trace,
        "external_calls": external,
        "policy_summary": {
            "execution_mode": config.get("execution_mode").cloned().unwrap_or_else(|| "sequential".into()),
            "timeout_ms": field(&config, "timeout_ms"),
            "retry": retry,
            "rate_limiting": field(&config, "rate_limiting"),
            "checkpoint_strategy": field(&config, "checkpoint_strategy"),
            "retention_days": field(&config, "retention_days"),
        },
    });
    if let Some(o) = out.as_object_mut() {
        if let Some(inputs) = inputs {
            let errors = ckp_core::inputs::check_inputs(p, inputs).err().unwrap_or_default();
            o.insert("input_check".into(), json!({"valid": errors.is_empty(), "errors": errors}));
        }
        o.insert("ckp".into(), ckp);
    }
    out
}
