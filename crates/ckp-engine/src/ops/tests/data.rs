//! parse_json, parse_xml, format_string / format_data, convert_type, validate_schema.

use std::sync::Arc;

use ckp_core::procedure::{CompiledSchema, InternalAction};
use serde_json::{Map, Value, json};

use super::{FakeEnv, err, obj, ok, run_in};
use crate::ops::{OpError, OpErrorKind, run_internal};

#[test]
fn parse_json_parses_text_and_passes_values_through() {
    assert_eq!(ok("parse_json", json!({"source": r#"{"a": [1, 2], "b": null}"#})), json!({"a": [1, 2], "b": null}));
    assert_eq!(ok("parse_json", json!({"value": "\u{feff}[true]"})), json!([true]));
    assert_eq!(ok("parse_json", json!({"source": {"already": 1}})), json!({"already": 1}));
}

#[test]
fn parse_json_errors_locate_the_problem() {
    let e = err("parse_json", json!({"source": "{\n  \"a\": 1,\n  oops\n}"}));
    assert!(e.contains("line 3 column 3"), "{e}");
    assert!(err("parse_json", json!({"source": "{{raw}}"})).contains("did not resolve"));
    let mut vars = obj(json!({"raw": "{}"}));
    let e = run_in("parse_json", json!({"source": "raw"}), &mut vars, &mut FakeEnv::new()).expect_err("a name");
    assert!(e.message.contains("write {{raw}}"), "{}", e.message);
    assert!(err("parse_json", json!({})).contains("missing `source`"));
}

#[test]
fn parse_xml_builds_objects_lists_and_text() {
    let xml = r#"<?xml version="1.0"?>
        <!-- orders -->
        <orders region="eu">
          <order id="1"><item>A</item><item>B</item><note/></order>
          <order id="2"><item>C</item><![CDATA[x < y]]></order>
          <total>3</total>
        </orders>"#;
    assert_eq!(
        ok("parse_xml", json!({"source": xml})),
        json!({"orders": {
            "@region": "eu",
            "order": [
                {"@id": "1", "item": ["A", "B"], "note": null},
                {"@id": "2", "item": "C", "#text": "x < y"}
            ],
            "total": "3"
        }})
    );
    assert_eq!(ok("parse_xml", json!({"source": "<a>hi</a>"})), json!({"a": "hi"}));
    assert_eq!(
        ok("parse_xml", json!({"source": r#"<s:Env xmlns:s="urn:x"><s:Body>ok</s:Body></s:Env>"#})),
        json!({"Env": {"Body": "ok"}}),
        "namespace prefixes are dropped"
    );
}

#[test]
fn parse_xml_rejects_bad_and_hostile_documents() {
    assert!(err("parse_xml", json!({"source": "<a><b></a>"})).contains("not well-formed XML"));
    assert!(err("parse_xml", json!({"source": "not xml"})).contains("not well-formed XML"));
    assert!(err("parse_xml", json!({"source": 5})).contains("must be XML text"));
    let deep = format!("{}{}", "<a>".repeat(200), "</a>".repeat(200));
    assert!(err("parse_xml", json!({"source": deep})).contains("nest more than 128"));
    let very_deep = format!("{}{}", "<a>".repeat(200_000), "</a>".repeat(200_000));
    assert!(err("parse_xml", json!({"source": very_deep})).contains("nest more than 128"), "no stack overflow");
    let laughs = r#"<?xml version="1.0"?>
        <!DOCTYPE lolz [
          <!ENTITY lol "lol">
          <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
          <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
          <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
          <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
          <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
          <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
          <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
          <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
        ]>
        <lolz>&lol9;</lolz>"#;
    assert!(err("parse_xml", json!({"source": laughs})).contains("not well-formed XML"));
}

#[test]
fn format_string_substitutes_values_then_variables() {
    let mut vars = obj(json!({"name": "Ada", "order": {"id": 7, "tags": ["a"]}}));
    let mut env = FakeEnv::new();
    let mut run =
        |params: Value| run_in("format_string", params, &mut vars, &mut env).expect("format").value.expect("a string");
    assert_eq!(run(json!({"template": "Hi {name}, order {order.id}"})), json!("Hi Ada, order 7"));
    assert_eq!(run(json!({"format": "{name} {x}", "values": {"name": "Bob", "x": 1.5}})), json!("Bob 1.5"));
    assert_eq!(run(json!({"template": "{order.tags} {order}"})), json!(r#"["a"] {"id":7,"tags":["a"]}"#));
    assert_eq!(run(json!({"template": "{{literal}} {missing} { name }"})), json!("{literal} {missing} Ada"));
    assert_eq!(run(json!({"template": r#"{"json": {name}}"#})), json!(r#"{"json": Ada}"#));
    assert_eq!(run(json!({"value": "unclosed {name"})), json!("unclosed {name"));
    let e = run_in("format_data", json!({"template": "x", "values": [1]}), &mut Map::new(), &mut FakeEnv::new())
        .expect_err("values must be an object");
    assert!(e.message.starts_with("format_data: ") && e.message.contains("must be an object"), "{}", e.message);
    assert!(err("format_string", json!({})).contains("missing `template`"));
}

#[test]
fn convert_type_conversions() {
    let conv = |v: Value, t: &str| ok("convert_type", json!({"source": v, "target_type": t}));
    assert_eq!(conv(json!(" 42 "), "number"), json!(42));
    assert_eq!(conv(json!("2.5"), "float"), json!(2.5));
    assert_eq!(conv(json!(true), "number"), json!(1));
    assert_eq!(conv(json!("3.7"), "integer"), json!(3));
    assert_eq!(conv(json!(-3.7), "int"), json!(-3));
    assert_eq!(conv(json!("yes"), "boolean"), json!(true));
    assert_eq!(conv(json!("OFF"), "bool"), json!(false));
    assert_eq!(conv(json!(0), "boolean"), json!(false));
    assert_eq!(conv(json!(null), "boolean"), json!(false));
    assert_eq!(conv(json!({"a": 1}), "string"), json!(r#"{"a":1}"#));
    assert_eq!(conv(json!(12), "string"), json!("12"));
    assert_eq!(conv(json!("[1, 2]"), "array"), json!([1, 2]));
    assert_eq!(conv(json!(null), "list"), json!([]));
    assert_eq!(conv(json!(r#"{"k": "v"}"#), "object"), json!({"k": "v"}));
    assert_eq!(conv(json!("7"), "json"), json!(7));
    assert_eq!(conv(json!([1]), "json"), json!([1]));
}

#[test]
fn convert_type_refuses_impossible_conversions() {
    let conv = |v: Value, t: &str| err("convert_type", json!({"value": v, "target_type": t}));
    assert!(conv(json!("abc"), "number").contains(r#"cannot convert "abc" (a string) to number"#));
    assert!(conv(json!("inf"), "number").contains("cannot convert"));
    assert!(conv(json!("1e400"), "number").contains("cannot convert"));
    assert!(conv(json!("1e30"), "integer").contains("cannot convert"));
    assert!(conv(json!([1]), "boolean").contains("(a list) to boolean"));
    assert!(conv(json!("maybe"), "boolean").contains("cannot convert"));
    assert!(conv(json!("{\"a\":1}"), "array").contains("to array"));
    assert!(conv(json!(5), "object").contains("to object"));
    assert!(conv(json!("{oops"), "json").contains("cannot convert"));
    assert!(conv(json!("{{n}}"), "number").contains("did not resolve"));
    assert!(conv(json!(1), "date").contains("unknown target_type `date`"));
    assert!(err("convert_type", json!({"value": 1})).contains("missing `target_type`"));
}

fn schema(v: Value) -> CompiledSchema {
    CompiledSchema(Arc::new(jsonschema::validator_for(&v).expect("valid schema")))
}

fn validate(params: Value, compiled: Option<&CompiledSchema>) -> Result<Option<Value>, OpError> {
    run_internal(InternalAction::ValidateSchema, &obj(params), compiled, None, &mut Map::new(), &mut FakeEnv::new())
        .map(|o| o.value)
}

#[test]
fn validate_schema_with_the_compiled_schema() {
    let s = schema(json!({
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}
    }));
    assert_eq!(validate(json!({"source": {"id": 1, "tags": ["a"]}}), Some(&s)), Ok(Some(json!({"valid": true}))));
    let e = validate(json!({"source": {"id": "x", "tags": ["a", 2]}}), Some(&s)).expect_err("invalid");
    assert_eq!(e.kind, OpErrorKind::Validation);
    assert!(e.message.starts_with("value does not match the schema: "), "{}", e.message);
    assert!(e.message.contains("/id: ") && e.message.contains("/tags/1: "), "{}", e.message);
    let e = validate(json!({"value": 5}), Some(&s)).expect_err("root");
    assert!(e.message.contains("(root): "), "{}", e.message);
}

#[test]
fn validate_schema_compiles_a_rendered_schema_or_fails_internally() {
    let params = json!({"source": [1, 2, 3], "schema": {"type": "array", "maxItems": 2}});
    let e = validate(params, None).expect_err("too many items");
    assert_eq!(e.kind, OpErrorKind::Validation);
    let params = json!({"source": [1], "schema": {"type": "array", "maxItems": 2}});
    assert_eq!(validate(params, None), Ok(Some(json!({"valid": true}))));
    let e = validate(json!({"source": 1}), None).expect_err("no schema");
    assert_eq!(e.kind, OpErrorKind::Internal);
    assert!(e.message.contains("no JSON Schema"), "{}", e.message);
    let e = validate(json!({"source": 1, "schema": {"$ref": "http://127.0.0.1:9/s.json"}}), None).expect_err("remote");
    assert_eq!(e.kind, OpErrorKind::Internal);
    assert!(e.message.contains("not a valid JSON Schema"), "{}", e.message);
    let e = validate(json!({"schema": {}}), None).expect_err("no source");
    assert!(e.message.contains("missing `source`"), "{}", e.message);
}

#[test]
fn validate_schema_lists_at_most_five_violations() {
    let s = schema(json!({"type": "array", "items": {"type": "string"}}));
    let e = validate(json!({"source": [1, 2, 3, 4, 5, 6, 7]}), Some(&s)).expect_err("invalid");
    assert!(e.message.contains("/4: ") && !e.message.contains("/5: "), "{}", e.message);
    assert!(e.message.ends_with("(and 2 more)"), "{}", e.message);
}
