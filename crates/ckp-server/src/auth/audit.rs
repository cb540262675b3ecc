//! The audit log's writer: every request that changes something (allowed or refused) and every sign-in becomes an
//! [`AuditRow`], queued to one task that appends them in batches (one store transaction per batch, so auditing
//! does not add a commit to each request). `GET /api/audit` flushes the queue first, so a caller reads its own
//! actions. A process killed with `kill -9` loses at most the events of the batch in flight (milliseconds);
//! a queue over 100,000 events (the store down) drops new ones with a warning rather than growing without bound.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{Method, StatusCode};
use ckp_store::{AuditRow, Store};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::policy::Rule;
use super::principal::Principal;

const QUEUE: usize = 100_000;
const BATCH: usize = 500;

enum Item {
    Event(Box<AuditRow>),
    Flush(oneshot::Sender<()>),
}

/// Queues audit events for the writer task.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Item>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit item")
    }
}

impl AuditSink {
    /// A sink writing to `store` (spawns the writer task, which ends when every sink is dropped).
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, rx));
        AuditSink { tx, dropped: Arc::default() }
    }

    /// Queues one event.
    pub fn record(&self, event: AuditRow) {
        if self.tx.try_send(Item::Event(Box::new(event))).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "the audit queue is full (is the store down?): audit events dropped");
            }
        }
    }

    /// Waits until every event queued before this call is stored.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Item::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Records a request under `rule` and its outcome.
    pub fn record_request(
        &self,
        rule: &Rule,
        method: &Method,
        path: &str,
        principal: Option<&Principal>,
        source: Option<String>,
        status: StatusCode,
    ) {
        let (category, action) = rule.permission.split_once('.').unwrap_or((rule.permission, ""));
        let resource_id = first_parameter(rule.path, path);
        let actor = principal.map_or("unauthenticated", |p| p.identity.as_str());
        let description = format!("{actor}: {method} {path} answered {}", status.as_u16());
        self.record(AuditRow {
            event_id: 0,
            ts: super::principal::stamp(chrono::Utc::now()),
            category: category.to_owned(),
            action: action.to_owned(),
            actor: actor.to_owned(),
            credential: principal.and_then(|p| p.credential.clone()),
            source_ip: source,
            resource_type: Some(category.trim_end_matches('s').to_owned()),
            resource_id,
            outcome: i64::from(status.as_u16()),
            description,
            meta: json!({"method": method.as_str(), "path": path}),
        });
    }

    /// Records an event a handler describes itself (sign-in, logout, a refused refresh).
    #[expect(clippy::too_many_arguments, reason = "one flat record; a builder would add nothing")]
    pub fn event(
        &self,
        category: &str,
        action: &str,
        actor: &str,
        credential: Option<String>,
        source: Option<IpAddr>,
        outcome: StatusCode,
        description: String,
        meta: Value,
    ) {
        self.record(AuditRow {
            event_id: 0,
            ts: super::principal::stamp(chrono::Utc::now()),
            category: category.to_owned(),
            action: action.to_owned(),
            actor: actor.to_owned(),
            credential,
            source_ip: source.map(|s| s.to_string()),
            resource_type: Some("user".into()),
            resource_id: None,
            outcome: i64::from(outcome.as_u16()),
            description,
            meta,
        });
    }
}

/// The value of the first `{parameter}` of a route in the request's path (`/api/runs/{run_id}/cancel` with
/// `/api/runs/r1/cancel` gives `r1`).
fn first_parameter(route: &str, path: &str) -> Option<String> {
    let mut actual = path.split('/');
    for segment in route.split('/') {
        let value = actual.next()?;
        if segment.starts_with("{*") {
            return Some(std::iter::once(value).chain(actual).collect::<Vec<_>>().join("/"));
        }
        if segment.starts_with('{') {
            return Some(percent_decode(value));
        }
    }
    None
}

/// `%XX` escapes decoded (an id in a path); anything malformed is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn write(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Item>) {
    let mut batch = Vec::new();
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Item::Event(e) => batch.push(*e),
                Item::Flush(done) => waiting.push(done),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let events = std::mem::take(&mut batch);
            let n = events.len();
            if let Err(e) = store.append_audit(events).await {
                tracing::error!(events = n, error = %e, "cannot store audit events");
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_parameter_is_the_resource() {
        assert_eq!(first_parameter("/api/runs/{run_id}/cancel", "/api/runs/r%201/cancel"), Some("r 1".into()));
        assert_eq!(first_parameter("/api/runs", "/api/runs"), None);
        assert_eq!(first_parameter("/api/artifacts/{*path}", "/api/artifacts/r1/a/b.txt"), Some("r1/a/b.txt".into()));
    }
}
