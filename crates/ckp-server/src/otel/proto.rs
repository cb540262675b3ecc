//! The OTLP trace messages (`opentelemetry/proto/collector/trace/v1`, `trace/v1`, `common/v1`, `resource/v1`)
//! encoded by hand in the protobuf wire format: the few messages ckp sends do not need a code generator.

/// A span as ckp builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// Span id.
    pub span_id: [u8; 8],
    /// Parent span id (None: a root).
    pub parent: Option<[u8; 8]>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: SpanKind,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_ns: u64,
    /// Attributes.
    pub attributes: Vec<(&'static str, Val)>,
    /// Timed events.
    pub events: Vec<SpanEvent>,
    /// Links to other spans (trace id, span id).
    pub links: Vec<([u8; 16], [u8; 8])>,
    /// Error status with its message (None: unset).
    pub error: Option<String>,
}

/// A timed event inside a span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// When, in nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Name.
    pub name: String,
    /// Attributes.
    pub attributes: Vec<(&'static str, Val)>,
}

/// OTLP span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Internal work.
    Internal = 1,
    /// A call handled.
    Server = 2,
    /// A call made.
    Client = 3,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// Text.
    Str(String),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

/// `ExportTraceServiceRequest` with one resource (`attributes`) and one scope holding `spans`.
pub fn export_request(resource: &[(&'static str, Val)], scope: (&str, &str), spans: &[Span]) -> Vec<u8> {
    let mut res = Vec::new();
    for kv in resource {
        message(&mut res, 1, &key_value(kv));
    }
    let mut scope_spans = Vec::new();
    let mut sc = Vec::new();
    string(&mut sc, 1, scope.0);
    string(&mut sc, 2, scope.1);
    message(&mut scope_spans, 1, &sc);
    for s in spans {
        message(&mut scope_spans, 2, &span(s));
    }
    let mut resource_spans = Vec::new();
    message(&mut resource_spans, 1, &res);
    message(&mut resource_spans, 2, &scope_spans);
    let mut out = Vec::new();
    message(&mut out, 1, &resource_spans);
    out
}

fn span(s: &Span) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    bytes(&mut b, 1, &s.trace_id);
    bytes(&mut b, 2, &s.span_id);
    if let Some(p) = &s.parent {
        bytes(&mut b, 4, p);
    }
    string(&mut b, 5, &s.name);
    varint_field(&mut b, 6, s.kind as u64);
    fixed64(&mut b, 7, s.start_ns);
    fixed64(&mut b, 8, s.end_ns.max(s.start_ns));
    for kv in &s.attributes {
        message(&mut b, 9, &key_value(kv));
    }
    for e in &s.events {
        let mut ev = Vec::new();
        fixed64(&mut ev, 1, e.time_ns);
        string(&mut ev, 2, &e.name);
        for kv in &e.attributes {
            message(&mut ev, 3, &key_value(kv));
        }
        message(&mut b, 11, &ev);
    }
    for (trace, id) in &s.links {
        let mut l = Vec::new();
        bytes(&mut l, 1, trace);
        bytes(&mut l, 2, id);
        message(&mut b, 13, &l);
    }
    let mut status = Vec::new();
    match &s.error {
        Some(message_text) => {
            string(&mut status, 2, message_text);
            varint_field(&mut status, 3, 2);
        }
        None => varint_field(&mut status, 3, 1),
    }
    message(&mut b, 15, &status);
    b
}

fn key_value((key, value): &(&'static str, Val)) -> Vec<u8> {
    let mut kv = Vec::new();
    string(&mut kv, 1, key);
    let mut v = Vec::new();
    match value {
        Val::Str(s) => string(&mut v, 1, s),
        Val::Bool(x) => varint_field(&mut v, 2, u64::from(*x)),
        // int64 is a varint of the two's complement.
        Val::Int(i) => varint_field(&mut v, 3, *i as u64),
        Val::Float(f) => {
            tag(&mut v, 4, 1);
            v.extend_from_slice(&f.to_le_bytes());
        }
    }
    message(&mut kv, 2, &v);
    kv
}

fn tag(b: &mut Vec<u8>, field: u32, wire: u8) {
    varint(b, (u64::from(field) << 3) | u64::from(wire));
}

fn varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn varint_field(b: &mut Vec<u8>, field: u32, v: u64) {
    tag(b, field, 0);
    varint(b, v);
}

fn fixed64(b: &mut Vec<u8>, field: u32, v: u64) {
    tag(b, field, 1);
    b.extend_from_slice(&v.to_le_bytes());
}

fn bytes(b: &mut Vec<u8>, field: u32, v: &[u8]) {
    tag(b, field, 2);
    varint(b, v.len() as u64);
    b.extend_from_slice(v);
}

fn string(b: &mut Vec<u8>, field: u32, v: &str) {
    bytes(b, field, v.as_bytes());
}

fn message(b: &mut Vec<u8>, field: u32, v: &[u8]) {
    bytes(b, field, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_negative_ints_follow_the_wire_format() {
        let mut b = Vec::new();
        varint(&mut b, 300);
        assert_eq!(b, [0xAC, 0x02]);
        let kv = key_value(&("n", Val::Int(-1)));
        // key "n", then AnyValue { int_value = -1 } as a ten-byte varint.
        assert_eq!(kv[..3], [0x0A, 0x01, b'n']);
        assert_eq!(kv.len(), 3 + 2 + 1 + 10);
    }
}
