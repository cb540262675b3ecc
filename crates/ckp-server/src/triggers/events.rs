//! Event triggers: a consumer per enabled, unpaused `event` registration, reading its `event_source` broker
//! (ckp-brokers: NATS JetStream, RabbitMQ, SQS, MQTT) and firing the registration once per message.
//!
//! A message is acknowledged only after [`fire::fire`] has recorded it under the key `event:<message id>` in the
//! transaction that creates its run (or recorded why it starts none): a crash before the acknowledgement
//! redelivers a message whose key is known, which starts nothing. A message whose run cannot start because of the
//! procedure (inputs refused by `variables_schema`, version not runnable) is recorded as skipped with the reason and
//! acknowledged (it would fail the same way forever); one that waits for `max_concurrent_runs` or for the database
//! is kept (the broker is told it is in progress) and tried again with a growing pause, holding back the
//! consumer's next messages meanwhile.
//!
//! Where consumers run is the `trigger_consumers` setting: `leader` (default; on SQLite the one process) or
//! `every` (each process consumes NATS, RabbitMQ and SQS sources as one shared consumer; MQTT sessions stay on the
//! leader, since a session belongs to one client). [`run_consumers`] reconciles the running consumers with the
//! registrations every second: a changed, disabled, paused or deleted registration stops its consumer.
//!
//! Run inputs are LangOrch's: `{event_source, event_message_id, event_payload, event_attributes}` (the payload: a
//! JSON object as is, other JSON as `{"value": v}`, anything else as `{"raw_body": text}`); `trigger_type` is
//! `event` and `triggered_by` the source without credentials. The broker's host must pass the egress policy like
//! any destination a procedure names (`egress_allow` for brokers on private addresses).

use std::collections::HashMap;
use std::time::Duration;

use ckp_store::{FireOutcome, TriggerRow};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::TriggerConfig;
use super::fire::{Cause, Keys, fire_keyed, skip};
use crate::app::AppState;

/// How often the running consumers are reconciled with the registrations.
const RECONCILE: Duration = Duration::from_secs(1);
/// The longest pause between attempts (reconnecting, or firing a message that waits).
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The largest message payload read.
const MAX_PAYLOAD: usize = 1 << 20;
/// Message ids longer than this are keyed by their hash.
const MAX_ID: usize = 200;
/// How long a message's key dedupes (then pruning may drop it): longer than any broker keeps a message for
/// redelivery in practice (SQS: 14 days at most).
const DEDUPE_DAYS: i64 = 30;

/// Where consumers run (the `trigger_consumers` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Only the leader consumes.
    Leader,
    /// Every process consumes (MQTT: the leader only).
    Every,
}

/// What the consumers need besides the state.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Where consumers run.
    pub placement: Placement,
    /// SQS: region, credentials and endpoint.
    pub aws_region: String,
    /// SQS credentials.
    pub aws_credentials: Option<(String, String, Option<String>)>,
    /// SQS endpoint (else AWS's).
    pub aws_endpoint: Option<String>,
}

/// What a registration's event settings mean: its source and filter, or why it cannot consume.
#[cfg(feature = "brokers")]
pub fn parse(config: &TriggerConfig) -> Result<(ckp_brokers::Source, ckp_brokers::Filter), String> {
    let url = config.event_source.as_deref().unwrap_or_default();
    let source = ckp_brokers::Source::parse(url)?;
    let filter = ckp_brokers::Filter::new(config.event_filter.as_ref(), &config.event_type)?;
    Ok((source, filter))
}

/// Without the `brokers` feature no source can be consumed.
#[cfg(not(feature = "brokers"))]
pub fn parse(_config: &TriggerConfig) -> Result<((), ()), String> {
    Err("this ckp was built without the `brokers` feature: event triggers cannot consume".into())
}

struct Running {
    config: String,
    task: JoinHandle<()>,
}

/// Runs the consumers until `shutdown`.
pub async fn run_consumers(state: AppState, settings: ConsumerSettings, mut shutdown: watch::Receiver<bool>) {
    let mut running: HashMap<(String, String), Running> = HashMap::new();
    let mut every = tokio::time::interval(RECONCILE);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = reconcile(&state, &settings, &mut running).await {
                    tracing::warn!(error = %e, "event consumers: the registrations could not be read; retrying");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    for (_, r) in running {
        r.task.abort();
    }
}

async fn reconcile(
    state: &AppState,
    settings: &ConsumerSettings,
    running: &mut HashMap<(String, String), Running>,
) -> Result<(), ckp_store::StoreError> {
    let leader = state.store.is_leader();
    let mut wanted = HashMap::new();
    if leader || settings.placement == Placement::Every {
        for reg in state.store.list_triggers().await? {
            if reg.trigger_type != "event" || !reg.enabled || reg.paused {
                continue;
            }
            let config = TriggerConfig::of(&reg);
            let mqtt =
                config.event_source.as_deref().is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("mqtt:"));
            if mqtt && !leader {
                continue;
            }
            wanted.insert((reg.procedure_id.clone(), reg.version.clone()), reg);
        }
    }
    running.retain(|key, r| {
        let keep = wanted.get(key).is_some_and(|reg| reg.config == r.config);
        if !keep {
            tracing::info!(procedure_id = %key.0, version = %key.1, "event consumer stopped");
            r.task.abort();
        }
        keep
    });
    for (key, reg) in wanted {
        if running.contains_key(&key) {
            continue;
        }
        let config = reg.config.clone();
        let task = tokio::spawn(consume(state.clone(), settings.clone(), reg));
        running.insert(key, Running { config, task });
    }
    Ok(())
}

/// The consumer's name at the broker: one per registration, the same in every process and on every start.
pub fn consumer_name(reg: &TriggerRow) -> String {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
    };
    let name = format!("ckp-{}-{}", clean(&reg.procedure_id), clean(&reg.version));
    if name.len() <= 64 {
        return name;
    }
    let digest =
        ckp_connectors::secrets::crypto::sha256_hex(format!("{}\n{}", reg.procedure_id, reg.version).as_bytes());
    format!("ckp-{}", &digest[..32])
}

/// The run inputs of a message: LangOrch's four fields.
pub fn inputs(
    source: &str,
    id: &str,
    subject: &str,
    headers: &std::collections::BTreeMap<String, String>,
    redelivered: bool,
    payload: Value,
) -> Map<String, Value> {
    let mut attributes = Map::new();
    attributes.insert("subject".into(), json!(subject));
    attributes.insert("redelivered".into(), json!(redelivered));
    for (k, v) in headers {
        attributes.entry(k.clone()).or_insert_with(|| json!(v));
    }
    let mut m = Map::new();
    m.insert("event_source".into(), json!(source));
    m.insert("event_message_id".into(), json!(id));
    m.insert("event_payload".into(), payload);
    m.insert("event_attributes".into(), Value::Object(attributes));
    m
}

/// A payload as the run sees it: a JSON object as is, other JSON as `{"value": v}`, anything else as
/// `{"raw_body": text}`.
pub fn payload_value(bytes: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => v,
        Ok(v) => json!({ "value": v }),
        Err(_) => json!({ "raw_body": String::from_utf8_lossy(bytes) }),
    }
}

/// The cause key of a message id.
pub fn cause_key(id: &str) -> String {
    if id.len() <= MAX_ID {
        return format!("event:{id}");
    }
    format!("event:sha256:{}", ckp_connectors::secrets::crypto::sha256_hex(id.as_bytes()))
}

#[cfg(not(feature = "brokers"))]
async fn consume(_state: AppState, _settings: ConsumerSettings, reg: TriggerRow) {
    tracing::warn!(procedure_id = %reg.procedure_id, version = %reg.version,
        "event trigger not consumed: this ckp was built without the `brokers` feature");
}

#[cfg(feature = "brokers")]
async fn consume(state: AppState, settings: ConsumerSettings, reg: TriggerRow) {
    let config = TriggerConfig::of(&reg);
    let (source, filter) = match parse(&config) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(procedure_id = %reg.procedure_id, version = %reg.version, error = %e,
                "event trigger not consumed: its source does not read");
            return;
        }
    };
    if let Some(destination) = source.destination()
        && let Err(refused) = state.egress.check_destination(&destination).await
    {
        tracing::warn!(procedure_id = %reg.procedure_id, version = %reg.version, error = %refused,
            "event trigger not consumed: the broker's address is refused by the egress policy");
        return;
    }
    let broker_settings = ckp_brokers::Settings {
        name: consumer_name(&reg),
        aws_region: settings.aws_region.clone(),
        aws_credentials: settings.aws_credentials.clone(),
        aws_endpoint: settings.aws_endpoint.clone(),
        max_payload: MAX_PAYLOAD,
        connect_timeout: Duration::from_secs(10),
    };
    let shown = source.redacted();
    let mut backoff = Backoff::default();
    loop {
        let mut consumer = match ckp_brokers::Consumer::connect(&source, &broker_settings).await {
            Ok(c) => {
                tracing::info!(procedure_id = %reg.procedure_id, version = %reg.version, source = %shown,
                    "event consumer connected");
                backoff.reset();
                c
            }
            Err(e) => {
                let pause = backoff.next();
                tracing::warn!(procedure_id = %reg.procedure_id, version = %reg.version, source = %shown,
                    error = %e, retry_in_ms = pause.as_millis() as u64, "event consumer could not connect");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        loop {
            let delivery = match consumer.next().await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(procedure_id = %reg.procedure_id, version = %reg.version, source = %shown,
                        error = %e, "event consumer lost its connection; reconnecting");
                    break;
                }
            };
            if !handle(&state, &reg, &config, &filter, &shown, delivery).await {
                // The registration was disabled meanwhile: the message stays with the broker.
                return;
            }
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// Fires for one message and acknowledges it; false when the registration no longer fires (nothing acknowledged).
#[cfg(feature = "brokers")]
async fn handle(
    state: &AppState,
    reg: &TriggerRow,
    config: &TriggerConfig,
    filter: &ckp_brokers::Filter,
    shown: &str,
    delivery: ckp_brokers::Delivery,
) -> bool {
    let payload = payload_value(&delivery.payload);
    if !filter.accepts(&delivery, &payload) {
        tracing::debug!(procedure_id = %reg.procedure_id, message_id = %delivery.id, "event filtered out");
        ack(reg, delivery).await;
        return true;
    }
    let key = cause_key(&delivery.id);
    let cause = Cause {
        key: key.clone(),
        aliases: Vec::new(),
        kind: "event",
        by: shown.to_owned(),
        scheduled_at: None,
        inputs: inputs(shown, &delivery.id, &delivery.subject, &delivery.headers, delivery.redelivered, payload),
        max_active: config.max_concurrent_runs,
        traceparent: None,
    };
    let mut backoff = Backoff::default();
    loop {
        let until = chrono::Utc::now() + chrono::Duration::days(DEDUPE_DAYS);
        let keys = Keys::default().until(&key, until);
        let waiting = match fire_keyed(state, reg, cause.clone(), keys).await {
            Ok(FireOutcome::Started(run)) => {
                tracing::info!(procedure_id = %reg.procedure_id, run.id = %run.run_id, message_id = %delivery.id,
                    "event started a run");
                break;
            }
            Ok(FireOutcome::Duplicate { .. } | FireOutcome::Skipped) => break,
            Ok(FireOutcome::Disabled) => return false,
            Ok(FireOutcome::Busy { active }) => format!("max_concurrent_runs ({active} runs active)"),
            // The procedure refuses it (inputs, status): recorded as skipped with the reason; it would fail the
            // same way on every redelivery.
            Err(e) if e.status.is_client_error() => {
                let why = format!("not_runnable: {}", e.detail.as_str().unwrap_or(e.code));
                match skip(state, reg, key.clone(), None, why).await {
                    Ok(_) => break,
                    Err(e) => format!("recording the skip failed: {}", e.code),
                }
            }
            Err(e) => format!("the run could not be created: {}", e.code),
        };
        let pause = backoff.next();
        tracing::info!(procedure_id = %reg.procedure_id, message_id = %delivery.id, reason = %waiting,
            retry_in_ms = pause.as_millis() as u64, "event waits before it can start its run");
        if let Err(e) = delivery.keep().await {
            tracing::debug!(error = %e, "event: the broker was not told the message is in progress");
        }
        tokio::time::sleep(pause).await;
    }
    ack(reg, delivery).await;
    true
}

#[cfg(feature = "brokers")]
async fn ack(reg: &TriggerRow, delivery: ckp_brokers::Delivery) {
    let id = delivery.id.clone();
    // A lost acknowledgement redelivers the message, whose key is recorded: it starts nothing.
    if let Err(e) = delivery.ack().await {
        tracing::warn!(procedure_id = %reg.procedure_id, message_id = %id, error = %e,
            "event: the acknowledgement failed; the broker will deliver the message again");
    }
}

/// Pauses doubling from 250 ms to [`MAX_BACKOFF`].
#[derive(Debug, Default)]
struct Backoff {
    attempts: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let pause = Duration::from_millis(250).saturating_mul(1 << self.attempts.min(7)).min(MAX_BACKOFF);
        self.attempts += 1;
        pause
    }

    fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_as_langorch_shapes_them() {
        assert_eq!(payload_value(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(payload_value(b"[1,2]"), json!({"value": [1, 2]}));
        assert_eq!(payload_value(b"not json"), json!({"raw_body": "not json"}));
    }

    #[test]
    fn long_ids_are_hashed_and_names_are_stable() {
        assert_eq!(cause_key("s:1:2"), "event:s:1:2");
        let long = cause_key(&"x".repeat(500));
        assert!(long.starts_with("event:sha256:") && long.len() < 100);
        let reg = TriggerRow {
            id: 1,
            procedure_id: "inv.oice/x".into(),
            version: "1.0.0".into(),
            trigger_type: "event".into(),
            config: "{}".into(),
            source: "ckp".into(),
            enabled: true,
            disabled_by: None,
            paused: false,
            pause_note: None,
            cursor_at: None,
            created_at: String::new(),
            updated_at: String::new(),
        };
        assert_eq!(consumer_name(&reg), "ckp-inv_oice_x-1_0_0");
        let reg = TriggerRow { procedure_id: "p".repeat(80), ..reg };
        assert!(consumer_name(&reg).len() <= 64);
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut b = Backoff::default();
        let pauses: Vec<Duration> = (0..10).map(|_| b.next()).collect();
        assert_eq!(pauses[0], Duration::from_millis(250));
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*pauses.last().unwrap_or(&Duration::ZERO), MAX_BACKOFF);
    }
}
