//! Data-shaping internal actions: `parse_json`, `parse_xml`, `format_string` / `format_data`, `convert_type` and
//! `validate_schema`.
//!
//! Each turns its rendered input into a new JSON value and nothing else: none of them changes variables (the engine
//! stores the result in `output_variable`). Parsers bound the size and depth of what they build so a hostile input
//! costs bounded memory and stack. CSV and Excel live in `tabular`.

use ckp_core::path::{Scope, VarPath, to_text};
use ckp_core::procedure::CompiledSchema;
use serde_json::{Map, Value, json};

use super::{OpError, Params, cut, describe, parse_bool, short, unresolved_hint};

/// Largest XML document `parse_xml` accepts, in bytes.
pub const MAX_XML_BYTES: usize = 16 * 1024 * 1024;

/// Deepest element nesting `parse_xml` accepts.
pub const MAX_XML_DEPTH: usize = 128;

/// Most XML nodes (elements, attributes, text) `parse_xml` accepts; bounds entity expansion too.
pub const MAX_XML_NODES: u32 = 1_000_000;

/// How many schema violations a `validate_schema` error lists.
const MAX_REPORTED_VIOLATIONS: usize = 5;

/// `parse_json {source | value}`: parses JSON text into a value (a leading byte-order mark is ignored). A value that
/// is not a string (already parsed) is returned as is. Bad JSON is an error with its line and column.
pub(super) fn parse_json(p: &Params<'_>, vars: &Map<String, Value>) -> Result<Value, OpError> {
    match p.input()? {
        Value::String(text) => {
            let body = text.strip_prefix('\u{feff}').unwrap_or(text);
            serde_json::from_str(body).map_err(|e| {
                let hint = if !unresolved_hint(text).is_empty() {
                    unresolved_hint(text)
                } else if vars.contains_key(text.trim()) {
                    format!(
                        " (`{}` is the name of a variable: write {{{{{}}}}} to parse its value)",
                        text.trim(),
                        text.trim()
                    )
                } else {
                    String::new()
                };
                p.err(format!("source is not valid JSON: {e}{hint}"))
            })
        }
        other => Ok(other.clone()),
    }
}

/// `parse_xml {source | value}`: converts XML text into JSON, the root wrapped as `{root_name: …}`.
///
/// An element with attributes or child elements becomes an object: attributes under `@name`, child elements under
/// their name (a list when the name repeats), and its trimmed text, when not blank, under `#text`. An element with
/// neither becomes its trimmed text, or null when it is empty (`<name>Bob</name>` → `"name": "Bob"`), which is what
/// paths such as `{{doc.order.customer.name}}` expect. Names are local names (namespace prefixes are dropped, since
/// `:` cannot appear in a variable path); comments and processing instructions are ignored; CDATA is text. All values
/// are strings. Documents over [`MAX_XML_BYTES`], [`MAX_XML_DEPTH`] levels or [`MAX_XML_NODES`] nodes are errors.
pub(super) fn parse_xml(p: &Params<'_>) -> Result<Value, OpError> {
    let text = match p.input()? {
        Value::String(s) => s,
        other => return Err(p.err(format!("source must be XML text, not {}", describe(other)))),
    };
    if text.len() > MAX_XML_BYTES {
        return Err(p.err(format!("source is {} bytes, over the limit of {MAX_XML_BYTES} bytes", text.len())));
    }
    let options = roxmltree::ParsingOptions { allow_dtd: true, nodes_limit: MAX_XML_NODES, ..Default::default() };
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc = roxmltree::Document::parse_with_options(body, options)
        .map_err(|e| p.err(format!("source is not well-formed XML: {e}{}", unresolved_hint(text))))?;
    let root = doc.root_element();
    let value = xml_element(root, 1).map_err(|e| p.err(e))?;
    let mut out = Map::new();
    out.insert(root.tag_name().name().to_owned(), value);
    Ok(Value::Object(out))
}

fn xml_element(node: roxmltree::Node<'_, '_>, depth: usize) -> Result<Value, String> {
    if depth > MAX_XML_DEPTH {
        return Err(format!("elements nest more than {MAX_XML_DEPTH} levels deep"));
    }
    let mut map = Map::new();
    for attr in node.attributes() {
        map.insert(format!("@{}", attr.name()), Value::String(attr.value().to_owned()));
    }
    let mut text = String::new();
    for child in node.children() {
        if child.is_element() {
            let value = xml_element(child, depth + 1)?;
            match map.get_mut(child.tag_name().name()) {
                // Element values are never lists, so a list here is a repeated name.
                Some(Value::Array(items)) => items.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
                None => {
                    map.insert(child.tag_name().name().to_owned(), value);
                }
            }
        } else if child.is_text() {
            text.push_str(child.text().unwrap_or_default());
        }
    }
    let text = text.trim();
    if map.is_empty() {
        return Ok(if text.is_empty() { Value::Null } else { Value::String(text.to_owned()) });
    }
    if !text.is_empty() {
        map.insert("#text".to_owned(), Value::String(text.to_owned()));
    }
    Ok(Value::Object(map))
}

/// `format_string` / `format_data {template | format | expression | value, values?}`: replaces each `{name}` or
/// `{name.path}` with the value from the `values` object, else from the variables (strings as themselves, other
/// values as compact JSON); `{{` and `}}` give literal braces. A `{name}` that does not resolve (or resolves to null)
/// is left as written, like an unresolved template placeholder (A.3); braces around anything that is not a name
/// (such as JSON text) are kept. Returns the string.
///
/// The engine renders `{{name}}` templates before this runs, so both spellings work; an unresolved `{{name}}` comes
/// out as `{name}`.
pub(super) fn format_string(p: &Params<'_>, vars: &Map<String, Value>) -> Result<Value, OpError> {
    let template = p.require(&["template", "format", "expression", "value"], "the text with {name} placeholders")?;
    let values = match p.get(&["values", "data"]) {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => return Err(p.err(format!("`values` must be an object, not {}", describe(other)))),
    };
    let scope = Layered { top: values, vars };
    Ok(Value::String(format_braces(&to_text(template), &scope)))
}

/// Names from `top` first, then from the variables.
struct Layered<'a> {
    top: Option<&'a Map<String, Value>>,
    vars: &'a Map<String, Value>,
}

impl Scope for Layered<'_> {
    fn var(&self, name: &str) -> Option<&Value> {
        self.top.and_then(|t| t.get(name)).or_else(|| self.vars.get(name))
    }
}

fn format_braces(template: &str, scope: &dyn Scope) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('{')
            && let Some(close) = tail.find('}')
        {
            let inner = tail[1..close].trim();
            if let Ok(path) = VarPath::parse(inner) {
                match path.resolve(scope) {
                    Some(v) => out.push_str(&to_text(&v)),
                    None => out.push_str(&tail[..=close]),
                }
                rest = &tail[close + 1..];
                continue;
            }
        }
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// `validate_schema {source | value, schema}`: checks the value against the JSON Schema the compiler compiled (or,
/// when the step's `schema` was a placeholder, the rendered schema object compiled now, remote `$ref`s refused).
/// Valid → `{"valid": true}`. Invalid → an [`OpErrorKind::Validation`](super::OpErrorKind::Validation) error
/// `value does not match the schema: <path>: <problem>; …` listing the first violations with their instance paths.
pub(super) fn validate_schema(p: &Params<'_>, schema: Option<&CompiledSchema>) -> Result<Value, OpError> {
    let instance = p.input()?;
    let compiled;
    let validator = match (schema, p.get(&["schema"])) {
        (Some(s), _) => &*s.0,
        (None, Some(v @ (Value::Object(_) | Value::Bool(_)))) => {
            compiled = jsonschema::options()
                .with_retriever(NoRemoteRefs)
                .build(v)
                .map_err(|e| p.err(format!("`schema` is not a valid JSON Schema: {e}")))?;
            &compiled
        }
        (None, other) => {
            return Err(p.err(format!(
                "no JSON Schema to validate against: `schema` must be a JSON Schema object, not {}",
                other.map_or("missing", describe)
            )));
        }
    };
    let violations: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| {
            let path = e.instance_path().to_string();
            let path = if path.is_empty() { "(root)".to_owned() } else { path };
            format!("{path}: {}", cut(&e.to_string(), 200))
        })
        .collect();
    if violations.is_empty() {
        return Ok(json!({ "valid": true }));
    }
    let mut message = format!(
        "value does not match the schema: {}",
        violations.iter().take(MAX_REPORTED_VIOLATIONS).cloned().collect::<Vec<_>>().join("; ")
    );
    if violations.len() > MAX_REPORTED_VIOLATIONS {
        message.push_str(&format!(" (and {} more)", violations.len() - MAX_REPORTED_VIOLATIONS));
    }
    Err(OpError::validation(message))
}

/// A `$ref` retriever that refuses every remote document, like the compiler's.
struct NoRemoteRefs;

impl jsonschema::Retrieve for NoRemoteRefs {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("remote $ref `{uri}` is not fetched; inline the referenced schema under $defs").into())
    }
}

/// `convert_type {source | value, target_type}`:
///
/// * `string` (`str`, `text`): strings unchanged, anything else as compact JSON (`{"a":1}`, `true`, `null`).
/// * `number` (`float`, `double`, `decimal`): numbers unchanged; numeric text (trimmed) to a number, an integer when
///   written as one; `true`/`false` to 1/0.
/// * `integer` (`int`): like `number`, then truncated towards zero (`3.7` → 3); out of `i64` range is an error.
/// * `boolean` (`bool`): text `true`/`yes`/`y`/`on`/`1`/`t` and `false`/`no`/`n`/`off`/`0`/`f`/empty (any case);
///   numbers (0 is false); null is false.
/// * `array` (`list`) / `object` (`dict`): unchanged when already one; JSON text of that kind parsed; null gives an
///   empty one.
/// * `json`: JSON text parsed into whatever it holds; any other value unchanged.
///
/// A conversion that makes no sense (`"abc"` to number, a list to boolean) is an error naming the value and target.
pub(super) fn convert_type(p: &Params<'_>) -> Result<Value, OpError> {
    let value = p.input()?;
    let target = p
        .text(&["target_type", "type", "to"])?
        .ok_or_else(|| p.err("missing `target_type`: string, number, integer, boolean, array, object or json"))?;
    let fail =
        || p.err(format!("cannot convert {} ({}) to {target}", short(value), describe(value)) + &hint_for(value));
    let converted = match target.trim().to_ascii_lowercase().as_str() {
        "string" | "str" | "text" => Some(Value::String(to_text(value).into_owned())),
        "number" | "float" | "double" | "decimal" | "numeric" => to_number(value),
        "integer" | "int" | "long" => to_number(value).and_then(|n| to_integer(&n)),
        "boolean" | "bool" => to_boolean(value),
        "array" | "list" => match value {
            Value::Array(_) => Some(value.clone()),
            Value::Null => Some(Value::Array(Vec::new())),
            Value::String(s) => serde_json::from_str::<Value>(s).ok().filter(Value::is_array),
            _ => None,
        },
        "object" | "dict" | "map" => match value {
            Value::Object(_) => Some(value.clone()),
            Value::Null => Some(Value::Object(Map::new())),
            Value::String(s) => serde_json::from_str::<Value>(s).ok().filter(Value::is_object),
            _ => None,
        },
        "json" => match value {
            Value::String(s) => Some(
                serde_json::from_str(s)
                    .map_err(|e| p.err(format!("cannot convert {} to json: {e}", short(value)) + &hint_for(value)))?,
            ),
            other => Some(other.clone()),
        },
        other => {
            return Err(p.err(format!(
                "unknown target_type `{other}`: use string, number, integer, boolean, array, object or json"
            )));
        }
    };
    converted.ok_or_else(fail)
}

fn hint_for(value: &Value) -> String {
    match value {
        Value::String(s) => unresolved_hint(s),
        _ => String::new(),
    }
}

/// A number from a number, numeric text or a boolean.
pub(super) fn to_number(value: &Value) -> Option<Value> {
    match value {
        Value::Number(_) => Some(value.clone()),
        Value::Bool(b) => Some(Value::from(i64::from(*b))),
        Value::String(s) => parse_numeric(s),
        _ => None,
    }
}

/// Numeric text (surrounding spaces allowed) as a JSON number: an integer when written as one and it fits `i64`.
/// Words such as `inf` and `nan` are not numbers.
pub(super) fn parse_numeric(text: &str) -> Option<Value> {
    let t = text.trim();
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !body.bytes().any(|b| b.is_ascii_digit())
        || !body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    if body.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = t.parse::<i64>()
    {
        return Some(Value::from(i));
    }
    t.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
}

fn to_integer(n: &Value) -> Option<Value> {
    let Value::Number(n) = n else { return None };
    if let Some(i) = n.as_i64() {
        return Some(Value::from(i));
    }
    let f = n.as_f64()?.trunc();
    (f.is_finite() && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f))
        .then(|| Value::from(f as i64))
}

fn to_boolean(value: &Value) -> Option<Value> {
    let b = match value {
        Value::Null => false,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "t" => true,
            "f" | "" => false,
            _ => parse_bool(value)?,
        },
        other => parse_bool(other)?,
    };
    Some(Value::Bool(b))
}
