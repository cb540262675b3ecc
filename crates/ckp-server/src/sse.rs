//! Server-sent events. Streams read the store after each committed change they are told about (pushed through
//! [`ckp_store::SqliteStore::subscribe`], never polled), so every event is sent once, in `event_id` order.
//!
//! * `GET /api/runs/{id}/stream`: `event: run_event`, `id: <event_id>`; resumes after `Last-Event-ID` (header, or
//!   `last_event_id` query parameter for clients that cannot set headers) and ends after the run's terminal
//!   event.
//! * `GET /api/approvals/stream`: first `event: approval_snapshot` (every pending approval), then
//!   `event: approval_update` for each approval created or changed after connecting.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use ckp_store::{EventRow, StatusPage};

use crate::api::ApprovalOut;
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, ErrorBody, Query};

/// Events read per store query.
const PAGE: i64 = 500;

/// Query parameters of the run stream.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Resume after this event id (the `Last-Event-ID` header wins when both are given).
    pub last_event_id: Option<i64>,
}

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct RunStream {
    state: AppState,
    stop: tokio::sync::watch::Receiver<bool>,
    run_id: String,
    last: i64,
    changes: tokio::sync::watch::Receiver<u64>,
    done: bool,
    /// The last read sent events and nothing was committed since: the next read waits for a change first.
    current: bool,
    /// The first page, read when the stream was opened (it told whether the run exists).
    first: Option<StatusPage>,
    /// Counts the stream as open (`ckp_sse_streams_open`) while it lives.
    _open: crate::metrics::SseOpen,
}

impl RunStream {
    /// The next chunk to send: every event committed since the last one, framed together (one write instead of
    /// one per event), or a keep-alive comment after a quiet spell; None when the stream is over.
    async fn next_chunk(&mut self) -> Option<String> {
        loop {
            if self.done || *self.stop.borrow() {
                return None;
            }
            if self.current
                && !self.changes.has_changed().unwrap_or(true)
                && let Some(keep_alive) = self.wait().await
            {
                // Read again after a quiet spell: a change whose notice was lost (its process died between the
                // commit and the notice, on a shared database) is sent at most one keep-alive late.
                self.current = false;
                return Some(keep_alive);
            }
            self.current = false;
            let (status, page) = match self.first.take() {
                Some(first) => first,
                None => {
                    // Seen now: a commit from here on wakes the wait below.
                    self.changes.borrow_and_update();
                    // Status first: when it is terminal, every event up to the terminal one is already committed.
                    match self.state.store.status_and_events(&self.run_id, self.last, PAGE).await {
                        Ok(Some(read)) => read,
                        _ => return None,
                    }
                }
            };
            let full = page.len() as i64 == PAGE;
            if let Some(last) = page.last() {
                self.last = last.event_id;
            }
            if !full && status.is_terminal() {
                self.done = true;
            }
            if !page.is_empty() {
                let mut chunk = String::with_capacity(page.len() * 256);
                for e in &page {
                    frame(&mut chunk, e);
                }
                self.current = !full;
                return Some(chunk);
            }
            if self.done {
                return None;
            }
            if let Some(keep_alive) = self.wait().await {
                return Some(keep_alive);
            }
        }
    }

    /// Waits for a commit of the run or the shutdown; a keep-alive comment after a quiet spell.
    async fn wait(&mut self) -> Option<String> {
        tokio::select! {
            _ = self.changes.changed() => None,
            _ = self.stop.changed() => None,
            () = tokio::time::sleep(KEEP_ALIVE) => Some(":\n\n".into()),
        }
    }
}

/// Appends one `run_event` in the SSE wire format; its data is the event as JSON with the payload copied from
/// the stored text (never re-encoded). Compact JSON has no newline, so one `data:` line carries it.
fn frame(out: &mut String, e: &EventRow) {
    use std::fmt::Write as _;
    let text = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "null".into());
    let opt = |s: &Option<String>| s.as_deref().map_or_else(|| "null".to_owned(), text);
    let _ = write!(
        out,
        "id: {id}\nevent: run_event\ndata: {{\"event_id\":{id},\"run_id\":{},\"created_at\":{},\"event_type\":{},\"node_id\":{},\"step_id\":{},\"payload\":{}}}\n\n",
        text(&e.run_id),
        text(&e.created_at),
        text(&e.event_type),
        opt(&e.node_id),
        opt(&e.step_id),
        e.payload.as_deref().unwrap_or("null"),
        id = e.event_id,
    );
}

/// A run's events as they are committed, resuming after `Last-Event-ID`; ends after the terminal event.
#[utoipa::path(get, path = "/api/runs/{run_id}/stream", tag = "runs",
    params(("run_id" = String, Path), StreamParams, ("Last-Event-ID" = Option<i64>, Header)),
    responses((status = 200, content_type = "text/event-stream", description = "`run_event` events"),
              (status = 404, body = ErrorBody)))]
pub async fn run_stream(
    State(state): State<AppState>,
    who: Principal,
    Path(run_id): Path<String>,
    Query(q): Query<StreamParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let header = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::trim);
    let last = match header.filter(|h| !h.is_empty()) {
        Some(h) => {
            h.parse::<i64>().map_err(|_| ApiError::invalid("invalid_header", "Last-Event-ID must be an event id"))?
        }
        None => q.last_event_id.unwrap_or(0),
    };
    crate::routes::runs::visible_run(&state, &who, Role::Viewer, &run_id).await?;
    let mut changes = state.store.watch_run(&run_id);
    // Seen now: a commit after the first read wakes the stream.
    changes.borrow_and_update();
    let first = state.store.status_and_events(&run_id, last, PAGE).await?.ok_or_else(|| ApiError::not_found("Run"))?;
    let stop = state.shutdown.clone();
    let _open = state.metrics.sse_opened();
    let stream =
        RunStream { state, stop, run_id, last, changes, done: false, current: false, first: Some(first), _open };
    let chunks = futures_util::stream::unfold(stream, |mut s| async move {
        let chunk = s.next_chunk().await?;
        Some((Ok::<_, Infallible>(axum::body::Bytes::from(chunk)), s))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(axum::body::Body::from_stream(chunks))
        .map_err(|e| ApiError::internal(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", &e))
}

fn approval_data(a: &ApprovalOut) -> String {
    json!({"approval_id": a.approval_id, "run_id": a.run_id, "node_id": a.node_id, "prompt": a.prompt,
           "status": a.status, "decided_by": a.decided_by, "decided_at": a.decided_at, "expires_at": a.expires_at,
           "created_at": a.created_at, "decision_type": a.decision_type, "options": a.options})
    .to_string()
}

struct ApprovalStream {
    state: AppState,
    stop: tokio::sync::watch::Receiver<bool>,
    seen: Option<HashMap<String, String>>,
    changes: tokio::sync::watch::Receiver<u64>,
    queued: std::collections::VecDeque<Event>,
    /// The projects the caller may see (None: all).
    projects: Option<Vec<String>>,
    /// Counts the stream as open while it lives.
    _open: crate::metrics::SseOpen,
}

impl ApprovalStream {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.queued.pop_front() {
                return Some(e);
            }
            if *self.stop.borrow() {
                return None;
            }
            self.changes.borrow_and_update();
            let rows = self.state.store.list_approvals(None, None, self.projects.clone()).await.ok()?;
            let all: Vec<ApprovalOut> = rows.iter().map(ApprovalOut::from).collect();
            match &mut self.seen {
                None => {
                    let pending: Vec<&ApprovalOut> = all.iter().filter(|a| a.status == "pending").collect();
                    let data = serde_json::to_string(&pending).unwrap_or_else(|_| "[]".into());
                    self.queued.push_back(Event::default().event("approval_snapshot").data(data));
                    self.seen = Some(all.iter().map(|a| (a.approval_id.clone(), a.status.clone())).collect());
                }
                Some(seen) => {
                    // Oldest first, so updates arrive in the order they happened.
                    for a in all.iter().rev() {
                        if seen.get(&a.approval_id) != Some(&a.status) {
                            seen.insert(a.approval_id.clone(), a.status.clone());
                            self.queued.push_back(
                                Event::default()
                                    .id(a.approval_id.clone())
                                    .event("approval_update")
                                    .data(approval_data(a)),
                            );
                        }
                    }
                    if self.queued.is_empty() {
                        tokio::select! {
                            c = self.changes.changed() => if c.is_err() { return None },
                            _ = self.stop.changed() => return None,
                            // Re-read after a quiet spell (see `RunStream::next_chunk`).
                            () = tokio::time::sleep(KEEP_ALIVE) => {}
                        }
                    }
                }
            }
        }
    }
}

/// Approval changes: a snapshot of the pending approvals first, then one `approval_update` per approval
/// created or changed.
#[utoipa::path(get, path = "/api/approvals/stream", tag = "approvals",
    responses((status = 200, content_type = "text/event-stream", description = "`approval_snapshot`, then `approval_update` events")))]
pub async fn approval_stream(
    State(state): State<AppState>,
    who: Principal,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = state.store.watch_all();
    let stop = state.shutdown.clone();
    let projects = who.visible_projects(Role::Viewer);
    let _open = state.metrics.sse_opened();
    let stream = ApprovalStream { state, stop, seen: None, changes, queued: Default::default(), projects, _open };
    let events = futures_util::stream::unfold(stream, |mut s| async move {
        let e = s.next().await?;
        Some((Ok(e), s))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
