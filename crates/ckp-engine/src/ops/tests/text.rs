//! extract_regex and hash.

use ckp_core::procedure::{CompiledRegex, InternalAction};
use serde_json::{Map, Value, json};

use super::{FakeEnv, err, obj, ok, run};
use crate::ops::{OpError, run_internal};

#[test]
fn extract_regex_returns_the_first_group_or_the_whole_match() {
    assert_eq!(
        ok("extract_regex", json!({"source": "ref ORD-123 and ORD-456", "pattern": r"ORD-(\d+)"})),
        json!("123")
    );
    assert_eq!(ok("extract_regex", json!({"source": "ref ORD-123", "pattern": r"ORD-\d+"})), json!("ORD-123"));
    assert_eq!(ok("extract_regex", json!({"source": "a1b2", "pattern": r"([a-z])(\d)", "group": 2})), json!("1"));
    assert_eq!(ok("extract_regex", json!({"source": "a1b2", "pattern": r"([a-z])(\d)", "group": "0"})), json!("a1"));
    assert_eq!(
        ok("extract_regex", json!({"source": "id=42", "pattern": r"id=(?P<id>\d+)", "group": "id"})),
        json!("42")
    );
    assert_eq!(ok("extract_regex", json!({"source": 12345, "pattern": r"3(\d)"})), json!("4"), "numbers as text");
}

#[test]
fn extract_regex_all_returns_every_match() {
    let params = json!({"source": "ORD-1, ORD-22, x", "pattern": r"ORD-(\d+)", "all": true});
    assert_eq!(ok("extract_regex", params), json!(["1", "22"]));
    assert_eq!(ok("extract_regex", json!({"source": "none", "pattern": r"\d", "all": true})), json!([]));
    let params = json!({"source": "a b1", "pattern": r"[a-z](\d)?", "all": true});
    assert_eq!(ok("extract_regex", params), json!([null, "1"]), "a group that did not take part is null");
}

#[test]
fn extract_regex_without_a_match_gives_no_value() {
    let out = run("extract_regex", json!({"source": "nothing here", "pattern": r"\d+"})).expect("runs");
    assert_eq!(out.value, None);
}

#[test]
fn extract_regex_prefers_the_compiled_pattern() {
    let compiled = CompiledRegex {
        source: r"(\w+)@".into(),
        full: regex::Regex::new(r"^(?:(\w+)@)$").expect("regex"),
        search: regex::Regex::new(r"(\w+)@").expect("regex"),
    };
    let params = obj(json!({"source": "mail ada@x.io", "pattern": "ignored ("}));
    let out = run_internal(
        InternalAction::ExtractRegex,
        &params,
        None,
        Some(&compiled),
        &mut Map::new(),
        &mut FakeEnv::new(),
    );
    assert_eq!(out.map(|o| o.value), Ok::<_, OpError>(Some(json!("ada"))));
}

#[test]
fn extract_regex_errors() {
    assert!(err("extract_regex", json!({"source": "x", "pattern": "(unclosed"})).contains("does not compile"));
    assert!(err("extract_regex", json!({"source": "x"})).contains("missing `pattern`"));
    assert!(err("extract_regex", json!({"source": "x", "pattern": "(x)", "group": 2})).contains("1 capture group"));
    assert!(err("extract_regex", json!({"source": "x", "pattern": "(x)", "group": "nm"})).contains("no group named"));
    assert!(err("extract_regex", json!({"source": "x", "pattern": "x", "group": -1})).contains("group number"));
    assert!(err("extract_regex", json!({"source": "x", "pattern": "x", "all": "often"})).contains("true or false"));
}

#[test]
fn hash_known_digests() {
    let h = |params: Value| ok("hash", params);
    assert_eq!(h(json!({"source": "abc"})), json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    assert_eq!(h(json!({"value": "abc", "algorithm": "SHA-1"})), json!("a9993e364706816aba3e25717850c26c9cd0d89d"));
    assert_eq!(h(json!({"source": "abc", "algorithm": "md5"})), json!("900150983cd24fb0d6963f7d28e17f72"));
    assert_eq!(
        h(json!({"source": "abc", "algorithm": "sha512"})),
        json!(
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        )
    );
    assert_eq!(
        h(json!({"source": "abc", "encoding": "base64"})),
        json!("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
    );
    assert_eq!(h(json!({"source": {"a": 1}})), h(json!({"source": r#"{"a":1}"#})), "non-strings as compact JSON");
}

#[test]
fn hash_errors() {
    assert!(err("hash", json!({"source": "x", "algorithm": "crc32"})).contains("unknown algorithm `crc32`"));
    assert!(err("hash", json!({"source": "x", "encoding": "base32"})).contains("unknown encoding"));
    assert!(err("hash", json!({})).contains("missing `source`"));
}
