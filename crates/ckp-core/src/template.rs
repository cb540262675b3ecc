//! The template language: `{{path}}`, `{{path | default}}`, `{{secrets.NAME}}` and `{{secret_grants.NAME}}` inside
//! strings (CKP.md A.3, langorch.md B §2). A string is scanned once into a [`Template`] (literal parts and
//! [`Placeholder`]s) and a JSON value once into a [`ValueTemplate`]; rendering then only looks names up and copies
//! text.
//!
//! This module owns the syntax (a hand scanner that matches exactly what LangOrch's regex matches, in linear time),
//! the typing of defaults and the rendering rules. It must not decide where templates are rendered (the compiler
//! and the engine do), must not look secrets up anywhere but an explicit [`Secrets`] source, and never fails at
//! render time: whatever does not resolve stays literal text.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::{Map, Number, Value};

use crate::diag::escape_token;
use crate::path::{self, Scope, VarPath, is_word_char};

/// Longest template text accepted, in bytes (64 KiB). Longer text is a compile error: keep big text in a variable.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// Most placeholders accepted in one string.
pub const MAX_PLACEHOLDERS: usize = 1_000;

/// Deepest nesting of arrays and objects accepted in a [`ValueTemplate`] (the outermost container is level 1).
pub const MAX_VALUE_DEPTH: usize = 64;

/// How many [`Malformed`] entries one string records; later ones are dropped (they only feed warnings, and a
/// hostile string could otherwise hold tens of thousands).
pub const MAX_MALFORMED_RECORDED: usize = 100;

/// The root name that makes a placeholder a secret reference (`{{secrets.NAME}}`).
pub const SECRETS_ROOT: &str = "secrets";

/// The root name that makes a placeholder a credential-grant reference (`{{secret_grants.NAME}}`): it renders a
/// short-lived token the executor trades for the secret's value, never the value itself.
pub const SECRET_GRANTS_ROOT: &str = "secret_grants";

/// Longest [`Malformed::text`], in characters.
const MALFORMED_TEXT_CHARS: usize = 80;

/// Why a string or value cannot be compiled as a template. Every message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The text is longer than [`MAX_TEMPLATE_BYTES`].
    #[error(
        "template text is {len} bytes, over the limit of {max} bytes (64 KiB): keep large text in a variable and \
         insert it with a single `{{{{name}}}}` placeholder"
    )]
    TooLong {
        /// Length of the text, in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The text has more than [`MAX_PLACEHOLDERS`] placeholders.
    #[error(
        "template has {count} placeholders, over the limit of {max}: split the text over several fields, or build \
         it in a transform node and insert the result with one placeholder"
    )]
    TooManyPlaceholders {
        /// How many placeholders the text has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The value nests arrays and objects more than [`MAX_VALUE_DEPTH`] levels deep.
    #[error(
        "value nests arrays and objects more than {max} levels deep: flatten it, or keep the deep part in a \
         variable and insert it with a single `{{{{name}}}}` placeholder"
    )]
    TooDeep {
        /// The limit.
        max: usize,
    },
}

/// Where `{{secrets.NAME}}` and `{{secret_grants.NAME}}` are resolved. Only rendering for dispatch to an executor is
/// given one (A.3); neither a value nor a grant token ever enters vars.
pub trait Secrets {
    /// The value of the secret `name`, if the run's provider has it.
    fn secret(&self, name: &str) -> Option<String>;

    /// A credential-grant token for the secret `name`; `None` (the default) leaves the placeholder unresolved.
    fn grant(&self, name: &str) -> Option<String> {
        let _ = name;
        None
    }
}

impl<F: Fn(&str) -> Option<String>> Secrets for F {
    fn secret(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// One `{{path}}` or `{{path | default}}` in a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Placeholder {
    /// The variable path.
    pub path: VarPath,
    /// The typed default used when the path is unresolved: a string when it was quoted, otherwise a JSON number,
    /// `true`, `false` or `null` when the text is one, otherwise the text.
    pub default: Option<Value>,
    /// The default as text (trimmed, outer quotes removed). Inside longer text the default is inserted as written,
    /// so `{{price | 1.50}}` gives `1.50`, not the number's `1.5`.
    pub default_text: Option<Box<str>>,
    /// The full `{{...}}` text, left in place when the placeholder does not resolve.
    pub raw: Box<str>,
}

impl Placeholder {
    /// True for `{{secrets...}}` and `{{secret_grants...}}`: resolved only through a [`Secrets`] source, never from
    /// vars.
    pub fn is_secret_ref(&self) -> bool {
        matches!(&*self.path.root, SECRETS_ROOT | SECRET_GRANTS_ROOT)
    }

    /// The secret's name for `{{secrets.NAME}}`; `None` for other placeholders (grant references included) and for
    /// deeper paths such as `secrets.a.b` (a secret is a string, so those never resolve).
    pub fn secret_name(&self) -> Option<&str> {
        self.name_under(SECRETS_ROOT)
    }

    /// The secret's name for `{{secret_grants.NAME}}`; `None` for other placeholders and for deeper paths.
    pub fn secret_grant_name(&self) -> Option<&str> {
        self.name_under(SECRET_GRANTS_ROOT)
    }

    fn name_under(&self, root: &str) -> Option<&str> {
        match self.path.rest.as_slice() {
            [name] if &*self.path.root == root => Some(&name.name),
            _ => None,
        }
    }
}

/// A `{{` that did not form a placeholder (`{{a-b}}`, `{{x|}}`, `{{a..b}}`, an unclosed `{{`). It stays literal
/// text; the compiler may warn about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Byte offset of the `{{` in the string.
    pub offset: usize,
    /// The text from the `{{` up to and including the next `}}` (or to the end), at most 80 characters; a cut text
    /// ends with `…`.
    pub text: Box<str>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// A byte range of the source.
    Literal(Range<usize>),
    Placeholder(Placeholder),
}

/// A string compiled once into literal parts and placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: Box<str>,
    parts: Box<[Part]>,
    malformed: Box<[Malformed]>,
    // Both fit: the text is at most 64 KiB. Kept small because procedures embed many templates.
    placeholder_count: u32,
    literal_bytes: u32,
}

impl Template {
    /// Compiles `text`. Fails only on the size limits; anything that is not a placeholder stays literal text and,
    /// when it starts with `{{`, is listed by [`Template::malformed`].
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TooLong { len: text.len(), max: MAX_TEMPLATE_BYTES });
        }
        let mut parts = Vec::new();
        let mut malformed = Vec::new();
        let mut placeholder_count = 0_usize;
        let mut literal_bytes = 0_usize;
        let mut literal_start = 0;
        let mut scanner = Scanner::new(text);
        while let Some(event) = scanner.next_event() {
            let (offset, excerpt) = match event {
                Scan::Match(m) => {
                    let raw = text.get(m.span.clone()).unwrap_or_default();
                    match text.get(m.path.clone()).map(VarPath::parse) {
                        Some(Ok(path)) => {
                            if m.span.start > literal_start {
                                literal_bytes += m.span.start - literal_start;
                                parts.push(Part::Literal(literal_start..m.span.start));
                            }
                            let (default, default_text) = match m.default.and_then(|d| text.get(d)) {
                                Some(d) => {
                                    let (value, text) = typed_default(d);
                                    (Some(value), Some(text))
                                }
                                None => (None, None),
                            };
                            parts.push(Part::Placeholder(Placeholder { path, default, default_text, raw: raw.into() }));
                            placeholder_count += 1;
                            literal_start = m.span.end;
                            continue;
                        }
                        // `{{a..b}}`, `{{.a}}` or a too-deep path: the regex matched, but there is no such name.
                        _ => (m.span.start, shorten(raw)),
                    }
                }
                Scan::Failed(offset) => (offset, failed_excerpt(text, offset)),
            };
            if malformed.len() < MAX_MALFORMED_RECORDED {
                malformed.push(Malformed { offset, text: excerpt });
            }
        }
        if placeholder_count > MAX_PLACEHOLDERS {
            return Err(TemplateError::TooManyPlaceholders { count: placeholder_count, max: MAX_PLACEHOLDERS });
        }
        if literal_start < text.len() {
            literal_bytes += text.len() - literal_start;
            parts.push(Part::Literal(literal_start..text.len()));
        }
        Ok(Template {
            source: text.into(),
            parts: parts.into(),
            malformed: malformed.into(),
            placeholder_count: u32::try_from(placeholder_count).unwrap_or(u32::MAX),
            literal_bytes: u32::try_from(literal_bytes).unwrap_or(u32::MAX),
        })
    }

    /// The original text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the text has no placeholder at all: rendering is a copy of [`Template::source`].
    pub fn is_literal(&self) -> bool {
        self.placeholder_count == 0
    }

    /// The placeholders, in order of appearance.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|part| match part {
            Part::Placeholder(p) => Some(p),
            Part::Literal(_) => None,
        })
    }

    /// Every `{{` that did not form a placeholder (at most [`MAX_MALFORMED_RECORDED`]).
    pub fn malformed(&self) -> &[Malformed] {
        &self.malformed
    }

    /// True when `p` is a secret reference; the same as [`Placeholder::is_secret_ref`].
    pub fn is_secret_ref(p: &Placeholder) -> bool {
        p.is_secret_ref()
    }

    /// Renders against `scope`. A text that is exactly one placeholder gives the value with its JSON type (A.3);
    /// anything else gives a string. Secret references stay literal.
    pub fn render(&self, scope: &dyn Scope) -> Value {
        self.render_value(scope, None)
    }

    /// Like [`Template::render`], resolving `{{secrets.NAME}}` through `secrets` (a secret renders as a string).
    pub fn render_with_secrets(&self, scope: &dyn Scope, secrets: &dyn Secrets) -> Value {
        self.render_value(scope, Some(secrets))
    }

    /// Renders to text: strings as themselves, other values as compact JSON, unresolved placeholders as written.
    pub fn render_text(&self, scope: &dyn Scope) -> String {
        self.text(scope, None)
    }

    /// Like [`Template::render_text`], resolving `{{secrets.NAME}}` through `secrets`.
    pub fn render_text_with_secrets(&self, scope: &dyn Scope, secrets: &dyn Secrets) -> String {
        self.text(scope, Some(secrets))
    }

    fn render_value(&self, scope: &dyn Scope, secrets: Option<&dyn Secrets>) -> Value {
        if let [Part::Placeholder(p)] = &*self.parts {
            return match lookup(p, scope, secrets) {
                Lookup::Value(v) => v.into_owned(),
                Lookup::Secret(s) => Value::String(s),
                Lookup::Default(v, _) => v.clone(),
                Lookup::Unresolved => Value::String(p.raw.to_string()),
            };
        }
        Value::String(self.text(scope, secrets))
    }

    fn text(&self, scope: &dyn Scope, secrets: Option<&dyn Secrets>) -> String {
        if self.is_literal() {
            return self.source.to_string();
        }
        // Most substituted values are short; a too-small guess costs one regrowth.
        let capacity = self.literal_bytes as usize + 16 * self.placeholder_count as usize;
        let mut out = String::with_capacity(capacity);
        for part in &*self.parts {
            match part {
                Part::Literal(range) => out.push_str(self.source.get(range.clone()).unwrap_or_default()),
                Part::Placeholder(p) => match lookup(p, scope, secrets) {
                    Lookup::Value(v) => out.push_str(&path::to_text(&v)),
                    Lookup::Secret(s) => out.push_str(&s),
                    Lookup::Default(_, Some(text)) => out.push_str(text),
                    Lookup::Default(v, None) => out.push_str(&path::to_text(v)),
                    Lookup::Unresolved => out.push_str(&p.raw),
                },
            }
        }
        out
    }
}

enum Lookup<'a> {
    Value(Cow<'a, Value>),
    Secret(String),
    Default(&'a Value, Option<&'a str>),
    Unresolved,
}

fn lookup<'a>(p: &'a Placeholder, scope: &'a dyn Scope, secrets: Option<&dyn Secrets>) -> Lookup<'a> {
    if p.is_secret_ref() {
        // Without a source the reference must survive untouched (defaults included) so that dispatch can still
        // resolve it; `secrets` in vars is never consulted.
        let Some(secrets) = secrets else { return Lookup::Unresolved };
        let value = match (p.secret_name(), p.secret_grant_name()) {
            (Some(name), _) => secrets.secret(name),
            (_, Some(name)) => secrets.grant(name),
            _ => None,
        };
        if let Some(value) = value {
            return Lookup::Secret(value);
        }
    } else if let Some(value) = p.path.resolve(scope) {
        return Lookup::Value(value);
    }
    match &p.default {
        Some(value) => Lookup::Default(value, p.default_text.as_deref()),
        None => Lookup::Unresolved,
    }
}

/// Types a default as ckp does: quoted → string; a JSON number, `true`, `false` or `null` → that value; else text.
/// Returns the value and the text (trimmed, outer quotes removed, as LangOrch substitutes it).
fn typed_default(raw: &str) -> (Value, Box<str>) {
    let trimmed = raw.trim_matches(is_space);
    let text = trimmed.trim_matches(['\'', '"']);
    let value = if text.len() != trimmed.len() {
        Value::String(text.to_owned())
    } else {
        match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            _ => text.parse::<Number>().map_or_else(|_| Value::String(text.to_owned()), Value::Number),
        }
    };
    (value, text.into())
}

/// Python's `\s` (what `str.isspace` accepts): Unicode `White_Space` plus the separators U+001C..U+001F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn is_path_char(c: char) -> bool {
    c == '.' || is_word_char(c)
}

/// Cuts `text` to [`MALFORMED_TEXT_CHARS`] characters, marking a cut with `…`.
fn shorten(text: &str) -> Box<str> {
    match text.char_indices().nth(MALFORMED_TEXT_CHARS) {
        None => text.into(),
        Some(_) => {
            let keep = text.char_indices().nth(MALFORMED_TEXT_CHARS - 1).map_or(text.len(), |(i, _)| i);
            format!("{}…", text.get(..keep).unwrap_or_default()).into()
        }
    }
}

/// The text of a failed `{{` at `offset`: up to and including the next `}}`, or to the end; looks no further than
/// the excerpt can show, so recording stays O(1) per `{{`.
fn failed_excerpt(text: &str, offset: usize) -> Box<str> {
    let rest = text.get(offset..).unwrap_or_default();
    let window_end = rest.char_indices().nth(MALFORMED_TEXT_CHARS + 2).map_or(rest.len(), |(i, _)| i);
    let window = rest.get(..window_end).unwrap_or_default();
    match window.get(2..).and_then(|after| after.find("}}")) {
        Some(at) => shorten(window.get(..at + 4).unwrap_or(window)),
        None => shorten(window),
    }
}

/// One regex match: the whole `{{...}}`, the path text and the raw default text (byte ranges of the source).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawMatch {
    span: Range<usize>,
    path: Range<usize>,
    default: Option<Range<usize>>,
}

enum Scan {
    Match(RawMatch),
    /// A `{{` at this offset that starts no match (only the last `{{` of a run of braces is reported).
    Failed(usize),
}

/// The first position `>= from` where a byte pattern occurs, remembered so that the queries of successive match
/// attempts (which only move forward) scan each byte once.
#[derive(Debug, Default)]
struct Memo {
    from: usize,
    /// `None`: no occurrence in `from..`.
    at: Option<usize>,
    valid: bool,
}

impl Memo {
    fn find(&mut self, bytes: &[u8], from: usize, found: impl Fn(&[u8], usize) -> bool) -> Option<usize> {
        if self.valid && self.from <= from && self.at.is_none_or(|at| from <= at) {
            return self.at;
        }
        let at = (from..bytes.len()).find(|&i| found(bytes, i));
        *self = Memo { from, at, valid: true };
        at
    }
}

/// Finds the matches of LangOrch's `\{\{\s*([\w.]+)\s*(?:\|\s*(.+?))?\s*\}\}` left to right, as Python's
/// `re.sub` does, without backtracking: every `{{` is tried, and the lazy default is found from the first `}}`
/// after it (see [`Scanner::match_at`]), so the whole scan is linear in the text.
struct Scanner<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    close: Memo,
    newline: Memo,
    /// (position of a `}}`, start of the whitespace run before it).
    ws_before: Option<(usize, usize)>,
}

impl<'t> Scanner<'t> {
    fn new(text: &'t str) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            close: Memo::default(),
            newline: Memo::default(),
            ws_before: None,
        }
    }

    fn next_event(&mut self) -> Option<Scan> {
        loop {
            let i = (self.pos..self.bytes.len()).find(|&i| self.is_pair(i, b'{'))?;
            self.pos = i + 1;
            // In `{{{`, the first `{{` is followed by a brace, which neither `\s` nor `[\w.]` accepts.
            if self.bytes.get(i + 2) == Some(&b'{') {
                continue;
            }
            return Some(match self.match_at(i) {
                Some(m) => {
                    self.pos = m.span.end;
                    Scan::Match(m)
                }
                None => Scan::Failed(i),
            });
        }
    }

    fn is_pair(&self, i: usize, b: u8) -> bool {
        self.bytes.get(i) == Some(&b) && self.bytes.get(i + 1) == Some(&b)
    }

    fn char_at(&self, i: usize) -> Option<char> {
        self.text.get(i..)?.chars().next()
    }

    fn skip(&self, mut i: usize, accept: fn(char) -> bool) -> usize {
        while let Some(c) = self.char_at(i).filter(|&c| accept(c)) {
            i += c.len_utf8();
        }
        i
    }

    /// The match starting at the `{{` at `i`, if any. Greedy parts are simple: the leading `\s*` and the path take
    /// all they can (backing off never helps, as the next token cannot be a word character). The default is the
    /// subtle part. Python first lets `\s*` after `|` take all the whitespace `W`; `.+?` then starts at the next
    /// character `s` and grows until `\s*\}\}` follows, never crossing a newline. The shortest such default ends
    /// where the whitespace before the first `}}` after `s` starts, so only that `}}` needs checking. If it fails,
    /// `\s*` gives back whitespace: `.+?` can then take one non-newline whitespace character of `W`, which works
    /// only when `}}` directly follows `W`.
    fn match_at(&mut self, i: usize) -> Option<RawMatch> {
        let path_start = self.skip(i + 2, is_space);
        let path_end = self.skip(path_start, is_path_char);
        if path_end == path_start {
            return None;
        }
        let path = path_start..path_end;
        let after_path = self.skip(path_end, is_space);
        if self.is_pair(after_path, b'}') {
            return Some(RawMatch { span: i..after_path + 2, path, default: None });
        }
        if self.bytes.get(after_path) != Some(&b'|') {
            return None;
        }
        let bar_end = after_path + 1;
        let w = self.skip(bar_end, is_space);
        if let Some(first) = self.char_at(w) {
            let after_first = w + first.len_utf8();
            let bytes = self.bytes;
            if let Some(q) = self.close.find(bytes, after_first, |b, i| b.get(i..i + 2) == Some(b"}}")) {
                let end = self.ws_run_start(q).max(after_first);
                let newline = self.newline.find(bytes, w, |b, i| b.get(i) == Some(&b'\n'));
                if newline.is_none_or(|nl| nl >= end) {
                    return Some(RawMatch { span: i..q + 2, path, default: Some(w..end) });
                }
            }
        }
        if self.is_pair(w, b'}') {
            let (at, c) = self.text.get(bar_end..w)?.char_indices().rev().find(|&(_, c)| c != '\n')?;
            let start = bar_end + at;
            return Some(RawMatch { span: i..w + 2, path, default: Some(start..start + c.len_utf8()) });
        }
        None
    }

    /// Start of the run of whitespace that ends at `q`.
    fn ws_run_start(&mut self, q: usize) -> usize {
        if let Some((cached_q, start)) = self.ws_before
            && cached_q == q
        {
            return start;
        }
        let head = self.text.get(..q).unwrap_or_default();
        let start = head.char_indices().rev().find(|&(_, c)| !is_space(c)).map_or(0, |(at, c)| at + c.len_utf8());
        self.ws_before = Some((q, start));
        start
    }
}

/// A JSON value whose string leaves may hold templates, compiled once. Object keys are never rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTemplate {
    /// A subtree without any placeholder or malformed `{{`: rendered by one clone.
    Literal(Value),
    /// A string leaf.
    Text(Template),
    /// An array with at least one templated element.
    Array(Vec<ValueTemplate>),
    /// An object with at least one templated value; keys in document order.
    Object(Vec<(String, ValueTemplate)>),
}

impl ValueTemplate {
    /// Compiles every string leaf of `value`. On error, returns where (a JSON pointer relative to `value`, such as
    /// `/a/0`) and why.
    pub fn parse(value: &Value) -> Result<ValueTemplate, (String, TemplateError)> {
        let mut pointer = String::new();
        build(value, 0, &mut pointer).map_err(|err| (pointer, err))
    }

    /// Renders against `scope` (see [`Template::render`] for each string leaf).
    pub fn render(&self, scope: &dyn Scope) -> Value {
        self.render_value(scope, None)
    }

    /// Renders against `scope`, resolving `{{secrets.NAME}}` through `secrets`.
    pub fn render_with_secrets(&self, scope: &dyn Scope, secrets: &dyn Secrets) -> Value {
        self.render_value(scope, Some(secrets))
    }

    /// Calls `f` with the relative JSON pointer of the string and each of its placeholders, in document order.
    pub fn visit_placeholders(&self, f: &mut dyn FnMut(&str, &Placeholder)) {
        self.visit(&mut String::new(), &mut |pointer, template| {
            template.placeholders().for_each(|p| f(pointer, p));
        });
    }

    /// Calls `f` with the relative JSON pointer of the string and each malformed `{{` in it, in document order.
    pub fn visit_malformed(&self, f: &mut dyn FnMut(&str, &Malformed)) {
        self.visit(&mut String::new(), &mut |pointer, template| {
            template.malformed().iter().for_each(|m| f(pointer, m));
        });
    }

    /// True when rendering cannot change anything (no placeholder anywhere).
    pub fn is_literal(&self) -> bool {
        match self {
            ValueTemplate::Literal(_) => true,
            ValueTemplate::Text(t) => t.is_literal(),
            ValueTemplate::Array(items) => items.iter().all(ValueTemplate::is_literal),
            ValueTemplate::Object(entries) => entries.iter().all(|(_, v)| v.is_literal()),
        }
    }

    fn render_value(&self, scope: &dyn Scope, secrets: Option<&dyn Secrets>) -> Value {
        match self {
            ValueTemplate::Literal(value) => value.clone(),
            ValueTemplate::Text(t) => t.render_value(scope, secrets),
            ValueTemplate::Array(items) => Value::Array(items.iter().map(|i| i.render_value(scope, secrets)).collect()),
            ValueTemplate::Object(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (key, value) in entries {
                    map.insert(key.clone(), value.render_value(scope, secrets));
                }
                Value::Object(map)
            }
        }
    }

    fn visit(&self, pointer: &mut String, f: &mut dyn FnMut(&str, &Template)) {
        let len = pointer.len();
        match self {
            ValueTemplate::Literal(_) => {}
            ValueTemplate::Text(t) => f(pointer, t),
            ValueTemplate::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    pointer.push('/');
                    pointer.push_str(&index.to_string());
                    item.visit(pointer, f);
                    pointer.truncate(len);
                }
            }
            ValueTemplate::Object(entries) => {
                for (key, value) in entries {
                    push_token(pointer, key);
                    value.visit(pointer, f);
                    pointer.truncate(len);
                }
            }
        }
    }

    fn into_literal(self) -> Option<Value> {
        match self {
            ValueTemplate::Literal(value) => Some(value),
            _ => None,
        }
    }
}

/// Appends `/token` with RFC 6901 escaping (`~` → `~0`, `/` → `~1`).
fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    pointer.push_str(&escape_token(token));
}

/// Compiles `value` at nesting level `depth`. On error, `pointer` is left pointing at the culprit.
fn build(value: &Value, depth: usize, pointer: &mut String) -> Result<ValueTemplate, TemplateError> {
    let len = pointer.len();
    match value {
        Value::String(text) => {
            let template = Template::parse(text)?;
            Ok(if template.is_literal() && template.malformed().is_empty() {
                ValueTemplate::Literal(value.clone())
            } else {
                ValueTemplate::Text(template)
            })
        }
        Value::Array(_) | Value::Object(_) if depth >= MAX_VALUE_DEPTH => {
            Err(TemplateError::TooDeep { max: MAX_VALUE_DEPTH })
        }
        Value::Array(items) => {
            let mut built = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                pointer.push('/');
                pointer.push_str(&index.to_string());
                built.push(build(item, depth + 1, pointer)?);
                pointer.truncate(len);
            }
            Ok(if built.iter().all(|b| matches!(b, ValueTemplate::Literal(_))) {
                ValueTemplate::Literal(Value::Array(
                    built.into_iter().filter_map(ValueTemplate::into_literal).collect(),
                ))
            } else {
                ValueTemplate::Array(built)
            })
        }
        Value::Object(map) => {
            let mut built = Vec::with_capacity(map.len());
            for (key, item) in map {
                push_token(pointer, key);
                built.push((key.clone(), build(item, depth + 1, pointer)?));
                pointer.truncate(len);
            }
            Ok(if built.iter().all(|(_, b)| matches!(b, ValueTemplate::Literal(_))) {
                let literal = built.into_iter().filter_map(|(k, b)| Some((k, b.into_literal()?))).collect();
                ValueTemplate::Literal(Value::Object(literal))
            } else {
                ValueTemplate::Object(built)
            })
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(ValueTemplate::Literal(value.clone())),
    }
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::path::With;

    fn vars() -> Map<String, Value> {
        json!({
            "name": "Ada", "n": 3, "f": 1.5, "flag": true, "nothing": null, "s": "abc", "ñame": "uni",
            "items": [1, 2, 3],
            "obj": {"a": 1, "b": [true, null]},
            "order": {"lines": [{"sku": "A-1"}, {"sku": "B-2"}]},
            "secrets": {"token": "from-vars"}
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn tpl(text: &str) -> Template {
        Template::parse(text).expect("within limits")
    }

    fn text(t: &str) -> String {
        tpl(t).render_text(&vars())
    }

    fn value(t: &str) -> Value {
        tpl(t).render(&vars())
    }

    struct Vault;

    impl Secrets for Vault {
        fn secret(&self, name: &str) -> Option<String> {
            (name == "token").then(|| "s3cr3t".to_owned())
        }
    }

    /// Rebuilds the source from the parts: literal text plus each placeholder's raw text.
    fn reconstruct(t: &Template) -> String {
        t.parts
            .iter()
            .map(|part| match part {
                Part::Literal(range) => t.source.get(range.clone()).expect("range in source").to_owned(),
                Part::Placeholder(p) => p.raw.to_string(),
            })
            .collect()
    }

    #[test]
    fn probed_examples_of_b_2_1() {
        assert_eq!(text("{{x | 'n/a'}}"), "n/a");
        assert_eq!(text("{{ a.b | d e }}"), "d e");
        for literal in ["{{a-b}}", "{{ lst.-1 }}", "{{x|}}"] {
            let t = tpl(literal);
            assert!(t.is_literal(), "{literal}");
            assert_eq!(t.render_text(&vars()), literal);
            assert_eq!(t.malformed(), [Malformed { offset: 0, text: literal.into() }]);
        }
        assert_eq!(text("Hello {{who}}, {{order.nope}}!"), "Hello {{who}}, {{order.nope}}!");
    }

    #[test]
    fn paths_index_and_measure() {
        assert_eq!(value("{{items.0}}"), json!(1));
        assert_eq!(value("{{ order.lines.1.sku }}"), json!("B-2"));
        assert_eq!(value("{{items.length}}"), json!(3));
        assert_eq!(value("{{items.count}}"), json!(3));
        assert_eq!(text("{{items.5}} {{name.0}}"), "{{items.5}} {{name.0}}");
        assert_eq!(text("{{ñame}}"), "uni");
    }

    #[test]
    fn exactly_one_placeholder_keeps_the_json_type() {
        assert_eq!(value("{{items}}"), json!([1, 2, 3]));
        assert_eq!(value("{{n}}"), json!(3));
        assert_eq!(value("{{ n }}"), json!(3));
        assert_eq!(value("{{flag}}"), json!(true));
        assert_eq!(value("{{obj}}"), json!({"a": 1, "b": [true, null]}));
        assert_eq!(value(" {{n}}"), json!(" 3"));
        assert_eq!(value("{{n}}{{n}}"), json!("33"));
        assert_eq!(value("{{missing}}"), json!("{{missing}}"));
        assert_eq!(tpl("{{n}}").render_text(&vars()), "3");
    }

    #[test]
    fn non_strings_inside_text_are_compact_json() {
        assert_eq!(
            text("obj={{obj}} items={{items}} f={{f}} flag={{flag}} name={{name}}"),
            r#"obj={"a":1,"b":[true,null]} items=[1,2,3] f=1.5 flag=true name=Ada"#
        );
    }

    #[test]
    fn null_is_unresolved() {
        assert_eq!(text("{{nothing}}"), "{{nothing}}");
        assert_eq!(value("{{nothing | none}}"), json!("none"));
    }

    #[test]
    fn defaults_are_typed_unless_quoted() {
        assert_eq!(value("{{x | 3}}"), json!(3));
        assert_eq!(value("{{x | -2.5e1}}"), json!(-25.0));
        assert_eq!(value("{{x|'3'}}"), json!("3"));
        assert_eq!(value("{{x | \"true\"}}"), json!("true"));
        assert_eq!(value("{{x|false}}"), json!(false));
        assert_eq!(value("{{x | null}}"), Value::Null);
        assert_eq!(value("{{x | abc}}"), json!("abc"));
        assert_eq!(value("{{x | 007}}"), json!("007"));
        assert_eq!(value("{{x|  ' padded '  }}"), json!(" padded "));
        assert_eq!(value("{{x | \"'mixed'\"}}"), json!("mixed"));
        assert_eq!(value("{{n | 9}}"), json!(3), "a resolved path ignores its default");
        // Inside text a default appears as written, not re-serialised.
        assert_eq!(text("p={{x | 1.50}} v={{x|null}} q={{x | '7'}}"), "p=1.50 v=null q=7");
        let t = tpl("{{x | '7'}}");
        let p = t.placeholders().next().expect("one placeholder");
        assert_eq!((p.default.clone(), p.default_text.as_deref()), (Some(json!("7")), Some("7")));
    }

    #[test]
    fn matches_exactly_what_the_python_regex_matches() {
        // Each case was run through Python's `re` with LangOrch's pattern.
        assert_eq!(text("{{{n}}}"), "{3}");
        assert_eq!(value("{{x| }}"), json!(""), "the default is a single space, trimmed to nothing");
        assert_eq!(value("{{x|}}}"), json!("}"));
        assert_eq!(value("{{x| }} and more }}"), json!("}} and more"));
        assert_eq!(value("{{x|a\n}}"), json!("a"));
        assert_eq!(value("{{x| \n}}"), json!(""));
        assert_eq!(value("{{x|\n\n }}"), json!(""));
        assert_eq!(text("{{x|{{y}}}}"), "{{y}}");
        for literal in ["{{x| a\nb }}", "{{x|\n}}", "{{}}", "{{ }}", "{{x", "{{x}", "{{x|y}"] {
            assert!(tpl(literal).is_literal(), "{literal:?}");
        }
        assert_eq!(value("{{\n n \n}}"), json!(3));
        assert_eq!(value("{{\u{3000}n\u{3000}}}"), json!(3), "Unicode whitespace");
        assert_eq!(value("{{\u{1c}n}}"), json!(3), "Python's \\s includes U+001C..U+001F");
    }

    #[test]
    fn invalid_paths_stay_literal_and_are_reported() {
        let deep = format!("{{{{{}}}}}", vec!["a"; 40].join("."));
        for literal in ["{{a..b}}", "{{.n}}", "{{n.}}", "{{a..b | d}}", deep.as_str()] {
            let t = tpl(literal);
            assert!(t.is_literal(), "{literal}");
            assert_eq!(t.render(&vars()), json!(literal));
            assert_eq!(t.malformed().len(), 1, "{literal}");
            assert_eq!(t.malformed()[0].offset, 0);
        }
    }

    #[test]
    fn malformed_offsets_and_excerpts() {
        assert_eq!(tpl("ab {{a-b}} c {{n}}").malformed(), [Malformed { offset: 3, text: "{{a-b}}".into() }]);
        assert_eq!(tpl("x {{abc").malformed(), [Malformed { offset: 2, text: "{{abc".into() }]);
        assert_eq!(tpl("é{{-é").malformed(), [Malformed { offset: 2, text: "{{-é".into() }]);
        // Only the last `{{` of a run of braces could start a placeholder, so only it is reported.
        assert_eq!(tpl("{{{a-b}}}").malformed(), [Malformed { offset: 1, text: "{{a-b}}".into() }]);
        let long = tpl(&format!("{{{{-{} }}}}", "y".repeat(200)));
        let excerpt = &long.malformed()[0].text;
        assert_eq!(excerpt.chars().count(), 80);
        assert!(excerpt.starts_with("{{-yyy") && excerpt.ends_with("y…"), "{excerpt}");
        assert_eq!(tpl(&"{{-".repeat(500)).malformed().len(), MAX_MALFORMED_RECORDED);
    }

    #[test]
    fn secrets_resolve_only_through_a_source() {
        let t = tpl("{{secrets.token}}");
        assert_eq!(t.render(&vars()), json!("{{secrets.token}}"), "vars' `secrets` key is never used");
        assert_eq!(tpl("{{secrets.token | x}}").render_text(&vars()), "{{secrets.token | x}}");
        assert_eq!(t.render_with_secrets(&vars(), &Vault), json!("s3cr3t"));
        let mixed = tpl("{{n}} Bearer {{secrets.token}}");
        assert_eq!(mixed.render_with_secrets(&vars(), &Vault), json!("3 Bearer s3cr3t"));
        assert_eq!(mixed.render_text_with_secrets(&vars(), &Vault), "3 Bearer s3cr3t");
        assert_eq!(tpl("{{secrets.other}}").render_with_secrets(&vars(), &Vault), json!("{{secrets.other}}"));
        assert_eq!(tpl("{{secrets.other | none}}").render_with_secrets(&vars(), &Vault), json!("none"));
        assert_eq!(tpl("{{secrets.token.x}}").render_with_secrets(&vars(), &Vault), json!("{{secrets.token.x}}"));
        let by_closure = |name: &str| Some(format!("v-{name}"));
        assert_eq!(tpl("{{secrets.k}}").render_with_secrets(&vars(), &by_closure), json!("v-k"));

        let p = t.placeholders().next().expect("one placeholder");
        assert!(p.is_secret_ref() && Template::is_secret_ref(p));
        assert_eq!(p.secret_name(), Some("token"));
        let plain = tpl("{{secretsx.token}}");
        let p = plain.placeholders().next().expect("one placeholder");
        assert!(!p.is_secret_ref());
        assert_eq!(p.secret_name(), None);
    }

    #[test]
    fn grants_resolve_only_through_a_source_and_never_as_values() {
        struct Granting;
        impl Secrets for Granting {
            fn secret(&self, _: &str) -> Option<String> {
                Some("the-value".into())
            }
            fn grant(&self, name: &str) -> Option<String> {
                Some(format!("grant-for-{name}"))
            }
        }
        let t = tpl("Bearer {{secret_grants.token}}");
        let p = t.placeholders().next().expect("one placeholder");
        assert!(p.is_secret_ref());
        assert_eq!((p.secret_name(), p.secret_grant_name()), (None, Some("token")));
        let scope = json!({"secret_grants": {"token": "from-vars"}}).as_object().cloned().expect("an object");
        assert_eq!(t.render(&scope), json!("Bearer {{secret_grants.token}}"), "vars are never used");
        assert_eq!(t.render_with_secrets(&scope, &Granting), json!("Bearer grant-for-token"));
        assert_eq!(t.render_with_secrets(&scope, &Vault), json!("Bearer {{secret_grants.token}}"), "no grants");
        let both = tpl("{{secrets.token}} {{secret_grants.token}}");
        assert_eq!(both.render_text_with_secrets(&vars(), &Granting), "the-value grant-for-token");
        let deeper = tpl("{{secret_grants.token.x}}");
        assert_eq!(deeper.placeholders().next().and_then(Placeholder::secret_grant_name), None);
        assert_eq!(deeper.render_with_secrets(&vars(), &Granting), json!("{{secret_grants.token.x}}"));
    }

    #[test]
    fn layered_scope() {
        let v = vars();
        let item = json!({"id": 7});
        let scope = With { name: "item", value: &item, parent: &v };
        assert_eq!(tpl("{{item.id}}").render(&scope), json!(7));
        assert_eq!(tpl("{{item.id}}-{{name}}").render(&scope), json!("7-Ada"));
    }

    #[test]
    fn template_accessors() {
        let t = tpl("Hi {{ name }} and {{x | d}}");
        assert_eq!(t.source(), "Hi {{ name }} and {{x | d}}");
        assert!(!t.is_literal());
        let raws: Vec<_> = t.placeholders().map(|p| (p.path.to_string(), p.raw.to_string())).collect();
        assert_eq!(raws, [("name".into(), "{{ name }}".into()), ("x".into(), "{{x | d}}".into())]);
        assert!(tpl("").is_literal());
        assert_eq!(tpl("").render(&vars()), json!(""));
    }

    #[test]
    fn length_limit() {
        let at_limit = "a".repeat(MAX_TEMPLATE_BYTES);
        assert!(Template::parse(&at_limit).is_ok());
        let err = Template::parse(&format!("{at_limit}b")).expect_err("over the limit");
        assert_eq!(err, TemplateError::TooLong { len: MAX_TEMPLATE_BYTES + 1, max: MAX_TEMPLATE_BYTES });
        let message = err.to_string();
        assert!(message.contains("64 KiB") && message.contains("`{{name}}`"), "{message}");
    }

    #[test]
    fn placeholder_count_limit() {
        let ok = tpl(&"{{n}}".repeat(MAX_PLACEHOLDERS));
        assert_eq!(ok.render_text(&vars()), "3".repeat(MAX_PLACEHOLDERS));
        let err = Template::parse(&"{{n}}".repeat(MAX_PLACEHOLDERS + 1)).expect_err("too many");
        assert_eq!(err, TemplateError::TooManyPlaceholders { count: MAX_PLACEHOLDERS + 1, max: MAX_PLACEHOLDERS });
        assert!(err.to_string().contains("split the text"));
        // Malformed `{{` do not count.
        assert!(Template::parse(&"{{-}}".repeat(MAX_PLACEHOLDERS + 1)).is_ok());
    }

    fn nested_arrays(levels: usize) -> Value {
        (1..levels).fold(json!(["{{n}}"]), |inner, _| json!([inner]))
    }

    #[test]
    fn depth_limit() {
        let ok = ValueTemplate::parse(&nested_arrays(MAX_VALUE_DEPTH)).expect("at the limit");
        assert_eq!(ok.render(&vars()), (1..MAX_VALUE_DEPTH).fold(json!([3]), |inner, _| json!([inner])));
        let (pointer, err) = ValueTemplate::parse(&nested_arrays(MAX_VALUE_DEPTH + 1)).expect_err("too deep");
        assert_eq!(err, TemplateError::TooDeep { max: MAX_VALUE_DEPTH });
        assert_eq!(pointer, "/0".repeat(MAX_VALUE_DEPTH));
        assert!(err.to_string().contains("flatten"));
        let objects = (0..=MAX_VALUE_DEPTH).fold(json!(1), |inner, _| json!({"k": inner}));
        let (pointer, _) = ValueTemplate::parse(&objects).expect_err("too deep, even without templates");
        assert_eq!(pointer, "/k".repeat(MAX_VALUE_DEPTH));
    }

    #[test]
    fn value_template_errors_point_at_the_string() {
        let long = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        let (pointer, err) = ValueTemplate::parse(&json!({"a": ["ok", long]})).expect_err("too long");
        assert_eq!(pointer, "/a/1");
        assert!(matches!(err, TemplateError::TooLong { .. }));
    }

    #[test]
    fn value_templates_render_leaves_not_keys() {
        let doc = json!({
            "{{name}}": "{{name}}",
            "nested": {"list": ["{{n}}", "x {{n}}", 7, null, "{{items}}"], "k": "plain"},
            "z": "{{missing}}"
        });
        let vt = ValueTemplate::parse(&doc).expect("valid");
        assert!(!vt.is_literal());
        let rendered = vt.render(&vars());
        assert_eq!(
            rendered,
            json!({
                "{{name}}": "Ada",
                "nested": {"list": [3, "x 3", 7, null, [1, 2, 3]], "k": "plain"},
                "z": "{{missing}}"
            })
        );
        let keys: Vec<_> = rendered.as_object().expect("object").keys().cloned().collect();
        assert_eq!(keys, ["{{name}}", "nested", "z"], "document order is kept");
        let ValueTemplate::Object(entries) = &vt else { panic!("expected an object, got {vt:?}") };
        let ValueTemplate::Object(nested) = &entries[1].1 else { panic!("expected an object") };
        assert_eq!(nested[1], ("k".to_owned(), ValueTemplate::Literal(json!("plain"))));
    }

    #[test]
    fn literal_subtrees_collapse_to_one_clone() {
        let doc = json!({"a": [1, "x", {"b": null}], "c": "{{a-b}} stays"});
        let vt = ValueTemplate::parse(&doc).expect("valid");
        let ValueTemplate::Object(entries) = &vt else { panic!("malformed text keeps the object open: {vt:?}") };
        assert_eq!(entries[0].1, ValueTemplate::Literal(json!([1, "x", {"b": null}])));
        assert!(vt.is_literal());
        assert_eq!(vt.render(&vars()), doc);
        let plain = json!({"a": [1, "x"], "b": {"c": true}});
        assert_eq!(ValueTemplate::parse(&plain), Ok(ValueTemplate::Literal(plain.clone())));
    }

    #[test]
    fn visitors_report_escaped_relative_pointers() {
        let doc = json!({"a/b": ["{{n}}", "{{x}} {{y}}"], "m~n": "{{name}} {{a-b}}", "lit": [1]});
        let vt = ValueTemplate::parse(&doc).expect("valid");
        let mut seen = Vec::new();
        vt.visit_placeholders(&mut |pointer, p| seen.push((pointer.to_owned(), p.path.to_string())));
        let expected = [("/a~1b/0", "n"), ("/a~1b/1", "x"), ("/a~1b/1", "y"), ("/m~0n", "name")];
        assert_eq!(seen, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
        let mut bad = Vec::new();
        vt.visit_malformed(&mut |pointer, m| bad.push((pointer.to_owned(), m.offset, m.text.to_string())));
        assert_eq!(bad, [("/m~0n".to_owned(), 9, "{{a-b}}".to_owned())]);
        let mut root = Vec::new();
        ValueTemplate::parse(&json!("{{n}}"))
            .expect("valid")
            .visit_placeholders(&mut |pointer, _| root.push(pointer.to_owned()));
        assert_eq!(root, [""]);
    }

    #[test]
    fn value_templates_resolve_secrets_only_through_a_source() {
        let vt = ValueTemplate::parse(&json!({"auth": "Bearer {{secrets.token}}", "n": "{{n}}"})).expect("valid");
        assert_eq!(vt.render(&vars()), json!({"auth": "Bearer {{secrets.token}}", "n": 3}));
        assert_eq!(vt.render_with_secrets(&vars(), &Vault), json!({"auth": "Bearer s3cr3t", "n": 3}));
    }

    #[test]
    fn hostile_inputs_parse() {
        // A backtracking or rescanning implementation is quadratic on these (seconds at 64 KiB). No timing
        // assertion here (tests must not time things); the fuzz targets run with a 5 s hang timeout instead.
        let n = MAX_TEMPLATE_BYTES / 8;
        let inputs = [
            "{{a|b ".repeat(n),
            "{{a|b\n".repeat(n),
            format!("{}{}}}}}", "{{a|b\n".repeat(n), " ".repeat(MAX_TEMPLATE_BYTES / 4 - 8)),
            format!("{{{{a|{}", " ".repeat(MAX_TEMPLATE_BYTES - 8)),
            "{{ a.a.a.a.a.a".repeat(n / 2),
            "{".repeat(MAX_TEMPLATE_BYTES),
        ];
        for input in &inputs {
            let t = Template::parse(input).expect("within limits");
            assert!(t.malformed().len() <= MAX_MALFORMED_RECORDED);
        }
    }

    /// LangOrch's pattern, run by the regex crate, whose leftmost-first semantics equal Python's backtracking.
    fn oracle(text: &str) -> Vec<RawMatch> {
        static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"\{\{\s*([\w.]+)\s*(?:\|\s*(.+?))?\s*\}\}").expect("valid pattern")
        });
        PATTERN
            .captures_iter(text)
            .filter_map(|c| {
                Some(RawMatch {
                    span: c.get(0)?.range(),
                    path: c.get(1)?.range(),
                    default: c.get(2).map(|m| m.range()),
                })
            })
            .collect()
    }

    fn scanned(text: &str) -> Vec<RawMatch> {
        let mut scanner = Scanner::new(text);
        let mut matches = Vec::new();
        while let Some(event) = scanner.next_event() {
            if let Scan::Match(m) = event {
                matches.push(m);
            }
        }
        matches
    }

    /// Strings built from pieces that form, almost form and break placeholders. The characters are ones on which
    /// Python, the regex crate and this scanner agree about `\w` and `\s`.
    fn tricky(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(pieces), 0..24).prop_map(|parts| parts.concat())
    }

    #[rustfmt::skip]
    const PIECES: &[&str] = &[
        "{{", "}}", "{", "}", "|", " ", "\n", "\t", "a", "n", "b.c", ".", "-", "'", "\"", "é", "中", "\u{3000}",
        "{{ n", "| d", "}}}", "x|}}", "|a\n", "| \n", "secrets.token",
    ];
    #[rustfmt::skip]
    const PIECES_WITHOUT_BAR: &[&str] =
        &["{{", "}}", "{", "}", " ", "\n", "a", "n", "b.c", ".", "-", "'", "é", "\u{3000}", "{{ n", "}}}"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn scanner_agrees_with_the_regex(s in tricky(PIECES)) {
            prop_assert_eq!(scanned(&s), oracle(&s));
        }
    }

    proptest! {

        #[test]
        fn parse_never_panics(s in any::<String>(), t in tricky(PIECES)) {
            for text in [&s, &t] {
                let parsed = Template::parse(text).expect("short strings are within limits");
                prop_assert_eq!(reconstruct(&parsed), text.as_str());
                let _ = parsed.render_with_secrets(&vars(), &Vault);
            }
        }

        #[test]
        fn text_without_braces_renders_unchanged(s in any::<String>(), t in tricky(PIECES)) {
            for text in [s, t.replace("{{", "{")] {
                prop_assume!(!text.contains("{{"));
                let parsed = Template::parse(&text).expect("within limits");
                prop_assert!(parsed.is_literal());
                prop_assert_eq!(parsed.render(&vars()), Value::String(text.clone()));
                prop_assert_eq!(parsed.render_text(&vars()), text);
            }
        }

        #[test]
        fn unresolved_placeholders_stay_literal(s in tricky(PIECES_WITHOUT_BAR)) {
            let parsed = Template::parse(&s).expect("within limits");
            prop_assert_eq!(parsed.render_text(&Map::new()), s.as_str());
            prop_assert_eq!(parsed.render(&Map::new()), Value::String(s.clone()));
        }
    }
}
