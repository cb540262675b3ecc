//! MQTT 3.1.1: a persistent session (clean session off, one client id per registration, the same on every start),
//! a QoS 1 subscription and manual acknowledgements: a message not acknowledged when the process dies is delivered
//! again when the session reconnects. MQTT 3.1.1 messages carry no id of their own (packet ids are reused), so a
//! message's id is the value at the source's `id_pointer` in its JSON payload, or the SHA-256 of its topic and
//! payload (identical messages then count as one). One session belongs to one client: MQTT consumers run in one
//! process (the leader), whatever the other brokers do.

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;

use crate::{Ack, BrokerError, Delivery, Settings, Source, bounded, digest};

pub(crate) struct Consumer {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Result<Publish, String>>,
    id_pointer: Option<String>,
    max_payload: usize,
    poller: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mqtt::Consumer")
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// Acknowledges one message.
#[derive(Debug)]
pub(crate) struct Acker {
    client: AsyncClient,
    publish: Publish,
}

impl Acker {
    pub(crate) async fn ack(self) -> Result<(), BrokerError> {
        self.client.ack(&self.publish).await.map_err(|e| BrokerError::new("mqtt ack", e))
    }
}

/// Options for a client of `source` named `client_id`.
pub(crate) fn options(source: &Source, client_id: &str, settings: &Settings) -> Result<MqttOptions, BrokerError> {
    let Source::Mqtt { host, port, auth, .. } = source else { return Err(crate::not_kind("MQTT")) };
    let mut options = MqttOptions::new(client_id, host.clone(), *port);
    options.set_keep_alive(Duration::from_secs(30));
    let max = settings.max_payload.saturating_add(64 * 1024);
    options.set_max_packet_size(max, max);
    if let Some((user, pass)) = auth {
        options.set_credentials(user.clone(), pass.clone());
    }
    Ok(options)
}

/// Polls `events` until the broker accepts the connection.
pub(crate) async fn connected(events: &mut EventLoop, source: &Source) -> Result<(), BrokerError> {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(BrokerError::new(format!("connecting to {}", source.redacted()), e)),
        }
    }
}

impl Consumer {
    pub(crate) async fn connect(source: &Source, settings: &Settings) -> Result<Consumer, BrokerError> {
        let Source::Mqtt { topic, client_id, id_pointer, .. } = source else { return Err(crate::not_kind("MQTT")) };
        let client_id = client_id.clone().unwrap_or_else(|| settings.name.clone());
        let mut options = options(source, &client_id, settings)?;
        options.set_clean_session(false).set_manual_acks(true);
        let (client, mut events) = AsyncClient::new(options, 64);
        connected(&mut events, source).await?;
        client
            .subscribe(topic.clone(), QoS::AtLeastOnce)
            .await
            .map_err(|e| BrokerError::new(format!("subscribing to {topic}"), e))?;
        // The event loop must be polled for anything to move, acknowledgements included; it ends at the first
        // connection error, and the consumer's owner connects again (the session keeps what was not acknowledged).
        // The poller never waits for the consumer (an unbounded channel): the loop hands out a batch read from the
        // network one message per poll before it takes requests again, so a poller waiting for room while the
        // consumer waits to queue an acknowledgement would stop both. What is unacknowledged is bounded by the
        // broker's in-flight window.
        let (tx, rx) = mpsc::unbounded_channel();
        let poller = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send(Ok(p)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        Ok(Consumer { client, rx, id_pointer: id_pointer.clone(), max_payload: settings.max_payload, poller })
    }

    pub(crate) async fn next(&mut self) -> Result<Delivery, BrokerError> {
        let publish = match self.rx.recv().await {
            None => return Err(BrokerError("the MQTT connection ended".into())),
            Some(Err(e)) => return Err(BrokerError::new("mqtt", e)),
            Some(Ok(p)) => p,
        };
        let named = self.id_pointer.as_deref().and_then(|ptr| {
            let doc: serde_json::Value = serde_json::from_slice(&publish.payload).ok()?;
            match doc.pointer(ptr)? {
                serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        });
        let id = named.unwrap_or_else(|| format!("sha256:{}", digest(&[publish.topic.as_bytes(), &publish.payload])));
        let mut headers = BTreeMap::new();
        headers.insert("retain".into(), publish.retain.to_string());
        let payload = bounded(publish.payload.to_vec(), self.max_payload, &mut headers);
        Ok(Delivery {
            id,
            subject: publish.topic.clone(),
            headers,
            payload,
            redelivered: publish.dup,
            ack: Ack::Mqtt(Acker { client: self.client.clone(), publish }),
        })
    }
}
