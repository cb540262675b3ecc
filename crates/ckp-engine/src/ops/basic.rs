//! The small internal actions: variables (`set_variable`, `append_to_array`, `set_checkpoint`,
//! `restore_checkpoint`), effects the engine performs (`log`, `wait`, `notify`) and values from the environment
//! (`screenshot` URIs, `generate_id`, `get_timestamp`).
//!
//! Nothing here sleeps, logs or reads the clock: `log`, `wait` and `notify` describe the effect for the engine, and
//! time and ids come from [`OpEnv`] so a replayed step gets the recorded answers.

use std::fmt::Write as _;

use ckp_core::path::to_text;
use ckp_core::procedure::LogLevel;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{LogLine, Notification, OpEnv, OpError, Params, describe, short, to_hex};

/// The variable holding the snapshots of `set_checkpoint`, by name.
pub const CHECKPOINTS_VAR: &str = "__checkpoints";

/// `set_variable {variable, value}`: `vars[variable] = value`, keeping the value's JSON type (a missing `value` sets
/// null). Returns the value. An empty or missing `variable` is an error (LangOrch silently does nothing).
/// A value over `cap` bytes (`max_variable_bytes`) is refused and the variable keeps its previous value.
pub(super) fn set_variable(p: &Params<'_>, vars: &mut Map<String, Value>, cap: usize) -> Result<Value, OpError> {
    let name = var_name(p, &["variable"])?;
    let value = p.get(&["value"]).cloned().unwrap_or(Value::Null);
    crate::size::check_variable(&name, &value, cap).map_err(|e| p.too_big(e))?;
    vars.insert(name, value.clone());
    Ok(value)
}

/// `append_to_array {array | variable, value}`: appends `value` (as one element, even when it is a list) to the list
/// in `vars[array]`, creating the list when the variable is absent or null. Returns the new list. A variable holding
/// anything but a list is an error, and so is a missing `value` (write `"value": null` to append null).
/// A list that would grow over `cap` bytes (`max_variable_bytes`) is refused and left as it was.
pub(super) fn append_to_array(p: &Params<'_>, vars: &mut Map<String, Value>, cap: usize) -> Result<Value, OpError> {
    let name = var_name(p, &["array", "variable"])?;
    let value = p.require(&["value", "item"], "the element to append")?.clone();
    match vars.get_mut(&name) {
        None | Some(Value::Null) => {
            let list = Value::Array(vec![value]);
            crate::size::check_variable(&name, &list, cap).map_err(|e| p.too_big(e))?;
            vars.insert(name, list.clone());
            Ok(list)
        }
        Some(Value::Array(items)) => {
            items.push(value);
            let list = Value::Array(items.clone());
            if let Err(e) = crate::size::check_variable(&name, &list, cap) {
                items.pop();
                return Err(p.too_big(e));
            }
            Ok(list)
        }
        Some(other) => Err(p.err(format!(
            "variable `{name}` holds {} ({}), not a list; append_to_array only appends to lists",
            describe(other),
            short(other)
        ))),
    }
}

/// `set_checkpoint {name = "default"}`: stores a copy of every variable except `__checkpoints` in
/// `vars.__checkpoints[name]`, replacing an earlier snapshot of that name. Returns
/// `{"checkpoint": name, "variables": <count>}`.
pub(super) fn set_checkpoint(p: &Params<'_>, vars: &mut Map<String, Value>) -> Result<Value, OpError> {
    let name = checkpoint_name(p)?;
    let snapshot: Map<String, Value> =
        vars.iter().filter(|(k, _)| k.as_str() != CHECKPOINTS_VAR).map(|(k, v)| (k.clone(), v.clone())).collect();
    let count = snapshot.len();
    let store = vars.entry(CHECKPOINTS_VAR).or_insert_with(|| Value::Object(Map::new()));
    if !store.is_object() {
        *store = Value::Object(Map::new());
    }
    if let Value::Object(store) = store {
        store.insert(name.clone(), Value::Object(snapshot));
    }
    Ok(json!({ "checkpoint": name, "variables": count }))
}

/// `restore_checkpoint {name = "default"}`: replaces every variable except `__checkpoints` with the snapshot taken
/// by `set_checkpoint` under that name (variables set since then are removed). Returns `{"restored": name}`.
/// An unknown name is an error listing the snapshots that exist.
pub(super) fn restore_checkpoint(p: &Params<'_>, vars: &mut Map<String, Value>) -> Result<Value, OpError> {
    let name = checkpoint_name(p)?;
    let snapshot = match vars.get(CHECKPOINTS_VAR).and_then(|c| c.get(&name)) {
        Some(Value::Object(s)) => s.clone(),
        _ => {
            let known: Vec<&str> = match vars.get(CHECKPOINTS_VAR) {
                Some(Value::Object(m)) => m.keys().map(String::as_str).collect(),
                _ => Vec::new(),
            };
            let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            return Err(p.err(format!(
                "no checkpoint named `{name}` (checkpoints set so far: {known}); run set_checkpoint with that name first"
            )));
        }
    };
    let store = vars.remove(CHECKPOINTS_VAR);
    *vars = snapshot;
    if let Some(store) = store {
        vars.insert(CHECKPOINTS_VAR.to_owned(), store);
    }
    Ok(json!({ "restored": name }))
}

/// `log {message | value, level = INFO}`: a line for the engine's `step_log` event. `level` is DEBUG, INFO,
/// WARNING (or WARN) or ERROR (or CRITICAL), in any case; a non-string message is logged as compact JSON.
pub(super) fn log(p: &Params<'_>) -> Result<LogLine, OpError> {
    let message = p.require(&["message", "value"], "the text to log")?;
    let level = match p.text(&["level"])?.map(|l| l.trim().to_ascii_uppercase()) {
        None => LogLevel::Info,
        Some(l) => match l.as_str() {
            "" | "INFO" => LogLevel::Info,
            "DEBUG" | "TRACE" => LogLevel::Debug,
            "WARNING" | "WARN" => LogLevel::Warning,
            "ERROR" | "CRITICAL" | "FATAL" => LogLevel::Error,
            other => return Err(p.err(format!("unknown level `{other}`: use DEBUG, INFO, WARNING or ERROR"))),
        },
    };
    Ok(LogLine { level, message: to_text(message).into_owned() })
}

/// `wait {duration_ms | wait_ms | ms}`: how long the engine must wait, in milliseconds (a number or numeric text;
/// fractions are dropped; absent means 0). Negative or non-numeric durations are errors.
pub(super) fn wait_ms(p: &Params<'_>) -> Result<u64, OpError> {
    let Some(v) = p.get(&["duration_ms", "wait_ms", "ms"]) else { return Ok(0) };
    let ms = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match ms {
        Some(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms as u64),
        _ => Err(p.err(format!("duration {} is not a number of milliseconds (0 or more)", short(v)))),
    }
}

/// `screenshot {uri | artifact_uri | screenshot, name | step_id}` (performed here only when the node has no agent,
/// B §5.2): the given URI, else `memory://screenshot/<name>-<32 hex>` where name (default `capture`) keeps letters,
/// digits, `-` and `_` (anything else becomes `-`) and the hex digits come from [`OpEnv::new_id`]. Returns
/// `{"screenshot": uri}`, which the engine records as an artifact.
pub(super) fn screenshot(p: &Params<'_>, env: &mut dyn OpEnv) -> Result<Value, OpError> {
    if let Some(uri) = p.text(&["uri", "artifact_uri", "screenshot"])?.filter(|u| !u.trim().is_empty()) {
        return Ok(json!({ "screenshot": uri }));
    }
    let name = p.text(&["name", "step_id"])?.filter(|n| !n.is_empty()).unwrap_or_else(|| "capture".to_owned());
    let name: String =
        name.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    let uri = format!("memory://screenshot/{name}-{}", hex32(&env.new_id()));
    Ok(json!({ "screenshot": uri }))
}

/// `notify {channel, recipients, subject, message | value}`: a notification for the engine's `notification` event.
/// `recipients` is a list or comma-separated text (blank entries dropped). Returns
/// `{"notified": true, "channel", "recipients"}`. A missing message is an error.
pub(super) fn notify(p: &Params<'_>) -> Result<(Value, Notification), OpError> {
    let channel = p.text(&["channel"])?.filter(|c| !c.trim().is_empty());
    let subject = p.text(&["subject"])?;
    let message = to_text(p.require(&["message", "value"], "the text of the notification")?).into_owned();
    let recipients: Vec<String> = match p.get(&["recipients", "recipient", "to"]) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            items.iter().map(|r| to_text(r).trim().to_owned()).filter(|r| !r.is_empty()).collect()
        }
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect(),
        Some(other) => {
            return Err(p.err(format!("`recipients` must be a list or comma-separated text, not {}", describe(other))));
        }
    };
    let value = json!({ "notified": true, "channel": channel, "recipients": recipients });
    Ok((value, Notification { channel, recipients, subject, message }))
}

/// `generate_id {prefix = "", format = uuid}`: `prefix` followed by an id from [`OpEnv::new_id`]: `uuid` (the UUID
/// as is), `short` (its first 8 hex digits) or `hex` (its 32 hex digits without dashes).
pub(super) fn generate_id(p: &Params<'_>, env: &mut dyn OpEnv) -> Result<Value, OpError> {
    let prefix = p.text(&["prefix"])?.unwrap_or_default();
    let format = p.text(&["format", "type"])?.map(|f| f.trim().to_ascii_lowercase());
    let id = env.new_id();
    let id = match format.as_deref() {
        None | Some("" | "uuid" | "uuid4" | "uuidv4") => id,
        Some("short") => hex32(&id).chars().take(8).collect(),
        Some("hex") => hex32(&id),
        Some(other) => return Err(p.err(format!("unknown format `{other}`: use uuid, short or hex"))),
    };
    Ok(Value::String(format!("{prefix}{id}")))
}

/// `get_timestamp {format = iso}` from [`OpEnv::now`], always in UTC: `iso` (RFC 3339 with milliseconds,
/// `2024-05-01T12:00:00.000Z`), `unix` (seconds, a number), `unix_ms` (milliseconds, a number), `date`
/// (`2024-05-01`), `time` (`12:00:00`), or a strftime pattern such as `%Y%m%d-%H%M`. A `timezone` other than UTC is
/// an error rather than a silently wrong time.
pub(super) fn get_timestamp(p: &Params<'_>, env: &mut dyn OpEnv) -> Result<Value, OpError> {
    if let Some(tz) = p.text(&["timezone", "tz"])?
        && !matches!(tz.trim().to_ascii_uppercase().as_str(), "" | "UTC" | "Z" | "ETC/UTC" | "GMT" | "+00:00")
    {
        return Err(p.err(format!("timezone `{tz}` is not supported: timestamps are in UTC; omit `timezone`")));
    }
    let format = p.text(&["format"])?.unwrap_or_default();
    let now = env.now();
    let value = match format.trim().to_ascii_lowercase().as_str() {
        "" | "iso" | "iso8601" | "iso_8601" | "rfc3339" => {
            Value::String(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        }
        "unix" | "epoch" | "unix_s" | "timestamp" => Value::from(now.timestamp()),
        "unix_ms" | "epoch_ms" | "ms" => Value::from(now.timestamp_millis()),
        "date" => Value::String(now.format("%Y-%m-%d").to_string()),
        "time" => Value::String(now.format("%H:%M:%S").to_string()),
        _ if format.contains('%') => {
            let items = chrono::format::StrftimeItems::new(&format)
                .parse()
                .map_err(|_| p.err(format!("`{format}` is not a valid strftime pattern")))?;
            let mut out = String::new();
            write!(out, "{}", now.format_with_items(items.iter()))
                .map_err(|_| p.err(format!("`{format}` cannot format a UTC timestamp")))?;
            Value::String(out)
        }
        _ => {
            return Err(p.err(format!(
                "unknown format `{format}`: use iso, unix, unix_ms, date, time or a strftime pattern such as %Y-%m-%d"
            )));
        }
    };
    Ok(value)
}

/// A non-blank variable name from `keys`.
fn var_name(p: &Params<'_>, keys: &[&str]) -> Result<String, OpError> {
    match p.text(keys)? {
        Some(name) if !name.trim().is_empty() => Ok(name),
        _ => Err(p.err(format!("missing `{}`: the name of the variable", keys[0]))),
    }
}

fn checkpoint_name(p: &Params<'_>) -> Result<String, OpError> {
    Ok(p.text(&["name", "checkpoint", "checkpoint_name"])?
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "default".to_owned()))
}

/// The 32 hex digits of a UUID string (lower case, no dashes). An id that is not a UUID (a test's counter) is hashed
/// so the result always has that shape.
pub(super) fn hex32(id: &str) -> String {
    let stripped: String = id.chars().filter(|c| *c != '-').collect::<String>().to_ascii_lowercase();
    if stripped.len() == 32 && stripped.bytes().all(|b| b.is_ascii_hexdigit()) {
        return stripped;
    }
    let digest = Sha256::digest(id.as_bytes());
    to_hex(digest.get(..16).unwrap_or_default())
}
