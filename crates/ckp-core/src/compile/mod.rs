//! The compiler: CKP text → [`Procedure`], or diagnostics saying exactly what to fix.
//!
//! Stages: parse (JSON, dialect, field types; `model::parse`) → validate and bind (this module and its children:
//! enums, numbers, edges to indexes, templates, conditions, regexes, JSON Schemas) → graph checks (reachability,
//! variables read but never defined). `ckp validate`, the import API and the engine all go through [`compile`].

mod ctx;
mod nodes;
mod root;
mod secrets;
mod steps;

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use ctx::Ctx;
pub use ctx::VariableUses;
pub use root::check_cron;

use crate::diag::{Code, Diagnostic};
use crate::model::{Document, Limits, parse_document_with};
use crate::procedure::{Kind, NodeIdx, Procedure};

/// Variables the engine defines for every run (beside the schema, step outputs and the like).
pub const BUILTIN_VARIABLES: [&str; 14] = [
    "run_id",
    "procedure_id",
    "procedure_version",
    "last_error",
    "parallel_results",
    "llm_output",
    "subflow_output",
    "loop_results",
    "__approval_decisions",
    "trigger_type",
    "triggered_by",
    "trigger_payload",
    "secrets",
    "secret_grants",
];

/// The outcome of compiling a document.
#[derive(Debug)]
pub struct Compilation {
    /// The procedure, when there is no error.
    pub procedure: Option<Procedure>,
    /// Errors and warnings, ordered by position in the source.
    pub diagnostics: Vec<Diagnostic>,
    /// Where each variable is read and written (empty when the document did not parse).
    pub uses: VariableUses,
}

impl Compilation {
    /// True when some diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Compiles CKP text under the default [`Limits`].
pub fn compile(text: &str) -> Compilation {
    compile_with(text, Limits::DEFAULT)
}

/// Compiles CKP text; a document over `limits` gets one `too-large` error and is not read further.
pub fn compile_with(text: &str, limits: Limits) -> Compilation {
    let parsed = parse_document_with(text, limits);
    let mut diagnostics = parsed.diagnostics;
    let Some(document) = parsed.document else {
        sort(&mut diagnostics);
        return Compilation { procedure: None, diagnostics, uses: VariableUses::default() };
    };
    let (procedure, mut more, uses) = compile_document(document);
    parsed.source_map.place(&mut more);
    diagnostics.extend(more);
    sort(&mut diagnostics);
    let procedure = procedure.filter(|_| !diagnostics.iter().any(Diagnostic::is_error));
    Compilation { procedure, diagnostics, uses }
}

/// Compiles an already parsed JSON value (the import API's `ckp_json`). Positions refer to the value printed
/// with `serde_json::to_string_pretty`.
pub fn compile_value(value: &Value) -> Compilation {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    compile(&text)
}

fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|a| (a.line, a.column, a.severity));
}

/// Validates and binds a parsed document. Diagnostics are not yet located in the source.
pub fn compile_document(document: Document) -> (Option<Procedure>, Vec<Diagnostic>, VariableUses) {
    let index: HashMap<String, NodeIdx> =
        document.workflow_graph.nodes.keys().enumerate().map(|(i, id)| (id.clone(), i)).collect();
    let mut cx = Ctx::new(&index);
    let head = root::compile_root(&mut cx, &document);
    let mut nodes = Vec::with_capacity(document.workflow_graph.nodes.len());
    for (id, node) in &document.workflow_graph.nodes {
        nodes.push(nodes::compile_node(&mut cx, &document, id, node));
    }
    let nodes: Option<Vec<_>> = nodes.into_iter().collect();
    let mut diags = std::mem::take(&mut cx.diags);
    let uses = std::mem::take(&mut cx.uses);
    let (Some(head), Some(nodes)) = (head, nodes) else {
        return (None, diags, uses);
    };
    if diags.iter().any(Diagnostic::is_error) {
        return (None, diags, uses);
    }
    let procedure = Procedure {
        id: document.procedure_id.clone(),
        version: document.version.clone(),
        name: document.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| document.procedure_id.clone()),
        config: head.config,
        variables: head.variables,
        trigger: head.trigger,
        start: head.start,
        nodes,
        index,
        document,
    };
    diags.extend(unreachable_warnings(&procedure));
    diags.extend(undefined_variable_warnings(&uses));
    (Some(procedure), diags, uses)
}

/// Every node id reachable from the start (and from `global_config.on_failure`) over every edge kind (A.2.5).
pub fn reachable(p: &Procedure) -> Vec<bool> {
    let mut seen = vec![false; p.nodes.len()];
    let mut queue: VecDeque<NodeIdx> = VecDeque::new();
    queue.push_back(p.start);
    queue.extend(p.config.on_failure);
    while let Some(i) = queue.pop_front() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        queue.extend(successors(p, i).into_iter().map(|(_, t)| t));
    }
    seen
}

/// The outgoing edges of a node, each with a label saying what kind of edge it is.
pub fn successors(p: &Procedure, i: NodeIdx) -> Vec<(String, NodeIdx)> {
    let node = p.node(i);
    let mut out = Vec::new();
    match &node.kind {
        Kind::Logic(l) => {
            for (cond, t) in &l.rules {
                out.push((cond.source().to_owned(), *t));
            }
            out.extend(l.default.map(|t| ("default".to_owned(), t)));
        }
        Kind::Loop(l) => out.push(("loop body".to_owned(), l.body)),
        Kind::Parallel(par) => {
            out.extend(par.branches.iter().map(|(id, t)| (format!("branch:{id}"), *t)));
        }
        Kind::Approval(a) => {
            out.extend(a.on_approve.map(|t| ("approve".to_owned(), t)));
            out.extend(a.on_reject.map(|t| ("reject".to_owned(), t)));
            out.extend(a.on_timeout.map(|t| ("timeout".to_owned(), t)));
        }
        Kind::Llm(l) => {
            if let Some(branches) = &l.branches {
                out.extend(branches.iter().map(|(id, t)| (format!("choice:{id}"), *t)));
            }
        }
        Kind::Sequence(s) => {
            out.extend(s.handlers.iter().filter_map(|h| h.fallback).map(|t| ("fallback".to_owned(), t)));
        }
        _ => {}
    }
    let next_label = match &node.kind {
        Kind::Loop(_) => "loop exit",
        Kind::Parallel(_) => "join",
        _ => "",
    };
    if !matches!(node.kind, Kind::Terminate(_) | Kind::Approval(_) | Kind::Logic(_)) {
        out.extend(node.next.map(|t| (next_label.to_owned(), t)));
    }
    out.extend(node.sla.and_then(|s| s.escalation).map(|t| ("sla escalation".to_owned(), t)));
    out
}

fn unreachable_warnings(p: &Procedure) -> Vec<Diagnostic> {
    let start = &p.node(p.start).id;
    reachable(p)
        .iter()
        .enumerate()
        .filter(|(_, r)| !**r)
        .map(|(i, _)| {
            let id = &p.node(i).id;
            Diagnostic::new(
                Code::Unreachable,
                crate::diag::child("/workflow_graph/nodes", id),
                format!("node `{id}` is unreachable from start_node `{start}`: no edge leads to it. Link it from another node or remove it"),
            )
        })
        .collect()
}

fn undefined_variable_warnings(uses: &VariableUses) -> Vec<Diagnostic> {
    uses.reads
        .iter()
        .filter(|(name, _)| !uses.writes.contains_key(*name) && !BUILTIN_VARIABLES.contains(&name.as_str()))
        .map(|(name, pointers)| {
            let more = match pointers.len() {
                1 => String::new(),
                n => format!(" (read in {n} places)"),
            };
            Diagnostic::new(
                Code::UndefinedVariable,
                pointers[0].clone(),
                format!(
                    "variable `{name}` is read{more} but never defined: declare it in variables_schema, or set it with a step's output_variable or set_variable before it is read"
                ),
            )
        })
        .collect()
}
