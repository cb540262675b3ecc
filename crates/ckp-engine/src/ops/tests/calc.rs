//! calculate.

use serde_json::{Value, json};

use super::{err, ok};
use crate::ops::calc::evaluate;

fn calc(expr: &str) -> Value {
    evaluate(expr).unwrap_or_else(|e| panic!("`{expr}` failed: {e}"))
}

fn calc_err(expr: &str) -> String {
    match evaluate(expr) {
        Err(e) => e,
        Ok(v) => panic!("`{expr}` gave {v}, expected an error"),
    }
}

#[test]
fn arithmetic_and_precedence() {
    assert_eq!(calc("1 + 2 * 3"), json!(7));
    assert_eq!(calc("(1 + 2) * 3"), json!(9));
    assert_eq!(calc("10 - 4 - 3"), json!(3));
    assert_eq!(calc("2 ** 3 ** 2"), json!(512), "power is right-associative");
    assert_eq!(calc("2 ^ 10"), json!(1024));
    assert_eq!(calc("-2 ** 2"), json!(-4), "power binds tighter than unary minus");
    assert_eq!(calc("2 ** -1"), json!(0.5));
    assert_eq!(calc("--3"), json!(3));
    assert_eq!(calc("7 / 2"), json!(3.5));
    assert_eq!(calc("10 / 4 * 2"), json!(5), "whole results are integers");
    assert_eq!(calc("7 // 2"), json!(3));
    assert_eq!(calc("-7 // 2"), json!(-4));
    assert_eq!(calc("7 % 3"), json!(1));
    assert_eq!(calc("-7 % 3"), json!(2), "remainder takes the divisor's sign");
    assert_eq!(calc("5.5 % 2"), json!(1.5));
    assert_eq!(calc("0.1 + 0.2"), json!(0.1 + 0.2));
    assert_eq!(calc("1.5e3 + 1"), json!(1501));
    assert_eq!(calc("  42  "), json!(42));
}

#[test]
fn integers_stay_exact_and_overflow_to_floats() {
    assert_eq!(calc("9007199254740993 + 0"), json!(9_007_199_254_740_993_i64));
    assert_eq!(calc("9223372036854775807 + 1"), json!(9_223_372_036_854_775_808.0));
    assert_eq!(calc("2 ** 62"), json!(4_611_686_018_427_387_904_i64));
}

#[test]
fn functions() {
    assert_eq!(calc("abs(-3)"), json!(3));
    assert_eq!(calc("round(2.5)"), json!(3), "half away from zero");
    assert_eq!(calc("round(-2.5)"), json!(-3));
    assert_eq!(calc("round(1.23456, 2)"), json!(1.23));
    assert_eq!(calc("round(1234, -2)"), json!(1200));
    assert_eq!(calc("floor(-1.5)"), json!(-2));
    assert_eq!(calc("ceil(1.2)"), json!(2));
    assert_eq!(calc("sqrt(16)"), json!(4));
    assert_eq!(calc("pow(2, 8)"), json!(256));
    assert_eq!(calc("min(3, 1, 2)"), json!(1));
    assert_eq!(calc("MAX(3, 1, 2)"), json!(3));
    assert_eq!(calc("sum(1, 2, 3.5)"), json!(6.5));
    assert_eq!(calc("avg(1, 2, 3, 4)"), json!(2.5));
    assert_eq!(calc("sum([1, 2, 3]) / 2"), json!(3), "a rendered list is spread");
    assert_eq!(calc(r#"max(["4", "10"], 2)"#), json!(10), "numeric strings count");
    assert_eq!(calc("sum([])"), json!(0));
    assert_eq!(calc("round(pi, 2) * 100"), json!(314));
}

#[test]
fn numeric_strings_are_numbers() {
    assert_eq!(calc(r#""3" + '4'"#), json!(7));
    assert_eq!(ok("calculate", json!({"expression": "'1.5' * 2"})), json!(3));
    assert_eq!(ok("calculate", json!({"expression": 12.5})), json!(12.5), "a number is returned as is");
}

#[test]
fn errors_say_what_and_where() {
    assert_eq!(calc_err("1 / 0"), "division by zero");
    assert_eq!(calc_err("1 // 0"), "division by zero");
    assert_eq!(calc_err("5 % 0.0"), "modulo by zero");
    assert!(calc_err("0 ** -1").contains("negative power"));
    assert!(calc_err("sqrt(-1)").contains("negative"));
    assert!(calc_err("10 ** 400").contains("too large"));
    assert!(calc_err("(-8) ** 0.5").contains("not a real number"));
    assert!(calc_err("1 +").contains("ends where a number was expected"));
    assert!(calc_err("(1 + 2").contains("expected `)`"));
    assert!(calc_err("1 2").contains("unexpected number `2` at character 3"));
    assert!(calc_err("2 $ 3").contains("unexpected character `$` at character 3"));
    assert!(calc_err("price * 2").contains("unknown name `price`"));
    assert!(calc_err("{{price}} * 2").contains("placeholder that did not resolve"));
    assert!(calc_err("'abc' + 1").contains("is not a number"));
    assert!(calc_err("log(2)").contains("unknown function `log`"));
    assert!(calc_err("round(1.5, 0.5)").contains("whole number"));
    assert!(calc_err("round(1, 2, 3)").contains("3 arguments"));
    assert!(calc_err("avg()").contains("no values"));
    assert!(calc_err("min([])").contains("no values"));
    assert!(calc_err("1.2.3").contains("is not a number"));
    assert_eq!(calc_err(""), "expression is empty");
    assert_eq!(calc_err("   "), "expression is empty");
}

#[test]
fn limits_bound_length_and_depth() {
    let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert!(calc_err(&deep).contains("nests more than 64"));
    let minus = format!("{}1", "-".repeat(100));
    assert!(calc_err(&minus).contains("nests more than 64"));
    let long = "1+".repeat(6000) + "1";
    assert!(calc_err(&long).contains("longer than"));
    let ok_depth = format!("{}1{}", "(".repeat(30), ")".repeat(30));
    assert_eq!(calc(&ok_depth), json!(1));
}

#[test]
fn calculate_action_errors() {
    assert!(err("calculate", json!({"expression": "1/0"})).contains("division by zero"));
    assert!(err("calculate", json!({})).contains("missing `expression`"));
    assert!(err("calculate", json!({"expression": true})).contains("must be text"));
}
