//! Tests of the internal actions and transforms: one file per group, a fake [`OpEnv`] with a fixed clock, counter
//! ids and a secrets map, and property tests for the parsers and the cipher.

mod basic;
mod calc;
mod compiled;
mod crypto;
mod data;
mod props;
mod tabular;
mod text;
mod transform;

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use ckp_core::procedure::InternalAction;
use serde_json::{Map, Value};

use super::{OpEnv, OpError, OpErrorKind, OpOutcome, run_internal};

/// A deterministic environment: 2024-05-01T12:34:56.789Z, ids `00000000-0000-4000-8000-00000000000N`, and the
/// secrets it was given.
pub(super) struct FakeEnv {
    pub ids: u64,
    pub secrets: HashMap<String, String>,
    pub now: DateTime<Utc>,
}

impl FakeEnv {
    pub fn new() -> Self {
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 34, 56).single().expect("valid date")
            + chrono::Duration::milliseconds(789);
        FakeEnv { ids: 0, secrets: HashMap::new(), now }
    }

    pub fn with_secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.to_owned(), value.to_owned());
        self
    }
}

impl OpEnv for FakeEnv {
    fn now(&mut self) -> DateTime<Utc> {
        self.now
    }

    fn new_id(&mut self) -> String {
        self.ids += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.ids)
    }

    fn secret(&mut self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned()
    }
}

/// A JSON object literal as a map.
pub(super) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("expected an object, got {other}"),
    }
}

fn action(name: &str) -> InternalAction {
    InternalAction::parse(name).unwrap_or_else(|| panic!("`{name}` is not an internal action"))
}

/// Runs `name` with `params` on `vars` in `env`.
pub(super) fn run_in(
    name: &str,
    params: Value,
    vars: &mut Map<String, Value>,
    env: &mut FakeEnv,
) -> Result<OpOutcome, OpError> {
    run_internal(action(name), &obj(params), None, None, vars, env)
}

/// Runs `name` with `params` on empty variables.
pub(super) fn run(name: &str, params: Value) -> Result<OpOutcome, OpError> {
    run_in(name, params, &mut Map::new(), &mut FakeEnv::new())
}

/// The value `name` returns for `params`; fails the test on an error or no value.
#[track_caller]
pub(super) fn ok(name: &str, params: Value) -> Value {
    match run(name, params) {
        Ok(OpOutcome { value: Some(v), .. }) => v,
        other => panic!("{name}: expected a value, got {other:?}"),
    }
}

/// The message of the internal error `name` returns for `params`.
#[track_caller]
pub(super) fn err(name: &str, params: Value) -> String {
    match run(name, params) {
        Err(OpError { kind: OpErrorKind::Internal, message }) => {
            assert!(message.starts_with(&format!("{name}: ")), "message not prefixed with the action: {message}");
            message
        }
        other => panic!("{name}: expected an internal error, got {other:?}"),
    }
}
