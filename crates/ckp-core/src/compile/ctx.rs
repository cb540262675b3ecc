//! The compiler's working state: diagnostics, the node index, variable uses, and the small checks every part of
//! the compiler shares (edges, numbers, enums, templates, conditions, regexes, JSON Schemas).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Number, Value};

use crate::condition::Condition;
use crate::diag::{Code, Diagnostic};
use crate::model::parse::{closest, closest_within};
use crate::procedure::{CompiledRegex, CompiledSchema, NodeIdx};
use crate::template::{Template, ValueTemplate};

/// Where variables are read and written, by variable name → JSON pointers of the uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariableUses {
    /// Reads.
    pub reads: BTreeMap<String, Vec<String>>,
    /// Writes (declarations, outputs, set_variable, loop variables, ...).
    pub writes: BTreeMap<String, Vec<String>>,
}

pub(crate) struct Ctx<'a> {
    pub diags: Vec<Diagnostic>,
    pub index: &'a HashMap<String, NodeIdx>,
    ids: Vec<&'a str>,
    pub uses: VariableUses,
    /// Names in scope only inside the part being compiled (`item` in transforms).
    pub local_names: Vec<&'static str>,
    /// What is left of the work allowed for "did you mean" hints on missing edge targets (see [`closest_within`]).
    hint_budget: usize,
}

/// Edit-distance cells spent on hints for missing edge targets in one document (tens of milliseconds): about twenty
/// hints in a graph of 20,000 short node ids, more in smaller ones; the errors after that come without a hint.
const HINT_BUDGET: usize = 10_000_000;

impl<'a> Ctx<'a> {
    pub fn new(index: &'a HashMap<String, NodeIdx>) -> Self {
        let ids = index.keys().map(String::as_str).collect();
        Ctx {
            diags: Vec::new(),
            index,
            ids,
            uses: VariableUses::default(),
            local_names: Vec::new(),
            hint_budget: HINT_BUDGET,
        }
    }

    pub fn report(&mut self, code: Code, pointer: impl Into<String>, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(code, pointer, message));
    }

    /// Resolves an edge target; reports a missing target. `Ok(None)` when the field is absent.
    pub fn edge(&mut self, pointer: &str, target: Option<&str>) -> Result<Option<NodeIdx>, ()> {
        let Some(target) = target else { return Ok(None) };
        if let Some(idx) = self.index.get(target) {
            return Ok(Some(*idx));
        }
        let field = pointer.rsplit('/').next().unwrap_or_default();
        let hint = closest_within(target, &self.ids, &mut self.hint_budget)
            .map(|s| format!(" Did you mean `{s}`?"))
            .unwrap_or_default();
        self.report(
            Code::EdgeTargetMissing,
            pointer,
            format!("`{field}` points to node `{target}`, which does not exist.{hint} Use the id of a node in workflow_graph.nodes"),
        );
        Err(())
    }

    /// A required edge: reports absence too.
    pub fn required_edge(&mut self, pointer: &str, target: Option<&str>, what: &str) -> Option<NodeIdx> {
        match self.edge(pointer, target.filter(|t| !t.is_empty())) {
            Ok(Some(i)) => Some(i),
            Ok(None) => {
                self.report(Code::MissingField, pointer, format!("missing {what}: name the node to go to"));
                None
            }
            Err(()) => None,
        }
    }

    /// A required non-empty string.
    pub fn required_str<'s>(&mut self, pointer: &str, value: Option<&'s str>, what: &str) -> Option<&'s str> {
        match value.map(str::trim) {
            Some(v) if !v.is_empty() => value,
            _ => {
                self.report(Code::MissingField, pointer, format!("missing {what}"));
                None
            }
        }
    }

    /// A non-negative whole number (ms, counts). `1500.0` is accepted.
    pub fn uint(&mut self, pointer: &str, n: Option<&Number>) -> Result<Option<u64>, ()> {
        let Some(n) = n else { return Ok(None) };
        if let Some(u) = n.as_u64() {
            return Ok(Some(u));
        }
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 {
            return Ok(Some(f as u64));
        }
        let field = pointer.rsplit('/').next().unwrap_or_default();
        self.report(Code::InvalidNumber, pointer, format!("`{field}` must be a whole number ≥ 0, found {n}"));
        Err(())
    }

    /// A non-negative whole number that fits u32.
    pub fn uint32(&mut self, pointer: &str, n: Option<&Number>) -> Result<Option<u32>, ()> {
        match self.uint(pointer, n)? {
            None => Ok(None),
            Some(v) => u32::try_from(v).map(Some).map_err(|_| {
                let field = pointer.rsplit('/').next().unwrap_or_default();
                self.report(Code::InvalidNumber, pointer, format!("`{field}` is too large (at most {})", u32::MAX));
            }),
        }
    }

    /// A finite number in `[min, max]`.
    pub fn number_in(&mut self, pointer: &str, n: Option<&Number>, min: f64, max: f64) -> Result<Option<f64>, ()> {
        let Some(n) = n else { return Ok(None) };
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.is_finite() && f >= min && f <= max {
            return Ok(Some(f));
        }
        let field = pointer.rsplit('/').next().unwrap_or_default();
        let range = if max == f64::MAX { format!("≥ {min}") } else { format!("between {min} and {max}") };
        self.report(Code::InvalidNumber, pointer, format!("`{field}` must be a number {range}, found {n}"));
        Err(())
    }

    /// One of a fixed set of words (case-insensitive, trimmed).
    pub fn choice<T: Copy>(
        &mut self,
        pointer: &str,
        value: Option<&str>,
        options: &[(&str, T)],
    ) -> Result<Option<T>, ()> {
        let Some(v) = value else { return Ok(None) };
        let norm = v.trim().to_ascii_lowercase();
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == norm) {
            return Ok(Some(*t));
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let field = pointer.rsplit('/').next().unwrap_or_default();
        let hint = closest(&norm, &names).map(|s| format!(" Did you mean `{s}`?")).unwrap_or_default();
        self.report(
            Code::InvalidEnum,
            pointer,
            format!("`{field}` is `{v}`, which is not allowed.{hint} Use one of: {}", names.join(", ")),
        );
        Err(())
    }

    fn record_template_uses(&mut self, pointer: &str, t: &Template) {
        for p in t.placeholders() {
            if !p.is_secret_ref() {
                self.read(&p.path.root, pointer);
            }
        }
        for m in t.malformed() {
            self.report(
                Code::MalformedPlaceholder,
                pointer,
                format!(
                    "`{}` is not a valid placeholder and will stay literal text; write `{{{{name}}}}`, `{{{{a.b.0}}}}` or `{{{{name | default}}}}`",
                    m.text
                ),
            );
        }
    }

    /// Compiles a template, recording the variables it reads.
    pub fn template(&mut self, pointer: &str, text: &str) -> Option<Template> {
        match Template::parse(text) {
            Ok(t) => {
                self.record_template_uses(pointer, &t);
                Some(t)
            }
            Err(e) => {
                self.report(Code::TemplateLimit, pointer, e.to_string());
                None
            }
        }
    }

    /// Compiles a JSON value whose strings may hold templates.
    pub fn value_template(&mut self, pointer: &str, value: &Value) -> Option<ValueTemplate> {
        match ValueTemplate::parse(value) {
            Ok(t) => {
                let mut found = Vec::new();
                t.visit_placeholders(&mut |rel, p| {
                    if !p.is_secret_ref() {
                        found.push((p.path.root.to_string(), format!("{pointer}{rel}")));
                    }
                });
                let mut bad = Vec::new();
                t.visit_malformed(&mut |rel, m| bad.push((format!("{pointer}{rel}"), m.text.to_string())));
                for (name, ptr) in found {
                    self.read(&name, &ptr);
                }
                for (ptr, text) in bad {
                    self.report(
                        Code::MalformedPlaceholder,
                        ptr,
                        format!("`{text}` is not a valid placeholder and will stay literal text; write `{{{{name}}}}`, `{{{{a.b.0}}}}` or `{{{{name | default}}}}`"),
                    );
                }
                Some(t)
            }
            Err((rel, e)) => {
                self.report(Code::TemplateLimit, format!("{pointer}{rel}"), e.to_string());
                None
            }
        }
    }

    /// Compiles a condition, recording the variables it reads.
    pub fn condition(&mut self, pointer: &str, text: &str) -> Option<Condition> {
        match Condition::parse(text) {
            Ok(c) => {
                let reads: Vec<String> = c.reads().map(|p| p.root.to_string()).collect();
                for name in reads {
                    self.read(&name, pointer);
                }
                Some(c)
            }
            Err(e) => {
                self.report(Code::ConditionSyntax, pointer, format!("condition `{text}`: {e}"));
                None
            }
        }
    }

    /// Compiles a regex (full-match and search forms).
    pub fn regex(&mut self, pointer: &str, pattern: &str) -> Option<CompiledRegex> {
        let full = regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(1 << 20).build();
        let search = regex::RegexBuilder::new(pattern).size_limit(1 << 20).build();
        match (full, search) {
            (Ok(full), Ok(search)) => Some(CompiledRegex { source: pattern.to_owned(), full, search }),
            (_, Err(e)) | (Err(e), _) => {
                let msg = e.to_string().lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default().trim().to_owned();
                self.report(Code::InvalidRegex, pointer, format!("regex `{pattern}` does not compile: {msg}"));
                None
            }
        }
    }

    /// Compiles a JSON Schema. Remote `$ref`s are never fetched: they are an error.
    pub fn schema(&mut self, pointer: &str, schema: &Value) -> Option<CompiledSchema> {
        let result = jsonschema::options().with_retriever(NoRemoteRefs).build(schema);
        match result {
            Ok(v) => Some(CompiledSchema(Arc::new(v))),
            Err(e) => {
                self.report(Code::InvalidJsonSchema, pointer, format!("JSON Schema does not compile: {e}"));
                None
            }
        }
    }

    pub fn read(&mut self, name: &str, pointer: &str) {
        if self.local_names.contains(&name) {
            return;
        }
        self.uses.reads.entry(name.to_owned()).or_default().push(pointer.to_owned());
    }

    pub fn write(&mut self, name: &str, pointer: &str) {
        if name.is_empty() || name.contains("{{") {
            return;
        }
        self.uses.writes.entry(name.to_owned()).or_default().push(pointer.to_owned());
    }
}

/// A `$ref` retriever that refuses every remote document (DESIGN §7).
struct NoRemoteRefs;

impl jsonschema::Retrieve for NoRemoteRefs {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("remote $ref `{uri}` is not fetched; inline the referenced schema under $defs").into())
    }
}
