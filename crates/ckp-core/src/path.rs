//! Variable paths (`order.items.0.price`, `items.length`) and how they resolve against a run's variables.
//!
//! Templates and conditions share this one notion of "a name in the variables". A path is parsed once at compile
//! time; resolution walks it segment by segment (langorch.md B §2.1, A.3): an object is indexed by key, an array by an
//! all-digit segment or measured by `length`/`len`/`count`, a string measured by `length`. Anything else, and a
//! null value, is unresolved. This module performs no I/O and never panics on input.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Longest path accepted, in segments; deeper paths are a compile error (they are never meaningful and bound the
/// work a hostile document can ask for).
pub const MAX_PATH_SEGMENTS: usize = 32;

/// One segment of a [`VarPath`] after the root name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    /// The segment text as written.
    pub name: Box<str>,
    /// The segment as an array index, when it is all digits.
    pub index: Option<usize>,
}

/// A dotted path into the variables: a root variable name and the segments below it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VarPath {
    /// The variable name (the first segment).
    pub root: Box<str>,
    /// The segments after the root.
    pub rest: Vec<Segment>,
}

/// Why a path could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty or has an empty segment (`a..b`, `.a`, `a.`).
    #[error("empty segment in variable path `{0}`")]
    EmptySegment(String),
    /// A segment contains a character other than letters, digits and `_`.
    #[error("invalid character in variable path `{0}`: use letters, digits, `_` and `.` only")]
    InvalidChar(String),
    /// The path has more than [`MAX_PATH_SEGMENTS`] segments.
    #[error("variable path `{0}` has more than {MAX_PATH_SEGMENTS} segments")]
    TooDeep(String),
}

/// True for the characters a path segment may hold (Python's `\w`: Unicode letters, digits and `_`).
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl VarPath {
    /// Parses `a.b.0.c`. Segments are made of word characters (letters, digits, `_`).
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let mut parts = text.split('.');
        let root = parts.next().unwrap_or_default();
        let mut rest = Vec::new();
        check_segment(text, root)?;
        for part in parts {
            check_segment(text, part)?;
            if rest.len() + 1 >= MAX_PATH_SEGMENTS {
                return Err(PathError::TooDeep(text.to_owned()));
            }
            let index = if part.bytes().all(|b| b.is_ascii_digit()) { part.parse().ok() } else { None };
            rest.push(Segment { name: part.into(), index });
        }
        Ok(VarPath { root: root.into(), rest })
    }

    /// A path that is just a variable name.
    pub fn var(name: &str) -> Self {
        VarPath { root: name.into(), rest: Vec::new() }
    }

    /// Resolves the path against `scope`. `None` means unresolved (missing, wrong shape, or null).
    pub fn resolve<'a>(&self, scope: &'a dyn Scope) -> Option<Cow<'a, Value>> {
        let mut current: Cow<'a, Value> = Cow::Borrowed(scope.var(&self.root)?);
        for seg in &self.rest {
            current = step(current, seg)?;
        }
        if current.is_null() { None } else { Some(current) }
    }
}

impl std::fmt::Display for VarPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.root)?;
        for seg in &self.rest {
            write!(f, ".{}", seg.name)?;
        }
        Ok(())
    }
}

fn check_segment(text: &str, seg: &str) -> Result<(), PathError> {
    if seg.is_empty() {
        return Err(PathError::EmptySegment(text.to_owned()));
    }
    if !seg.chars().all(is_word_char) {
        return Err(PathError::InvalidChar(text.to_owned()));
    }
    Ok(())
}

fn step<'a>(value: Cow<'a, Value>, seg: &Segment) -> Option<Cow<'a, Value>> {
    let is_len = matches!(&*seg.name, "length" | "len" | "count");
    match value {
        Cow::Borrowed(v) => match v {
            Value::Object(map) => map.get(&*seg.name).map(Cow::Borrowed),
            Value::Array(items) => match seg.index {
                Some(i) => items.get(i).map(Cow::Borrowed),
                None if is_len => Some(Cow::Owned(Value::from(items.len()))),
                None => None,
            },
            Value::String(s) if &*seg.name == "length" => Some(Cow::Owned(Value::from(s.chars().count()))),
            _ => None,
        },
        Cow::Owned(v) => step(Cow::Borrowed(&v), seg).map(|c| Cow::Owned(c.into_owned())),
    }
}

/// Where names resolve: the run's variables plus whatever the caller layers on top (built-ins such as `run_id`,
/// a transform's `item`). Implemented for a plain JSON object.
pub trait Scope {
    /// The value of the variable `name`, if defined.
    fn var(&self, name: &str) -> Option<&Value>;
}

impl Scope for Map<String, Value> {
    fn var(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// A scope with one extra binding in front of another scope (a transform's `item`, a loop variable).
#[derive(Debug)]
pub struct With<'a, S: ?Sized> {
    /// The name bound in front.
    pub name: &'a str,
    /// Its value.
    pub value: &'a Value,
    /// The scope behind it.
    pub parent: &'a S,
}

impl<S: Scope + ?Sized> Scope for With<'_, S> {
    fn var(&self, name: &str) -> Option<&Value> {
        if name == self.name { Some(self.value) } else { self.parent.var(name) }
    }
}

/// Renders a value as text: strings as themselves, everything else as compact JSON (`{"a":1}`, `true`, `3`).
/// This is how a non-string value appears inside longer template text (A.3).
pub fn to_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Map<String, Value> {
        json!({"a": {"b": [10, {"c": "x"}]}, "s": "héllo", "n": null, "o": {"length": 7}})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    fn get(path: &str) -> Option<Value> {
        VarPath::parse(path).expect("valid path").resolve(&vars()).map(Cow::into_owned)
    }

    #[test]
    fn resolves_keys_indexes_and_lengths() {
        assert_eq!(get("a.b.0"), Some(json!(10)));
        assert_eq!(get("a.b.1.c"), Some(json!("x")));
        assert_eq!(get("a.b.length"), Some(json!(2)));
        assert_eq!(get("a.b.count"), Some(json!(2)));
        assert_eq!(get("s.length"), Some(json!(5)));
        assert_eq!(get("o.length"), Some(json!(7)));
    }

    #[test]
    fn unresolved_cases() {
        assert_eq!(get("a.b.2"), None);
        assert_eq!(get("a.missing"), None);
        assert_eq!(get("n"), None);
        assert_eq!(get("zzz"), None);
        assert_eq!(get("s.0"), None);
        assert_eq!(get("a.b.1.c.d"), None);
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(VarPath::parse("a..b"), Err(PathError::EmptySegment(_))));
        assert!(matches!(VarPath::parse(""), Err(PathError::EmptySegment(_))));
        assert!(matches!(VarPath::parse("a-b"), Err(PathError::InvalidChar(_))));
        let deep = vec!["x"; 40].join(".");
        assert!(matches!(VarPath::parse(&deep), Err(PathError::TooDeep(_))));
        assert_eq!(VarPath::parse("a.b.0").map(|p| p.to_string()), Ok("a.b.0".to_owned()));
    }

    #[test]
    fn with_scope_shadows() {
        let v = vars();
        let item = json!(5);
        let scope = With { name: "s", value: &item, parent: &v };
        assert_eq!(VarPath::var("s").resolve(&scope).map(Cow::into_owned), Some(json!(5)));
        assert!(VarPath::var("a").resolve(&scope).is_some());
    }

    #[test]
    fn text_rendering_is_compact_json() {
        assert_eq!(to_text(&json!({"a": 1, "b": [true, null]})), r#"{"a":1,"b":[true,null]}"#);
        assert_eq!(to_text(&json!("plain")), "plain");
        assert_eq!(to_text(&json!(1.5)), "1.5");
    }
}
