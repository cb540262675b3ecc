//! The procedure graph as Mermaid or Graphviz DOT text (`ckp graph`).

use std::fmt::Write as _;

use crate::compile::successors;
use crate::procedure::{Kind, Procedure};

/// Output formats of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    /// Mermaid `flowchart TD`.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

fn mermaid_id(id: &str) -> String {
    let mut s: String = id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    s.insert_str(0, "n_");
    s
}

fn escape_label(text: &str) -> String {
    text.replace('"', "#quot;").replace('\n', " ")
}

fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " ")
}

/// Renders the graph of `p`: one node per CKP node (shape by type, the start node marked), one edge per edge.
pub fn render(p: &Procedure, format: GraphFormat) -> String {
    let mut out = String::new();
    match format {
        GraphFormat::Mermaid => {
            out.push_str("flowchart TD\n");
            for (i, n) in p.nodes.iter().enumerate() {
                let label = escape_label(&format!("{}<br/><i>{}</i>", n.id, n.kind.type_name()));
                let id = mermaid_id(&n.id);
                let shape = match n.kind {
                    Kind::Logic(_) => format!("{id}{{\"{label}\"}}"),
                    Kind::Terminate(_) => format!("{id}([\"{label}\"])"),
                    Kind::Approval(_) => format!("{id}[/\"{label}\"/]"),
                    Kind::Parallel(_) | Kind::Loop(_) => format!("{id}[[\"{label}\"]]"),
                    _ => format!("{id}[\"{label}\"]"),
                };
                let _ = writeln!(out, "    {shape}");
                if i == p.start {
                    let _ = writeln!(out, "    start((start)) --> {id}");
                }
            }
            for (i, n) in p.nodes.iter().enumerate() {
                for (label, t) in successors(p, i) {
                    let (from, to) = (mermaid_id(&n.id), mermaid_id(&p.node(t).id));
                    if label.is_empty() {
                        let _ = writeln!(out, "    {from} --> {to}");
                    } else {
                        let _ = writeln!(out, "    {from} -->|\"{}\"| {to}", escape_label(&label));
                    }
                }
            }
        }
        GraphFormat::Dot => {
            let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&p.id));
            out.push_str("    rankdir=TB;\n    node [fontname=\"Helvetica\"];\n");
            out.push_str("    \"__start__\" [shape=point];\n");
            for n in &p.nodes {
                let shape = match n.kind {
                    Kind::Logic(_) => "diamond",
                    Kind::Terminate(_) => "doublecircle",
                    Kind::Approval(_) => "parallelogram",
                    Kind::Parallel(_) | Kind::Loop(_) => "box3d",
                    _ => "box",
                };
                let _ = writeln!(
                    out,
                    "    \"{}\" [shape={shape}, label=\"{}\\n({})\"];",
                    dot_escape(&n.id),
                    dot_escape(&n.id),
                    n.kind.type_name()
                );
            }
            let _ = writeln!(out, "    \"__start__\" -> \"{}\";", dot_escape(&p.node(p.start).id));
            for (i, n) in p.nodes.iter().enumerate() {
                for (label, t) in successors(p, i) {
                    let target = dot_escape(&p.node(t).id);
                    if label.is_empty() {
                        let _ = writeln!(out, "    \"{}\" -> \"{target}\";", dot_escape(&n.id));
                    } else {
                        let _ = writeln!(
                            out,
                            "    \"{}\" -> \"{target}\" [label=\"{}\"];",
                            dot_escape(&n.id),
                            dot_escape(&label)
                        );
                    }
                }
            }
            out.push_str("}\n");
        }
    }
    out
}

fn ui_color(kind: &str) -> &'static str {
    match kind {
        "sequence" => "#3B82F6",
        "logic" => "#F59E0B",
        "loop" => "#8B5CF6",
        "parallel" => "#06B6D4",
        "human_approval" => "#EF4444",
        "llm_action" => "#10B981",
        "processing" => "#6366F1",
        "verification" => "#F97316",
        "transform" => "#EC4899",
        "subflow" => "#14B8A6",
        "terminate" => "#6B7280",
        _ => "#9CA3AF",
    }
}

fn title_case(id: &str) -> String {
    id.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c.flat_map(char::to_lowercase)).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The graph as LangOrch's UI draws it (`GET /api/procedures/{id}/{version}/graph`): nodes in breadth-first order
/// from the start node (unreachable ones last), each with `data` (label, type, colour, start/end flags, step
/// count) and a grid position; edges with labels (`""` for next_node, the condition, `default`, `approve`, ...).
pub fn ui_json(p: &Procedure) -> serde_json::Value {
    use serde_json::json;
    let mut order = vec![p.start];
    let mut seen = vec![false; p.nodes.len()];
    seen[p.start] = true;
    let mut head = 0;
    while head < order.len() {
        for (_, next) in successors(p, order[head]) {
            if !seen[next] {
                seen[next] = true;
                order.push(next);
            }
        }
        head += 1;
    }
    order.extend((0..p.nodes.len()).filter(|i| !seen[*i]));
    let mut edges = Vec::new();
    for &i in &order {
        for (label, next) in successors(p, i) {
            // LangOrch animates the edges of a logic node (its rules and its default).
            let animated = matches!(p.node(i).kind, Kind::Logic(_));
            let label: String = label.chars().take(40).collect();
            edges
                .push(json!({"id": format!("e{}", edges.len() + 1), "source": p.node(i).id, "target": p.node(next).id,
                              "label": label, "animated": animated}));
        }
    }
    let nodes: Vec<serde_json::Value> = order
        .iter()
        .enumerate()
        .map(|(pos, &i)| {
            let n = p.node(i);
            let kind = n.kind.type_name();
            let description = (n.name != n.id).then(|| n.name.clone());
            let steps = match &n.kind {
                Kind::Sequence(s) => s.steps.len(),
                _ => 0,
            };
            let is_start = i == p.start;
            json!({
                "id": n.id,
                "type": kind,
                "data": {
                    "label": description.clone().unwrap_or_else(|| title_case(&n.id)),
                    "description": description,
                    "nodeType": kind,
                    "agent": n.agent,
                    "color": ui_color(kind),
                    "isStart": is_start,
                    "stepCount": steps,
                    "isEnd": !is_start && successors(p, i).is_empty(),
                },
                "position": {"x": (pos % 3) * 280, "y": (pos / 3) * 120},
            })
        })
        .collect();
    json!({"nodes": nodes, "edges": edges})
}
