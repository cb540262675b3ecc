//! The template language: `{{path}}`, `{{path | default}}` and `{{secrets.NAME}}` inside strings (semantics A.3,
//! B §2).
//!
//! A template is parsed once, at compile time, into literal parts and placeholders; rendering walks the parts
//! against a [`Scope`]. Anything between braces that is not a placeholder stays literal text (and is recorded as
//! [`Malformed`] so the compiler can warn). This module never looks secrets up in variables, never fails at render
//! time, and does no I/O.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::diag::escape_token;
use crate::path::{Scope, VarPath, is_word_char};

/// Longest template text accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Most placeholders in one string.
pub const MAX_PLACEHOLDERS: usize = 1_000;
/// Deepest nesting of arrays and objects in a [`ValueTemplate`].
pub const MAX_VALUE_DEPTH: usize = 64;

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The text is longer than [`MAX_TEMPLATE_BYTES`].
    #[error("template text is {len} bytes; the limit is {MAX_TEMPLATE_BYTES}. Move large data into a variable")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// More than [`MAX_PLACEHOLDERS`] placeholders in one string.
    #[error(
        "template has more than {MAX_PLACEHOLDERS} placeholders; build the text in steps or use one placeholder for a whole value"
    )]
    TooManyPlaceholders,
    /// A value nests deeper than [`MAX_VALUE_DEPTH`].
    #[error("value nests deeper than {MAX_VALUE_DEPTH} levels; flatten it")]
    TooDeep,
}

/// One `{{...}}` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub struct Placeholder {
    /// The variable path.
    pub path: VarPath,
    /// The default used when the path does not resolve.
    pub default: Option<Value>,
    /// The whole `{{...}}` text, left in place when unresolved without default.
    pub raw: Box<str>,
}

impl Placeholder {
    /// True for `{{secrets.NAME}}`.
    pub fn is_secret(&self) -> bool {
        &*self.path.root == "secrets" && self.path.rest.len() == 1
    }
}

/// A `{{` that did not form a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Byte offset of the `{{` in the string.
    pub offset: usize,
    /// The text from `{{` up to and including the next `}}` (or to the end), at most 80 characters.
    pub text: Box<str>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(Box<str>),
    Ref(Placeholder),
}

/// Where secret values come from at dispatch time.
pub trait Secrets {
    /// The value of secret `name`, if known.
    fn secret(&self, name: &str) -> Option<String>;
}

struct NoSecrets;

impl Secrets for NoSecrets {
    fn secret(&self, _: &str) -> Option<String> {
        None
    }
}

/// A parsed template string.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: Box<str>,
    parts: Vec<Part>,
    malformed: Vec<Malformed>,
}

impl Template {
    /// Parses `text`. Only limits can fail; malformed placeholders stay literal.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TooLong { len: text.len() });
        }
        let mut parts = Vec::new();
        let mut malformed = Vec::new();
        let mut lit_start = 0;
        let mut at = 0;
        let mut count = 0;
        while let Some(found) = text[at..].find("{{") {
            let open = at + found;
            match placeholder_at(text, open) {
                Some((placeholder, end)) => {
                    count += 1;
                    if count > MAX_PLACEHOLDERS {
                        return Err(TemplateError::TooManyPlaceholders);
                    }
                    if open > lit_start {
                        parts.push(Part::Lit(text[lit_start..open].into()));
                    }
                    parts.push(Part::Ref(placeholder));
                    lit_start = end;
                    at = end;
                }
                None => {
                    let rest = &text[open..];
                    let end = rest.find("}}").map_or(rest.len(), |i| i + 2);
                    let snippet: String = rest[..end].chars().take(80).collect();
                    malformed.push(Malformed { offset: open, text: snippet.into() });
                    at = open + 1;
                }
            }
        }
        if lit_start < text.len() {
            parts.push(Part::Lit(text[lit_start..].into()));
        }
        Ok(Template { source: text.into(), parts, malformed })
    }

    /// The original text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the text has no placeholder (rendering returns it unchanged).
    pub fn is_literal(&self) -> bool {
        !self.parts.iter().any(|p| matches!(p, Part::Ref(_)))
    }

    /// The placeholders, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Lit(_) => None,
        })
    }

    /// The `{{` sequences that are not placeholders.
    pub fn malformed(&self) -> &[Malformed] {
        &self.malformed
    }

    /// Renders against `scope`; a string that is exactly one placeholder keeps the value's JSON type.
    /// `{{secrets.*}}` stays literal.
    pub fn render(&self, scope: &dyn Scope) -> Value {
        self.render_with_secrets(scope, &NoSecrets)
    }

    /// Renders to text; non-string values appear as compact JSON.
    pub fn render_text(&self, scope: &dyn Scope) -> String {
        self.text_with(scope, &NoSecrets)
    }

    /// Renders like [`Template::render`], resolving `{{secrets.NAME}}` through `secrets`.
    pub fn render_with_secrets(&self, scope: &dyn Scope, secrets: &dyn Secrets) -> Value {
        if let [Part::Ref(p)] = self.parts.as_slice() {
            return resolve(p, scope, secrets).unwrap_or_else(|| Value::String(p.raw.to_string()));
        }
        if self.is_literal() {
            return Value::String(self.source.to_string());
        }
        Value::String(self.text_with(scope, secrets))
    }

    fn text_with(&self, scope: &dyn Scope, secrets: &dyn Secrets) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Ref(p) => match resolve(p, scope, secrets) {
                    Some(Value::String(s)) => out.push_str(&s),
                    Some(v) => {
                        let _ = write!(out, "{v}");
                    }
                    None => out.push_str(&p.raw),
                },
            }
        }
        out
    }
}

fn resolve(p: &Placeholder, scope: &dyn Scope, secrets: &dyn Secrets) -> Option<Value> {
    let found = if &*p.path.root == "secrets" {
        match p.path.rest.as_slice() {
            [name] => secrets.secret(&name.name).map(Value::String),
            _ => None,
        }
    } else {
        p.path.resolve(scope).map(std::borrow::Cow::into_owned)
    };
    found.or_else(|| p.default.clone())
}

/// Parses the placeholder starting at byte `open` (which holds `{{`); returns it and the byte after its `}}`.
/// Grammar (LangOrch's): `{{ \s* [\w.]+ \s* ( \| \s* .+? )? \s* }}` where `.` excludes newlines.
fn placeholder_at(text: &str, open: usize) -> Option<(Placeholder, usize)> {
    let body = &text[open + 2..];
    let trimmed = body.trim_start_matches(char::is_whitespace);
    let path_len: usize = trimmed.chars().take_while(|c| is_word_char(*c) || *c == '.').map(char::len_utf8).sum();
    if path_len == 0 {
        return None;
    }
    let path_text = &trimmed[..path_len];
    let after_path = trimmed[path_len..].trim_start_matches(char::is_whitespace);
    let consumed_before = body.len() - after_path.len();
    let (default, close_rel) = if let Some(stripped) = after_path.strip_prefix("}}") {
        let _ = stripped;
        (None, consumed_before + 2)
    } else if let Some(rest) = after_path.strip_prefix('|') {
        // The default is the shortest text of at least one character (no newline) followed by `}}`.
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let line = &rest[..line_end];
        let first_char = line.chars().next()?.len_utf8();
        let close = line[first_char..].find("}}")? + first_char;
        let raw_default = &line[..close];
        (Some(default_value(raw_default)), consumed_before + 1 + close + 2)
    } else {
        return None;
    };
    let path = VarPath::parse(path_text).ok()?;
    let end = open + 2 + close_rel;
    Some((Placeholder { path, default, raw: text[open..end].into() }, end))
}

/// The default's value: trimmed and stripped of surrounding quotes; unquoted JSON scalars keep their type.
fn default_value(raw: &str) -> Value {
    let trimmed = raw.trim();
    let quoted = trimmed.starts_with(['\'', '"']) || trimmed.ends_with(['\'', '"']);
    let text = trimmed.trim_matches(['\'', '"']);
    if !quoted && let Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) = serde_json::from_str::<Value>(text) {
        return v;
    }
    Value::String(text.to_owned())
}

/// A JSON value whose string leaves may hold templates; object keys are never rendered. Parsed once.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTemplate {
    /// A subtree without any placeholder: rendered by cloning.
    Literal(Value),
    /// A string with placeholders.
    Text(Template),
    /// An array with placeholders somewhere inside.
    Array(Vec<ValueTemplate>),
    /// An object with placeholders somewhere inside.
    Object(Vec<(String, ValueTemplate)>),
}

impl ValueTemplate {
    /// Parses every string leaf of `value`. On error, returns the relative pointer of the offending string.
    pub fn parse(value: &Value) -> Result<ValueTemplate, (String, TemplateError)> {
        Self::parse_at(value, 0, &mut String::new())
    }

    fn parse_at(value: &Value, depth: usize, ptr: &mut String) -> Result<ValueTemplate, (String, TemplateError)> {
        if depth > MAX_VALUE_DEPTH {
            return Err((ptr.clone(), TemplateError::TooDeep));
        }
        Ok(match value {
            Value::String(s) => {
                let t = Template::parse(s).map_err(|e| (ptr.clone(), e))?;
                if t.is_literal() && t.malformed.is_empty() {
                    ValueTemplate::Literal(value.clone())
                } else {
                    ValueTemplate::Text(t)
                }
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = ptr.len();
                    let _ = write!(ptr, "/{i}");
                    out.push(Self::parse_at(item, depth + 1, ptr)?);
                    ptr.truncate(len);
                }
                if out.iter().all(|t| matches!(t, ValueTemplate::Literal(_))) {
                    ValueTemplate::Literal(value.clone())
                } else {
                    ValueTemplate::Array(out)
                }
            }
            Value::Object(map) => {
                let mut out = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&escape_token(k));
                    out.push((k.clone(), Self::parse_at(v, depth + 1, ptr)?));
                    ptr.truncate(len);
                }
                if out.iter().all(|(_, t)| matches!(t, ValueTemplate::Literal(_))) {
                    ValueTemplate::Literal(value.clone())
                } else {
                    ValueTemplate::Object(out)
                }
            }
            other => ValueTemplate::Literal(other.clone()),
        })
    }

    /// True when nothing inside is a placeholder.
    pub fn is_literal(&self) -> bool {
        matches!(self, ValueTemplate::Literal(_))
    }

    /// Renders against `scope` (`{{secrets.*}}` stays literal).
    pub fn render(&self, scope: &dyn Scope) -> Value {
        self.render_with_secrets(scope, &NoSecrets)
    }

    /// Renders, resolving `{{secrets.NAME}}` through `secrets`.
    pub fn render_with_secrets(&self, scope: &dyn Scope, secrets: &dyn Secrets) -> Value {
        match self {
            ValueTemplate::Literal(v) => v.clone(),
            ValueTemplate::Text(t) => t.render_with_secrets(scope, secrets),
            ValueTemplate::Array(items) => {
                Value::Array(items.iter().map(|t| t.render_with_secrets(scope, secrets)).collect())
            }
            ValueTemplate::Object(fields) => {
                let mut map = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    map.insert(k.clone(), t.render_with_secrets(scope, secrets));
                }
                Value::Object(map)
            }
        }
    }

    /// Calls `f` with the relative pointer and each placeholder inside.
    pub fn visit_placeholders(&self, f: &mut dyn FnMut(&str, &Placeholder)) {
        self.visit(&mut String::new(), &mut |ptr, t| t.placeholders().for_each(|p| f(ptr, p)));
    }

    /// Calls `f` with the relative pointer and each malformed `{{` inside.
    pub fn visit_malformed(&self, f: &mut dyn FnMut(&str, &Malformed)) {
        self.visit(&mut String::new(), &mut |ptr, t| t.malformed().iter().for_each(|m| f(ptr, m)));
    }

    fn visit(&self, ptr: &mut String, f: &mut dyn FnMut(&str, &Template)) {
        match self {
            ValueTemplate::Literal(_) => {}
            ValueTemplate::Text(t) => f(ptr, t),
            ValueTemplate::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = ptr.len();
                    let _ = write!(ptr, "/{i}");
                    item.visit(ptr, f);
                    ptr.truncate(len);
                }
            }
            ValueTemplate::Object(fields) => {
                for (k, v) in fields {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&escape_token(k));
                    v.visit(ptr, f);
                    ptr.truncate(len);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn vars() -> Map<String, Value> {
        json!({
            "n": 3, "f": 1.5, "b": true, "s": "hi", "items": [1, {"v": "x"}], "obj": {"a": 1, "b": [true, null]},
            "nul": null, "secrets": {"token": "from-vars"}
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn render(text: &str) -> Value {
        Template::parse(text).expect("parses").render(&vars())
    }

    #[test]
    fn single_placeholder_keeps_type() {
        assert_eq!(render("{{n}}"), json!(3));
        assert_eq!(render("{{items}}"), json!([1, {"v": "x"}]));
        assert_eq!(render("{{ b }}"), json!(true));
        assert_eq!(render("{{obj.b}}"), json!([true, null]));
    }

    #[test]
    fn text_renders_compact_json() {
        assert_eq!(render("n={{n}} f={{f}} b={{b}}"), json!("n=3 f=1.5 b=true"));
        assert_eq!(render("o={{obj}}"), json!(r#"o={"a":1,"b":[true,null]}"#));
        assert_eq!(render(" {{n}}"), json!(" 3"));
    }

    #[test]
    fn paths_resolve_indexes_and_lengths() {
        assert_eq!(render("{{items.1.v}}"), json!("x"));
        assert_eq!(render("{{items.length}}"), json!(2));
        assert_eq!(render("{{s.length}}"), json!(2));
        assert_eq!(render("{{items.5}}"), json!("{{items.5}}"));
    }

    #[test]
    fn unresolved_stays_literal_and_null_is_unresolved() {
        assert_eq!(render("a {{missing}} b"), json!("a {{missing}} b"));
        assert_eq!(render("{{nul}}"), json!("{{nul}}"));
        assert_eq!(render("{{ missing.x }}"), json!("{{ missing.x }}"));
    }

    #[test]
    fn defaults() {
        assert_eq!(render("{{x | 'n/a'}}"), json!("n/a"));
        assert_eq!(render("{{ a.b | d e }}"), json!("d e"));
        assert_eq!(render("{{x | 0}}"), json!(0));
        assert_eq!(render("{{x | '0'}}"), json!("0"));
        assert_eq!(render("{{x|null}}"), json!(null));
        assert_eq!(render("v={{x | 0}}"), json!("v=0"));
        assert_eq!(render("{{n | 7}}"), json!(3));
        assert_eq!(render("{{nul | none}}"), json!("none"));
    }

    #[test]
    fn non_placeholders_stay_literal_and_are_reported() {
        for text in
            ["{{a-b}}", "{{ lst.-1 }}", "{{x|}}", "open {{ never closed", "{{}}", "{{a..b}}", "{{x | multi\nline}}"]
        {
            let t = Template::parse(text).expect("parses");
            assert!(t.is_literal(), "{text}");
            assert!(!t.malformed().is_empty(), "{text}");
            assert_eq!(t.render(&vars()), json!(text));
        }
        let t = Template::parse("a {{b-c}} and {{n}}").expect("parses");
        assert_eq!(t.malformed()[0].text.as_ref(), "{{b-c}}");
        assert_eq!(t.malformed()[0].offset, 2);
        assert_eq!(t.render(&vars()), json!("a {{b-c}} and 3"));
    }

    #[test]
    fn braces_next_to_placeholders() {
        assert_eq!(render("{{{n}}}"), json!("{3}"));
        assert_eq!(render("{ \"k\": {{n}} }"), json!("{ \"k\": 3 }"));
    }

    #[test]
    fn secrets_only_through_a_source() {
        struct S;
        impl Secrets for S {
            fn secret(&self, name: &str) -> Option<String> {
                (name == "token").then(|| "s3cret".to_owned())
            }
        }
        let t = Template::parse("Bearer {{secrets.token}}").expect("parses");
        assert_eq!(t.render(&vars()), json!("Bearer {{secrets.token}}"));
        assert_eq!(t.render_with_secrets(&vars(), &S), json!("Bearer s3cret"));
        let t = Template::parse("{{secrets.other | none}}").expect("parses");
        assert_eq!(t.render_with_secrets(&vars(), &S), json!("none"));
        assert!(t.placeholders().all(Placeholder::is_secret));
    }

    #[test]
    fn value_templates_render_leaves_not_keys() {
        let v = json!({"{{s}}": "{{n}}", "list": ["{{s}}", 2, {"deep": "x{{b}}"}], "plain": {"k": "v"}});
        let t = ValueTemplate::parse(&v).expect("parses");
        assert_eq!(t.render(&vars()), json!({"{{s}}": 3, "list": ["hi", 2, {"deep": "xtrue"}], "plain": {"k": "v"}}));
        let mut seen = Vec::new();
        t.visit_placeholders(&mut |ptr, p| seen.push((ptr.to_owned(), p.path.to_string())));
        assert_eq!(
            seen,
            vec![
                ("/{{s}}".to_owned(), "n".to_owned()),
                ("/list/0".into(), "s".into()),
                ("/list/2/deep".into(), "b".into())
            ]
        );
        assert!(ValueTemplate::parse(&json!({"a": [1, "b"]})).expect("parses").is_literal());
    }

    #[test]
    fn limits() {
        assert!(matches!(Template::parse(&"x".repeat(MAX_TEMPLATE_BYTES + 1)), Err(TemplateError::TooLong { .. })));
        assert_eq!(Template::parse(&"{{n}}".repeat(MAX_PLACEHOLDERS + 1)), Err(TemplateError::TooManyPlaceholders));
        assert!(Template::parse(&"{{n}}".repeat(MAX_PLACEHOLDERS)).is_ok());
        let mut deep = json!("x");
        for _ in 0..(MAX_VALUE_DEPTH + 1) {
            deep = json!([deep]);
        }
        let err = ValueTemplate::parse(&deep).expect_err("too deep");
        assert_eq!(err.1, TemplateError::TooDeep);
        let bad = json!({"a/b": ["{{n}}".repeat(MAX_PLACEHOLDERS + 1)]});
        assert_eq!(ValueTemplate::parse(&bad).expect_err("too many").0, "/a~1b/0");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = Template::parse(&s);
        }

        #[test]
        fn text_without_braces_is_identity(s in "[^{]{0,100}") {
            let t = Template::parse(&s).expect("parses");
            prop_assert!(t.is_literal());
            prop_assert_eq!(t.render(&Map::new()), Value::String(s));
        }

        #[test]
        fn unresolved_placeholders_stay_literal(s in "([a-z ]|\\{\\{ ?[a-z_.]{1,6} ?\\}\\}|[{}]){0,30}") {
            let t = Template::parse(&s).expect("parses");
            prop_assert_eq!(t.render_text(&Map::new()), s);
        }
    }
}
