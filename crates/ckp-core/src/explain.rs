//! Static analysis of a compiled procedure: what `ckp explain` prints and the explain API returns.
//!
//! Everything here is derived from the [`Procedure`] and the compiler's record of variable uses; nothing runs.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::compile::{VariableUses, reachable, successors};
use crate::procedure::{Action, DecisionType, Kind, Procedure};

/// The explanation of a procedure.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Explanation {
    /// `procedure_id`.
    pub procedure_id: String,
    /// `version`.
    pub version: String,
    /// Entry node.
    pub start_node: String,
    /// Nodes where a run can end (terminate nodes, nodes with no successor).
    pub terminals: Vec<String>,
    /// Node ids grouped by type.
    pub nodes_by_type: BTreeMap<String, Vec<String>>,
    /// Every edge.
    pub edges: Vec<Edge>,
    /// Steps that reach outside the engine.
    pub external_actions: Vec<ExternalAction>,
    /// LLM calls.
    pub llm_calls: Vec<LlmCall>,
    /// Points where a run waits for a human.
    pub approvals: Vec<ApprovalPoint>,
    /// Child procedures.
    pub subflows: Vec<SubflowCall>,
    /// Variables.
    pub variables: Variables,
    /// Nodes no edge reaches.
    pub unreachable: Vec<String>,
}

/// One edge.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Edge {
    /// Source node.
    pub from: String,
    /// Target node.
    pub to: String,
    /// What kind of edge (`""` for next_node, a condition, `default`, `approve`, `branch:<id>`, ...).
    pub label: String,
}

/// A step executed outside the engine.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExternalAction {
    /// Node.
    pub node_id: String,
    /// Step.
    pub step_id: String,
    /// Action.
    pub action: String,
    /// How it is dispatched: `agent`, `mcp`, or `http` (ckp's built-in executor when no agent takes it).
    pub binding: String,
    /// Agent channel (lower-cased), MCP server, or none.
    pub channel: Option<String>,
}

/// An LLM call.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LlmCall {
    /// Node.
    pub node_id: String,
    /// Model (None: the server's default).
    pub model: Option<String>,
    /// Orchestration mode: the model picks the next node.
    pub orchestration: bool,
}

/// An approval point.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApprovalPoint {
    /// Node.
    pub node_id: String,
    /// approve_reject | select_option | provide_input.
    pub decision_type: String,
    /// Expiry.
    pub timeout_ms: Option<u64>,
}

/// A subflow call.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SubflowCall {
    /// Node.
    pub node_id: String,
    /// Child procedure.
    pub procedure_id: String,
    /// Child version (None: latest).
    pub version: Option<String>,
}

/// Variables declared, read and written.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Variables {
    /// Declared inputs a run must provide.
    pub required_inputs: Vec<String>,
    /// Declared inputs a run may provide.
    pub optional_inputs: Vec<String>,
    /// Variables read anywhere.
    pub read: Vec<String>,
    /// Variables written by nodes (excluding declarations).
    pub written: Vec<String>,
}

/// Explains a compiled procedure.
pub fn explain(p: &Procedure, uses: &VariableUses) -> Explanation {
    let mut nodes_by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut edges = Vec::new();
    let mut terminals = Vec::new();
    let mut external_actions = Vec::new();
    let mut llm_calls = Vec::new();
    let mut approvals = Vec::new();
    let mut subflows = Vec::new();
    for (i, node) in p.nodes.iter().enumerate() {
        nodes_by_type.entry(node.kind.type_name().to_owned()).or_default().push(node.id.clone());
        let succ = successors(p, i);
        if matches!(node.kind, Kind::Terminate(_)) || succ.is_empty() {
            terminals.push(node.id.clone());
        }
        edges.extend(succ.into_iter().map(|(label, t)| Edge {
            from: node.id.clone(),
            to: p.node(t).id.clone(),
            label,
        }));
        match &node.kind {
            Kind::Sequence(s) => {
                for step in &s.steps {
                    let (binding, channel) = match &step.action {
                        Action::Internal(_) => continue,
                        Action::Mcp { server, .. } => ("mcp", Some(server.clone())),
                        Action::External if node.channel.is_none() => ("http", None),
                        Action::External => ("agent", node.channel.clone()),
                    };
                    external_actions.push(ExternalAction {
                        node_id: node.id.clone(),
                        step_id: step.id.clone(),
                        action: step.action_name.clone(),
                        binding: binding.to_owned(),
                        channel,
                    });
                }
            }
            Kind::Llm(l) => llm_calls.push(LlmCall {
                node_id: node.id.clone(),
                model: l.model.clone(),
                orchestration: l.branches.is_some(),
            }),
            Kind::Approval(a) => approvals.push(ApprovalPoint {
                node_id: node.id.clone(),
                decision_type: match a.decision_type {
                    DecisionType::ApproveReject => "approve_reject",
                    DecisionType::SelectOption => "select_option",
                    DecisionType::ProvideInput => "provide_input",
                }
                .to_owned(),
                timeout_ms: a.timeout_ms,
            }),
            Kind::Subflow(s) => subflows.push(SubflowCall {
                node_id: node.id.clone(),
                procedure_id: s.procedure_id.clone(),
                version: s.version.clone(),
            }),
            _ => {}
        }
    }
    let declared: Vec<&str> = p.variables.iter().map(|v| v.name.as_str()).collect();
    let variables = Variables {
        required_inputs: p.variables.iter().filter(|v| v.required).map(|v| v.name.clone()).collect(),
        optional_inputs: p.variables.iter().filter(|v| !v.required).map(|v| v.name.clone()).collect(),
        read: uses.reads.keys().cloned().collect(),
        written: uses
            .writes
            .iter()
            .filter(|(name, ptrs)| {
                !(declared.contains(&name.as_str()) && ptrs.iter().all(|p| p.starts_with("/variables_schema")))
            })
            .map(|(name, _)| name.clone())
            .collect(),
    };
    let unreachable =
        reachable(p).iter().enumerate().filter(|(_, r)| !**r).map(|(i, _)| p.node(i).id.clone()).collect();
    Explanation {
        procedure_id: p.id.clone(),
        version: p.version.clone(),
        start_node: p.node(p.start).id.clone(),
        terminals,
        nodes_by_type,
        edges,
        external_actions,
        llm_calls,
        approvals,
        subflows,
        variables,
        unreachable,
    }
}

impl std::fmt::Display for Explanation {
    /// The human form printed by `ckp explain`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| if v.is_empty() { "(none)".to_owned() } else { v.join(", ") };
        writeln!(f, "procedure {} {}", self.procedure_id, self.version)?;
        writeln!(f, "start:      {}", self.start_node)?;
        writeln!(f, "terminals:  {}", list(&self.terminals))?;
        writeln!(f, "\nnodes ({}):", self.nodes_by_type.values().map(Vec::len).sum::<usize>())?;
        for (t, ids) in &self.nodes_by_type {
            writeln!(f, "  {t:<15} {}", ids.join(", "))?;
        }
        writeln!(f, "\nedges ({}):", self.edges.len())?;
        for e in &self.edges {
            if e.label.is_empty() {
                writeln!(f, "  {} -> {}", e.from, e.to)?;
            } else {
                writeln!(f, "  {} -> {}  [{}]", e.from, e.to, e.label)?;
            }
        }
        writeln!(f, "\nexternal actions ({}):", self.external_actions.len())?;
        for a in &self.external_actions {
            let via = match (&a.binding[..], &a.channel) {
                ("agent", Some(c)) => format!("agent channel `{c}`"),
                ("mcp", Some(s)) => format!("MCP server `{s}`"),
                _ => "built-in HTTP executor".to_owned(),
            };
            writeln!(f, "  {}.{}  {}  via {via}", a.node_id, a.step_id, a.action)?;
        }
        writeln!(f, "\nLLM calls ({}):", self.llm_calls.len())?;
        for l in &self.llm_calls {
            let model = l.model.as_deref().unwrap_or("(default model)");
            let orch = if l.orchestration { "  (chooses the next node)" } else { "" };
            writeln!(f, "  {}  model {model}{orch}", l.node_id)?;
        }
        writeln!(f, "\napproval points ({}):", self.approvals.len())?;
        for a in &self.approvals {
            let timeout = a.timeout_ms.map(|t| format!(", expires after {t} ms")).unwrap_or_default();
            writeln!(f, "  {}  {}{timeout}", a.node_id, a.decision_type)?;
        }
        if !self.subflows.is_empty() {
            writeln!(f, "\nsubflows ({}):", self.subflows.len())?;
            for s in &self.subflows {
                writeln!(f, "  {}  -> {} {}", s.node_id, s.procedure_id, s.version.as_deref().unwrap_or("(latest)"))?;
            }
        }
        writeln!(f, "\nvariables:")?;
        writeln!(f, "  required inputs: {}", list(&self.variables.required_inputs))?;
        writeln!(f, "  optional inputs: {}", list(&self.variables.optional_inputs))?;
        writeln!(f, "  read:            {}", list(&self.variables.read))?;
        writeln!(f, "  written:         {}", list(&self.variables.written))?;
        writeln!(f, "\nunreachable nodes: {}", list(&self.unreachable))
    }
}
