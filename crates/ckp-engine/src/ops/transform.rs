//! Transform node operations (langorch.md B §4.9 with the fixes of A.2.9): filter, map, aggregate / reduce, sort,
//! deduplicate, join and pivot over a list variable.
//!
//! [`apply_transform`] reads the source list from the variables and returns the value for `output_variable`; it
//! never changes variables. Conditions and templates were compiled by ckp-core and are evaluated with `item` bound
//! in front of the variables, on values, never on rendered text. Where values are compared, numeric text counts as
//! a number (CSV cells are text), so sorting and summing a parsed CSV column does what a user expects.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use ckp_core::path::{With, to_text};
use ckp_core::procedure::{AggregateOp, MapExpr, TransformOp, Transformation};
use serde_json::{Map, Value};

use super::data::parse_numeric;
use super::{OpError, describe};

/// Applies one transformation and returns the value for its `output_variable`.
///
/// The source variable holds the input list; a missing or null variable is an empty list. A source that is not a
/// list gives `[]` for `filter` and `map` (as LangOrch does) and is an error for the other types, which would
/// otherwise produce a misleading count, sum or order.
///
/// * `filter`: the items for which the condition holds, with `item` bound to each item.
/// * `map`: per item, the template rendered with `item` in scope (a single placeholder keeps its type), the item
///   itself (`item`), or the item's field (a dotted path such as `customer.name` works; an item without it stays
///   unchanged).
/// * `aggregate` / `reduce` with `count` (number of items), `sum`, `avg`, `min`, `max` over `item[field]` (or the
///   items themselves when no field is given): numbers and numeric text count, other values are skipped. `sum` of
///   nothing is 0; `avg` of nothing is null; `min`/`max` fall back to comparing text when no value is numeric, and
///   give null when there is nothing to compare. Sums of integers stay exact integers.
/// * `sort` by `item[key]` (or the item): stable; numbers (and numeric text) first, in numeric order, then text,
///   then booleans, then lists and objects; missing and null keys always last, also when `descending`.
/// * `deduplicate` / `unique`: the first item of each distinct `item[key]` (or item), compared as canonical JSON
///   (object key order does not matter).
/// * `join` (inner): for each object of the source and each object of the `with` list whose keys are equal, the
///   right object's fields merged into the left one (the left's fields win on conflicts). Keys are compared as
///   canonical JSON, except that a number and text spelling that same number (`7` and `"7"`) are equal.
/// * `pivot`: one object per distinct `item[index]`, in first-seen order, `{index: v, <text of item[columns]>:
///   item[values], …}`; rows without an index or column value are skipped and a repeated cell keeps the last value.
pub fn apply_transform(t: &Transformation, vars: &Map<String, Value>) -> Result<Value, OpError> {
    let name = type_name(&t.op);
    let items: &[Value] = match vars.get(&t.source) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(_) if matches!(t.op, TransformOp::Filter(_) | TransformOp::Map(_)) => return Ok(Value::Array(Vec::new())),
        Some(other) => {
            return Err(OpError::internal(
                &format!("{name} transform"),
                format!("`{}` holds {}, not a list", t.source, describe(other)),
            ));
        }
    };
    let out = match &t.op {
        TransformOp::Filter(cond) => Value::Array(
            items.iter().filter(|item| cond.eval(&With { name: "item", value: item, parent: vars })).cloned().collect(),
        ),
        TransformOp::Map(expr) => Value::Array(items.iter().map(|item| map_item(expr, item, vars)).collect()),
        TransformOp::Aggregate(op, field) | TransformOp::Reduce(op, field) => aggregate(*op, field.as_deref(), items),
        TransformOp::Sort { key, descending } => sort(items, key.as_deref(), *descending),
        TransformOp::Deduplicate { key } => {
            let mut seen = HashSet::new();
            Value::Array(
                items.iter().filter(|item| seen.insert(canonical(key_of(item, key.as_deref())))).cloned().collect(),
            )
        }
        TransformOp::Join { with, left_key, right_key } => {
            let right: &[Value] = match vars.get(with) {
                None | Some(Value::Null) => &[],
                Some(Value::Array(r)) => r,
                Some(other) => {
                    return Err(OpError::internal(
                        "join transform",
                        format!("`{with}` (params.with) holds {}, not a list", describe(other)),
                    ));
                }
            };
            join(items, right, left_key, right_key)
        }
        TransformOp::Pivot { index, columns, values } => pivot(items, index, columns, values),
    };
    Ok(out)
}

fn type_name(op: &TransformOp) -> &'static str {
    match op {
        TransformOp::Filter(_) => "filter",
        TransformOp::Map(_) => "map",
        TransformOp::Reduce(..) => "reduce",
        TransformOp::Aggregate(..) => "aggregate",
        TransformOp::Sort { .. } => "sort",
        TransformOp::Deduplicate { .. } => "deduplicate",
        TransformOp::Join { .. } => "join",
        TransformOp::Pivot { .. } => "pivot",
    }
}

fn map_item(expr: &MapExpr, item: &Value, vars: &Map<String, Value>) -> Value {
    match expr {
        MapExpr::Template(t) => t.render(&With { name: "item", value: item, parent: vars }),
        MapExpr::Item => item.clone(),
        MapExpr::Field(f) => field_path(item, f).cloned().unwrap_or_else(|| item.clone()),
    }
}

/// `item.a.b.0`: a key of an object, or a dotted path of keys and list indexes.
fn field_path<'v>(item: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(v) = item.as_object().and_then(|o| o.get(path)) {
        return Some(v);
    }
    let mut current = item;
    for seg in path.split('.') {
        current = match current {
            Value::Object(o) => o.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The value compared for `key`: the object's field (null when absent), or the item itself when there is no key or
/// the item is not an object.
fn key_of<'v>(item: &'v Value, key: Option<&str>) -> &'v Value {
    match (key, item) {
        (Some(k), Value::Object(o)) => o.get(k).unwrap_or(&Value::Null),
        _ => item,
    }
}

/// A number, or numeric text read as one.
fn numeric(v: &Value) -> Option<serde_json::Number> {
    match v {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => match parse_numeric(s) {
            Some(Value::Number(n)) => Some(n),
            _ => None,
        },
        _ => None,
    }
}

fn aggregate(op: AggregateOp, field: Option<&str>, items: &[Value]) -> Value {
    if op == AggregateOp::Count {
        return Value::from(items.len());
    }
    let values: Vec<&Value> = items
        .iter()
        .filter_map(|item| match field {
            Some(f) => item.as_object().and_then(|o| o.get(f)),
            None => Some(item),
        })
        .collect();
    let numbers: Vec<serde_json::Number> = values.iter().filter_map(|v| numeric(v)).collect();
    match op {
        AggregateOp::Count => Value::from(items.len()),
        AggregateOp::Sum => sum(&numbers),
        AggregateOp::Avg => {
            if numbers.is_empty() {
                return Value::Null;
            }
            let total: f64 = numbers.iter().filter_map(serde_json::Number::as_f64).sum();
            serde_json::Number::from_f64(total / numbers.len() as f64).map_or(Value::Null, Value::Number)
        }
        AggregateOp::Min | AggregateOp::Max => {
            let want = if op == AggregateOp::Min { Ordering::Less } else { Ordering::Greater };
            let best_number = numbers.into_iter().reduce(|best, n| {
                let (a, b) = (n.as_f64().unwrap_or(0.0), best.as_f64().unwrap_or(0.0));
                if a.total_cmp(&b) == want { n } else { best }
            });
            if let Some(n) = best_number {
                return Value::Number(n);
            }
            values
                .iter()
                .filter_map(|v| v.as_str())
                .reduce(|best, s| if s.cmp(best) == want { s } else { best })
                .map_or(Value::Null, |s| Value::String(s.to_owned()))
        }
    }
}

/// Exact while every number is an integer and the sum fits `i64`; a float otherwise.
fn sum(numbers: &[serde_json::Number]) -> Value {
    let mut exact: Option<i64> = Some(0);
    let mut float = 0.0_f64;
    for n in numbers {
        float += n.as_f64().unwrap_or(0.0);
        exact = match (exact, n.as_i64()) {
            (Some(acc), Some(i)) => acc.checked_add(i),
            _ => None,
        };
    }
    match exact {
        Some(i) => Value::from(i),
        None => serde_json::Number::from_f64(float).map_or(Value::Null, Value::Number),
    }
}

#[derive(Debug)]
enum SortKey {
    Num(f64),
    Text(String),
    Bool(bool),
    Other(String),
    Null,
}

impl SortKey {
    fn of(v: &Value) -> SortKey {
        if let Some(n) = numeric(v).and_then(|n| n.as_f64()) {
            return SortKey::Num(n);
        }
        match v {
            Value::Null => SortKey::Null,
            Value::String(s) => SortKey::Text(s.clone()),
            Value::Bool(b) => SortKey::Bool(*b),
            other => SortKey::Other(canonical(other)),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortKey::Num(_) => 0,
            SortKey::Text(_) => 1,
            SortKey::Bool(_) => 2,
            SortKey::Other(_) => 3,
            SortKey::Null => 4,
        }
    }

    fn cmp(&self, other: &SortKey) -> Ordering {
        match (self, other) {
            (SortKey::Num(a), SortKey::Num(b)) => a.total_cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) | (SortKey::Other(a), SortKey::Other(b)) => a.cmp(b),
            (SortKey::Bool(a), SortKey::Bool(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

fn sort(items: &[Value], key: Option<&str>, descending: bool) -> Value {
    let mut keyed: Vec<(SortKey, &Value)> = items.iter().map(|item| (SortKey::of(key_of(item, key)), item)).collect();
    keyed.sort_by(|(a, _), (b, _)| match (a, b) {
        (SortKey::Null, SortKey::Null) => Ordering::Equal,
        (SortKey::Null, _) => Ordering::Greater,
        (_, SortKey::Null) => Ordering::Less,
        _ if descending => b.cmp(a),
        _ => a.cmp(b),
    });
    Value::Array(keyed.into_iter().map(|(_, item)| item.clone()).collect())
}

/// Canonical JSON: compact, object keys sorted, so equal values give equal text whatever their key order.
pub(super) fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(item) = map.get(k) {
                    write_canonical(item, out);
                }
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The join key of a value: canonical JSON, with a number and its canonical text spelling made equal.
fn join_key(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => match parse_numeric(s) {
            Some(Value::Number(n)) if n.to_string() == *s => Some(n.to_string()),
            _ => Some(canonical(v)),
        },
        other => Some(canonical(other)),
    }
}

fn join(left: &[Value], right: &[Value], left_key: &str, right_key: &str) -> Value {
    let mut index: HashMap<String, Vec<&Map<String, Value>>> = HashMap::new();
    for r in right.iter().filter_map(Value::as_object) {
        if let Some(k) = r.get(right_key).and_then(join_key) {
            index.entry(k).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    for l in left.iter().filter_map(Value::as_object) {
        let Some(k) = l.get(left_key).and_then(join_key) else { continue };
        for r in index.get(&k).map(Vec::as_slice).unwrap_or_default() {
            let mut merged = l.clone();
            for (name, value) in r.iter() {
                if !merged.contains_key(name) {
                    merged.insert(name.clone(), value.clone());
                }
            }
            out.push(Value::Object(merged));
        }
    }
    Value::Array(out)
}

fn pivot(items: &[Value], index: &str, columns: &str, values: &str) -> Value {
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for item in items.iter().filter_map(Value::as_object) {
        let (Some(idx), Some(col)) = (item.get(index), item.get(columns)) else { continue };
        if idx.is_null() || col.is_null() {
            continue;
        }
        let slot = *position.entry(canonical(idx)).or_insert_with(|| {
            let mut row = Map::new();
            row.insert(index.to_owned(), idx.clone());
            rows.push(row);
            rows.len() - 1
        });
        let column = to_text(col).into_owned();
        if column != index
            && let Some(row) = rows.get_mut(slot)
        {
            row.insert(column, item.get(values).cloned().unwrap_or(Value::Null));
        }
    }
    Value::Array(rows.into_iter().map(Value::Object).collect())
}
