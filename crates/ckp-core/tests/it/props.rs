//! Property tests of the compiler: it never panics, whatever the document, and its verdicts are consistent.

use ckp_core::{Severity, compile};
use proptest::prelude::*;
use serde_json::{Value, json};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-5i64..100_000).prop_map(Value::from),
        (-10.0f64..10.0).prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "a",
            "check",
            "end",
            "sequence",
            "logic",
            "terminate",
            "loop",
            "parallel",
            "{{x}}",
            "{{x | 1}}",
            "{{ a-b }}",
            "(",
            "{{x}} > 3 and",
            "0 9 * * *",
            "all",
            "fail",
            "[z-a]",
            "mcp:s/t",
            "http_request",
            "set_variable",
            "",
            "json:k",
            "regex: (",
            "human_approval",
            "p",
        ])
        .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type",
                    "next_node",
                    "steps",
                    "action",
                    "rules",
                    "condition",
                    "branches",
                    "start_node",
                    "variable",
                    "value",
                    "body_node",
                    "iterator",
                    "outputs",
                    "prompt",
                    "on_approve",
                    "schema",
                    "x",
                ])
                .prop_map(str::to_owned),
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer of `v`.
fn pointers(v: &Value, base: String, out: &mut Vec<String>) {
    out.push(base.clone());
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| pointers(c, format!("{base}/{k}"), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| pointers(c, format!("{base}/{i}"), out)),
        _ => {}
    }
}

fn everything() -> Value {
    serde_json::from_str(include_str!("../../../../examples/everything.ckp.json")).expect("json")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn replacing_any_value_never_panics(pick in any::<prop::sample::Index>(), replacement in value()) {
        let mut doc = everything();
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let target = pick.get(&all).clone();
        if let Some(slot) = doc.pointer_mut(&target) {
            *slot = replacement;
        }
        let text = serde_json::to_string_pretty(&doc).expect("json");
        let c = compile(&text);
        for d in &c.diagnostics {
            prop_assert!(d.line >= 1 && d.column >= 1, "{d:?}");
            prop_assert!(!d.message.is_empty());
        }
        let has_errors = c.diagnostics.iter().any(|d| d.severity == Severity::Error);
        prop_assert_eq!(c.procedure.is_some(), !has_errors);
    }

    #[test]
    fn arbitrary_json_never_panics(doc in value()) {
        let c = ckp_core::compile_value(&doc);
        prop_assert_eq!(c.procedure.is_some(), !c.has_errors());
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let c = compile(&text);
        prop_assert!(c.procedure.is_none() || !c.has_errors());
    }
}
