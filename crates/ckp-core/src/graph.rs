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
