//! Text → [`Document`]: JSON syntax, the document's shape, and the JSON type of every field.
//!
//! Sections (root, global_config, variables_schema, trigger, each node) are read separately so that one mistake
//! does not hide the others; each type error carries the JSON pointer of the offending value. Values are not
//! judged here (that is the compiler's job), only shapes.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{Document, GlobalConfig, Node, NodeKind, VariablesSchema, WorkflowGraph};
use crate::diag::{Code, Diagnostic, child};
use crate::model::node::{NODE_TYPES, NodeCommon, split_common_fields};
use crate::source::SourceMap;

/// How large a document may be. A document costs memory and CPU in proportion to its size before anything
/// could refuse it, so both are checked first: the bytes before the JSON is parsed, the nodes before any node is
/// read. The server takes them from its `max_procedure_bytes` and `max_procedure_nodes` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of text.
    pub max_bytes: usize,
    /// Most nodes in `workflow_graph.nodes`.
    pub max_nodes: usize,
}

impl Limits {
    /// The defaults of the server's settings: 8 MiB and 50,000 nodes.
    pub const DEFAULT: Limits = Limits { max_bytes: 8 * 1024 * 1024, max_nodes: 50_000 };
    /// No limit, for documents accepted under limits that were higher then (stored procedures).
    pub const NONE: Limits = Limits { max_bytes: usize::MAX, max_nodes: usize::MAX };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// The result of reading a CKP text.
#[derive(Debug)]
pub struct ParsedDocument {
    /// The document, when its shape and field types are right.
    pub document: Option<Document>,
    /// The raw JSON, when the text is JSON.
    pub value: Option<Value>,
    /// What went wrong (errors) or looks wrong (warnings), located in the source.
    pub diagnostics: Vec<Diagnostic>,
    /// Positions of the values in the text.
    pub source_map: SourceMap,
}

/// Reads CKP text into a [`Document`] under the default [`Limits`], reporting JSON syntax, dialect and field type
/// problems.
pub fn parse_document(text: &str) -> ParsedDocument {
    parse_document_with(text, Limits::DEFAULT)
}

/// Reads CKP text into a [`Document`], refusing it at once (one `too-large` error) when it is over `limits`.
pub fn parse_document_with(text: &str, limits: Limits) -> ParsedDocument {
    let mut out =
        ParsedDocument { document: None, value: None, diagnostics: Vec::new(), source_map: SourceMap::default() };
    if text.len() > limits.max_bytes {
        let mut d = Diagnostic::new(
            Code::TooLarge,
            "",
            format!(
                "the document is {} bytes; the limit is {} bytes (max_procedure_bytes). Split it into subflows",
                text.len(),
                limits.max_bytes
            ),
        );
        (d.line, d.column) = (1, 1);
        out.diagnostics.push(d);
        return out;
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            out.diagnostics.push(json_syntax(&e));
            return out;
        }
    };
    out.source_map = SourceMap::build(text);
    let nodes = value.pointer("/workflow_graph/nodes").and_then(Value::as_object).map_or(0, Map::len);
    if nodes > limits.max_nodes {
        let mut d = Diagnostic::new(
            Code::TooLarge,
            "/workflow_graph/nodes",
            format!(
                "the document has {nodes} nodes; the limit is {} nodes (max_procedure_nodes). Split it into subflows",
                limits.max_nodes
            ),
        );
        let pos = out.source_map.locate(&d.pointer);
        (d.line, d.column) = (pos.line, pos.column);
        out.diagnostics.push(d);
        return out;
    }
    out.diagnostics.extend(out.source_map.duplicate_key_warnings());
    let mut diags = Vec::new();
    out.document = document_from_value(value.clone(), &mut diags);
    out.source_map.place(&mut diags);
    out.diagnostics.extend(diags);
    if out.diagnostics.iter().any(Diagnostic::is_error) {
        out.document = None;
    }
    out.value = Some(value);
    out
}

fn json_syntax(e: &serde_json::Error) -> Diagnostic {
    let text = e.to_string();
    let message = text.rfind(" at line ").map_or(text.as_str(), |i| &text[..i]);
    let mut d = Diagnostic::new(Code::JsonSyntax, "", format!("invalid JSON: {message}"));
    d.line = u32::try_from(e.line()).unwrap_or(u32::MAX).max(1);
    d.column = u32::try_from(e.column()).unwrap_or(u32::MAX).max(1);
    d
}

/// Builds a [`Document`] from JSON, pushing unlocated diagnostics. `None` when there was an error.
pub fn document_from_value(value: Value, diags: &mut Vec<Diagnostic>) -> Option<Document> {
    let Value::Object(mut root) = value else {
        diags.push(Diagnostic::new(
            Code::NotAnObject,
            "",
            format!(
                "a CKP document is a JSON object with `procedure_id`, `version` and `workflow_graph`; found {}",
                kind_of(&value)
            ),
        ));
        return None;
    };
    if let Some(d) = foreign_dialect(&root) {
        diags.push(d);
        return None;
    }
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let global_config = take_typed::<GlobalConfig>(&mut root, "global_config", diags);
    let trigger = take_typed(&mut root, "trigger", diags);
    let retrieval_metadata = take_typed(&mut root, "retrieval_metadata", diags);
    let provenance = take_typed(&mut root, "provenance", diags);
    let variables_schema = match root.shift_remove("variables_schema") {
        None | Some(Value::Null) => None,
        Some(v) => variables_schema(v, diags),
    };
    let graph = root.shift_remove("workflow_graph");
    let mut doc: Document = typed(Value::Object(root), "", diags)?;
    doc.global_config = global_config;
    doc.trigger = trigger;
    doc.retrieval_metadata = retrieval_metadata;
    doc.provenance = provenance;
    doc.variables_schema = variables_schema;
    doc.workflow_graph = workflow_graph(graph, diags).unwrap_or_default();
    let errors_after = diags.iter().filter(|d| d.is_error()).count();
    (errors_after == errors_before).then_some(doc)
}

/// Recognises the dialects LangOrch's own samples use that are not CKP (langorch.md B §1.4).
fn foreign_dialect(root: &Map<String, Value>) -> Option<Diagnostic> {
    let graph_nodes = root.get("workflow_graph").and_then(|g| g.get("nodes"));
    let found: Vec<&str> = [
        (root.contains_key("id") && !root.contains_key("procedure_id"), "a root `id` instead of `procedure_id`"),
        (root.get("nodes").is_some(), "`nodes` at the root instead of inside `workflow_graph`"),
        (graph_nodes.is_some_and(Value::is_array), "`workflow_graph.nodes` as a list"),
        (root.contains_key("procedure_version"), "`procedure_version` instead of `version`"),
        (
            root.contains_key("start_node_id") || root.contains_key("entry"),
            "`start_node_id`/`entry` instead of `workflow_graph.start_node`",
        ),
    ]
    .into_iter()
    .filter_map(|(hit, what)| hit.then_some(what))
    .collect();
    if found.is_empty() {
        return None;
    }
    Some(Diagnostic::new(
        Code::ForeignDialect,
        "",
        format!(
            "this is not a CKP document (found {}). CKP expects {{\"procedure_id\": \"...\", \"version\": \"1.0.0\", \
             \"workflow_graph\": {{\"start_node\": \"<id>\", \"nodes\": {{\"<id>\": {{\"type\": \"sequence\", ...}}}}}}}}: \
             nodes are an object keyed by node id, with their fields flat on each node",
            found.join(", ")
        ),
    ))
}

fn workflow_graph(graph: Option<Value>, diags: &mut Vec<Diagnostic>) -> Option<WorkflowGraph> {
    let mut graph = match graph {
        None | Some(Value::Null) => {
            diags.push(Diagnostic::new(
                Code::MissingField,
                "/workflow_graph",
                "missing `workflow_graph`: add {\"start_node\": \"<id>\", \"nodes\": {\"<id>\": {...}}}",
            ));
            return None;
        }
        Some(Value::Object(m)) => m,
        Some(other) => {
            diags.push(wrong_type_msg("/workflow_graph", "an object", &other));
            return None;
        }
    };
    let nodes = graph.shift_remove("nodes");
    let mut wg: WorkflowGraph = typed(Value::Object(graph), "/workflow_graph", diags)?;
    match nodes {
        None | Some(Value::Null) => diags.push(Diagnostic::new(
            Code::MissingField,
            "/workflow_graph/nodes",
            "missing `workflow_graph.nodes`: add an object mapping node ids to nodes",
        )),
        Some(Value::Object(map)) => {
            for (id, node) in map {
                let pointer = child("/workflow_graph/nodes", &id);
                if let Some(node) = node_from_value(node, &pointer, diags) {
                    wg.nodes.insert(id, node);
                }
            }
        }
        Some(other) => diags.push(wrong_type_msg("/workflow_graph/nodes", "an object keyed by node id", &other)),
    }
    Some(wg)
}

/// Reads one node, reporting a wrong shape, an unknown type or wrongly typed fields at their pointers.
pub(crate) fn node_from_value(node: Value, pointer: &str, diags: &mut Vec<Diagnostic>) -> Option<Node> {
    let Value::Object(mut fields) = node else {
        diags.push(wrong_type_msg(pointer, "an object (a node)", &node));
        return None;
    };
    let common_fields = split_common_fields(&mut fields);
    let common: NodeCommon = typed(Value::Object(common_fields), pointer, diags)?;
    let type_name = common.type_name.clone().unwrap_or_else(|| "sequence".into());
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(Value::Object(fields), &mut track);
    match NodeKind::from_fields(&type_name, de) {
        None => {
            let hint = closest(&type_name, &NODE_TYPES).map(|s| format!("did you mean `{s}`? ")).unwrap_or_default();
            diags.push(Diagnostic::new(
                Code::UnknownNodeType,
                child(pointer, "type"),
                format!("unknown node type `{type_name}`; {hint}the node types are: {}", NODE_TYPES.join(", ")),
            ));
            None
        }
        Some(Ok(kind)) => Some(Node::assemble(common, kind)),
        Some(Err(e)) => {
            diags.push(serde_error(pointer, track.path(), &e));
            None
        }
    }
}

fn variables_schema(value: Value, diags: &mut Vec<Diagnostic>) -> Option<VariablesSchema> {
    let Value::Object(map) = &value else {
        diags.push(wrong_type_msg("/variables_schema", "an object", &value));
        return None;
    };
    let nested = !map.is_empty() && map.keys().all(|k| k == "required" || k == "optional");
    if nested {
        typed(value, "/variables_schema", diags).map(VariablesSchema::Nested)
    } else {
        typed(value, "/variables_schema", diags).map(VariablesSchema::Flat)
    }
}

fn take_typed<T: DeserializeOwned>(root: &mut Map<String, Value>, key: &str, diags: &mut Vec<Diagnostic>) -> Option<T> {
    match root.shift_remove(key) {
        None | Some(Value::Null) => None,
        Some(v) => typed(v, &format!("/{key}"), diags),
    }
}

/// Deserializes `value` as `T`, turning a type error into a diagnostic at the exact pointer.
pub(crate) fn typed<T: DeserializeOwned>(value: Value, pointer: &str, diags: &mut Vec<Diagnostic>) -> Option<T> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    match T::deserialize(de) {
        Ok(v) => Some(v),
        Err(e) => {
            diags.push(serde_error(pointer, track.path(), &e));
            None
        }
    }
}

fn serde_error(pointer: &str, path: serde_path_to_error::Path, e: &serde_json::Error) -> Diagnostic {
    use serde_path_to_error::Segment;
    let mut ptr = pointer.to_owned();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => ptr = child(&ptr, index),
            Segment::Map { key } => ptr = child(&ptr, key),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    let field = ptr.rsplit('/').next().unwrap_or_default().to_owned();
    let raw = e.to_string();
    let message = match raw.strip_prefix("invalid type: ").and_then(|r| r.split_once(", expected ")) {
        Some((found, expected)) => format!("`{field}` must be {expected}, found {found}"),
        None => format!("`{field}`: {raw}"),
    };
    Diagnostic::new(Code::WrongType, ptr, message)
}

/// A wrong-type diagnostic with our own wording.
pub(crate) fn wrong_type_msg(pointer: &str, expected: &str, found: &Value) -> Diagnostic {
    let field = pointer.rsplit('/').next().unwrap_or_default();
    Diagnostic::new(Code::WrongType, pointer, format!("`{field}` must be {expected}, found {}", kind_of(found)))
}

/// How a JSON value is described in messages.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a likely typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let mut unlimited = usize::MAX;
    closest_within(word, candidates, &mut unlimited)
}

/// [`closest`], spending at most `budget` edit-distance cells (characters of `word` × characters of a candidate)
/// and returning `None` once it is spent: a document whose many edges all miss compares each with every node id,
/// and without a budget that is quadratic in the number of nodes.
pub(crate) fn closest_within<'a>(word: &str, candidates: &[&'a str], budget: &mut usize) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    let word = word.to_lowercase();
    let len = word.chars().count();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let c_len = c.chars().count();
        // The distance is at least the difference in length: such a candidate cannot be within the limit.
        if c_len.abs_diff(len) > limit {
            continue;
        }
        let cost = len.max(1).saturating_mul(c_len.max(1));
        if cost > *budget {
            *budget = 0;
            return None;
        }
        *budget -= cost;
        let d = edit_distance(&word, c);
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(closest("sequnce", &NODE_TYPES), Some("sequence"));
        assert_eq!(closest("llm", &NODE_TYPES), None);
        assert_eq!(closest("Logic", &NODE_TYPES), Some("logic"));
    }
}
