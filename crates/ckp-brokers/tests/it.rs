//! The consumers against the real brokers on 127.0.0.1 (NATS with JetStream, RabbitMQ, Mosquitto): every message
//! published is received with a stable id, and one not acknowledged when its consumer goes away is received again
//! with the same id by the next consumer.
#![expect(clippy::panic, reason = "test helpers fail by panicking")]

use std::collections::BTreeSet;
use std::time::Duration;

use ckp_brokers::publish::{Message, prepare, publish};
use ckp_brokers::{Consumer, Settings, Source};

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id())
        + &format!(
            "{:x}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        )
}

fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| Message {
            id: Some(format!("m-{i}")),
            payload: format!(r#"{{"id": "m-{i}", "seq": {i}}}"#).into_bytes(),
            ..Message::default()
        })
        .collect()
}

/// Publishes `n`, takes `unacked` without acknowledging them and drops the consumer, then a new consumer receives
/// everything else and those again (same ids).
async fn round_trip(url: &str, n: usize, unacked: usize) {
    let source = Source::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let settings = Settings { name: unique("ckp-test-"), ..Settings::default() };
    let limit = Duration::from_secs(30);
    tokio::time::timeout(limit, prepare(&source, &settings))
        .await
        .unwrap_or_else(|_| panic!("{url}: prepare timed out"))
        .unwrap_or_else(|e| panic!("{url}: prepare: {e}"));
    tokio::time::timeout(limit, publish(&source, &settings, &messages(n)))
        .await
        .unwrap_or_else(|_| panic!("{url}: publish timed out"))
        .unwrap_or_else(|e| panic!("{url}: publish: {e}"));
    let mut first = Consumer::connect(&source, &settings).await.unwrap_or_else(|e| panic!("{url}: connect: {e}"));
    let mut held = BTreeSet::new();
    for _ in 0..unacked {
        let d = tokio::time::timeout(Duration::from_secs(10), first.next()).await.expect("a message").expect("ok");
        held.insert(d.id.clone());
    }
    drop(first);
    let mut second = Consumer::connect(&source, &settings).await.unwrap_or_else(|e| panic!("{url}: connect: {e}"));
    let mut ids = BTreeSet::new();
    let mut again = BTreeSet::new();
    while ids.len() < n {
        let d = match tokio::time::timeout(Duration::from_secs(45), second.next()).await {
            Ok(d) => d.expect("ok"),
            Err(_) => panic!("{url}: {} of {n} messages received", ids.len()),
        };
        if held.contains(&d.id) {
            again.insert(d.id.clone());
        }
        ids.insert(d.id.clone());
        d.ack().await.unwrap_or_else(|e| panic!("{url}: ack: {e}"));
    }
    assert_eq!(again, held, "{url}: the unacknowledged messages came back with their ids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_round_trip() {
    let url = format!("mqtt://127.0.0.1:1883/{}/t?id_pointer=/id", unique("ckp-test-"));
    round_trip(&url, 300, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_round_trip() {
    let url = format!("amqp://127.0.0.1:5672/?queue={}", unique("ckp-test-"));
    round_trip(&url, 300, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_round_trip() {
    // A JetStream message not acknowledged comes back only after the consumer's 30 s ack wait: the kill tests of
    // crates/ckp cover that; here every message is acknowledged.
    let url = format!("nats://127.0.0.1:4222/{}?stream={}", unique("ckp.test."), unique("CKP_"));
    round_trip(&url, 300, 0).await;
}
