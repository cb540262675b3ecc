//! Run events: the append-only log of what happened, with LangOrch's event types and payload keys (langorch.md
//! B §7.11) plus ckp's additions (`step_log`, `loop_iteration`, `step_retrying`, `notification`).
//!
//! The engine buffers events and hands them to the journal at commit points; it never writes them anywhere else.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Payloads with at most this many keys are searched in order by [`Event::get`].
const SCAN_KEYS: usize = 8;

/// One event of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event type (`node_started`, `step_completed`, ...).
    pub event_type: String,
    /// The node it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The step it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    /// Type-specific data.
    pub payload: Value,
    /// When it happened (UTC).
    pub created_at: DateTime<Utc>,
}

impl Event {
    /// An event of the whole run (no node or step), happening now.
    pub fn of_run(event_type: &str, payload: Value) -> Event {
        Event { event_type: event_type.into(), node_id: None, step_id: None, payload, created_at: Utc::now() }
    }

    /// A payload value, or null. Payloads hold a few keys: comparing them in order is cheaper than hashing the
    /// key (the metered journal and the tracer read several keys of every committed event).
    pub fn get(&self, key: &str) -> &Value {
        match &self.payload {
            Value::Object(m) if m.len() <= SCAN_KEYS => {
                m.iter().find(|(k, _)| k.as_str() == key).map_or(&Value::Null, |(_, v)| v)
            }
            other => other.get(key).unwrap_or(&Value::Null),
        }
    }
}

/// Builds a payload object from key/value pairs.
pub fn payload<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut map = Map::with_capacity(N);
    for (k, v) in pairs {
        map.insert(k.to_owned(), v);
    }
    Value::Object(map)
}

/// Receives committed events (the CLI timeline, the server's SSE hub).
pub trait EventSink: Send + Sync {
    /// Called after the events of `run_id` were committed, in order.
    fn committed(&self, run_id: &str, events: &[Event]);
}
