//! Message broker consumers for ckp's event triggers: NATS JetStream (durable pull consumer), RabbitMQ (AMQP 0-9-1,
//! manual acknowledgements, prefetch), Amazon SQS (the JSON protocol, SigV4) and MQTT 3.1.1 (QoS 1, persistent
//! session, manual acknowledgements).
//!
//! This crate owns the brokers' protocols and nothing of ckp's: a [`Consumer`] yields [`Delivery`]s, each with an
//! id that is the same on every redelivery of that message, and the caller acknowledges one only after it has
//! durably recorded what the message caused (ckp: the run created under that id, in one transaction). So a crash
//! between the two redelivers a message whose id is already recorded, and the caller starts nothing twice.
//! [`publish`] sends messages (the tests' publishers, and an operator's check that a source works).

mod amqp;
mod filter;
mod mqtt;
mod nats;
pub mod publish;
pub mod source;
mod sqs;

use std::collections::BTreeMap;
use std::time::Duration;

pub use filter::Filter;
pub use source::{Source, SqsQueue};

/// A broker failure: connecting, consuming or acknowledging. Its text never holds a credential.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(pub String);

impl BrokerError {
    pub(crate) fn new(what: impl std::fmt::Display, e: impl std::fmt::Display) -> BrokerError {
        BrokerError(format!("{what}: {e}"))
    }
}

/// What a consumer needs besides its source.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Names the consumer when the source does not: the NATS durable, the MQTT client id and the AMQP consumer
    /// tag. One per registration, the same on every start, so a restarted consumer resumes the same session.
    pub name: String,
    /// SQS: the region when the source names none.
    pub aws_region: String,
    /// SQS: credentials (access key id, secret, session token).
    pub aws_credentials: Option<(String, String, Option<String>)>,
    /// SQS: the endpoint when the source names none (else AWS's).
    pub aws_endpoint: Option<String>,
    /// The largest payload accepted (bigger messages are delivered with an empty payload and `oversized`).
    pub max_payload: usize,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            name: "ckp".into(),
            aws_region: "us-east-1".into(),
            aws_credentials: None,
            aws_endpoint: None,
            max_payload: 1 << 20,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// One message, to be acknowledged once its effect is durable.
#[derive(Debug)]
pub struct Delivery {
    /// The message's identity, the same on each of its redeliveries (see each broker's module).
    pub id: String,
    /// The subject, routing key, queue or topic it arrived on.
    pub subject: String,
    /// Its headers, properties or attributes, as text.
    pub headers: BTreeMap<String, String>,
    /// Its body.
    pub payload: Vec<u8>,
    /// Whether the broker says it was delivered before.
    pub redelivered: bool,
    ack: Ack,
}

#[derive(Debug)]
enum Ack {
    Nats(Box<async_nats::jetstream::Message>),
    Amqp(amqp::Acker),
    Sqs(sqs::Acker),
    Mqtt(mqtt::Acker),
    /// Nothing to acknowledge (tests of the callers).
    None,
}

impl Delivery {
    /// A delivery that needs no acknowledgement, for tests of what consumes deliveries.
    pub fn detached(id: &str, subject: &str, headers: BTreeMap<String, String>, payload: Vec<u8>) -> Delivery {
        Delivery { id: id.into(), subject: subject.into(), headers, payload, redelivered: false, ack: Ack::None }
    }

    /// Tells the broker the message is handled: it is not delivered again.
    pub async fn ack(self) -> Result<(), BrokerError> {
        match self.ack {
            Ack::Nats(m) => m.double_ack().await.map_err(|e| BrokerError::new("nats ack", e)),
            Ack::Amqp(a) => a.ack().await,
            Ack::Sqs(a) => a.ack().await,
            Ack::Mqtt(a) => a.ack().await,
            Ack::None => Ok(()),
        }
    }

    /// Tells the broker the message is still being worked on (NATS: in progress; SQS: a longer visibility
    /// timeout), while the caller waits to handle it (a concurrency limit, a database that is down).
    pub async fn keep(&self) -> Result<(), BrokerError> {
        match &self.ack {
            Ack::Nats(m) => m
                .ack_with(async_nats::jetstream::AckKind::Progress)
                .await
                .map_err(|e| BrokerError::new("nats in-progress ack", e)),
            Ack::Sqs(a) => a.extend().await,
            Ack::Amqp(_) | Ack::Mqtt(_) | Ack::None => Ok(()),
        }
    }
}

/// A connected consumer.
#[derive(Debug)]
pub struct Consumer {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Nats(Box<nats::Consumer>),
    Amqp(amqp::Consumer),
    Sqs(sqs::Consumer),
    Mqtt(mqtt::Consumer),
}

impl Consumer {
    /// Connects to `source` and starts consuming (creating the NATS stream and consumer, the AMQP queue, the MQTT
    /// subscription when absent).
    pub async fn connect(source: &Source, settings: &Settings) -> Result<Consumer, BrokerError> {
        let connecting = async {
            Ok(Consumer {
                inner: match source {
                    Source::Nats { .. } => Inner::Nats(Box::new(nats::Consumer::connect(source, settings).await?)),
                    Source::Amqp { .. } => Inner::Amqp(amqp::Consumer::connect(source, settings).await?),
                    Source::Sqs { .. } => Inner::Sqs(sqs::Consumer::connect(source, settings).await?),
                    Source::Mqtt { .. } => Inner::Mqtt(mqtt::Consumer::connect(source, settings).await?),
                },
            })
        };
        match tokio::time::timeout(settings.connect_timeout, connecting).await {
            Ok(r) => r,
            Err(_) => Err(BrokerError(format!(
                "connecting to {} timed out after {} s",
                source.redacted(),
                settings.connect_timeout.as_secs()
            ))),
        }
    }

    /// The next message; an error means the connection is lost (connect again).
    pub async fn next(&mut self) -> Result<Delivery, BrokerError> {
        match &mut self.inner {
            Inner::Nats(c) => c.next().await,
            Inner::Amqp(c) => c.next().await,
            Inner::Sqs(c) => c.next().await,
            Inner::Mqtt(c) => c.next().await,
        }
    }
}

/// A source of another kind given to a broker's module (the dispatch in [`Consumer::connect`] prevents it).
pub(crate) fn not_kind(kind: &str) -> BrokerError {
    BrokerError(format!("not a {kind} event source"))
}

/// The payload cut to `max` bytes: empty with an `oversized` header when longer.
pub(crate) fn bounded(payload: Vec<u8>, max: usize, headers: &mut BTreeMap<String, String>) -> Vec<u8> {
    if payload.len() <= max {
        return payload;
    }
    headers.insert("oversized".into(), payload.len().to_string());
    Vec::new()
}

/// SHA-256 in hex of the parts, each length-prefixed (ids of messages that carry none).
pub(crate) fn digest(parts: &[&[u8]]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
