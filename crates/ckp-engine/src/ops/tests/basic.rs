//! set_variable, append_to_array, checkpoints, log, wait, screenshot, notify, generate_id, get_timestamp.

use ckp_core::procedure::LogLevel;
use serde_json::{Map, json};

use super::{FakeEnv, err, obj, ok, run, run_in};
use crate::ops::{LogLine, Notification, OpOutcome};

#[test]
fn set_variable_keeps_the_json_type_and_returns_the_value() {
    let mut vars = Map::new();
    let mut env = FakeEnv::new();
    let out = run_in("set_variable", json!({"variable": "cfg", "value": {"a": [1, true]}}), &mut vars, &mut env)
        .expect("set_variable");
    assert_eq!(out, OpOutcome::value(json!({"a": [1, true]})));
    assert_eq!(vars.get("cfg"), Some(&json!({"a": [1, true]})));
    run_in("set_variable", json!({"variable": "n", "value": 5}), &mut vars, &mut env).expect("number");
    assert_eq!(vars.get("n"), Some(&json!(5)));
    run_in("set_variable", json!({"variable": "gone"}), &mut vars, &mut env).expect("no value");
    assert_eq!(vars.get("gone"), Some(&json!(null)));
}

#[test]
fn set_variable_without_a_name_is_an_error() {
    assert!(err("set_variable", json!({"variable": "", "value": 1})).contains("missing `variable`"));
    assert!(err("set_variable", json!({"variable": "  ", "value": 1})).contains("missing `variable`"));
    assert!(err("set_variable", json!({"value": 1})).contains("missing `variable`"));
    assert!(err("set_variable", json!({"variable": ["x"], "value": 1})).contains("must be text"));
}

#[test]
fn append_to_array_creates_extends_and_refuses_non_lists() {
    let mut vars = obj(json!({"s": "text", "nul": null}));
    let mut env = FakeEnv::new();
    let first = run_in("append_to_array", json!({"array": "xs", "value": 1}), &mut vars, &mut env).expect("create");
    assert_eq!(first.value, Some(json!([1])));
    let second =
        run_in("append_to_array", json!({"variable": "xs", "value": [2, 3]}), &mut vars, &mut env).expect("append");
    assert_eq!(second.value, Some(json!([1, [2, 3]])));
    assert_eq!(vars.get("xs"), Some(&json!([1, [2, 3]])));
    run_in("append_to_array", json!({"array": "nul", "value": "a"}), &mut vars, &mut env).expect("null is empty");
    assert_eq!(vars.get("nul"), Some(&json!(["a"])));
    let e = run_in("append_to_array", json!({"array": "s", "value": 1}), &mut vars, &mut env).expect_err("string");
    assert!(e.message.contains("holds a string"), "{}", e.message);
    assert_eq!(vars.get("s"), Some(&json!("text")), "a failed append leaves the variable alone");
    assert!(err("append_to_array", json!({"array": "xs"})).contains("missing `value`"));
    assert!(err("append_to_array", json!({"value": 1})).contains("missing `array`"));
}

#[test]
fn checkpoints_snapshot_and_restore_variables() {
    let mut vars = obj(json!({"a": 1, "b": {"c": 2}}));
    let mut env = FakeEnv::new();
    let set = run_in("set_checkpoint", json!({"name": "before"}), &mut vars, &mut env).expect("set");
    assert_eq!(set.value, Some(json!({"checkpoint": "before", "variables": 2})));
    vars.insert("a".into(), json!(100));
    vars.insert("new".into(), json!("later"));
    run_in("set_checkpoint", json!({}), &mut vars, &mut env).expect("default name");
    let restored = run_in("restore_checkpoint", json!({"name": "before"}), &mut vars, &mut env).expect("restore");
    assert_eq!(restored.value, Some(json!({"restored": "before"})));
    assert_eq!(vars.get("a"), Some(&json!(1)));
    assert_eq!(vars.get("b"), Some(&json!({"c": 2})));
    assert_eq!(vars.get("new"), None, "variables set after the checkpoint are removed");
    let store = vars.get("__checkpoints").expect("snapshots kept");
    assert!(store.get("before").is_some() && store.get("default").is_some());
    assert!(store["before"].get("__checkpoints").is_none(), "snapshots do not nest");
    run_in("restore_checkpoint", json!({}), &mut vars, &mut env).expect("restore default");
    assert_eq!(vars.get("new"), Some(&json!("later")));
}

#[test]
fn restoring_an_unknown_checkpoint_is_an_error() {
    let mut vars = Map::new();
    let mut env = FakeEnv::new();
    run_in("set_checkpoint", json!({"name": "one"}), &mut vars, &mut env).expect("set");
    let e = run_in("restore_checkpoint", json!({"name": "two"}), &mut vars, &mut env).expect_err("unknown");
    assert!(e.message.contains("no checkpoint named `two`") && e.message.contains("one"), "{}", e.message);
    assert!(err("restore_checkpoint", json!({})).contains("checkpoints set so far: none"));
}

#[test]
fn log_returns_a_line_and_no_value() {
    let out = run("log", json!({"message": "hello", "level": "warning"})).expect("log");
    assert_eq!(out.value, None);
    assert_eq!(out.log, Some(LogLine { level: LogLevel::Warning, message: "hello".into() }));
    let out = run("log", json!({"value": {"a": 1}})).expect("log value");
    assert_eq!(out.log, Some(LogLine { level: LogLevel::Info, message: r#"{"a":1}"#.into() }));
    assert_eq!(
        run("log", json!({"message": "x", "level": "DEBUG"})).expect("debug").log.map(|l| l.level),
        Some(LogLevel::Debug)
    );
    assert_eq!(
        run("log", json!({"message": "x", "level": "Error"})).expect("error").log.map(|l| l.level),
        Some(LogLevel::Error)
    );
    assert!(err("log", json!({"message": "x", "level": "LOUD"})).contains("unknown level `LOUD`"));
    assert!(err("log", json!({"level": "INFO"})).contains("missing `message`"));
}

#[test]
fn wait_reports_the_duration_for_the_engine() {
    let out = run("wait", json!({"duration_ms": 1500})).expect("wait");
    assert_eq!(out.wait_ms, Some(1500));
    assert_eq!(out.value, Some(json!({"waited_ms": 1500})));
    assert_eq!(run("wait", json!({"wait_ms": "250"})).expect("text").wait_ms, Some(250));
    assert_eq!(run("wait", json!({"ms": 2.9})).expect("fraction").wait_ms, Some(2));
    assert_eq!(run("wait", json!({})).expect("absent").wait_ms, Some(0));
    assert!(err("wait", json!({"duration_ms": "soon"})).contains("not a number of milliseconds"));
    assert!(err("wait", json!({"duration_ms": -5})).contains("not a number of milliseconds"));
    assert!(err("wait", json!({"duration_ms": [1]})).contains("not a number of milliseconds"));
}

#[test]
fn screenshot_uses_the_given_uri_or_builds_a_memory_uri() {
    assert_eq!(ok("screenshot", json!({"uri": "s3://b/x.png"})), json!({"screenshot": "s3://b/x.png"}));
    assert_eq!(ok("screenshot", json!({"artifact_uri": "file:///a.png"})), json!({"screenshot": "file:///a.png"}));
    assert_eq!(
        ok("screenshot", json!({"name": "login page/1"})),
        json!({"screenshot": "memory://screenshot/login-page-1-00000000000040008000000000000001"})
    );
    let v = ok("screenshot", json!({"step_id": "s_9"}));
    assert_eq!(v["screenshot"], json!("memory://screenshot/s_9-00000000000040008000000000000001"));
    let v = ok("screenshot", json!({}));
    assert_eq!(v["screenshot"], json!("memory://screenshot/capture-00000000000040008000000000000001"));
}

#[test]
fn notify_describes_the_notification() {
    let out =
        run("notify", json!({"channel": "email", "recipients": "a@x.io, b@x.io,", "subject": "Hi", "message": "Done"}))
            .expect("notify");
    assert_eq!(out.value, Some(json!({"notified": true, "channel": "email", "recipients": ["a@x.io", "b@x.io"]})));
    assert_eq!(
        out.notify,
        Some(Notification {
            channel: Some("email".into()),
            recipients: vec!["a@x.io".into(), "b@x.io".into()],
            subject: Some("Hi".into()),
            message: "Done".into(),
        })
    );
    let out = run("notify", json!({"recipients": ["ops", " "], "message": {"n": 1}})).expect("list");
    let note = out.notify.expect("notification");
    assert_eq!((note.channel, note.recipients, note.message), (None, vec!["ops".to_owned()], r#"{"n":1}"#.to_owned()));
    assert!(err("notify", json!({"channel": "slack"})).contains("missing `message`"));
    assert!(err("notify", json!({"message": "x", "recipients": {"a": 1}})).contains("list or comma-separated"));
}

#[test]
fn generate_id_formats() {
    assert_eq!(ok("generate_id", json!({})), json!("00000000-0000-4000-8000-000000000001"));
    assert_eq!(ok("generate_id", json!({"prefix": "ord-", "format": "short"})), json!("ord-00000000"));
    assert_eq!(ok("generate_id", json!({"format": "hex"})), json!("00000000000040008000000000000001"));
    assert!(err("generate_id", json!({"format": "snowflake"})).contains("unknown format `snowflake`"));
    let mut env = FakeEnv::new();
    let mut vars = Map::new();
    let a = run_in("generate_id", json!({}), &mut vars, &mut env).expect("a").value;
    let b = run_in("generate_id", json!({}), &mut vars, &mut env).expect("b").value;
    assert_ne!(a, b, "each call takes a fresh id");
}

#[test]
fn get_timestamp_formats() {
    assert_eq!(ok("get_timestamp", json!({})), json!("2024-05-01T12:34:56.789Z"));
    assert_eq!(ok("get_timestamp", json!({"format": "unix"})), json!(1_714_566_896));
    assert_eq!(ok("get_timestamp", json!({"format": "unix_ms"})), json!(1_714_566_896_789_i64));
    assert_eq!(ok("get_timestamp", json!({"format": "date"})), json!("2024-05-01"));
    assert_eq!(ok("get_timestamp", json!({"format": "time"})), json!("12:34:56"));
    assert_eq!(ok("get_timestamp", json!({"format": "%Y%m%d-%H%M"})), json!("20240501-1234"));
    assert_eq!(ok("get_timestamp", json!({"format": "iso", "timezone": "UTC"})), json!("2024-05-01T12:34:56.789Z"));
    assert!(err("get_timestamp", json!({"format": "%Q"})).contains("not a valid strftime pattern"));
    assert!(err("get_timestamp", json!({"format": "yesterday"})).contains("unknown format"));
    assert!(err("get_timestamp", json!({"timezone": "Europe/Paris"})).contains("not supported"));
}
