//! Input variables of a run, checked against the procedure's `variables_schema` (langorch.md B §1.6).
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn procedure() -> Procedure {
        let doc = json!({
            "procedure_id": "p", "version": "1",
            "variables_schema": {
                "required": {
                    "amount": {"type": "number", "validation": {"min": 1, "max": 100}},
                    "email": {"type": "string", "validation": {"regex": "[a-z]+@[a-z]+\\.com"}},
                    "with_default": {"type": "string", "default": "d"}
                },
                "optional": {
                    "flag": {"type": "boolean"},
                    "items": {"type": "array"},
                    "region": {"type": "string", "default": "eu", "validation": {"allowed_values": ["eu", "us"]}},
                    "code": {"type": "string", "validation": {"min": 2, "max": 3}},
                    "level": {"type": "number", "validation": {"allowed_values": [1, 2]}}
                }
            },
            "workflow_graph": {"start_node": "end", "nodes": {"end": {"type": "terminate"}}}
        });
        crate::compile_value(&doc).procedure.expect("compiles")
    }

    fn errors(inputs: serde_json::Value) -> BTreeMap<String, String> {
        let inputs = inputs.as_object().cloned().unwrap_or_default();
        check_inputs(&procedure(), &inputs).err().unwrap_or_default()
    }

    #[test]
    fn valid_inputs_pass() {
        let ok = json!({"amount": 5, "email": "a@b.com", "with_default": "x", "flag": true, "items": {}, "region": "us", "code": "ab", "level": 2});
        assert_eq!(errors(ok), BTreeMap::new());
        // A numeric string is a number, as LangOrch accepts.
        assert_eq!(errors(json!({"amount": "5", "email": "a@b.com", "with_default": "x"})), BTreeMap::new());
    }

    #[test]
    fn langorch_messages() {
        let e = errors(
            json!({"amount": "lots", "email": "nope", "flag": "yes", "items": 3, "region": "mars", "code": "abcd", "level": 3}),
        );
        assert_eq!(e["amount"], "Must be a number");
        assert_eq!(e["email"], "Does not match required pattern: [a-z]+@[a-z]+\\.com");
        assert_eq!(e["with_default"], "This field is required", "a default does not satisfy required (B §1.6)");
        assert_eq!(e["flag"], "Must be a boolean (true/false)");
        assert_eq!(e["items"], "Must be a valid array");
        assert_eq!(e["region"], "Must be one of: eu, us");
        assert_eq!(e["code"], "Must be at most 3 characters");
        assert_eq!(e["level"], "Must be one of: 1, 2");
        let e = errors(json!({"amount": 0, "email": "  ", "code": "a"}));
        assert_eq!(e["amount"], "Must be at least 1");
        assert_eq!(e["email"], "This field is required");
        assert_eq!(e["code"], "Must be at least 2 characters");
        assert_eq!(errors(json!({"amount": 101}))["amount"], "Must be at most 100");
    }

    #[test]
    fn regex_is_a_full_match() {
        assert_eq!(
            errors(json!({"amount": 1, "email": "xa@b.comx", "with_default": "x"}))["email"],
            "Does not match required pattern: [a-z]+@[a-z]+\\.com"
        );
    }

    #[test]
    fn initial_vars_overlay_defaults() {
        let p = procedure();
        let inputs = json!({"amount": 3, "region": "us"}).as_object().cloned().unwrap_or_default();
        let vars = initial_vars(&p, &inputs);
        assert_eq!(json!(vars), json!({"with_default": "d", "region": "us", "amount": 3}));
    }
}
