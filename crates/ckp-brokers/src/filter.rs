//! Which deliveries start a run: a CKP `event_config`'s `event_filter` and `event_type`, checked before anything is
//! recorded (a message filtered out is acknowledged and starts nothing).
//!
//! `event_filter` is an object: `subject` (a glob: `*` any run of characters, `?` one, `[abc]`), `headers` (name → value,
//! each equal), `payload` (JSON pointer → value, each equal), and any other key is a top-level payload field that
//! must equal its value (the flat form, `{"status": "paid"}`). `event_type` lists the types accepted, read from the
//! header `type` (`event_type`, `ce-type`, `ce_type`) or the payload's `type` (`event_type`). All must hold.

use ckp_core::glob::Glob;
use serde_json::{Map, Value};

use crate::Delivery;

/// A filter; the default accepts everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    subject: Option<Glob>,
    headers: Vec<(String, String)>,
    payload: Vec<(String, Value)>,
    types: Vec<String>,
}

const TYPE_HEADERS: &[&str] = &["type", "event_type", "ce-type", "ce_type"];

impl Filter {
    /// The filter of an `event_filter` object and an `event_type` list.
    pub fn new(event_filter: Option<&Value>, event_type: &[String]) -> Result<Filter, String> {
        let mut f = Filter { types: event_type.to_vec(), ..Filter::default() };
        let Some(spec) = event_filter.filter(|v| !v.is_null()) else { return Ok(f) };
        let Value::Object(spec) = spec else { return Err("event_filter must be an object".into()) };
        for (key, value) in spec {
            match key.as_str() {
                "subject" => {
                    let glob = value.as_str().ok_or("event_filter.subject must be a text glob")?;
                    f.subject = Some(Glob::new(glob).map_err(|e| format!("event_filter.subject: {e}"))?);
                }
                "headers" => {
                    let map = value.as_object().ok_or("event_filter.headers must be an object")?;
                    for (name, v) in map {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        f.headers.push((name.to_ascii_lowercase(), text));
                    }
                }
                "payload" => {
                    let map = value.as_object().ok_or("event_filter.payload must be an object of JSON pointers")?;
                    for (ptr, v) in map {
                        if !ptr.is_empty() && !ptr.starts_with('/') {
                            return Err(format!("event_filter.payload key `{ptr}` is not a JSON pointer"));
                        }
                        f.payload.push((ptr.clone(), v.clone()));
                    }
                }
                field => f.payload.push((format!("/{}", field.replace('~', "~0").replace('/', "~1")), value.clone())),
            }
        }
        Ok(f)
    }

    /// Whether `d` (its payload parsed as `payload`, Null when not JSON) passes.
    pub fn accepts(&self, d: &Delivery, payload: &Value) -> bool {
        if let Some(glob) = &self.subject
            && !glob.matches(&d.subject)
        {
            return false;
        }
        let header = |name: &str| d.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        if !self.headers.iter().all(|(name, want)| header(name) == Some(want)) {
            return false;
        }
        if !self.payload.iter().all(|(ptr, want)| payload.pointer(ptr) == Some(want)) {
            return false;
        }
        if self.types.is_empty() {
            return true;
        }
        let from_payload = |o: &Map<String, Value>| {
            ["type", "event_type"].iter().find_map(|k| o.get(*k).and_then(Value::as_str).map(str::to_owned))
        };
        let kind =
            TYPE_HEADERS.iter().find_map(|h| header(h).cloned()).or_else(|| payload.as_object().and_then(from_payload));
        kind.is_some_and(|k| self.types.contains(&k))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn delivery(subject: &str, headers: &[(&str, &str)]) -> Delivery {
        let h: BTreeMap<String, String> = headers.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        Delivery::detached("1", subject, h, Vec::new())
    }

    #[test]
    fn every_part_must_hold() {
        let spec = json!({"subject": "orders.*", "headers": {"Source": "shop"}, "payload": {"/order/total": 10}, "status": "paid"});
        let f = Filter::new(Some(&spec), &["order.created".to_owned()]).unwrap();
        let good = json!({"type": "order.created", "status": "paid", "order": {"total": 10}});
        assert!(f.accepts(&delivery("orders.eu", &[("source", "shop")]), &good));
        assert!(!f.accepts(&delivery("invoices.eu", &[("source", "shop")]), &good));
        assert!(!f.accepts(&delivery("orders.eu", &[("source", "pos")]), &good));
        let mut unpaid = good.clone();
        unpaid["status"] = json!("open");
        assert!(!f.accepts(&delivery("orders.eu", &[("source", "shop")]), &unpaid));
        // The type from a header wins over the payload's.
        assert!(!f.accepts(&delivery("orders.eu", &[("source", "shop"), ("ce-type", "order.deleted")]), &good));
        assert!(Filter::default().accepts(&delivery("x", &[]), &Value::Null));
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(Filter::new(Some(&json!([1])), &[]).is_err());
        assert!(Filter::new(Some(&json!({"payload": {"status": 1}})), &[]).unwrap_err().contains("JSON pointer"));
        assert!(Filter::new(Some(&json!({"subject": 3})), &[]).is_err());
    }
}
