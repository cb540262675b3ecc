//! Internal actions and transforms (CKP.md A.2.9, langorch.md B §4.5, §4.9, §5.2) as pure functions over a run's
//! variables.
//!
//! This module owns what each internal action and each transformation computes: [`run_internal`] performs one
//! action on parameters that the engine has **already rendered**, [`apply_transform`] computes one transformation.
//! It must not render templates, emit events, sleep, persist or read the clock, randomness or secrets directly:
//! everything from outside comes through [`OpEnv`] (which the engine records and replays, so re-executing a step gives
//! the same result), and side effects the engine performs are returned in [`OpOutcome`] (`log`, `notify`, `wait_ms`).
//! The one exception is `parse_excel_data`, which reads the workbook file it is given (feature `excel`). No input
//! can make these functions panic; every failure is an [`OpError`].
//!
//! Error messages of [`OpErrorKind::Internal`] start with the action name (`parse_json: …`) and say how to fix the
//! step; they never contain a secret's value.

mod basic;
mod calc;
pub(crate) mod crypto;
mod data;
mod tabular;
mod text;
mod transform;

#[cfg(test)]
mod tests;

use ckp_core::procedure::{CompiledRegex, CompiledSchema, InternalAction, LogLevel};
use serde_json::{Map, Value};

pub use basic::CHECKPOINTS_VAR;
pub use transform::apply_transform;

/// What an operation needs from the outside world. The engine records each answer in the journal and replays it
/// when a step is re-executed, so an operation's result is a function of its inputs and these answers.
pub trait OpEnv {
    /// The current time (`get_timestamp`).
    fn now(&mut self) -> chrono::DateTime<chrono::Utc>;
    /// A fresh UUID string (`generate_id`, `screenshot` URIs, `encrypt` nonces).
    fn new_id(&mut self) -> String;
    /// The value of the secret `name` (`encrypt` / `decrypt` `key_reference`), if the run's provider has it.
    fn secret(&mut self, name: &str) -> Option<String>;
    /// The most bytes one variable may take as JSON (`set_variable` and `append_to_array` refuse more).
    fn max_variable_bytes(&self) -> usize {
        usize::MAX
    }
}

/// What an operation produced: its result, plus the effects the engine performs on its behalf.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OpOutcome {
    /// The result; the engine stores it in `output_variable` when it is `Some` and not null.
    pub value: Option<Value>,
    /// A log line: the engine emits a `step_log` event.
    pub log: Option<LogLine>,
    /// A notification: the engine emits a `notification` event.
    pub notify: Option<Notification>,
    /// A wait the engine performs (durably when it is long).
    pub wait_ms: Option<u64>,
}

impl OpOutcome {
    /// An outcome with just a value.
    pub fn value(value: Value) -> Self {
        OpOutcome { value: Some(value), ..OpOutcome::default() }
    }
}

/// A line written by the `log` action.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// The text.
    pub message: String,
}

/// A notification requested by the `notify` action.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Delivery channel (`email`, `slack`, …) as written.
    pub channel: Option<String>,
    /// Recipients, in order.
    pub recipients: Vec<String>,
    /// Subject line.
    pub subject: Option<String>,
    /// Body.
    pub message: String,
}

/// How an operation failed; the engine maps it onto the error taxonomy (A.2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpErrorKind {
    /// `validate_schema` found the value invalid (`validation_error`).
    Validation,
    /// Any other failure: bad parameters, unparsable input, a missing secret (`internal_error`).
    Internal,
}

/// A failed operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    /// Which kind of failure.
    pub kind: OpErrorKind,
    /// What went wrong and how to fix it.
    pub message: String,
}

impl OpError {
    /// An [`OpErrorKind::Internal`] error, prefixed with the action or transform name.
    pub fn internal(action: &str, message: impl std::fmt::Display) -> Self {
        OpError { kind: OpErrorKind::Internal, message: format!("{action}: {message}") }
    }

    /// An [`OpErrorKind::Validation`] error.
    pub fn validation(message: impl Into<String>) -> Self {
        OpError { kind: OpErrorKind::Validation, message: message.into() }
    }
}

/// Runs one internal action.
///
/// `params` are the step's parameters (or the processing operation's fields), **already rendered**. `schema` and
/// `pattern` are what the compiler precompiled for `validate_schema` and `extract_regex`. `vars` are the run's
/// variables: `set_variable`, `append_to_array` and the checkpoint actions change them; every other action only
/// reads them. The engine stores [`OpOutcome::value`] in `output_variable` itself.
///
/// Each action's parameters, result and errors are documented on the function that implements it, in the
/// submodules of `ops` (`basic`, `calc`, `data`, `tabular`, `text`, `crypto`). Parameters are read by name with
/// aliases (`source` or `value`, `array` or `variable`, …); a parameter of the wrong JSON type is an error, never
/// silently ignored.
pub fn run_internal(
    action: InternalAction,
    params: &Map<String, Value>,
    schema: Option<&CompiledSchema>,
    pattern: Option<&CompiledRegex>,
    vars: &mut Map<String, Value>,
    env: &mut dyn OpEnv,
) -> Result<OpOutcome, OpError> {
    let p = Params { map: params, action: action.as_str() };
    use InternalAction as A;
    let value = match action {
        A::SetVariable => basic::set_variable(&p, vars, env.max_variable_bytes())?,
        A::Log => return basic::log(&p).map(|log| OpOutcome { log: Some(log), ..OpOutcome::default() }),
        A::Wait => {
            let ms = basic::wait_ms(&p)?;
            return Ok(OpOutcome { wait_ms: Some(ms), ..OpOutcome::value(serde_json::json!({ "waited_ms": ms })) });
        }
        A::Screenshot => basic::screenshot(&p, env)?,
        A::Calculate => calc::calculate(&p)?,
        A::FormatData | A::FormatString => data::format_string(&p, vars)?,
        A::ParseJson => data::parse_json(&p, vars)?,
        A::ParseCsv => tabular::parse_csv(&p)?,
        A::ParseXml => data::parse_xml(&p)?,
        A::ParseExcelData => tabular::parse_excel_data(&p)?,
        A::GenerateId => basic::generate_id(&p, env)?,
        A::GetTimestamp => basic::get_timestamp(&p, env)?,
        A::SetCheckpoint => basic::set_checkpoint(&p, vars)?,
        A::RestoreCheckpoint => basic::restore_checkpoint(&p, vars)?,
        A::AppendToArray => basic::append_to_array(&p, vars, env.max_variable_bytes())?,
        A::ExtractRegex => match text::extract_regex(&p, pattern)? {
            Some(v) => v,
            None => return Ok(OpOutcome::default()),
        },
        A::Notify => {
            let (value, note) = basic::notify(&p)?;
            return Ok(OpOutcome { notify: Some(note), ..OpOutcome::value(value) });
        }
        A::Hash => text::hash(&p)?,
        A::ValidateSchema => data::validate_schema(&p, schema)?,
        A::ConvertType => data::convert_type(&p)?,
        A::Encrypt => crypto::encrypt(&p, env)?,
        A::Decrypt => crypto::decrypt(&p, env)?,
    };
    Ok(OpOutcome::value(value))
}

/// Rendered parameters of one action, with the lookups every action shares.
pub(crate) struct Params<'a> {
    pub map: &'a Map<String, Value>,
    pub action: &'static str,
}

impl<'a> Params<'a> {
    /// The value of the first of `keys` that is present (a present null counts).
    pub fn get(&self, keys: &[&str]) -> Option<&'a Value> {
        keys.iter().find_map(|k| self.map.get(*k))
    }

    /// Like [`Params::get`], but a missing value is an error naming the first key.
    pub fn require(&self, keys: &[&str], what: &str) -> Result<&'a Value, OpError> {
        self.get(keys).ok_or_else(|| self.err(format!("missing `{}`: {what}", keys.join("` or `"))))
    }

    /// The input value of actions that read `source` (or `value`).
    pub fn input(&self) -> Result<&'a Value, OpError> {
        self.require(&["source", "value"], "the value to work on, usually a placeholder such as {{my_var}}")
    }

    /// A text parameter: strings as themselves, numbers and booleans as written, null or absent as `None`;
    /// arrays and objects are an error.
    pub fn text(&self, keys: &[&str]) -> Result<Option<String>, OpError> {
        match self.get(keys) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(other) => Err(self.err(format!("`{}` must be text, not {}", keys[0], describe(other)))),
        }
    }

    /// A boolean parameter: a JSON boolean, `true`/`false`/`yes`/`no`/`1`/`0` (any case), or 1/0.
    pub fn flag(&self, keys: &[&str], default: bool) -> Result<bool, OpError> {
        match self.get(keys) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => {
                parse_bool(v).ok_or_else(|| self.err(format!("`{}` must be true or false, not {}", keys[0], short(v))))
            }
        }
    }

    /// An error of this action.
    pub fn err(&self, message: impl std::fmt::Display) -> OpError {
        OpError::internal(self.action, message)
    }

    /// A value over a size cap (a validation error, like every size cap of the engine).
    pub fn too_big(&self, message: impl std::fmt::Display) -> OpError {
        OpError::validation(format!("{}: {message}", self.action))
    }
}

/// Reads a boolean the way people write one in JSON or in text.
pub(crate) fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => Some(true),
            "false" | "no" | "n" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// "a string", "an object", … for messages.
pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value as compact JSON, cut to 80 characters, for messages.
pub(crate) fn short(v: &Value) -> String {
    let text = v.to_string();
    cut(&text, 80)
}

/// `text` cut to `max` characters, marked with `…` when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// When `text` is a placeholder that did not resolve (the engine leaves it literal, A.3), a hint saying so.
pub(crate) fn unresolved_hint(text: &str) -> String {
    let t = text.trim();
    if t.starts_with("{{") && t.ends_with("}}") && t.len() > 4 {
        format!(" (`{t}` is a placeholder that did not resolve: is the variable defined and not null?)")
    } else {
        String::new()
    }
}

/// A JSON number from an `f64`: an integer when the value is whole and fits in `i64`, else a float. `None` for
/// NaN and infinities, which JSON cannot hold.
pub(crate) fn number(x: f64) -> Option<Value> {
    if !x.is_finite() {
        return None;
    }
    // i64 bounds as f64: -2^63 is exact, 2^63 is the first value past i64::MAX.
    if x.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x) {
        return Some(Value::from(x as i64));
    }
    serde_json::Number::from_f64(x).map(Value::Number)
}

/// Lower-case hexadecimal digits of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
