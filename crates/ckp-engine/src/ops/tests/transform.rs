//! Transforms: filter, map, aggregate / reduce, sort, deduplicate, join, pivot.

use ckp_core::condition::Condition;
use ckp_core::procedure::{AggregateOp, MapExpr, TransformOp, Transformation};
use ckp_core::template::Template;
use serde_json::{Map, Value, json};

use super::obj;
use crate::ops::{OpError, apply_transform};

fn t(op: TransformOp) -> Transformation {
    Transformation { source: "src".into(), output: "out".into(), op, params: Map::new() }
}

fn apply(op: TransformOp, vars: Value) -> Result<Value, OpError> {
    apply_transform(&t(op), &obj(vars))
}

#[track_caller]
fn on(op: TransformOp, src: Value) -> Value {
    apply(op, json!({"src": src})).expect("transform")
}

fn cond(text: &str) -> TransformOp {
    TransformOp::Filter(Condition::parse(text).expect("condition"))
}

fn orders() -> Value {
    json!([
        {"id": 1, "customer": "ada", "total": 120, "region": "eu"},
        {"id": 2, "customer": "bob", "total": "80.5", "region": "us"},
        {"id": 3, "customer": "cy", "total": null, "region": "eu"},
        {"id": 4, "customer": "ada", "total": 40, "region": "us"}
    ])
}

#[test]
fn filter_keeps_items_where_the_condition_holds() {
    let vars = json!({"src": orders(), "threshold": 100});
    let out = apply(cond("{{item.total}} > 50"), vars.clone()).expect("filter");
    assert_eq!(
        out.as_array().map(|a| a.iter().map(|o| o["id"].clone()).collect::<Vec<_>>()),
        Some(vec![json!(1), json!(2)])
    );
    let out = apply(cond("{{item.total}} > {{threshold}} and {{item.region}} == eu"), vars).expect("vars in scope");
    assert_eq!(out, json!([{"id": 1, "customer": "ada", "total": 120, "region": "eu"}]));
    assert_eq!(on(cond("{{item}} contains a"), json!(["cat", "dog", "bat"])), json!(["cat", "bat"]));
}

#[test]
fn map_by_template_item_or_field() {
    let tpl = |s: &str| TransformOp::Map(MapExpr::Template(Template::parse(s).expect("template")));
    assert_eq!(on(tpl("{{item.customer}}"), orders()), json!(["ada", "bob", "cy", "ada"]));
    assert_eq!(on(tpl("{{item.total}}"), orders()).get(0), Some(&json!(120)), "one placeholder keeps its type");
    assert_eq!(on(tpl("#{{item.id}}: {{item.customer}}"), orders()).get(1), Some(&json!("#2: bob")));
    assert_eq!(on(TransformOp::Map(MapExpr::Item), json!([1, "a"])), json!([1, "a"]));
    let field = |f: &str| TransformOp::Map(MapExpr::Field(f.into()));
    assert_eq!(on(field("customer"), orders()), json!(["ada", "bob", "cy", "ada"]));
    assert_eq!(on(field("a.b"), json!([{"a": {"b": 1}}, {"a": 2}, 3])), json!([1, {"a": 2}, 3]));
    assert_eq!(on(field("x"), json!([{"x": 1}, {"y": 2}])), json!([1, {"y": 2}]), "items without the field stay");
}

#[test]
fn filter_and_map_of_a_non_list_give_an_empty_list() {
    assert_eq!(on(cond("{{item}} > 1"), json!("text")), json!([]));
    assert_eq!(on(TransformOp::Map(MapExpr::Item), json!({"a": 1})), json!([]));
    assert_eq!(apply(TransformOp::Map(MapExpr::Item), json!({})), Ok(json!([])), "missing source is empty");
}

#[test]
fn aggregates() {
    let agg = |op, field: Option<&str>| TransformOp::Aggregate(op, field.map(str::to_owned));
    assert_eq!(on(agg(AggregateOp::Count, None), orders()), json!(4));
    assert_eq!(on(agg(AggregateOp::Sum, Some("total")), orders()), json!(240.5), "numeric text counts, null skipped");
    assert_eq!(on(agg(AggregateOp::Sum, Some("id")), orders()), json!(10), "integer sums stay integers");
    assert_eq!(on(agg(AggregateOp::Avg, Some("total")), orders()), json!(80.166_666_666_666_67));
    assert_eq!(on(agg(AggregateOp::Min, Some("total")), orders()), json!(40));
    assert_eq!(on(agg(AggregateOp::Max, Some("total")), orders()), json!(120));
    assert_eq!(on(agg(AggregateOp::Sum, None), json!([1, "2", "x", true, 3.5])), json!(6.5));
    assert_eq!(on(agg(AggregateOp::Avg, None), json!([])), json!(null));
    assert_eq!(on(agg(AggregateOp::Sum, None), json!([])), json!(0));
    assert_eq!(on(agg(AggregateOp::Max, None), json!(["2024-01-02", "2024-03-01", "2023-12-31"])), json!("2024-03-01"));
    assert_eq!(on(agg(AggregateOp::Min, None), json!([null, {}])), json!(null));
    assert_eq!(on(agg(AggregateOp::Sum, None), json!([i64::MAX, 1])), json!(9_223_372_036_854_775_808.0));
    assert_eq!(
        on(TransformOp::Reduce(AggregateOp::Sum, Some("total".into())), orders()),
        json!(240.5),
        "reduce folds like aggregate"
    );
}

#[test]
fn sort_is_stable_numeric_and_puts_nulls_last() {
    let sort = |key: Option<&str>, descending| TransformOp::Sort { key: key.map(str::to_owned), descending };
    let ids =
        |v: Value| v.as_array().map(|a| a.iter().map(|o| o["id"].clone()).collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(ids(on(sort(Some("total"), false), orders())), vec![json!(4), json!(2), json!(1), json!(3)]);
    assert_eq!(ids(on(sort(Some("total"), true), orders())), vec![json!(1), json!(2), json!(4), json!(3)]);
    assert_eq!(ids(on(sort(Some("customer"), false), orders())), vec![json!(1), json!(4), json!(2), json!(3)]);
    assert_eq!(
        on(sort(None, false), json!(["10", 9, "b", "a", true, null, [1]])),
        json!([9, "10", "a", "b", true, [1], null])
    );
    assert_eq!(
        on(sort(Some("k"), false), json!([{"k": 1, "n": "a"}, {"n": "b"}, {"k": 1, "n": "c"}])),
        json!([{"k": 1, "n": "a"}, {"k": 1, "n": "c"}, {"n": "b"}])
    );
}

#[test]
fn deduplicate_keeps_the_first_of_each() {
    let dedup = |key: Option<&str>| TransformOp::Deduplicate { key: key.map(str::to_owned) };
    assert_eq!(
        on(dedup(None), json!([{"a": 1, "b": 2}, {"b": 2, "a": 1}, 1, "1", 1])),
        json!([{"a": 1, "b": 2}, 1, "1"])
    );
    let out = on(dedup(Some("customer")), orders());
    assert_eq!(out.as_array().map(Vec::len), Some(3));
    assert_eq!(out[0]["id"], json!(1), "first occurrence wins");
}

#[test]
fn join_merges_matching_rows() {
    let op = TransformOp::Join { with: "customers".into(), left_key: "customer".into(), right_key: "name".into() };
    let vars = json!({
        "src": [{"customer": "ada", "total": 1}, {"customer": "zed", "total": 2}, {"customer": "bob", "total": 3}, 7],
        "customers": [{"name": "ada", "tier": "gold", "total": 99}, {"name": "bob", "tier": "basic"}, {"name": "bob", "tier": "dup"}]
    });
    assert_eq!(
        apply(op.clone(), vars),
        Ok(json!([
            {"customer": "ada", "total": 1, "name": "ada", "tier": "gold"},
            {"customer": "bob", "total": 3, "name": "bob", "tier": "basic"},
            {"customer": "bob", "total": 3, "name": "bob", "tier": "dup"}
        ]))
    );
    let by_id = TransformOp::Join { with: "r".into(), left_key: "id".into(), right_key: "id".into() };
    let vars = json!({"src": [{"id": 7}, {"id": "007"}], "r": [{"id": "7", "x": 1}]});
    assert_eq!(apply(by_id.clone(), vars), Ok(json!([{"id": 7, "x": 1}])), "7 and \"7\" match, \"007\" does not");
    assert_eq!(apply(by_id.clone(), json!({"src": [{"id": 1}]})), Ok(json!([])), "missing right list is empty");
    let e = apply(by_id, json!({"src": [], "r": "nope"})).expect_err("right not a list");
    assert!(e.message.contains("join transform") && e.message.contains("`r`"), "{}", e.message);
}

#[test]
fn pivot_spreads_columns() {
    let op = TransformOp::Pivot { index: "region".into(), columns: "quarter".into(), values: "sales".into() };
    let rows = json!([
        {"region": "eu", "quarter": "Q1", "sales": 10},
        {"region": "us", "quarter": "Q1", "sales": 7},
        {"region": "eu", "quarter": "Q2", "sales": 12},
        {"region": "eu", "quarter": 3, "sales": 1},
        {"region": "us", "quarter": "Q2"},
        {"quarter": "Q1", "sales": 99},
        {"region": "eu", "quarter": "Q1", "sales": 11}
    ]);
    assert_eq!(
        on(op, rows),
        json!([
            {"region": "eu", "Q1": 11, "Q2": 12, "3": 1},
            {"region": "us", "Q1": 7, "Q2": null}
        ])
    );
}

#[test]
fn other_types_refuse_a_non_list_source() {
    for op in [
        TransformOp::Aggregate(AggregateOp::Count, None),
        TransformOp::Sort { key: None, descending: false },
        TransformOp::Deduplicate { key: None },
        TransformOp::Pivot { index: "a".into(), columns: "b".into(), values: "c".into() },
    ] {
        let e = apply(op, json!({"src": "abc"})).expect_err("not a list");
        assert!(e.message.contains("`src` holds a string, not a list"), "{}", e.message);
    }
    assert_eq!(apply(TransformOp::Aggregate(AggregateOp::Count, None), json!({"src": null})), Ok(json!(0)));
}
