//! Property tests: the parsers never panic on any input; encryption round-trips any text.

use proptest::prelude::*;
use serde_json::{Map, json};

use super::{FakeEnv, run, run_in};
use crate::ops::calc::evaluate;
use crate::ops::tabular::read_csv;

/// Text made mostly of the characters an expression parser cares about.
fn expression_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,80}",
        proptest::collection::vec(
            prop_oneof![
                Just("1"),
                Just("2.5"),
                Just("1e308"),
                Just("9223372036854775807"),
                Just("-"),
                Just("+"),
                Just("*"),
                Just("**"),
                Just("/"),
                Just("//"),
                Just("%"),
                Just("^"),
                Just("("),
                Just(")"),
                Just("["),
                Just("]"),
                Just(","),
                Just("'3'"),
                Just("\""),
                Just("abs"),
                Just("round"),
                Just("sqrt"),
                Just("min"),
                Just("sum"),
                Just("pi"),
                Just(" "),
                Just("0"),
                Just("{{x}}"),
            ],
            0..60,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn calculate_never_panics(text in expression_text()) {
        if let Ok(v) = evaluate(&text) {
            prop_assert!(v.is_number(), "{text} gave {v}");
        }
    }

    #[test]
    fn csv_never_panics_and_keeps_every_character(text in "[a-c,\"\r\n ]{0,60}", header in any::<bool>()) {
        let _ = run("parse_csv", json!({"source": text, "header": header}));
        if let Ok(rows) = read_csv(&text, ',') {
            let kept: usize = rows.iter().flatten().map(|f| f.chars().filter(|c| c.is_alphabetic()).count()).sum();
            prop_assert_eq!(kept, text.chars().filter(|c| c.is_alphabetic()).count());
        }
    }

    #[test]
    fn xml_never_panics(text in "[<>/a-b =\"'!?&;#x0-9\\[\\]-]{0,80}") {
        let _ = run("parse_xml", json!({"source": text}));
    }

    #[test]
    fn xml_of_generated_elements_parses(names in proptest::collection::vec("[a-z]{1,4}", 1..8), body in "[a-z0-9 ]{0,10}") {
        let open: String = names.iter().map(|n| format!("<{n} k=\"v\">")).collect();
        let close: String = names.iter().rev().map(|n| format!("</{n}>")).collect();
        let doc = format!("{open}{body}{close}");
        let out = run("parse_xml", json!({"source": doc})).expect("well-formed");
        let root = out.value.and_then(|v| v.get(&names[0]).cloned());
        prop_assert_eq!(root.and_then(|r| r.get("@k").cloned()), Some(json!("v")));
    }

    #[test]
    fn encrypt_decrypt_round_trips(text in any::<String>(), secret in ".{1,40}") {
        let mut env = FakeEnv::new().with_secret("K", &secret);
        let mut vars = Map::new();
        let sealed = run_in("encrypt", json!({"source": text, "key_reference": "K"}), &mut vars, &mut env)
            .expect("encrypt").value.expect("ciphertext");
        let opened = run_in("decrypt", json!({"source": sealed, "key_reference": "K"}), &mut vars, &mut env)
            .expect("decrypt").value;
        prop_assert_eq!(opened, Some(json!(text)));
    }

    #[test]
    fn format_string_never_panics(text in "[{}a-z. ]{0,40}") {
        let out = run("format_string", json!({"template": text, "values": {"a": 1, "b": {"c": "x"}}}));
        prop_assert!(out.is_ok());
    }
}
