//! Tests of the condition language: every operator, precedence, coercion and error message, the example table of
//! B §3 (with the rows A.4 changes marked), and properties over generated conditions and variables.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{Condition, ConditionError, MAX_DEPTH, MAX_SOURCE_BYTES, MAX_TERMS, ReferenceKind};
use crate::path::With;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Parses and evaluates; a parse error comes back as `Err` so a failing assertion shows the message.
fn eval(cond: &str, vars: Value) -> Result<bool, ConditionError> {
    Condition::parse(cond).map(|c| c.eval(&obj(vars)))
}

fn error(cond: &str) -> Option<ConditionError> {
    Condition::parse(cond).err()
}

/// Asserts that `cond` fails to parse at `offset` with a message containing `needle`.
fn assert_error(cond: &str, offset: usize, needle: &str) {
    let e = error(cond);
    assert!(
        e.as_ref().is_some_and(|e| e.offset == offset && e.message.contains(needle)),
        "`{cond}`: expected an error at {offset} containing {needle:?}, got {e:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The table of B §3.

#[derive(Debug, Clone, Copy)]
enum Source {
    /// ckp gives LangOrch's result.
    Langorch,
    /// ckp deliberately differs from LangOrch (A.4, B §8.10).
    CkpA4 { why: &'static str },
}

#[derive(Debug)]
struct Row {
    condition: &'static str,
    vars: Value,
    expected: bool,
    source: Source,
}

fn row(condition: &'static str, vars: Value, expected: bool, source: Source) -> Row {
    Row { condition, vars, expected, source }
}

#[test]
fn langorch_table_b3() {
    use Source::{CkpA4, Langorch};
    let undefined_is_null = CkpA4 { why: "an undefined variable is null, and null is falsy" };
    let rows = vec![
        row("{{a}} == 5", json!({"a": 5}), true, Langorch),
        row("{{a}} > 3.5", json!({"a": 5}), true, Langorch),
        row("{{a}} >= '5'", json!({"a": 5}), false, Langorch),
        row("{{missing}} == 'x'", json!({}), false, Langorch),
        row("{{missing}} != 'x'", json!({}), true, Langorch),
        row("{{missing}}", json!({}), false, undefined_is_null),
        row("is_empty {{missing}}", json!({}), true, CkpA4 { why: "is_empty is true for null (undefined)" }),
        row("is_empty {{es}}", json!({"es": ""}), true, Langorch),
        row("is_empty {{lst}}", json!({"lst": []}), true, CkpA4 { why: "is_empty is true for []" }),
        row("{{a}}==6", json!({"a": 5}), false, CkpA4 { why: "spaces around operators are optional" }),
        row("not {{flag}}", json!({"flag": false}), true, Langorch),
        row("count >= 5", json!({"count": 9}), true, CkpA4 { why: "bare names are variable references" }),
        row("d.x.y", json!({"d": {"x": {"y": 3}}}), true, Langorch),
        row(
            "{{status}} != 'x'",
            json!({"status": "log in failed"}),
            true,
            CkpA4 { why: "conditions run on values, so a value's words are never operators" },
        ),
        row("{{lst}} contains 1", json!({"lst": [1, 2]}), true, CkpA4 { why: "contains looks for an element" }),
        row(
            "{{lst}} contains '1'",
            json!({"lst": [1, 2]}),
            false,
            CkpA4 { why: "the string '1' is not an element of [1, 2]; no repr substring" },
        ),
        row("{{obj}} contains 'k'", json!({"obj": {"k": "v"}}), true, Langorch),
        row("{{num_s}} > 9", json!({"num_s": "10"}), true, Langorch),
        row("{{none_s}} == null", json!({"none_s": "None"}), true, Langorch),
        row("{{yes_s}} == true", json!({"yes_s": "yes"}), true, Langorch),
        row("{{flag}}", json!({"flag": false}), false, Langorch),
        row("{{zero}}", json!({"zero": 0}), false, Langorch),
        row("false", json!({}), false, Langorch),
        row("{{s}} == hello world", json!({"s": "hello world"}), true, Langorch),
        row("{{lst.length}} > 0", json!({"lst": [1, 2]}), true, Langorch),
        row("{{lst.0}} == 1", json!({"lst": [1, 2]}), true, Langorch),
        row("{{obj.k}} == v", json!({"obj": {"k": "v"}}), true, Langorch),
    ];
    let mut changed = 0;
    for r in &rows {
        if let Source::CkpA4 { why } = r.source {
            assert!(!why.is_empty(), "{r:?}: say why ckp differs");
            changed += 1;
        }
        assert_eq!(eval(r.condition, r.vars.clone()), Ok(r.expected), "{r:?}");
    }
    // A.4 lists exactly these departures; a new one must be a deliberate decision.
    assert_eq!(changed, 8);
}

// ---------------------------------------------------------------------------------------------------------------
// Constants, operands, operators.

#[test]
fn whole_text_constants() {
    for (text, expected) in
        [("true", true), (" YES ", true), ("1", true), ("False", false), ("no", false), ("0", false)]
    {
        let c = Condition::parse(text);
        assert_eq!(c.as_ref().map(|c| c.eval(&Map::new())), Ok(expected), "{text}");
        assert_eq!(c.map(|c| c.references().count()), Ok(0), "{text}");
    }
    // Only the whole text is a constant; inside an expression they are ordinary literals.
    assert_eq!(eval("yes and no", json!({})), Ok(false));
    assert_eq!(eval("1 and 'x'", json!({})), Ok(true));
}

#[test]
fn numeric_comparisons() {
    let v = json!({"a": 5, "f": 2.5, "big": u64::MAX, "neg": -3});
    for (cond, expected) in [
        ("{{a}} == 5", true),
        ("{{a}} == 5.0", true),
        ("{{a}} != 5", false),
        ("{{a}} != 6", true),
        ("{{a}} > 4", true),
        ("{{a}} > 5", false),
        ("{{a}} >= 5", true),
        ("{{a}} < 5", false),
        ("{{a}} <= 5", true),
        ("{{a}} < 5.5", true),
        ("{{f}} < 3", true),
        ("{{neg}} < -2", true),
        ("{{neg}} == -3", true),
        ("{{a}} == +5", true),
        ("1_000 == 1000", true),
        ("{{big}} > 9223372036854775807", true),
        ("{{big}} == 18446744073709551615", true),
        ("{{big}} == 18446744073709551614", false),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn spaces_around_operators_are_optional() {
    let v = json!({"a": 5, "s": "text", "count": 3});
    for (cond, expected) in [
        ("{{a}}==5", true),
        ("{{a}}>=6", false),
        ("{{a}}!=5", false),
        ("{{a}}>-1", true),
        ("count<10", true),
        ("{{s}}contains'ex'", true),
        ("'ex'in{{s}}", true),
        ("{{a}}==5 and{{s}}=='text'", true),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn ordering_of_strings_bools_and_mixed_types() {
    let v = json!({"a": 5, "lst": [1], "s": "b", "t": true, "f": false});
    for (cond, expected) in [
        ("'b' > 'a'", true),
        ("{{s}} >= 'b'", true),
        ("{{s}} < 'a'", false),
        ("{{t}} > {{f}}", true),
        ("{{a}} > 'x'", false),
        ("{{a}} < 'x'", false),
        ("{{lst}} > 0", false),
        ("{{missing}} < 1", false),
        ("{{missing}} >= 1", false),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn equality_across_types() {
    let v = json!({
        "t": true, "f": false, "x": [1, {"a": 1.0}], "y": [1.0, {"a": 1}], "z": [1, {"a": 2}],
        "o1": {"a": 1, "b": 2}, "o2": {"b": 2, "a": 1}, "n": null
    });
    for (cond, expected) in [
        ("{{t}} == 1", true),
        ("{{f}} == 0", true),
        ("{{t}} == 2", false),
        ("{{x}} == {{y}}", true),
        ("{{x}} == {{z}}", false),
        ("{{o1}} == {{o2}}", true),
        ("{{x}} == '[1,{\"a\":1.0}]'", false),
        ("{{n}} == null", true),
        ("{{missing}} == none", true),
        ("{{missing}} != null", false),
        ("null == 0", false),
        ("'' == null", false),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn soft_strings_are_coerced_against_non_strings() {
    let v = json!({
        "num_s": "10", "fl_s": "10.0", "neg_s": " -3 ", "sep_s": "1_000", "no_s": "No", "null_s": "null",
        "five": "5", "nine": "9", "x": "abc", "yes_s": "yes", "true_s": "true"
    });
    for (cond, expected) in [
        ("{{num_s}} == 10", true),
        ("{{fl_s}} == 10", true),
        ("{{neg_s}} < 0", true),
        ("{{sep_s}} == 1000", true),
        ("{{no_s}} == false", true),
        ("{{null_s}} == null", true),
        ("{{x}} > 5", false),
        ("{{x}} == null", false),
        // Soft against soft: numeric when both sides read as numbers, else plain text.
        ("{{num_s}} > {{nine}}", true),
        ("{{yes_s}} == {{true_s}}", true),
        ("{{x}} == {{x}}", true),
        ("{{num_s}} == 10.0", true),
        ("{{num_s}} == ten", false),
        // Soft against a quoted (strict) string: plain text, no coercion.
        ("{{five}} == '5'", true),
        ("{{yes_s}} == 'true'", false),
        ("{{five}} == 5", true),
        ("{{five}} >= '5'", true),
        // A quoted literal is never coerced.
        ("'10' > 9", false),
        ("'true' == true", false),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
    // A typed number against a quoted string is a type mismatch, as in LangOrch.
    assert_eq!(eval("{{a}} == '5'", json!({"a": 5})), Ok(false));
}

#[test]
fn unquoted_text_on_the_right() {
    let v = json!({"s": "hello world", "n": "5 apples", "r": "rock (live)", "a": 5, "name": "world"});
    for (cond, expected) in [
        ("{{s}} == hello world", true),
        ("{{s}} != hello world", false),
        ("{{s}} ==   hello world   ", true),
        ("{{n}} == 5 apples", true),
        ("{{r}} == rock (live)", true),
        ("({{s}} == hello world) and {{a}} == 5", true),
        ("{{s}} == hello world and {{a}} == 6", false),
        ("{{s}} == hello there or {{a}} == 5", true),
        ("{{s}} == hello {{name}}", true),
        ("{{s}} contains lo wo", true),
        ("{{s}} starts_with hello w", true),
        ("{{s}} == 'hello' world", false),
        ("{{s}} == hello world AND {{a}} == 5", true),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn bare_names() {
    let v = json!({"status": "approved", "count": 9, "lst": [1, 2], "d": {"x": {"y": 3}}, "limit": 5});
    for (cond, expected) in [
        ("count >= 5", true),
        ("count > limit", true),
        ("lst.0 == 1", true),
        ("lst.length == 2", true),
        ("d.x.y == 3", true),
        ("{{status}} == approved", true),
        ("{{status}} != approved", false),
        ("{{status}} == rejected", false),
        // On the left a bare name is always a reference: undefined is null.
        ("approved == 'approved'", false),
        ("missing", false),
        ("missing is_empty", true),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
    // On the right a defined variable wins over the word.
    assert_eq!(eval("{{status}} == approved", json!({"status": "approved", "approved": "yes"})), Ok(false));
    assert_eq!(eval("{{status}} == approved", json!({"status": "yes", "approved": "yes"})), Ok(true));
}

#[test]
fn contains_and_not_contains() {
    let v = json!({
        "s": "a5b", "lst": [1, 2, "x"], "tags": ["urgent", "vip"], "obj": {"k": "v", "5": 1},
        "n": 125, "b": true, "ns": ["1", "2"]
    });
    for (cond, expected) in [
        ("{{s}} contains 'a5'", true),
        ("{{s}} contains 5", true),
        ("{{s}} contains 'z'", false),
        ("{{lst}} contains 2", true),
        ("{{lst}} contains 2.0", true),
        ("{{lst}} contains 'x'", true),
        ("{{lst}} contains 3", false),
        ("{{tags}} contains urgent", true),
        ("{{tags}} contains 'urg'", false),
        ("{{ns}} contains 1", true),
        ("{{ns}} contains '1'", true),
        ("{{obj}} contains 'k'", true),
        ("{{obj}} contains 5", true),
        ("{{obj}} contains 'v'", false),
        ("{{n}} contains 2", false),
        ("{{b}} contains 't'", false),
        ("{{missing}} contains 'x'", false),
        ("{{s}} contains {{missing}}", false),
        ("{{s}} not_contains 'z'", true),
        ("{{s}} not_contains 'a'", false),
        ("{{lst}} not_contains 3", true),
        ("{{n}} not_contains 2", true),
        ("{{missing}} not_contains 'x'", true),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn starts_with_ends_with_and_in() {
    let v = json!({"s": "hello", "n": 123, "lst": [1, "a"], "obj": {"k": 1}, "o": {"a": 1}});
    for (cond, expected) in [
        ("{{s}} starts_with 'he'", true),
        ("{{s}} starts_with 'lo'", false),
        ("{{s}} ends_with 'lo'", true),
        ("{{s}} ends_with 'he'", false),
        ("{{n}} starts_with 12", true),
        ("{{n}} ends_with '23'", true),
        ("{{o}} starts_with '{\"a\"'", true),
        ("{{missing}} starts_with 'n'", false),
        ("{{s}} ends_with {{missing}}", false),
        ("'ell' in {{s}}", true),
        ("'x' in {{s}}", false),
        ("1 in {{lst}}", true),
        ("'1' in {{lst}}", false),
        ("'a' in {{lst}}", true),
        // On the left a bare name is a reference (here undefined), not the word.
        ("a in {{lst}}", false),
        ("'k' in {{obj}}", true),
        ("'z' in {{obj}}", false),
        ("2 in {{n}}", false),
        ("{{missing}} in {{s}}", false),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn is_empty_and_is_not_empty() {
    let v = json!({"n": null, "es": "", "sp": " ", "lst": [], "obj": {}, "zero": 0, "f": false, "s": "x", "l1": [0]});
    for (name, empty) in [
        ("n", true),
        ("missing", true),
        ("es", true),
        ("lst", true),
        ("obj", true),
        ("sp", false),
        ("zero", false),
        ("f", false),
        ("s", false),
        ("l1", false),
    ] {
        let vars = v.clone();
        assert_eq!(eval(&format!("is_empty {{{{{name}}}}}"), vars.clone()), Ok(empty), "prefix {name}");
        assert_eq!(eval(&format!("{{{{{name}}}}} is_empty"), vars.clone()), Ok(empty), "postfix {name}");
        assert_eq!(eval(&format!("is_not_empty {name}"), vars.clone()), Ok(!empty), "prefix not {name}");
        assert_eq!(eval(&format!("{name} is_not_empty"), vars), Ok(!empty), "postfix not {name}");
    }
}

#[test]
fn truthiness() {
    let v = json!({
        "f_s": "false", "no_s": "no", "zero_s": "0", "none_s": "none", "zf_s": "0.0", "es": "", "x": "x",
        "lst": [], "obj": {}, "full": {"a": 1}, "zero_f": 0.0, "one": 1, "quoted_s": "''"
    });
    for (cond, expected) in [
        ("{{f_s}}", false),
        ("{{no_s}}", false),
        ("{{zero_s}}", false),
        ("{{none_s}}", false),
        ("{{zf_s}}", false),
        ("{{quoted_s}}", false),
        ("{{es}}", false),
        ("{{x}}", true),
        ("{{lst}}", false),
        ("{{obj}}", false),
        ("{{full}}", true),
        ("{{zero_f}}", false),
        ("{{one}}", true),
        ("'false'", true),
        ("''", false),
        ("null", false),
        ("2.5", true),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn defaults() {
    let v = json!({"a": 5, "n": null});
    for (cond, expected) in [
        ("{{missing | 5}} == 5", true),
        ("{{ missing|5 }} > 4", true),
        ("{{missing | 'n/a'}} == n/a", true),
        ("{{missing | \"n/a\"}} == 'n/a'", true),
        ("{{missing | a b}} == a b", true),
        ("{{a | 0}} == 5", true),
        ("{{n | 1}} == 1", true),
        ("{{missing | 0}}", false),
        ("{{missing | x and y}} == 'x and y'", true),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn quoted_strings_with_placeholders_are_rendered() {
    let v = json!({"s": "hello world", "name": "world", "n": 3, "o": {"a": 1}});
    for (cond, expected) in [
        ("{{s}} == 'hello {{name}}'", true),
        ("{{s}} == \"hello {{ name }}\"", true),
        ("'n={{n}}' == 'n=3'", true),
        ("'{{o}}' == '{\"a\":1}'", true),
        ("'{{n}}' == 3", false),
        // An unresolved placeholder stays literal text (A.3).
        ("'{{nope}}' == '{{nope}}'", true),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn values_with_operator_words_are_just_values() {
    let v = json!({"status": "log in failed", "s": "a and b or not c == d"});
    assert_eq!(eval("{{status}} == 'log in failed'", v.clone()), Ok(true));
    assert_eq!(eval("{{status}} contains 'in'", v.clone()), Ok(true));
    assert_eq!(eval("{{s}} == 'a and b or not c == d'", v.clone()), Ok(true));
    assert_eq!(eval("{{s}}", v), Ok(true));
    // A value that looks like a placeholder is not expanded a second time (LangOrch renders conditions twice).
    let v = json!({"s": "{{a}}", "a": 5});
    assert_eq!(eval("{{s}} == 5", v.clone()), Ok(false));
    assert_eq!(eval("{{s}} == '{{s}}'", v), Ok(true));
}

#[test]
fn precedence_and_grouping() {
    let v = json!({"t": true, "f": false, "a": 5});
    for (cond, expected) in [
        // or < and: t or (f and f)
        ("{{t}} or {{f}} and {{f}}", true),
        ("({{t}} or {{f}}) and {{f}}", false),
        // and < not: (not f) and f
        ("not {{f}} and {{f}}", false),
        ("not ({{f}} and {{f}})", true),
        // not < comparison: not (a == 5)
        ("not {{a}} == 5", false),
        ("!{{a}} == 6", true),
        ("!{{f}}", true),
        ("! {{t}}", false),
        ("not not {{t}}", true),
        ("not(not({{t}}))", true),
        ("NOT {{f}}", true),
        ("{{f}} Or {{t}}", true),
        ("{{a}} > 1 and {{a}} < 10 and not ({{a}} == 7 or {{a}} == 8)", true),
        ("((({{t}})))", true),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn keywords_are_case_insensitive() {
    let v = json!({"t": true, "n": null, "s": "abc"});
    for (cond, expected) in [
        ("{{t}} == True", true),
        ("{{t}} == YES", true),
        ("{{n}} == NULL", true),
        ("{{n}} == None", true),
        ("{{s}} CONTAINS 'b'", true),
        ("{{s}} Starts_With 'a'", true),
        ("IS_EMPTY {{n}}", true),
    ] {
        assert_eq!(eval(cond, v.clone()), Ok(expected), "{cond}");
    }
}

#[test]
fn scope_layers_are_respected() {
    let vars = obj(json!({"item": {"v": 0}, "limit": 1}));
    let item = json!({"v": 2});
    let scope = With { name: "item", value: &item, parent: &vars };
    let c = Condition::parse("item.v > limit and {{item.v}} == 2");
    assert_eq!(c.map(|c| c.eval(&scope)), Ok(true));
}

#[test]
fn source_and_display_keep_the_text() {
    let c = Condition::parse("  {{a}} == 1 ");
    assert_eq!(c.as_ref().map(Condition::source), Ok("  {{a}} == 1 "));
    assert_eq!(c.map(|c| c.to_string()), Ok("  {{a}} == 1 ".to_owned()));
}

#[test]
fn references_are_reported_with_their_kind() {
    let c = Condition::parse("{{a}} == b and c.d > {{e | 1}} or 'x{{f}}{{g|2}}' == {{h}} z and is_empty {{i.0}}");
    let refs: Vec<(String, ReferenceKind)> =
        c.iter().flat_map(|c| c.references()).map(|r| (r.path.to_string(), r.kind)).collect();
    let expected: Vec<(String, ReferenceKind)> = [
        ("a", ReferenceKind::Value),
        ("b", ReferenceKind::NameOrWord),
        ("c.d", ReferenceKind::Value),
        ("e", ReferenceKind::Defaulted),
        ("f", ReferenceKind::InText),
        ("g", ReferenceKind::Defaulted),
        ("h", ReferenceKind::InText),
        ("i.0", ReferenceKind::Value),
    ]
    .into_iter()
    .map(|(p, k)| (p.to_owned(), k))
    .collect();
    assert_eq!(refs, expected);
    let reads: Vec<String> = c.iter().flat_map(|c| c.reads()).map(ToString::to_string).collect();
    assert_eq!(reads, ["a", "c.d", "e", "f", "g", "h", "i.0"]);
}

// ---------------------------------------------------------------------------------------------------------------
// Errors: every one has an offset and says how to fix it.

#[test]
fn syntax_errors_point_at_the_problem_and_say_how_to_fix_it() {
    assert_error("", 0, "the condition is empty");
    assert_error("   ", 0, "the condition is empty");
    assert_error("{{a}} ==", 6, "`==` needs a value on its right");
    assert_error("{{a}} == and {{b}}", 6, "needs a value on its right");
    assert_error("({{a}} == 1", 0, "never closed: add a `)`");
    assert_error("{{a}} == 1)", 10, "has no matching `(`: remove it");
    assert_error("{{a}} = 1", 6, "write `==`");
    assert_error("{{a}} == 1 && {{b}}", 11, "write `and`");
    assert_error("{{a}} || {{b}}", 6, "write `or`");
    assert_error("{{a}} not in {{b}}", 6, "use `not_contains`");
    assert_error("{{a-b}} == 1", 0, "not well formed");
    assert_error("{{a}} == {{x y}}", 9, "not well formed");
    assert_error("{{a}} == 'abc", 9, "add the closing `'`");
    assert_error("\"abc == 1", 0, "add the closing `\"`");
    assert_error("== 5", 0, "expected a value");
    assert_error("{{a}} === 5", 8, "two operators in a row");
    assert_error("{{a}} <> 5", 7, "two operators in a row");
    assert_error("5abc == 1", 0, "put text in quotes ('5abc')");
    assert_error("{{a..b}} == 1", 2, "remove the stray `.`");
    assert_error("status is approved", 7, "unexpected `is`");
    assert_error("({{a}}) == 1", 8, "cannot follow a parenthesised group");
    assert_error("is_empty {{a}} == 1", 15, "cannot follow");
    assert_error("{{a}} and", 9, "ends too early");
    assert_error("and {{a}}", 0, "before `and`");
    assert_error("#x", 0, "found `#x`");
    assert_error("{{a}} (", 6, "unexpected `(`");
    let deep = format!("{{{{{}}}}} == 1", vec!["x"; 40].join("."));
    assert_error(&deep, 2, "shorten the path");
}

#[test]
fn error_display_and_offsets_on_unicode_text() {
    let text = "{{é}} == 'ü";
    let e = error(text);
    assert_eq!(e.as_ref().map(|e| e.offset), Some(10));
    assert!(e.as_ref().is_some_and(|e| text.is_char_boundary(e.offset)));
    assert_eq!(
        e.map(|e| e.to_string()),
        Some("this string is never closed: add the closing `'` (at byte 10)".to_owned())
    );
}

#[test]
fn source_length_limit() {
    let pad = " ".repeat(MAX_SOURCE_BYTES - "{{a}}".len());
    assert_eq!(eval(&format!("{{{{a}}}}{pad}"), json!({"a": 1})), Ok(true));
    assert_error(&format!("{{{{a}}}}{pad} "), 0, "more than the limit of 8192");
}

#[test]
fn nesting_limit() {
    let ok = format!("{}{{{{t}}}}{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(eval(&ok, json!({"t": true})), Ok(true));
    let too_deep = format!("{}{{{{t}}}}{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    assert_error(&too_deep, MAX_DEPTH, "nested more than 32 deep");
    let nots = format!("{}{{{{t}}}}", "not ".repeat(MAX_DEPTH));
    assert_eq!(eval(&nots, json!({"t": true})), Ok(true));
    let too_many_nots = format!("{}{{{{t}}}}", "not ".repeat(MAX_DEPTH + 1));
    assert_error(&too_many_nots, MAX_DEPTH * 4, "nested more than 32 deep");
    // `not` and parentheses share the budget.
    let mixed = format!("{}{{{{t}}}}{}", "not (".repeat(MAX_DEPTH / 2 + 1), ")".repeat(MAX_DEPTH / 2 + 1));
    assert!(error(&mixed).is_some_and(|e| e.message.contains("nested")));
}

#[test]
fn term_limit() {
    // `{{t}}` alone is one term; each further ` and {{t}}` adds two.
    let fits = format!("{{{{t}}}}{}", " and {{t}}".repeat((MAX_TERMS - 1) / 2));
    assert_eq!(eval(&fits, json!({"t": true})), Ok(true));
    let over = format!("{{{{t}}}}{}", " and {{t}}".repeat((MAX_TERMS - 1) / 2 + 1));
    assert!(error(&over).is_some_and(|e| e.message.contains("more than 256 operators and operands")));
}

// ---------------------------------------------------------------------------------------------------------------
// Properties.

fn json_value() -> impl Strategy<Value = Value> {
    let words =
        vec!["", "10", "9", "None", "yes", "no", "0", "0.0", "hello world", "a", "log in failed", "{{a}}", "'q'"];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop::sample::select(words).prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let keys = prop::sample::select(vec!["c", "k", "x", "y", "0", "length"]).prop_map(String::from);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn vars() -> impl Strategy<Value = Map<String, Value>> {
    let names = prop::sample::select(vec!["a", "b", "s", "lst", "d", "flag", "approved"]).prop_map(String::from);
    prop::collection::btree_map(names, json_value(), 0..7).prop_map(|m| m.into_iter().collect())
}

fn left_operand() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "{{a}}",
        "{{b.c}}",
        "{{lst.0}}",
        "{{lst.length}}",
        "{{s | x}}",
        "{{missing}}",
        "a",
        "d.x",
        "5",
        "-2.5",
        "1_000",
        "'x'",
        "\"hello {{s}}\"",
        "true",
        "null",
        "'10'",
    ])
    .prop_map(String::from)
}

fn right_operand() -> impl Strategy<Value = String> {
    let raw =
        prop::sample::select(vec!["hello world", "approved", "b", "5 apples", "{{a}} x", "s.k"]).prop_map(String::from);
    prop_oneof![left_operand(), raw]
}

fn test_expr() -> impl Strategy<Value = String> {
    let ops = prop::sample::select(vec![
        "==",
        "!=",
        ">",
        ">=",
        "<",
        "<=",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "in",
    ]);
    let symbols = prop::sample::select(vec!["==", "!=", ">", ">=", "<", "<="]);
    prop_oneof![
        (left_operand(), ops, right_operand()).prop_map(|(l, o, r)| format!("{l} {o} {r}")),
        (left_operand(), symbols, left_operand()).prop_map(|(l, o, r)| format!("{l}{o}{r}")),
        left_operand().prop_map(|o| format!("is_empty {o}")),
        left_operand().prop_map(|o| format!("{o} is_not_empty")),
        left_operand(),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    test_expr().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| format!("not ({c})")),
            inner.clone().prop_map(|c| format!("!({c})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) or ({b})")),
        ]
    })
}

fn token_soup() -> impl Strategy<Value = String> {
    let tokens = prop::sample::select(vec![
        "(",
        ")",
        "{{",
        "}}",
        "{{a}}",
        "{{a|",
        "'",
        "\"",
        "not",
        "!",
        "and",
        "or",
        "==",
        "=",
        "!=",
        ">",
        "<=",
        "contains",
        "in",
        "is_empty",
        "is_not_empty",
        "5",
        "-",
        "1.",
        "_",
        ".",
        "a.b",
        "é",
        " ",
        "&&",
        "|",
    ]);
    (prop::collection::vec(tokens, 0..24), any::<bool>()).prop_map(|(t, spaced)| t.join(if spaced { " " } else { "" }))
}

proptest! {
    #[test]
    fn parse_never_panics(text in any::<String>()) {
        let _ = Condition::parse(&text);
    }

    #[test]
    fn parse_and_eval_never_panic_on_token_soup(text in token_soup(), v in vars()) {
        if let Ok(c) = Condition::parse(&text) {
            let _ = c.eval(&v);
            let _ = c.references().count();
        }
    }

    #[test]
    fn generated_conditions_parse_and_eval(text in condition(), v in vars()) {
        let c = Condition::parse(&text);
        prop_assert!(c.is_ok(), "{text}: {c:?}");
        if let Ok(c) = c {
            let _ = c.eval(&v);
        }
    }

    #[test]
    fn not_negates(text in condition(), v in vars()) {
        let c = Condition::parse(&text).map(|c| c.eval(&v));
        let n = Condition::parse(&format!("not ({text})")).map(|c| c.eval(&v));
        prop_assert_eq!(n, c.map(|b| !b));
    }

    #[test]
    fn and_or_are_boolean(a in condition(), b in condition(), v in vars()) {
        let ea = Condition::parse(&a).map(|c| c.eval(&v));
        let eb = Condition::parse(&b).map(|c| c.eval(&v));
        let and = Condition::parse(&format!("({a}) and ({b})")).map(|c| c.eval(&v));
        let or = Condition::parse(&format!("({a})or({b})")).map(|c| c.eval(&v));
        prop_assert!(ea.is_ok() && eb.is_ok(), "{a} / {b}");
        prop_assert_eq!(and, Ok(ea.clone().unwrap_or(false) && eb.clone().unwrap_or(false)));
        prop_assert_eq!(or, Ok(ea.unwrap_or(false) || eb.unwrap_or(false)));
    }
}
