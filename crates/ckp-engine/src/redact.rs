//! Redaction of secret values (not only of keys): every value fetched for a step is replaced by `***` in what the
//! step produced — its result and its error — before anything is recorded, emitted or committed (A.3). Values
//! shorter than [`MIN_LEN`] are left alone: replacing every `a` or `42` in a result would destroy it while
//! protecting nothing.

use serde_json::{Map, Value};

/// What a secret value is replaced with.
pub const MASK: &str = "***";

/// The shortest value that is redacted.
pub const MIN_LEN: usize = 4;

/// The values to look for: long enough ones, longest first (so a value containing another is masked whole).
pub fn needles(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = values.into_iter().filter(|s| s.chars().count() >= MIN_LEN).collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.len()));
    v.dedup();
    v
}

/// `text` with every needle replaced by [`MASK`].
pub fn text(text: &str, needles: &[String]) -> String {
    let mut out = text.to_owned();
    for n in needles {
        if out.contains(n.as_str()) {
            out = out.replace(n.as_str(), MASK);
        }
    }
    out
}

/// Masks every needle in the strings of `v` (object keys included).
pub fn value(v: &mut Value, needles: &[String]) {
    if needles.is_empty() {
        return;
    }
    match v {
        Value::String(s) if needles.iter().any(|n| s.contains(n.as_str())) => *s = text(s, needles),
        Value::Array(items) => items.iter_mut().for_each(|i| value(i, needles)),
        Value::Object(map) => {
            if map.keys().any(|k| needles.iter().any(|n| k.contains(n.as_str()))) {
                let old = std::mem::take(map);
                *map = old.into_iter().map(|(k, v)| (text(&k, needles), v)).collect::<Map<_, _>>();
            }
            map.values_mut().for_each(|i| value(i, needles));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_masked_everywhere_in_a_result() {
        let n = needles(["s3cr3t-token".to_owned(), "tok".to_owned(), "s3cr3t".to_owned()]);
        assert_eq!(n, vec!["s3cr3t-token".to_owned(), "s3cr3t".to_owned()], "short ones are left, longest first");
        let mut v = json!({"echo": "Bearer s3cr3t-token", "s3cr3t": [1, "x s3cr3t y"], "n": 3, "ok": "tok"});
        value(&mut v, &n);
        assert_eq!(v, json!({"echo": "Bearer ***", "***": [1, "x *** y"], "n": 3, "ok": "tok"}));
        assert_eq!(text("HTTP 500 from https://h/?k=s3cr3t-token", &n), "HTTP 500 from https://h/?k=***");
    }
}
