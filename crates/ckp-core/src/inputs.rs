//! Input variables of a run, checked against the procedure's `variables_schema` (semantics B §1.6).
//!
//! [`check_inputs`] is what the API calls before it creates a run: it returns LangOrch's messages per variable so
//! existing clients keep working. [`initial_vars`] seeds a run's variables from schema defaults and the inputs.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::path::to_text;
use crate::procedure::{Procedure, VarType, Variable};

/// Checks `inputs` against the declared variables. `Ok` or, per failing variable, one message (the first failure).
pub fn check_inputs(procedure: &Procedure, inputs: &Map<String, Value>) -> Result<(), BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    for var in &procedure.variables {
        if let Some(msg) = check_one(var, inputs.get(&var.name)) {
            errors.insert(var.name.clone(), msg);
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

fn is_blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

fn check_one(var: &Variable, value: Option<&Value>) -> Option<String> {
    if is_blank(value) {
        return var.required.then(|| "This field is required".to_owned());
    }
    let value = value?;
    let number = match var.var_type {
        Some(VarType::Number) => match as_number(value) {
            Some(n) => Some(n),
            None => return Some("Must be a number".to_owned()),
        },
        Some(VarType::Boolean) if !value.is_boolean() => return Some("Must be a boolean (true/false)".to_owned()),
        Some(t @ (VarType::Array | VarType::Object)) if !(value.is_array() || value.is_object()) => {
            return Some(format!("Must be a valid {}", t.as_str()));
        }
        _ => None,
    };
    if let Some(allowed) = &var.allowed_values {
        let text = to_text(value);
        if !allowed.iter().any(|a| to_text(a) == text) {
            let list: Vec<String> = allowed.iter().map(|a| to_text(a).into_owned()).collect();
            return Some(format!("Must be one of: {}", list.join(", ")));
        }
    }
    if let (Some(re), Value::String(s)) = (&var.regex, value)
        && !re.full.is_match(s)
    {
        return Some(format!("Does not match required pattern: {}", re.source));
    }
    let (measure, unit) = match (number, value) {
        (Some(n), _) => (Some(n), ""),
        (None, Value::String(s)) => (Some(s.chars().count() as f64), " characters"),
        _ => (None, ""),
    };
    if let Some(m) = measure {
        if let Some(min) = var.min.filter(|min| m < *min) {
            return Some(format!("Must be at least {}{unit}", fmt_num(min)));
        }
        if let Some(max) = var.max.filter(|max| m > *max) {
            return Some(format!("Must be at most {}{unit}", fmt_num(max)));
        }
    }
    None
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { f.to_string() }
}

/// A run's starting variables: schema defaults, overlaid with the inputs (inputs win).
pub fn initial_vars(procedure: &Procedure, inputs: &Map<String, Value>) -> Map<String, Value> {
    let mut vars = Map::with_capacity(procedure.variables.len() + inputs.len());
    for var in &procedure.variables {
        if let Some(d) = &var.default {
            vars.insert(var.name.clone(), d.clone());
        }
    }
    for (k, v) in inputs {
        vars.insert(k.clone(), v.clone());
    }
    vars
}
