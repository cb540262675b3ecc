//! NATS JetStream: a durable pull consumer with explicit acknowledgements on the source's stream (created over the
//! subject when absent), filtered to the subject. Every process that consumes with the same durable name shares
//! the consumer (each message goes to one of them). A message's id is `STREAM:SEQUENCE:PUBLISHED` (its stream
//! sequence and the time the server stored it), the same on every redelivery and unique even if the stream is
//! deleted and created again; a `Nats-Msg-Id` header, when the publisher set one, is in the headers.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::DeliverPolicy, consumer::pull};
use futures_util::StreamExt;

use crate::{Ack, BrokerError, Delivery, Settings, Source, bounded};

/// How long the server waits for an acknowledgement before delivering a message again.
const ACK_WAIT: Duration = Duration::from_secs(30);

pub(crate) struct Consumer {
    messages: pull::Stream,
    max_payload: usize,
    _client: async_nats::Client,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("nats::Consumer")
    }
}

/// A connected client for `source`.
pub(crate) async fn client(source: &Source, settings: &Settings) -> Result<async_nats::Client, BrokerError> {
    let Source::Nats { host, port, auth, .. } = source else { return Err(crate::not_kind("NATS")) };
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(settings.connect_timeout)
        .name(format!("ckp {}", settings.name));
    if let Some((user, pass)) = auth {
        options = options.user_and_password(user.clone(), pass.clone());
    }
    options
        .connect(format!("{host}:{port}"))
        .await
        .map_err(|e| BrokerError::new(format!("connecting to {}", source.redacted()), e))
}

/// The stream, created over `subject` when absent.
pub(crate) async fn stream(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<jetstream::stream::Stream, BrokerError> {
    // An existing stream is used as it is (its subjects and limits are the operator's).
    let config =
        jetstream::stream::Config { name: stream.to_owned(), subjects: vec![subject.to_owned()], ..Default::default() };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| BrokerError::new(format!("reading or creating the JetStream stream {stream}"), e))
}

impl Consumer {
    pub(crate) async fn connect(source: &Source, settings: &Settings) -> Result<Consumer, BrokerError> {
        let Source::Nats { subject, stream: name, durable, deliver_new, .. } = source else {
            return Err(crate::not_kind("NATS"));
        };
        let client = client(source, settings).await?;
        let js = jetstream::new(client.clone());
        let stream = stream(&js, name, subject).await?;
        let durable = durable.clone().unwrap_or_else(|| settings.name.clone());
        let config = pull::Config {
            durable_name: Some(durable.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            deliver_policy: if *deliver_new { DeliverPolicy::New } else { DeliverPolicy::All },
            filter_subject: subject.clone(),
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer(&durable, config)
            .await
            .map_err(|e| BrokerError::new(format!("creating the durable consumer {durable} on {name}"), e))?;
        let messages =
            consumer.messages().await.map_err(|e| BrokerError::new(format!("consuming {}", source.redacted()), e))?;
        Ok(Consumer { messages, max_payload: settings.max_payload, _client: client })
    }

    pub(crate) async fn next(&mut self) -> Result<Delivery, BrokerError> {
        loop {
            let message = match self.messages.next().await {
                None => return Err(BrokerError("the NATS consumer's stream ended".into())),
                Some(Err(e)) => return Err(BrokerError::new("nats", e)),
                Some(Ok(m)) => m,
            };
            let (id, redelivered) = match message.info() {
                Ok(info) => (
                    format!("{}:{}:{}", info.stream, info.stream_sequence, info.published.unix_timestamp_nanos()),
                    info.delivered > 1,
                ),
                // Not a JetStream delivery (no ack subject): nothing to key it by or acknowledge.
                Err(_) => continue,
            };
            let mut headers = BTreeMap::new();
            if let Some(h) = &message.headers {
                for (name, values) in h.iter() {
                    let joined: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
                    headers.insert(name.to_string(), joined.join(","));
                }
            }
            let payload = bounded(message.payload.to_vec(), self.max_payload, &mut headers);
            return Ok(Delivery {
                id,
                subject: message.subject.to_string(),
                headers,
                payload,
                redelivered,
                ack: Ack::Nats(Box::new(message)),
            });
        }
    }
}
