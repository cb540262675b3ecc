//! Sending messages to a source: what the brokers' tests publish with, and what an operator can use to check that
//! a source works end to end. Each call connects, publishes every message with the broker's delivery guarantee
//! (NATS: the stream's acknowledgement; AMQP: persistent messages, then a clean close; SQS: `SendMessage`'s answer;
//! MQTT: QoS 1, each `PUBACK` awaited) and disconnects.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::{BrokerError, Settings, Source};

/// One message to send.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// Its id where the broker carries one (NATS `Nats-Msg-Id`, AMQP `message_id`, SQS none: SQS assigns it).
    pub id: Option<String>,
    /// A subject, routing key or topic other than the source's.
    pub subject: Option<String>,
    /// Headers (NATS headers, AMQP headers, SQS message attributes; MQTT 3.1.1 has none).
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub payload: Vec<u8>,
}

/// Creates what a consumer of `source` reads from, when absent, so that nothing published before the consumer
/// first connects is lost: the NATS stream, the AMQP queue (and its binding), the SQS queue (by name), the MQTT
/// session of the source's `client_id` (else `settings.name`) with its QoS 1 subscription.
pub async fn prepare(source: &Source, settings: &Settings) -> Result<(), BrokerError> {
    match source {
        Source::Nats { subject, stream, .. } => {
            let client = crate::nats::client(source, settings).await?;
            let js = async_nats::jetstream::new(client);
            crate::nats::stream(&js, stream, subject).await.map(|_| ())
        }
        Source::Amqp { .. } => {
            let (connection, channel) = crate::amqp::open(source, settings).await?;
            crate::amqp::declare(source, &channel).await?;
            channel.close().await.map_err(|e| BrokerError::new("amqp close", e))?;
            connection.close().await.map_err(|e| BrokerError::new("amqp close", e))
        }
        Source::Sqs { queue: crate::SqsQueue::Name(name), .. } => {
            let client = crate::sqs::Client::unresolved(source, settings)?;
            client.call("CreateQueue", json!({ "QueueName": name })).await.map(|_| ())
        }
        Source::Sqs { .. } => Ok(()),
        Source::Mqtt { topic, client_id, .. } => {
            use rumqttc::{AsyncClient, Event, Packet, QoS};
            let id = client_id.clone().unwrap_or_else(|| settings.name.clone());
            let mut options = crate::mqtt::options(source, &id, settings)?;
            options.set_clean_session(false);
            let (client, mut events) = AsyncClient::new(options, 8);
            crate::mqtt::connected(&mut events, source).await?;
            client
                .subscribe(topic.clone(), QoS::AtLeastOnce)
                .await
                .map_err(|e| BrokerError::new("mqtt subscribe", e))?;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => break,
                    Ok(_) => {}
                    Err(e) => return Err(BrokerError::new("mqtt subscribe", e)),
                }
            }
            let _ = client.disconnect().await;
            // Turn the loop until the disconnect is sent (it then reports the connection closed).
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), async { while events.poll().await.is_ok() {} })
                    .await;
            Ok(())
        }
    }
}

/// Sends `messages` to `source`, in order.
pub async fn publish(source: &Source, settings: &Settings, messages: &[Message]) -> Result<(), BrokerError> {
    match source {
        Source::Nats { subject, stream, .. } => {
            let client = crate::nats::client(source, settings).await?;
            let js = async_nats::jetstream::new(client.clone());
            crate::nats::stream(&js, stream, subject).await?;
            for m in messages {
                let mut headers = async_nats::HeaderMap::new();
                for (k, v) in &m.headers {
                    headers.insert(k.as_str(), v.as_str());
                }
                if let Some(id) = &m.id {
                    headers.insert("Nats-Msg-Id", id.as_str());
                }
                let to = m.subject.clone().unwrap_or_else(|| subject.clone());
                let ack = js
                    .publish_with_headers(to, headers, m.payload.clone().into())
                    .await
                    .map_err(|e| BrokerError::new("nats publish", e))?;
                ack.await.map_err(|e| BrokerError::new("nats publish acknowledgement", e))?;
            }
            Ok(())
        }
        Source::Amqp { queue, binding, .. } => {
            use amqprs::channel::BasicPublishArguments;
            let (connection, channel) = crate::amqp::open(source, settings).await?;
            crate::amqp::declare(source, &channel).await?;
            for m in messages {
                let mut props = amqprs::BasicProperties::default();
                props.with_persistence(true);
                if let Some(id) = &m.id {
                    props.with_message_id(id);
                }
                if !m.headers.is_empty() {
                    let mut table = amqprs::FieldTable::new();
                    for (k, v) in &m.headers {
                        let (Ok(name), Ok(value)) = (k.as_str().try_into(), v.as_str().try_into()) else {
                            return Err(BrokerError(format!("amqp header `{k}` is too long")));
                        };
                        table.insert(name, amqprs::FieldValue::S(value));
                    }
                    props.with_headers(table);
                }
                let (exchange, key) = match (&m.subject, binding) {
                    (Some(s), Some((x, _))) => (x.clone(), s.clone()),
                    (Some(s), None) => (String::new(), s.clone()),
                    (None, Some((x, k))) => (x.clone(), k.clone()),
                    (None, None) => (String::new(), queue.clone()),
                };
                if exchange.len() > 255 || key.len() > 255 {
                    return Err(BrokerError("amqp exchange or routing key longer than 255 bytes".into()));
                }
                channel
                    .basic_publish(props.finish(), m.payload.clone(), BasicPublishArguments::new(&exchange, &key))
                    .await
                    .map_err(|e| BrokerError::new("amqp publish", e))?;
            }
            // Closing waits for the broker's answer, so every message above has reached it.
            channel.close().await.map_err(|e| BrokerError::new("amqp close", e))?;
            connection.close().await.map_err(|e| BrokerError::new("amqp close", e))
        }
        Source::Sqs { .. } => {
            let client = crate::sqs::Client::new(source, settings).await?;
            for m in messages {
                let attributes: Map<String, Value> = m
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), json!({"DataType": "String", "StringValue": v})))
                    .collect();
                let mut body = json!({
                    "QueueUrl": client.queue_url(),
                    "MessageBody": String::from_utf8_lossy(&m.payload),
                });
                if !attributes.is_empty() {
                    body["MessageAttributes"] = Value::Object(attributes);
                }
                client.call("SendMessage", body).await?;
            }
            Ok(())
        }
        Source::Mqtt { topic, .. } => {
            use rumqttc::{AsyncClient, Event, Packet, QoS};
            let id = format!("{}-pub-{}", settings.name, std::process::id());
            let options = crate::mqtt::options(source, &id, settings)?;
            let (client, mut events) = AsyncClient::new(options, messages.len().clamp(1, 1024));
            crate::mqtt::connected(&mut events, source).await?;
            let mut acked = 0;
            let mut sent = 0;
            while acked < messages.len() {
                // Keep a window in flight, and the event loop turning (it sends them and reads the PUBACKs).
                while sent < messages.len() && sent - acked < 64 {
                    let m = &messages[sent];
                    let to = m.subject.clone().unwrap_or_else(|| topic.clone());
                    client
                        .publish(to, QoS::AtLeastOnce, false, m.payload.clone())
                        .await
                        .map_err(|e| BrokerError::new("mqtt publish", e))?;
                    sent += 1;
                }
                match events.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                    Ok(_) => {}
                    Err(e) => return Err(BrokerError::new("mqtt publish", e)),
                }
            }
            let _ = client.disconnect().await;
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), async { while events.poll().await.is_ok() {} })
                    .await;
            Ok(())
        }
    }
}
