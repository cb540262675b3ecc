//! How many bytes a value takes as JSON, for the caps on a variable and on a run's variables
//! (`max_variable_bytes`, `max_state_bytes`).
//!
//! The walk visits every array element and object entry once and never allocates: a string counts its length plus
//! its quotes (escapes are not counted, so the figure is a lower bound of the serialized size by at most the
//! escapes), a number the digits it prints as. Its cost is in the number of JSON values, not in bytes, which keeps
//! the checks cheap next to the work that produced the value.

use std::io::Write;

use serde_json::{Map, Value};

/// The size of `v` as compact JSON (escapes aside).
pub fn json_bytes(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => number_bytes(n),
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.len().saturating_sub(1) + items.iter().map(json_bytes).sum::<usize>(),
        Value::Object(map) => map_bytes(map),
    }
}

/// The size of an object of variables as compact JSON.
pub fn map_bytes(map: &Map<String, Value>) -> usize {
    2 + map.len().saturating_sub(1) + map.iter().map(|(k, v)| k.len() + 3 + json_bytes(v)).sum::<usize>()
}

fn number_bytes(n: &serde_json::Number) -> usize {
    // The longest number serde_json prints is well under 32 bytes (`-1.7976931348623157e308`).
    let mut buf = [0u8; 32];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    match write!(cursor, "{n}") {
        Ok(()) => usize::try_from(cursor.position()).unwrap_or(32),
        Err(_) => 32,
    }
}

/// Checks a value about to be written to variable `name` against the cap on a variable (`max_variable_bytes`);
/// the error says which variable, how big and the cap.
pub fn check_variable(name: &str, value: &Value, cap: usize) -> Result<(), String> {
    let bytes = json_bytes(value);
    if bytes <= cap {
        return Ok(());
    }
    Err(format!(
        "variable `{name}` would take {bytes} bytes, over the server's max_variable_bytes ({cap} bytes); keep large \
         data outside the run's variables (an artifact, a file, a reference)"
    ))
}

/// The variables taking the most bytes, largest first: `name (N bytes)` for error messages.
pub fn largest(map: &Map<String, Value>, n: usize) -> String {
    let mut sizes: Vec<(usize, &str)> = map.iter().map(|(k, v)| (json_bytes(v), k.as_str())).collect();
    sizes.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    sizes.iter().take(n).map(|(bytes, name)| format!("{name} ({bytes} bytes)")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn matches_the_compact_serialization_without_escapes() {
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-12345),
            json!(1.5),
            json!(1e300),
            json!(u64::MAX),
            json!("text"),
            json!([]),
            json!({}),
            json!([1, "two", [3], {"four": 4}]),
            json!({"a": {"b": [null, false, "c"]}, "d": 2.25}),
        ] {
            assert_eq!(json_bytes(&v), serde_json::to_string(&v).expect("serializes").len(), "{v}");
        }
        let map = json!({"x": [1, 2], "y": "z"}).as_object().cloned().expect("an object");
        assert_eq!(map_bytes(&map), serde_json::to_string(&map).expect("serializes").len());
    }

    #[test]
    fn largest_names_the_biggest_variables_first() {
        let map = json!({"small": 1, "big": "x".repeat(100), "mid": "abc"}).as_object().cloned().expect("an object");
        assert_eq!(largest(&map, 2), "big (102 bytes), mid (5 bytes)");
    }
}
