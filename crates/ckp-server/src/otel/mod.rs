//! OpenTelemetry traces over OTLP/HTTP (protobuf), off unless an endpoint is configured
//! (`otel_exporter_otlp_endpoint` or the standard `OTEL_EXPORTER_OTLP_*` variables). User guide:
//! `docs/observability.md`.
//!
//! Spans are built from what runs **commit** (the metered journal hands each successful commit's events to
//! [`Tracer::committed`]), so a span describes work that happened once, and the engine knows nothing of tracing:
//! * a **run segment** — one execution by a worker, from its claim to its pause or end — is a trace root named
//!   `run {procedure}`; a run resumed later (after an approval, a timer, a crash) is a new trace whose root links
//!   to the run's origin, never one giant trace. The first segment joins the trace of the request that created the
//!   run when it carried a W3C `traceparent`;
//! * its nodes (`node {id}`; loop bodies and parallel branches under their node), steps (`step {action}`), LLM calls
//!   (`chat {model}`, CLIENT, with the GenAI attributes `gen_ai.*`) and subflow children (`run {procedure}` under
//!   the subflow node) are children, timed by their events;
//! * agents and LLM gateways receive the `traceparent` of their step's (or LLM call's) span ([`TraceContext`]).

pub mod proto;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ckp_engine::effects::TraceContext;
use ckp_engine::error::ErrorChain;
use ckp_engine::events::Event;
use proto::{Span, SpanEvent, SpanKind, Val};
use tokio::sync::{mpsc, watch};

/// Spans waiting for the exporter before new ones are dropped (and counted).
const QUEUE: usize = 8192;
/// Spans per export request.
const BATCH: usize = 512;
/// Longest a finished span waits before it is sent.
const FLUSH: Duration = Duration::from_secs(1);

/// Where and how traces are exported.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The full traces URL (`…/v1/traces`).
    pub url: String,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
    /// `service.name`.
    pub service: String,
    /// `service.instance.id`: this process.
    pub instance: String,
}

/// A W3C trace context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// Span id.
    pub span_id: [u8; 8],
}

impl Context {
    /// Parses a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`); None when malformed or all zeros.
    pub fn parse(header: &str) -> Option<Context> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || flags.len() != 2 || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id: [u8; 16] = hex(trace)?.try_into().ok()?;
        let span_id: [u8; 8] = hex(span)?.try_into().ok()?;
        hex(version)?;
        hex(flags)?;
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(Context { trace_id, span_id })
    }

    /// As a `traceparent` header (sampled).
    pub fn header(&self) -> String {
        format!("00-{}-{}-01", to_hex(&self.trace_id), to_hex(&self.span_id))
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Random ids (never all zeros).
fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(16) {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    out
}

/// Deterministic ids for a run's origin: the same in every process, so later segments can link to it.
fn derived<const N: usize>(run_id: &str, salt: &str) -> [u8; N] {
    let bytes =
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("ckp:trace:{salt}:{run_id}").as_bytes()).into_bytes();
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// The span of a run's first segment, which later segments link to.
pub fn origin(run_id: &str, created_with: Option<Context>) -> Context {
    Context {
        trace_id: created_with.map_or_else(|| derived(run_id, "trace"), |c| c.trace_id),
        span_id: derived(run_id, "span"),
    }
}

fn nanos(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_nanos_opt().unwrap_or_default()).unwrap_or_default()
}

/// A span being built.
#[derive(Debug)]
struct Open {
    id: [u8; 8],
    parent: [u8; 8],
    name: String,
    kind: SpanKind,
    start: u64,
    attributes: Vec<(&'static str, Val)>,
    events: Vec<SpanEvent>,
    /// A node that contains others (loop, parallel): their parent while open.
    container: bool,
}

impl Open {
    fn new(parent: [u8; 8], name: String, kind: SpanKind, start: u64) -> Open {
        Open { id: random(), parent, name, kind, start, attributes: Vec::new(), events: Vec::new(), container: false }
    }

    fn finish(self, trace_id: [u8; 16], end: u64, error: Option<String>) -> Span {
        Span {
            trace_id,
            span_id: self.id,
            parent: Some(self.parent),
            name: self.name,
            kind: self.kind,
            start_ns: self.start,
            end_ns: end,
            attributes: self.attributes,
            events: self.events,
            links: Vec::new(),
            error,
        }
    }
}

/// What is open of one run in this process.
#[derive(Debug)]
struct RunTrace {
    trace_id: [u8; 16],
    /// The run's span (a segment root, or a subflow child's run span).
    root: Open,
    /// The root's own parent (a caller's span for a first segment created with a `traceparent`).
    root_parent: Option<[u8; 8]>,
    links: Vec<([u8; 16], [u8; 8])>,
    /// Open node spans by node id (a stack: a loop body's node runs again).
    nodes: HashMap<String, Vec<Open>>,
    /// Order in which node spans opened (node ids), for the innermost open container.
    order: Vec<String>,
    /// Open step spans by (node id, step id).
    steps: HashMap<(String, String), Open>,
    /// Open LLM call spans by node id.
    llm: HashMap<String, Open>,
    /// Subflow children traced under this run.
    children: Vec<String>,
    /// For a subflow child: its parent run (it is closed with its parent's segment at the latest).
    parent_run: Option<String>,
    /// Ended children's run spans waiting for their parent to commit the subflow node they belong under (a
    /// parent commits its subflow node's start after the child ran), by child run id.
    pending: HashMap<String, Span>,
    error: Option<String>,
}

impl RunTrace {
    /// The innermost open container node's span, else the run's.
    fn parent_for_node(&self) -> [u8; 8] {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.nodes.get(id).and_then(|s| s.last()))
            .find(|o| o.container)
            .map_or(self.root.id, |o| o.id)
    }

    /// The span of the latest open node with this id, else the run's.
    fn node_span(&self, node_id: &str) -> [u8; 8] {
        self.nodes.get(node_id).and_then(|s| s.last()).map_or(self.root.id, |o| o.id)
    }
}

/// Builds and exports spans; gives agents and LLMs their `traceparent`.
#[derive(Debug)]
pub struct Tracer {
    runs: Mutex<HashMap<String, RunTrace>>,
    out: mpsc::Sender<Span>,
    /// Spans dropped because the exporter's queue was full.
    pub dropped: std::sync::atomic::AtomicU64,
}

impl Tracer {
    /// A tracer and the receiver its exporter drains ([`run_exporter`]).
    pub fn new() -> (Arc<Tracer>, mpsc::Receiver<Span>) {
        let (out, rx) = mpsc::channel(QUEUE);
        (Arc::new(Tracer { runs: Mutex::new(HashMap::new()), out, dropped: Default::default() }), rx)
    }

    fn emit(&self, span: Span) {
        if self.out.try_send(span).is_err() {
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A worker starts executing `run_id`: a new trace (or, for a run's first execution, its origin's), whose root
    /// links to the run's origin. `created_with` is the `traceparent` the run was created with.
    pub fn begin(&self, run_id: &str, procedure: &str, version: &str, first: bool, created_with: Option<Context>) {
        let origin = origin(run_id, created_with);
        let (trace_id, id, root_parent, links) = match first {
            true => (origin.trace_id, origin.span_id, created_with.map(|c| c.span_id), Vec::new()),
            false => (random(), random(), None, vec![(origin.trace_id, origin.span_id)]),
        };
        let mut root = Open::new([0; 8], format!("run {procedure}"), SpanKind::Internal, nanos(Utc::now()));
        root.id = id;
        root.attributes = vec![
            ("ckp.run.id", Val::Str(run_id.to_owned())),
            ("ckp.procedure.id", Val::Str(procedure.to_owned())),
            ("ckp.procedure.version", Val::Str(version.to_owned())),
            ("ckp.run.segment", Val::Str(if first { "first" } else { "resumed" }.to_owned())),
        ];
        let run = RunTrace {
            trace_id,
            root,
            root_parent,
            links,
            nodes: HashMap::new(),
            order: Vec::new(),
            steps: HashMap::new(),
            llm: HashMap::new(),
            children: Vec::new(),
            parent_run: None,
            pending: HashMap::new(),
            error: None,
        };
        if let Ok(mut runs) = self.runs.lock() {
            runs.insert(run_id.to_owned(), run);
        }
    }

    /// The trace id of `run_id`'s open segment (for its log lines).
    pub fn trace_id(&self, run_id: &str) -> Option<String> {
        self.runs.lock().ok()?.get(run_id).map(|r| to_hex(&r.trace_id))
    }

    /// The worker stopped executing `run_id` (`outcome`: completed, failed, waiting, ...): its segment's spans end.
    pub fn end(&self, run_id: &str, outcome: &str) {
        let Ok(mut runs) = self.runs.lock() else { return };
        let Some(mut run) = runs.remove(run_id) else { return };
        let now = nanos(Utc::now());
        for child in std::mem::take(&mut run.children) {
            if let Some(c) = runs.remove(&child) {
                let span = self.close(c, now, "parent_ended");
                run.pending.insert(child, span);
            }
        }
        drop(runs);
        // Children whose subflow node never committed: under the run itself.
        for (_, mut span) in run.pending.drain() {
            span.parent = Some(run.root.id);
            self.emit(span);
        }
        let span = self.close(run, now, outcome);
        self.emit(span);
    }

    /// Ends every open span of `run` at `end`; returns its run span (the caller emits it).
    fn close(&self, mut run: RunTrace, end: u64, outcome: &str) -> Span {
        let trace_id = run.trace_id;
        for (_, o) in run.llm.drain() {
            self.emit(o.finish(trace_id, end, None));
        }
        for (_, o) in run.steps.drain() {
            self.emit(o.finish(trace_id, end, None));
        }
        for (_, stack) in run.nodes.drain() {
            for mut o in stack {
                // A node the segment left open: paused at an approval or a timer, or stopped.
                o.attributes.push(("ckp.node.left_open", Val::Str(outcome.to_owned())));
                self.emit(o.finish(trace_id, end, None));
            }
        }
        for (_, mut span) in run.pending.drain() {
            span.parent = Some(run.root.id);
            self.emit(span);
        }
        run.root.attributes.push(("ckp.run.outcome", Val::Str(outcome.to_owned())));
        let root_parent = run.root_parent;
        let links = std::mem::take(&mut run.links);
        let mut span = run.root.finish(trace_id, end, run.error);
        span.parent = root_parent;
        span.links = links;
        span
    }

    /// A commit of `run_id` (of `procedure`) succeeded with `events`.
    pub fn committed(&self, run_id: &str, procedure: &str, events: &[Event]) {
        let Ok(mut runs) = self.runs.lock() else { return };
        if !runs.contains_key(run_id) {
            // A subflow child's first commit: traced under its parent's open subflow node.
            let Some(parent) = events
                .iter()
                .find(|e| e.event_type == "run_created")
                .and_then(|e| e.get("parent_run_id").as_str().map(str::to_owned))
            else {
                return;
            };
            let Some(p) = runs.get_mut(&parent) else { return };
            p.children.push(run_id.to_owned());
            let start = events.first().map_or_else(|| nanos(Utc::now()), |e| nanos(e.created_at));
            // Its parent span is the subflow node's, known once the parent commits it (see `pending`).
            let mut root = Open::new(p.root.id, format!("run {procedure}"), SpanKind::Internal, start);
            root.attributes.push(("ckp.procedure.id", Val::Str(procedure.to_owned())));
            root.attributes.push(("ckp.run.id", Val::Str(run_id.to_owned())));
            root.attributes.push(("ckp.run.parent_id", Val::Str(parent.clone())));
            let child = RunTrace {
                trace_id: p.trace_id,
                root_parent: Some(p.root.id),
                root,
                links: Vec::new(),
                nodes: HashMap::new(),
                order: Vec::new(),
                steps: HashMap::new(),
                llm: HashMap::new(),
                children: Vec::new(),
                parent_run: Some(parent),
                pending: HashMap::new(),
                error: None,
            };
            runs.insert(run_id.to_owned(), child);
        }
        let Some(run) = runs.get_mut(run_id) else { return };
        let mut ended = None;
        for e in events {
            if let Some(outcome) = self.apply(run, e) {
                ended = Some(outcome);
            }
        }
        if let Some(outcome) = ended
            && run.parent_run.is_some()
            && let Some(child) = runs.remove(run_id)
        {
            let end = events.last().map_or_else(|| nanos(Utc::now()), |e| nanos(e.created_at));
            let parent_run = child.parent_run.clone().unwrap_or_default();
            let span = self.close(child, end, outcome);
            match runs.get_mut(&parent_run) {
                Some(p) => {
                    p.children.retain(|c| c != run_id);
                    p.pending.insert(run_id.to_owned(), span);
                }
                None => self.emit(span),
            }
        }
    }

    /// Applies one event; the run's outcome when it ended.
    fn apply(&self, run: &mut RunTrace, e: &Event) -> Option<&'static str> {
        let at = nanos(e.created_at);
        let node_id = e.node_id.clone().unwrap_or_default();
        let text = |k: &str| e.get(k).as_str().unwrap_or_default().to_owned();
        match e.event_type.as_str() {
            "node_started" => {
                let parent = run.parent_for_node();
                let mut o = Open::new(parent, format!("node {node_id}"), SpanKind::Internal, at);
                let node_type = text("node_type");
                o.container = matches!(node_type.as_str(), "loop" | "parallel" | "subflow");
                o.attributes.push(("ckp.node.id", Val::Str(node_id.clone())));
                o.attributes.push(("ckp.node.type", Val::Str(node_type.clone())));
                if node_type == "llm_action" {
                    // The LLM call's span, opened now so the call can carry its traceparent.
                    let mut call = Open::new(o.id, "chat".into(), SpanKind::Client, at);
                    call.attributes.push(("gen_ai.operation.name", Val::Str("chat".into())));
                    run.llm.insert(node_id.clone(), call);
                }
                run.nodes.entry(node_id.clone()).or_default().push(o);
                run.order.push(node_id);
            }
            "node_completed" | "node_error" => {
                let error = (e.event_type == "node_error").then(|| text("error"));
                if let Some(mut call) = run.llm.remove(&node_id) {
                    call.attributes.push(("error.type", Val::Str(text("error_type"))));
                    self.emit(call.finish(run.trace_id, at, error.clone()));
                }
                if let Some(step_id) = e.get("step_id").as_str()
                    && let Some(mut step) = run.steps.remove(&(node_id.clone(), step_id.to_owned()))
                {
                    step.attributes.push(("error.type", Val::Str(text("error_type"))));
                    self.emit(step.finish(run.trace_id, at, error.clone()));
                }
                let done = run.nodes.get_mut(&node_id).and_then(Vec::pop).or_else(|| {
                    // A node that started in an earlier segment (an approval decided, a timer due): its end in this
                    // one, from the segment's start.
                    let mut o =
                        Open::new(run.root.id, format!("node {node_id}"), SpanKind::Internal, run.root.start.min(at));
                    o.attributes.push(("ckp.node.id", Val::Str(node_id.clone())));
                    o.attributes.push(("ckp.node.type", Val::Str(text("node_type"))));
                    o.attributes.push(("ckp.node.resumed", Val::Bool(true)));
                    Some(o)
                });
                if let Some(i) = run.order.iter().rposition(|id| *id == node_id) {
                    run.order.remove(i);
                }
                if let Some(mut o) = done {
                    if let Some(ms) = e.get("duration_ms").as_i64() {
                        o.attributes.push(("ckp.node.duration_ms", Val::Int(ms)));
                    }
                    self.emit(o.finish(run.trace_id, at, error));
                }
            }
            "step_started" => {
                let step_id = e.step_id.clone().unwrap_or_default();
                let parent = run.node_span(&node_id);
                let action = text("action");
                let mut o = Open::new(parent, format!("step {action}"), SpanKind::Internal, at);
                o.attributes.push(("ckp.step.id", Val::Str(step_id.clone())));
                o.attributes.push(("ckp.step.action", Val::Str(action)));
                if let Some(old) = run.steps.insert((node_id, step_id), o) {
                    // An attempt that ended in a retry.
                    self.emit(old.finish(run.trace_id, at, Some("retried".into())));
                }
            }
            "step_completed" => {
                let key = (node_id, e.step_id.clone().unwrap_or_default());
                if let Some(mut o) = run.steps.remove(&key) {
                    o.attributes.push(("ckp.step.cached", Val::Bool(e.get("cached").as_bool() == Some(true))));
                    self.emit(o.finish(run.trace_id, at, None));
                }
            }
            "llm_usage" => {
                if let Some(call) = run.llm.get_mut(&node_id) {
                    let model = text("model");
                    call.name = format!("chat {model}");
                    call.attributes.push(("gen_ai.request.model", Val::Str(model.clone())));
                    call.attributes.push(("gen_ai.response.model", Val::Str(model)));
                    let tokens = |k: &str| Val::Int(e.get(k).as_i64().unwrap_or_default());
                    call.attributes.push(("gen_ai.usage.input_tokens", tokens("prompt_tokens")));
                    call.attributes.push(("gen_ai.usage.output_tokens", tokens("completion_tokens")));
                    call.attributes.push(("ckp.llm.cost_usd", Val::Float(e.get("cost_usd").as_f64().unwrap_or(0.0))));
                }
            }
            "approval_requested" | "step_retrying" | "sla_breached" | "workflow_delegated" => {
                let span = run.nodes.get_mut(&node_id).and_then(|s| s.last_mut());
                if let Some(o) = span {
                    o.events.push(SpanEvent { time_ns: at, name: e.event_type.clone(), attributes: Vec::new() });
                }
            }
            "subflow_started" | "subflow_completed" | "subflow_failed" => {
                if let Some(child) = e.get("child_run_id").as_str()
                    && let Some(mut span) = run.pending.remove(child)
                {
                    span.parent = Some(run.node_span(&node_id));
                    self.emit(span);
                }
            }
            "run_completed" => return Some("completed"),
            "run_failed" => {
                run.error = Some(e.get("error").get("message").and_then(|m| m.as_str()).unwrap_or("failed").to_owned());
                return Some("failed");
            }
            "run_canceled" => return Some("canceled"),
            _ => {}
        }
        None
    }
}

impl TraceContext for Tracer {
    fn traceparent(&self, run_id: &str, node_id: &str, step_id: &str) -> Option<String> {
        let runs = self.runs.lock().ok()?;
        let run = runs.get(run_id)?;
        let span_id = match step_id {
            "" => run.llm.get(node_id).map(|o| o.id),
            s => run.steps.get(&(node_id.to_owned(), s.to_owned())).map(|o| o.id),
        }
        .unwrap_or_else(|| run.node_span(node_id));
        Some(Context { trace_id: run.trace_id, span_id }.header())
    }
}

/// Sends spans in batches until `shutdown`, then what is left; failures are logged and the batch dropped (traces
/// are telemetry: they never hold a run back).
pub async fn run_exporter(config: OtlpConfig, mut spans: mpsc::Receiver<Span>, mut shutdown: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), "trace export: no HTTP client; traces are not exported");
            return;
        }
    };
    let resource = vec![
        ("service.name", Val::Str(config.service.clone())),
        ("service.version", Val::Str(env!("CARGO_PKG_VERSION").into())),
        ("service.instance.id", Val::Str(config.instance.clone())),
    ];
    let mut batch = Vec::with_capacity(BATCH);
    let mut stopping = false;
    loop {
        let deadline = tokio::time::sleep(FLUSH);
        tokio::pin!(deadline);
        while batch.len() < BATCH && !stopping {
            tokio::select! {
                got = spans.recv() => match got {
                    Some(s) => batch.push(s),
                    None => { stopping = true; }
                },
                () = &mut deadline => break,
                _ = shutdown.changed() => { stopping = true; }
            }
        }
        if stopping {
            while let Ok(s) = spans.try_recv() {
                batch.push(s);
            }
        }
        for chunk in batch.chunks(BATCH) {
            let body = proto::export_request(&resource, ("ckp", env!("CARGO_PKG_VERSION")), chunk);
            let mut req = client.post(&config.url).header(reqwest::header::CONTENT_TYPE, "application/x-protobuf");
            for (k, v) in &config.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            match req.body(body).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(status = r.status().as_u16(), spans = chunk.len(), "trace export refused"),
                Err(e) => tracing::warn!(error = %ErrorChain(&e), spans = chunk.len(), "trace export failed"),
            }
        }
        batch.clear();
        if stopping {
            return;
        }
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs separated by commas (values percent-decoded).
pub fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_owned(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_and_print() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = Context::parse(h).expect("valid");
        assert_eq!(c.header(), h);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            assert_eq!(Context::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn headers_follow_the_otel_variable() {
        assert_eq!(
            parse_headers("api-key=a%20b, x=1,bad"),
            vec![("api-key".to_owned(), "a b".to_owned()), ("x".to_owned(), "1".to_owned())]
        );
    }

    #[test]
    fn a_runs_origin_is_the_same_everywhere() {
        assert_eq!(origin("r1", None), origin("r1", None));
        assert_ne!(origin("r1", None), origin("r2", None));
        let caller = Context::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(origin("r1", Some(caller)).trace_id, caller.trace_id);
    }
}
