//! RabbitMQ (AMQP 0-9-1): one connection and channel per consumer, the queue declared durable (and bound to the
//! source's exchange) when absent, `basic.qos` prefetch, manual acknowledgements. Several processes consuming one
//! queue share its messages. A message's id is its `message_id` property; a message without one is known by the
//! SHA-256 of its exchange, routing key and body (two identical messages then count as one: publishers should set
//! `message_id`).

use std::collections::BTreeMap;

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicQosArguments, Channel, ConsumerMessage, QueueBindArguments,
    QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use tokio::sync::mpsc;

use crate::{Ack, BrokerError, Delivery, Settings, Source, bounded, digest};

pub(crate) struct Consumer {
    _connection: Connection,
    channel: Channel,
    rx: mpsc::UnboundedReceiver<ConsumerMessage>,
    max_payload: usize,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("amqp::Consumer")
    }
}

/// Acknowledges one delivery on its channel.
pub(crate) struct Acker {
    channel: Channel,
    tag: u64,
}

impl std::fmt::Debug for Acker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("amqp::Acker").field("tag", &self.tag).finish_non_exhaustive()
    }
}

impl Acker {
    pub(crate) async fn ack(self) -> Result<(), BrokerError> {
        self.channel
            .basic_ack(BasicAckArguments::new(self.tag, false))
            .await
            .map_err(|e| BrokerError::new("amqp ack", e))
    }
}

/// An open connection and channel for `source`.
pub(crate) async fn open(source: &Source, settings: &Settings) -> Result<(Connection, Channel), BrokerError> {
    let Source::Amqp { host, port, auth, vhost, .. } = source else { return Err(crate::not_kind("AMQP")) };
    let (user, pass) = auth.clone().unwrap_or_else(|| ("guest".into(), "guest".into()));
    let mut args = OpenConnectionArguments::new(host, *port, &user, &pass);
    args.virtual_host(vhost).connection_name(&format!("ckp {}", settings.name));
    let what = || format!("connecting to {}", source.redacted());
    let connection = Connection::open(&args).await.map_err(|e| BrokerError::new(what(), e))?;
    let channel = connection.open_channel(None).await.map_err(|e| BrokerError::new(what(), e))?;
    Ok((connection, channel))
}

/// Declares the source's queue (durable) and its binding.
pub(crate) async fn declare(source: &Source, channel: &Channel) -> Result<(), BrokerError> {
    let Source::Amqp { queue, binding, .. } = source else { return Err(crate::not_kind("AMQP")) };
    channel
        .queue_declare(QueueDeclareArguments::durable_client_named(queue))
        .await
        .map_err(|e| BrokerError::new(format!("declaring the queue {queue}"), e))?;
    if let Some((exchange, key)) = binding {
        channel
            .queue_bind(QueueBindArguments::new(queue, exchange, key))
            .await
            .map_err(|e| BrokerError::new(format!("binding the queue {queue} to {exchange}"), e))?;
    }
    Ok(())
}

impl Consumer {
    pub(crate) async fn connect(source: &Source, settings: &Settings) -> Result<Consumer, BrokerError> {
        let Source::Amqp { queue, prefetch, .. } = source else { return Err(crate::not_kind("AMQP")) };
        let (connection, channel) = open(source, settings).await?;
        declare(source, &channel).await?;
        channel
            .basic_qos(BasicQosArguments::new(0, *prefetch, false))
            .await
            .map_err(|e| BrokerError::new("amqp basic.qos", e))?;
        let tag = format!("{}-{}", settings.name, std::process::id());
        let mut args = BasicConsumeArguments::new(queue, &tag);
        args.manual_ack(true);
        let (_, rx) = channel
            .basic_consume_rx(args.finish())
            .await
            .map_err(|e| BrokerError::new(format!("consuming the queue {queue}"), e))?;
        Ok(Consumer { _connection: connection, channel, rx, max_payload: settings.max_payload })
    }

    pub(crate) async fn next(&mut self) -> Result<Delivery, BrokerError> {
        loop {
            let Some(message) = self.rx.recv().await else {
                return Err(BrokerError("the AMQP channel closed".into()));
            };
            let Some(deliver) = message.deliver else { continue };
            let body = message.content.unwrap_or_default();
            let mut headers = BTreeMap::new();
            let mut id = None;
            if let Some(props) = &message.basic_properties {
                if let Some(table) = props.headers() {
                    for (name, value) in table.as_ref() {
                        let text = match value {
                            amqprs::FieldValue::S(s) => s.as_ref().clone(),
                            other => other.to_string(),
                        };
                        headers.insert(name.to_string(), text);
                    }
                }
                if let Some(t) = props.content_type() {
                    headers.insert("content_type".into(), t.clone());
                }
                if let Some(t) = props.message_type() {
                    headers.insert("type".into(), t.clone());
                }
                id = props.message_id().filter(|m| !m.is_empty()).cloned();
            }
            headers.insert("exchange".into(), deliver.exchange().clone());
            let id = id.unwrap_or_else(|| {
                format!("sha256:{}", digest(&[deliver.exchange().as_bytes(), deliver.routing_key().as_bytes(), &body]))
            });
            let payload = bounded(body, self.max_payload, &mut headers);
            return Ok(Delivery {
                id,
                subject: deliver.routing_key().clone(),
                headers,
                payload,
                redelivered: deliver.redelivered(),
                ack: Ack::Amqp(Acker { channel: self.channel.clone(), tag: deliver.delivery_tag() }),
            });
        }
    }
}
