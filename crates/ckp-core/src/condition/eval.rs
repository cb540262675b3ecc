//! Evaluation of a parsed condition on values: operand lookup, B §3's coerce() for "soft" strings, equality,
//! ordering, containment and truthiness. Total functions: every combination of JSON types gives a boolean.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::lexer::{float_value, int_value, strip_quotes, strip_underscores};
use super::{CmpOp, Expr, Operand};
use crate::path::{Scope, to_text};

/// An operand's value. `soft` marks strings that came from a variable, a default or unquoted text: those are
/// coerced (B §3) when compared with a number, a bool or null.
#[derive(Debug)]
struct Val<'a> {
    value: Cow<'a, Value>,
    soft: bool,
}

impl<'a> Val<'a> {
    fn strict(value: &'a Value) -> Self {
        Val { value: Cow::Borrowed(value), soft: false }
    }

    fn soft_str(&self) -> Option<&str> {
        match &*self.value {
            Value::String(s) if self.soft => Some(s),
            _ => None,
        }
    }
}

pub(super) fn expr(e: &Expr, scope: &dyn Scope) -> bool {
    match e {
        Expr::Or(items) => items.iter().any(|i| expr(i, scope)),
        Expr::And(items) => items.iter().all(|i| expr(i, scope)),
        Expr::Not(inner) => !expr(inner, scope),
        Expr::Compare { op, left, right } => compare(*op, &operand(left, scope), &operand(right, scope)),
        Expr::Empty { negated, operand: o } => is_empty(&operand(o, scope).value) != *negated,
        Expr::Truthy(o) => truthy(&operand(o, scope)),
    }
}

fn operand<'a>(o: &'a Operand, scope: &'a dyn Scope) -> Val<'a> {
    let owned = |v: Value, soft: bool| Val { value: Cow::Owned(v), soft };
    match o {
        Operand::Var { path, default } => match (path.resolve(scope), default) {
            (Some(v), _) => Val { value: v, soft: true },
            (None, Some(d)) => owned(Value::String(d.to_string()), true),
            (None, None) => owned(Value::Null, false),
        },
        Operand::NameOrText(path) => match path.resolve(scope) {
            Some(v) => Val { value: v, soft: true },
            None => owned(Value::String(path.to_string()), true),
        },
        Operand::Literal(v) => Val::strict(v),
        Operand::Quoted(t) => owned(Value::String(t.render_text(scope)), false),
        Operand::Text(s) => owned(Value::String(s.to_string()), true),
        Operand::TextTemplate(t) => owned(Value::String(t.render_text(scope)), true),
    }
}

fn compare(op: CmpOp, l: &Val<'_>, r: &Val<'_>) -> bool {
    let ordered = |want: fn(Ordering) -> bool| order(l, r).is_some_and(want);
    match op {
        CmpOp::Eq => loose_eq(l, r),
        CmpOp::Ne => !loose_eq(l, r),
        CmpOp::Gt => ordered(Ordering::is_gt),
        CmpOp::Ge => ordered(Ordering::is_ge),
        CmpOp::Lt => ordered(Ordering::is_lt),
        CmpOp::Le => ordered(Ordering::is_le),
        CmpOp::Contains => contains(&l.value, r),
        CmpOp::NotContains => !contains(&l.value, r),
        CmpOp::StartsWith => affix(l, r, |a, b| a.starts_with(b)),
        CmpOp::EndsWith => affix(l, r, |a, b| a.ends_with(b)),
        CmpOp::In => contains(&r.value, l),
    }
}

/// B §3's coerce() on a soft string: surrounding quotes stripped, `true`/`yes`/`false`/`no`/`none`/`null`
/// (case-insensitive), then a float when the text has a `.`, else an int; otherwise the (trimmed) text.
pub(super) fn coerce(text: &str) -> Value {
    let t = text.trim();
    let unquoted = strip_quotes(t);
    if unquoted.len() != t.len() {
        return Value::String(unquoted.to_owned());
    }
    let is = |words: [&str; 2]| words.iter().any(|w| t.eq_ignore_ascii_case(w));
    if is(["true", "yes"]) {
        return Value::Bool(true);
    }
    if is(["false", "no"]) {
        return Value::Bool(false);
    }
    if is(["none", "null"]) {
        return Value::Null;
    }
    let number = strip_underscores(t).and_then(|s| if s.contains('.') { float_value(&s) } else { int_value(&s) });
    number.unwrap_or_else(|| Value::String(t.to_owned()))
}

/// Brings two operands to comparable values: a soft string meeting a number, bool or null is coerced; two soft
/// strings that both coerce to non-strings (`"10"` and `"9"`) compare as those; anything else compares as is.
fn unify<'a>(l: &'a Val<'_>, r: &'a Val<'_>) -> (Cow<'a, Value>, Cow<'a, Value>) {
    let scalar = |v: &Value| matches!(v, Value::Number(_) | Value::Bool(_) | Value::Null);
    let as_is = (Cow::Borrowed(&*l.value), Cow::Borrowed(&*r.value));
    match (l.soft_str(), r.soft_str()) {
        (Some(a), Some(b)) => {
            let (ca, cb) = (coerce(a), coerce(b));
            if !ca.is_string() && !cb.is_string() { (Cow::Owned(ca), Cow::Owned(cb)) } else { as_is }
        }
        (Some(a), None) if scalar(&r.value) => (Cow::Owned(coerce(a)), as_is.1),
        (None, Some(b)) if scalar(&l.value) => (as_is.0, Cow::Owned(coerce(b))),
        _ => as_is,
    }
}

fn loose_eq(l: &Val<'_>, r: &Val<'_>) -> bool {
    let (a, b) = unify(l, r);
    value_eq(&a, &b)
}

fn order(l: &Val<'_>, r: &Val<'_>) -> Option<Ordering> {
    let (a, b) = unify(l, r);
    value_order(&a, &b)
}

/// Equality as Python's `==` on JSON values: numbers by value (`1 == 1.0`), bools as 0/1 against numbers, containers
/// element by element; different types are unequal.
fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Bool(x), Value::Number(n)) | (Value::Number(n), Value::Bool(x)) => {
            num_cmp(n, &Number::from(u8::from(*x))) == Some(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| value_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| value_eq(v, w)))
        }
        _ => false,
    }
}

/// Ordering between numbers, between strings (by code point) and between bools; other pairs are unordered.
fn value_order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Exact comparison for integers (i64 and u64 alike), f64 otherwise.
fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    let exact = |n: &Number| n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
    match (exact(a), exact(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// `container contains needle`: a substring of a string, an element of an array (by `==`, elements being soft like
/// any variable value), a key of an object.
/// Null needles and non-container haystacks give false.
fn contains(container: &Value, needle: &Val<'_>) -> bool {
    if needle.value.is_null() {
        return false;
    }
    match container {
        Value::String(s) => s.contains(&*to_text(&needle.value)),
        // Elements of a variable's array are variable values too, so their strings are soft.
        Value::Array(items) => {
            items.iter().any(|item| loose_eq(&Val { value: Cow::Borrowed(item), soft: true }, needle))
        }
        Value::Object(map) => map.contains_key(&*to_text(&needle.value)),
        _ => false,
    }
}

/// `starts_with` / `ends_with` on the text forms of both sides; false when either side is null.
fn affix(l: &Val<'_>, r: &Val<'_>, test: fn(&str, &str) -> bool) -> bool {
    if l.value.is_null() || r.value.is_null() {
        return false;
    }
    test(&to_text(&l.value), &to_text(&r.value))
}

/// `is_empty`: null, "", [] and {}.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Python truthiness, with soft strings judged after coercion (`"false"`, `"no"`, `"0"`, `"none"` are false).
fn truthy(v: &Val<'_>) -> bool {
    match v.soft_str() {
        Some(s) => truthy_value(&coerce(s)),
        None => truthy_value(&v.value),
    }
}

fn truthy_value(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}
