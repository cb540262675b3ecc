//! One test module per API resource: success and error paths with snapshot bodies.
//!
//! The helpers here are shared by those modules: redactions that check what they hide (a timestamp must be
//! RFC 3339 UTC with `Z`, a duration a non-negative number), the error-shape assertion, a picture of the store's
//! lists (to show a refused request changed nothing), raw requests, and a small SSE reader.

mod agents;
mod approvals;
mod artifacts;
mod bad_input;
mod credentials;
mod examples;
mod health;
mod insights;
mod leases;
mod openapi;
mod procedures;
mod projects;
mod runs;
mod secrets;

use std::collections::BTreeSet;
use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use insta::internals::{Content, ContentPath, Redaction};
use serde_json::Value;

use crate::support::TestServer;

/// Redacts a timestamp; null stays null (so "not ended yet" stays visible), and anything that is not RFC 3339
/// UTC with `Z` shows up in the snapshot instead of being hidden.
pub fn ts() -> Redaction {
    insta::dynamic_redaction(|value: Content, _: ContentPath<'_>| -> Content {
        if value.is_nil() {
            return value;
        }
        match value.as_str() {
            Some(s) if s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok() => "[ts]".into(),
            _ => format!("[NOT AN RFC 3339 UTC TIMESTAMP: {value:?}]").into(),
        }
    })
}

/// Redacts an id (string or number); null stays null.
pub fn id() -> Redaction {
    insta::dynamic_redaction(|value: Content, _: ContentPath<'_>| -> Content {
        if value.is_nil() { value } else { "[id]".into() }
    })
}

/// Redacts a duration in seconds; null stays null, a negative or non-numeric value shows up.
pub fn secs() -> Redaction {
    insta::dynamic_redaction(|value: Content, _: ContentPath<'_>| -> Content {
        if value.is_nil() {
            return value;
        }
        let n = match value.resolve_inner() {
            Content::F64(f) => Some(*f),
            Content::F32(f) => Some(f64::from(*f)),
            Content::U64(u) => Some(*u as f64),
            Content::I64(i) => Some(*i as f64),
            _ => None,
        };
        match n {
            Some(n) if n >= 0.0 => "[secs]".into(),
            _ => format!("[NOT A DURATION: {value:?}]").into(),
        }
    })
}

/// Asserts an error answer: the status, and a JSON body with a string `code` equal to `code` and a `detail`.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    let (s, body) = got;
    assert_eq!(*s, status, "status; body {body}");
    assert_eq!(body["code"].as_str(), Some(code), "code; body {body}");
    assert!(body["detail"].is_string() || body["detail"].is_object(), "detail must be a message or an object: {body}");
    if let Some(d) = body["detail"].as_str() {
        assert!(!d.trim().is_empty(), "empty detail: {body}");
    }
}

/// The keys of a JSON object.
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

/// The values of `field` in a JSON list, as strings.
pub fn column(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|e| e[field].as_str().unwrap_or_else(|| panic!("{field} missing in {e}")).to_owned())
        .collect()
}

/// Every list the API keeps (procedures, runs, approvals, agents, projects, leases): compared before and after a
/// refused request to show it stored nothing.
pub async fn store_lists(server: &TestServer) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "/api/procedures",
        "/api/runs?limit=1000",
        "/api/approvals",
        "/api/agents",
        "/api/projects",
        "/api/leases",
        "/api/secrets",
    ] {
        let (status, body) = server.call("GET", path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        out.insert(path.into(), body);
    }
    Value::Object(out)
}

/// Sends a request with a raw body and an optional Content-Type; returns the status and the body (JSON, or a
/// string when it is not JSON).
pub async fn raw(
    server: &TestServer,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = server.http.request(method, server.url(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The pending approval of a run that waits for one.
pub async fn pending_approval(server: &TestServer, run_id: &str) -> String {
    let (status, list) = server.call("GET", &format!("/api/approvals?run_id={run_id}&status=pending"), None).await;
    assert_eq!(status, 200, "{list}");
    let ids = column(&list, "approval_id");
    assert_eq!(ids.len(), 1, "one pending approval expected for {run_id}: {list}");
    ids[0].clone()
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `event:`.
    pub event: Option<String>,
    /// `id:`.
    pub id: Option<String>,
    /// `data:` parsed as JSON (a string when it is not JSON).
    pub data: Value,
}

/// Reads server-sent events from a response, one at a time.
pub struct SseReader {
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    buf: String,
}

impl SseReader {
    /// Reads `resp`'s body as an event stream.
    pub fn new(resp: reqwest::Response) -> Self {
        SseReader { stream: Box::pin(resp.bytes_stream().map(|r| r.map(|b| b.to_vec()))), buf: String::new() }
    }

    /// The next event (keep-alive comments skipped); None when the stream ends. Panics after 20 s of silence.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut e = SseEvent { event: None, id: None, data: Value::Null };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        e.event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        e.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if e.event.is_none() && data.is_empty() {
                    continue;
                }
                e.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(e);
            }
            match tokio::time::timeout(std::time::Duration::from_secs(20), self.stream.next()).await {
                Ok(Some(Ok(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n")),
                Ok(Some(Err(e))) => panic!("SSE stream failed: {e}"),
                Ok(None) => return None,
                Err(_) => panic!("no SSE event for 20 s"),
            }
        }
    }
}
