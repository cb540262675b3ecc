//! `event_source` URLs: which broker, where, and what to consume. Parsing only (no I/O), so a registration with a
//! source that cannot work is refused when it is written, with a message that names the part at fault.
//!
//! * `nats://[USER:PASS@]HOST[:4222]/SUBJECT?stream=NAME[&durable=NAME][&deliver=all|new]`
//! * `amqp://[USER:PASS@]HOST[:5672][/VHOST]?queue=NAME[&prefetch=N][&exchange=X&binding_key=K]`
//! * `sqs://QUEUE[?region=R][&endpoint=URL]`, `sqs://?queue_url=URL[&region=R]` and `sqs://https://…` (LangOrch's forms)
//! * `mqtt://[USER:PASS@]HOST[:1883]/TOPIC[?client_id=ID][&id_pointer=/json/pointer]`
//!
//! Query values and the path are percent-decoded (an MQTT `#` may also be written `%23`).

use std::fmt;

/// The longest AMQP short string (queue, exchange and key names).
const SHORT_STR: usize = 255;

/// A parsed `event_source`.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// A JetStream stream read by a durable pull consumer.
    Nats {
        /// Host and port.
        host: String,
        /// Port.
        port: u16,
        /// User and password, if any.
        auth: Option<(String, String)>,
        /// The subject (filter) consumed; wildcards `*` and `>` allowed.
        subject: String,
        /// The stream holding it (created over `subject` when absent).
        stream: String,
        /// The durable consumer's name (default: chosen by the caller, one per registration).
        durable: Option<String>,
        /// Where a new durable consumer starts: every message in the stream (default) or new ones only.
        deliver_new: bool,
    },
    /// A RabbitMQ queue with manual acknowledgements.
    Amqp {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// User and password (guest/guest when absent, as RabbitMQ's clients do).
        auth: Option<(String, String)>,
        /// Virtual host (`/` by default).
        vhost: String,
        /// The queue (declared durable when absent).
        queue: String,
        /// Unacknowledged deliveries at once.
        prefetch: u16,
        /// An exchange to bind the queue to, with its binding key.
        binding: Option<(String, String)>,
    },
    /// An SQS queue over the JSON protocol.
    Sqs {
        /// The queue's name (resolved with `GetQueueUrl`) or its URL.
        queue: SqsQueue,
        /// The region (else the server's AWS region setting).
        region: Option<String>,
        /// An endpoint other than `https://sqs.REGION.amazonaws.com` (a local AWS-compatible server).
        endpoint: Option<String>,
    },
    /// An MQTT topic at QoS 1 with a persistent session.
    Mqtt {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// User and password, if any.
        auth: Option<(String, String)>,
        /// The topic filter; `+` and `#` allowed.
        topic: String,
        /// The client id (the session's name; default chosen by the caller, one per registration).
        client_id: Option<String>,
        /// A JSON pointer into the payload naming the message's id (MQTT 3.1.1 messages have none of their own).
        id_pointer: Option<String>,
    },
}

/// Where an SQS queue is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqsQueue {
    /// A name, resolved to a URL.
    Name(String),
    /// A queue URL.
    Url(String),
}

// Credentials never reach a log line or an error message.
impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Source {
    /// Parses an `event_source`.
    pub fn parse(url: &str) -> Result<Source, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "event_source `{}` names no broker: use nats://, amqp://, sqs:// or mqtt://",
                shown(url)
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "nats" => nats(rest),
            "amqp" => amqp(rest),
            "sqs" => sqs(rest),
            "mqtt" => mqtt(rest),
            "amqps" | "mqtts" | "tls" => Err(format!("event_source scheme `{scheme}://` (TLS) is not supported yet")),
            "kafka" => Err("kafka:// event sources are not supported: use NATS, RabbitMQ, SQS or MQTT".into()),
            other => Err(format!("event_source scheme `{other}://` is not a broker ckp reads (nats, amqp, sqs, mqtt)")),
        }
    }

    /// The kind, as metrics and messages name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Nats { .. } => "nats",
            Source::Amqp { .. } => "amqp",
            Source::Sqs { .. } => "sqs",
            Source::Mqtt { .. } => "mqtt",
        }
    }

    /// The broker's address as an `http://host:port/` URL, for the egress policy (SQS: its endpoint, if set).
    pub fn destination(&self) -> Option<String> {
        match self {
            Source::Nats { host, port, .. } | Source::Amqp { host, port, .. } | Source::Mqtt { host, port, .. } => {
                Some(format!("http://{}:{port}/", bracketed(host)))
            }
            Source::Sqs { queue: SqsQueue::Url(u), endpoint: None, .. } => Some(u.clone()),
            Source::Sqs { endpoint, .. } => endpoint.clone(),
        }
    }

    /// The source without credentials (every other part kept).
    pub fn redacted(&self) -> String {
        let mut query: Vec<(&str, String)> = Vec::new();
        let base = match self {
            Source::Nats { host, port, subject, stream, durable, deliver_new, .. } => {
                query.push(("stream", stream.clone()));
                if let Some(d) = durable {
                    query.push(("durable", d.clone()));
                }
                if *deliver_new {
                    query.push(("deliver", "new".into()));
                }
                format!("nats://{}:{port}/{subject}", bracketed(host))
            }
            Source::Amqp { host, port, vhost, queue, prefetch, binding, .. } => {
                query.push(("queue", queue.clone()));
                query.push(("prefetch", prefetch.to_string()));
                if let Some((x, k)) = binding {
                    query.push(("exchange", x.clone()));
                    query.push(("binding_key", k.clone()));
                }
                let vhost = if vhost == "/" { "" } else { vhost.as_str() };
                format!("amqp://{}:{port}/{vhost}", bracketed(host))
            }
            Source::Sqs { queue, region, endpoint } => {
                let base = match queue {
                    SqsQueue::Name(q) => format!("sqs://{q}"),
                    SqsQueue::Url(u) => {
                        query.push(("queue_url", u.clone()));
                        "sqs://".to_owned()
                    }
                };
                if let Some(r) = region {
                    query.push(("region", r.clone()));
                }
                if let Some(e) = endpoint {
                    query.push(("endpoint", e.clone()));
                }
                base
            }
            Source::Mqtt { host, port, topic, client_id, id_pointer, .. } => {
                if let Some(c) = client_id {
                    query.push(("client_id", c.clone()));
                }
                if let Some(p) = id_pointer {
                    query.push(("id_pointer", p.clone()));
                }
                format!("mqtt://{}:{port}/{topic}", bracketed(host))
            }
        };
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        match query.is_empty() {
            true => base,
            false => format!("{base}?{}", query.join("&")),
        }
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

/// A URL shown in a message: without what could be a password.
fn shown(url: &str) -> String {
    match url.split_once('@') {
        Some((_, rest)) => format!("…@{rest}"),
        None => url.to_owned(),
    }
}

/// The parts of `[user:pass@]host[:port][/path][?query]`.
struct Parts {
    auth: Option<(String, String)>,
    host: String,
    port: Option<u16>,
    path: String,
    query: Vec<(String, String)>,
}

impl Parts {
    fn get(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn check_keys(&self, scheme: &str, known: &[&str]) -> Result<(), String> {
        match self.query.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => {
                Err(format!("{scheme}:// event_source has an unknown parameter `{k}` (known: {})", known.join(", ")))
            }
            None => Ok(()),
        }
    }
}

fn split(rest: &str, scheme: &str) -> Result<Parts, String> {
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
    let (auth, hostport) = match authority.rsplit_once('@') {
        Some((creds, hp)) => {
            let (u, p) = creds.split_once(':').unwrap_or((creds, ""));
            (Some((decode(u)?, decode(p)?)), hp)
        }
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) =
            v6.split_once(']').ok_or_else(|| format!("{scheme}:// host `{hostport}` is not closed by ]"))?;
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{scheme}:// port `{p}` is not a port number"))?,
        ),
    };
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((decode(k)?, decode(v)?));
    }
    Ok(Parts { auth, host, port, path: decode(path)?, query: pairs })
}

/// Percent-decoding (`+` stays `+`: MQTT topics use it).
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else { return Err(format!("`{s}` has a bad percent-escape")) };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

fn need_host(p: &Parts, scheme: &str) -> Result<(), String> {
    match p.host.is_empty() {
        true => Err(format!("{scheme}:// event_source needs a host")),
        false => Ok(()),
    }
}

fn short(what: &str, v: &str) -> Result<String, String> {
    match v.len() {
        0 => Err(format!("{what} must not be empty")),
        n if n > SHORT_STR => Err(format!("{what} is longer than {SHORT_STR} bytes")),
        _ => Ok(v.to_owned()),
    }
}

fn nats(rest: &str) -> Result<Source, String> {
    let p = split(rest, "nats")?;
    p.check_keys("nats", &["stream", "durable", "deliver"])?;
    need_host(&p, "nats")?;
    if p.path.is_empty() {
        return Err("nats:// event_source needs a subject: nats://HOST:PORT/SUBJECT?stream=NAME".into());
    }
    let stream = p.get("stream").ok_or("nats:// event_source needs ?stream=NAME (the JetStream stream)")?;
    let name_ok = |s: &str| !s.is_empty() && s.len() <= 255 && !s.contains(['.', '*', '>', ' ', '/', '\\']);
    if !name_ok(stream) {
        return Err(format!("nats:// stream `{stream}` is not a stream name (no dots, wildcards or spaces)"));
    }
    let durable = p.get("durable").map(str::to_owned);
    if let Some(d) = durable.as_deref().filter(|d| !name_ok(d)) {
        return Err(format!("nats:// durable `{d}` is not a consumer name (no dots, wildcards or spaces)"));
    }
    let deliver_new = match p.get("deliver") {
        None | Some("all") => false,
        Some("new") => true,
        Some(other) => return Err(format!("nats:// deliver must be `all` or `new`, not `{other}`")),
    };
    if p.path.contains(' ') {
        return Err(format!("nats:// subject `{}` contains a space", p.path));
    }
    Ok(Source::Nats {
        host: p.host.clone(),
        port: p.port.unwrap_or(4222),
        auth: p.auth.clone(),
        subject: p.path.clone(),
        stream: stream.to_owned(),
        durable,
        deliver_new,
    })
}

fn amqp(rest: &str) -> Result<Source, String> {
    let p = split(rest, "amqp")?;
    p.check_keys("amqp", &["queue", "prefetch", "exchange", "binding_key"])?;
    need_host(&p, "amqp")?;
    let queue = short("amqp:// queue", p.get("queue").ok_or("amqp:// event_source needs ?queue=NAME")?)?;
    let prefetch = match p.get("prefetch") {
        None => 32,
        Some(n) => n
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("amqp:// prefetch `{n}` must be 1 to 65535"))?,
    };
    let binding = match (p.get("exchange"), p.get("binding_key")) {
        (None, None) => None,
        (Some(x), key) => Some((
            short("amqp:// exchange", x)?,
            key.map(|k| short("amqp:// binding_key", k)).transpose()?.unwrap_or_default(),
        )),
        (None, Some(_)) => return Err("amqp:// binding_key needs exchange".into()),
    };
    let vhost = if p.path.is_empty() { "/".to_owned() } else { short("amqp:// virtual host", &p.path)? };
    Ok(Source::Amqp {
        host: p.host.clone(),
        port: p.port.unwrap_or(5672),
        auth: p.auth.clone(),
        vhost,
        queue,
        prefetch,
        binding,
    })
}

fn sqs(rest: &str) -> Result<Source, String> {
    // `sqs://https://…`: the queue's URL itself.
    if rest.starts_with("https://") || rest.starts_with("http://") {
        let (url, query) = rest.split_once('?').unwrap_or((rest, ""));
        let p = split(&format!("x?{query}"), "sqs")?;
        p.check_keys("sqs", &["region", "endpoint"])?;
        return Ok(Source::Sqs {
            queue: SqsQueue::Url(url.to_owned()),
            region: p.get("region").map(str::to_owned),
            endpoint: p.get("endpoint").map(str::to_owned),
        });
    }
    let p = split(rest, "sqs")?;
    p.check_keys("sqs", &["region", "endpoint", "queue_url"])?;
    let queue = match (p.host.is_empty(), p.get("queue_url")) {
        (_, Some(u)) if u.starts_with("https://") || u.starts_with("http://") => SqsQueue::Url(u.to_owned()),
        (_, Some(u)) => return Err(format!("sqs:// queue_url `{u}` is not an http(s) URL")),
        (false, None) => {
            let name = decode(&p.host)?;
            let ok =
                name.len() <= 80 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !ok {
                return Err(format!("sqs:// queue `{name}` is not a queue name (up to 80 letters, digits, - and _)"));
            }
            SqsQueue::Name(name)
        }
        (true, None) => return Err("sqs:// event_source needs a queue: sqs://QUEUE or sqs://?queue_url=URL".into()),
    };
    let endpoint = p.get("endpoint").map(str::to_owned);
    if let Some(e) = endpoint.as_deref().filter(|e| !e.starts_with("https://") && !e.starts_with("http://")) {
        return Err(format!("sqs:// endpoint `{e}` is not an http(s) URL"));
    }
    Ok(Source::Sqs { queue, region: p.get("region").map(str::to_owned), endpoint })
}

fn mqtt(rest: &str) -> Result<Source, String> {
    let p = split(rest, "mqtt")?;
    p.check_keys("mqtt", &["client_id", "id_pointer"])?;
    need_host(&p, "mqtt")?;
    if p.path.is_empty() {
        return Err("mqtt:// event_source needs a topic: mqtt://HOST:PORT/TOPIC".into());
    }
    let client_id = p.get("client_id").map(str::to_owned);
    if let Some(id) = client_id.as_deref().filter(|id| id.is_empty() || id.starts_with(' ') || id.len() > 128) {
        return Err(format!("mqtt:// client_id `{id}` must be 1 to 128 characters and not start with a space"));
    }
    let id_pointer = p.get("id_pointer").map(str::to_owned);
    if let Some(ptr) = id_pointer.as_deref().filter(|ptr| !ptr.starts_with('/')) {
        return Err(format!("mqtt:// id_pointer `{ptr}` is not a JSON pointer (it starts with /)"));
    }
    Ok(Source::Mqtt {
        host: p.host.clone(),
        port: p.port.unwrap_or(1883),
        auth: p.auth.clone(),
        topic: p.path.clone(),
        client_id,
        id_pointer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_broker_with_its_defaults() {
        let n = Source::parse("nats://127.0.0.1/orders.>?stream=ORDERS").unwrap();
        assert!(matches!(&n, Source::Nats { port: 4222, subject, stream, durable: None, deliver_new: false, .. }
            if subject == "orders.>" && stream == "ORDERS"));
        let a = Source::parse("amqp://u:p%40ss@rabbit:5673/prod?queue=inbox&prefetch=5&exchange=ex&binding_key=a.%23")
            .unwrap();
        assert!(
            matches!(&a, Source::Amqp { port: 5673, auth: Some((u, p)), vhost, queue, prefetch: 5, binding: Some((x, k)), .. }
            if u == "u" && p == "p@ss" && vhost == "prod" && queue == "inbox" && x == "ex" && k == "a.#")
        );
        assert!(
            matches!(Source::parse("amqp://h?queue=q").unwrap(), Source::Amqp { port: 5672, ref vhost, prefetch: 32, .. } if vhost == "/")
        );
        let s = Source::parse("sqs://jobs?region=eu-west-1").unwrap();
        assert_eq!(
            s,
            Source::Sqs { queue: SqsQueue::Name("jobs".into()), region: Some("eu-west-1".into()), endpoint: None }
        );
        let s = Source::parse("sqs://?queue_url=http://127.0.0.1:5000/123/jobs&region=us-east-1").unwrap();
        assert!(matches!(s, Source::Sqs { queue: SqsQueue::Url(ref u), .. } if u == "http://127.0.0.1:5000/123/jobs"));
        let s = Source::parse("sqs://https://sqs.us-east-1.amazonaws.com/1/q").unwrap();
        assert!(matches!(s, Source::Sqs { queue: SqsQueue::Url(ref u), .. } if u.ends_with("/1/q")));
        let m = Source::parse("mqtt://broker/plant/+/temp/#?id_pointer=/id").unwrap();
        assert!(matches!(&m, Source::Mqtt { port: 1883, topic, id_pointer: Some(_), .. } if topic == "plant/+/temp/#"));
        assert!(
            matches!(Source::parse("mqtt://[::1]:1884/a%23").unwrap(), Source::Mqtt { ref host, port: 1884, ref topic, .. } if host == "::1" && topic == "a#")
        );
    }

    #[test]
    fn bad_sources_are_refused_with_the_part_at_fault() {
        let cases = [
            ("orders", "names no broker"),
            ("kafka://t", "not supported"),
            ("amqps://h?queue=q", "TLS"),
            ("ftp://x", "not a broker"),
            ("nats://h/subj", "?stream="),
            ("nats://h?stream=S", "needs a subject"),
            ("nats://h/s?stream=a.b", "not a stream name"),
            ("nats://h:99999/s?stream=S", "not a port"),
            ("nats://h/s?stream=S&deliver=last", "deliver"),
            ("nats://h/s?stream=S&bogus=1", "unknown parameter `bogus`"),
            ("amqp://h", "?queue="),
            ("amqp://h?queue=q&prefetch=0", "prefetch"),
            ("amqp://h?queue=q&binding_key=k", "needs exchange"),
            ("sqs://", "needs a queue"),
            ("sqs://bad%20name", "not a queue name"),
            ("sqs://q?endpoint=ftp://x", "not an http"),
            ("mqtt://h", "needs a topic"),
            ("mqtt://h/t?id_pointer=id", "JSON pointer"),
            ("mqtt:///t", "needs a host"),
            ("nats://h/s%zz?stream=S", "percent-escape"),
        ];
        for (url, part) in cases {
            let e = Source::parse(url).unwrap_err();
            assert!(e.contains(part), "{url}: {e}");
        }
        let long = format!("amqp://h?queue={}", "q".repeat(256));
        assert!(Source::parse(&long).unwrap_err().contains("longer than 255"));
    }

    #[test]
    fn credentials_never_show() {
        let s = Source::parse("amqp://user:hunter2@h/v?queue=q").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!s.redacted().contains("hunter2"));
        assert!(!Source::parse("bogus:hunter2@h").unwrap_err().contains("hunter2"));
        assert_eq!(s.destination().as_deref(), Some("http://h:5672/"));
        assert_eq!(s.redacted(), "amqp://h:5672/v?queue=q&prefetch=32");
        let n = Source::parse("nats://u:pw@h/a.b?stream=S&durable=D&deliver=new").unwrap();
        assert_eq!(n.redacted(), "nats://h:4222/a.b?stream=S&durable=D&deliver=new");
        assert_eq!(Source::parse(&n.redacted()).unwrap().redacted(), n.redacted());
    }
}
