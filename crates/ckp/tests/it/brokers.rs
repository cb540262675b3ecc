//! Event triggers against real brokers on 127.0.0.1 (NATS with JetStream, RabbitMQ, Mosquitto, and moto's SQS):
//! 1,000 messages published to each while the `ckp serve` consuming them is SIGKILLed and restarted twice; every
//! message starts exactly one run (the run's creation is keyed by the message id, and the message acknowledged only
//! after). Filters, LangOrch's run inputs and a source the procedure cannot take are checked on the way.

use std::collections::BTreeMap;
use std::time::Duration;

use ckp_brokers::publish::{Message, prepare, publish};
use ckp_brokers::{Settings, Source};
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{call, serve_with_env};

// moto's server, started as ckp-connectors' tests start it.
#[path = "../../../ckp-connectors/tests/it/peers.rs"]
#[expect(dead_code, reason = "only moto is used here")]
mod peers;

const MESSAGES: usize = 1000;

/// The procedure an event source starts: it keeps the message's sequence number.
fn procedure(id: &str, source: &str, filter: Value) -> Value {
    json!({
        "procedure_id": id, "version": "1",
        "trigger": {"type": "event", "event_config": {"event_source": source, "event_filter": filter}},
        "workflow_graph": {"start_node": "a", "nodes": {
            "a": {"type": "sequence", "steps": [
                {"step_id": "keep", "action": "set_variable", "variable": "seq", "value": "{{event_payload.seq}}"}
            ], "next_node": "end"},
            "end": {"type": "terminate"}}}
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

async fn created(http: &reqwest::Client, base: &str, procedure_id: &str) -> Option<i64> {
    let url = format!("{base}/api/runs/stats?procedure_id={procedure_id}");
    let resp = http.get(url).timeout(Duration::from_secs(5)).send().await.ok()?;
    let body: Value = resp.json().await.ok()?;
    body["totals"]["created"].as_i64()
}

/// Publishes 1,000 messages (`seq` 0..999), and after every twenty one of another kind that the trigger's filter
/// drops, to `url` while killing the server twice; asserts exactly one run per message and none for the others.
async fn thousand_through_two_kills(broker: &str, url: &str, env: &[(&str, &str)], settings: Settings) {
    let source = Source::parse(url).expect("the test's source parses");
    prepare(&source, &settings)
        .await
        .unwrap_or_else(|e| panic!("{broker}: the broker must be running on 127.0.0.1: {e}"));
    let dir = std::env::temp_dir().join(unique(&format!("ckp-brokers-{broker}-")));
    let http = reqwest::Client::new();
    let mut server = serve_with_env(&dir, env);
    let procedure_id = unique(&format!("evt_{broker}_"));
    // Messages of another kind are filtered out: they start nothing and are acknowledged.
    let doc = procedure(&procedure_id, url, json!({"payload": {"/kind": "order"}}));
    let (status, body) =
        call(&http, Method::POST, format!("{}/api/procedures", server.base), Some(json!({"ckp_json": doc}))).await;
    assert_eq!(status, 201, "{body}");

    let (progress_tx, progress) = tokio::sync::watch::channel(0usize);
    let publisher = tokio::spawn({
        let source = source.clone();
        let settings = settings.clone();
        let broker = broker.to_owned();
        async move {
            for chunk in 0..MESSAGES / 20 {
                let mut batch: Vec<Message> = (0..20)
                    .map(|i| {
                        let seq = chunk * 20 + i;
                        let payload = json!({"kind": "order", "seq": seq, "id": format!("m-{seq}")});
                        Message {
                            id: Some(format!("m-{seq}")),
                            payload: payload.to_string().into_bytes(),
                            ..Message::default()
                        }
                    })
                    .collect();
                batch.push(Message {
                    payload: json!({"kind": "noise", "seq": -1 - chunk as i64, "id": format!("n-{chunk}")})
                        .to_string()
                        .into_bytes(),
                    ..Message::default()
                });
                publish(&source, &settings, &batch).await.unwrap_or_else(|e| panic!("{broker}: publish: {e}"));
                let _ = progress_tx.send((chunk + 1) * 20);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    // SIGKILL the server when 300 and 650 messages have been published, and start it again on the same data.
    let mut kills = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(480);
    loop {
        let published = *progress.borrow();
        if (kills == 0 && published >= 300) || (kills == 1 && published >= 650) {
            server.child.kill().expect("SIGKILL");
            let _ = server.child.wait();
            kills += 1;
            server = serve_with_env(&dir, env);
        }
        let done = created(&http, &server.base, &procedure_id).await.unwrap_or(0);
        if kills == 2 && publisher.is_finished() && done >= MESSAGES as i64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{broker}: {done} runs of {MESSAGES} after 480 s ({kills} kills)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.await.expect("publisher");
    // Redeliveries of what was in flight at the kills, and the noise, have had time to arrive: still 1,000.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut runs = Vec::new();
    loop {
        let url = format!("{}/api/runs?procedure_id={procedure_id}&limit=500&offset={}", server.base, runs.len());
        let (status, page) = call(&http, Method::GET, url, None).await;
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            break;
        }
        runs.extend(page);
    }
    let mut seen = BTreeMap::new();
    for r in &runs {
        let inputs = &r["input_vars"];
        let seq = inputs["event_payload"]["seq"].as_i64().unwrap_or(-1);
        assert!(seq >= 0, "{broker}: a filtered message started a run: {r}");
        *seen.entry(seq).or_insert(0) += 1;
        assert_eq!(r["trigger_type"], "event", "{r}");
        assert!(inputs["event_source"].as_str().is_some_and(|s| s.starts_with(&format!("{broker}://"))), "{r}");
        assert!(inputs["event_message_id"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
        assert!(inputs["event_attributes"]["subject"].is_string(), "{r}");
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{broker}: messages that started more than one run: {twice:?}");
    assert_eq!(runs.len(), MESSAGES, "{broker}: {} runs for {MESSAGES} messages", runs.len());
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (0..MESSAGES as i64).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_jetstream_starts_each_message_once_through_two_kills() {
    let subject = unique("ckp.test.");
    let url = format!("nats://127.0.0.1:4222/{subject}?stream={}", unique("CKP_"));
    thousand_through_two_kills("nats", &url, &[], Settings::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_starts_each_message_once_through_two_kills() {
    let url = format!("amqp://guest:guest@127.0.0.1:5672/?queue={}&prefetch=16", unique("ckp-test-"));
    thousand_through_two_kills("amqp", &url, &[], Settings::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_starts_each_message_once_through_two_kills() {
    // The run's id comes from the payload (`id_pointer`): MQTT 3.1.1 messages carry none.
    let url =
        format!("mqtt://127.0.0.1:1883/{}/orders?client_id={}&id_pointer=/id", unique("ckp-test-"), unique("ckp-"));
    thousand_through_two_kills("mqtt", &url, &[], Settings::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_on_moto_starts_each_message_once_through_two_kills() {
    let moto = peers::moto().await;
    let url = format!("sqs://{}?region=us-east-1", unique("ckp-test-"));
    let env = [
        ("CKP_SQS_ENDPOINT_URL", moto.base.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let settings = Settings {
        aws_endpoint: Some(moto.base.clone()),
        aws_credentials: Some(("testing".into(), "testing".into(), None)),
        ..Settings::default()
    };
    thousand_through_two_kills("sqs", &url, &env, settings).await;
}
