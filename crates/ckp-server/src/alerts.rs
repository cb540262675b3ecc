//! Alert webhooks (`alert_webhook_url`, LangOrch's `ALERT_WEBHOOK_URL`): a JSON `POST` when a run fails, a node
//! breaches its SLA, a step error asks for a notification (`notify_on_error`), an approval expires unanswered, a
//! trigger cannot start its run, or a failure opens an agent's circuit. User guide: `docs/observability.md`.
//!
//! LangOrch's body (`event`, `run_id`, `error`) is kept and completed (procedure, node, time, an alert id); the
//! body is signed like ckp's webhooks (`X-Ckp-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` with
//! `alert_webhook_secret`). The same alert (same event and subject) is sent once per `alert_dedupe_seconds`, at most
//! `alert_max_per_minute` are sent, and a delivery is tried three times. Alerts are raised where the fact is
//! committed (a run's failure by the process that committed it), so one failure is one alert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ckp_engine::error::ErrorChain;
use ckp_engine::events::Event;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;

/// Alerts waiting for delivery before new ones are dropped (and counted).
const QUEUE: usize = 1024;
/// Dedupe keys remembered before the oldest are forgotten.
const MAX_KEYS: usize = 10_000;
/// Delivery attempts per alert.
const ATTEMPTS: u32 = 3;

/// Where alerts go and how often.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// The webhook URL.
    pub url: String,
    /// The signing key (None: sent unsigned, with a warning at start).
    pub secret: Option<String>,
    /// How long the same alert is not sent again.
    pub dedupe: Duration,
    /// Most alerts sent per minute.
    pub max_per_minute: u64,
}

/// One alert to deliver.
#[derive(Debug)]
pub struct Alert {
    event: &'static str,
    body: Value,
}

/// Raises alerts: dedupe, rate limit, and the hand-off to the delivery task.
#[derive(Debug)]
pub struct Alerts {
    config: AlertConfig,
    out: mpsc::Sender<Alert>,
    seen: Mutex<HashMap<String, Instant>>,
    /// The current minute's start and how many were sent in it.
    window: Mutex<(Instant, u64)>,
    metrics: Arc<Metrics>,
}

impl Alerts {
    /// The alerts of `config`, and the receiver [`run_delivery`] drains.
    pub fn new(config: AlertConfig, metrics: Arc<Metrics>) -> (Arc<Alerts>, mpsc::Receiver<Alert>) {
        let (out, rx) = mpsc::channel(QUEUE);
        let alerts =
            Alerts { config, out, seen: Mutex::new(HashMap::new()), window: Mutex::new((Instant::now(), 0)), metrics };
        (Arc::new(alerts), rx)
    }

    /// Raises `event` about `subject` (the dedupe key with the event) with `fields` added to the body.
    pub fn raise(&self, event: &'static str, subject: &str, fields: Value) {
        let now = Instant::now();
        if let Ok(mut seen) = self.seen.lock() {
            let key = format!("{event}\u{1f}{subject}");
            if seen.get(&key).is_some_and(|at| now.duration_since(*at) < self.config.dedupe) {
                self.metrics.alert(event, "deduplicated");
                return;
            }
            if seen.len() >= MAX_KEYS {
                let dedupe = self.config.dedupe;
                seen.retain(|_, at| now.duration_since(*at) < dedupe);
                if seen.len() >= MAX_KEYS {
                    seen.clear();
                }
            }
            seen.insert(key, now);
        }
        if let Ok(mut window) = self.window.lock() {
            if now.duration_since(window.0) >= Duration::from_secs(60) {
                *window = (now, 0);
            }
            if window.1 >= self.config.max_per_minute {
                self.metrics.alert(event, "rate_limited");
                return;
            }
            window.1 += 1;
        }
        let mut body = json!({
            "event": event,
            "alert_id": uuid::Uuid::now_v7().to_string(),
            "occurred_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        if let (Value::Object(b), Value::Object(f)) = (&mut body, fields) {
            b.extend(f);
        }
        if self.out.try_send(Alert { event, body }).is_err() {
            self.metrics.alert(event, "dropped");
        }
    }

    /// Raises what a committed run's `events` call for: `run_failed`, `sla_breached`, `step_error`.
    pub fn committed(&self, run_id: &str, procedure: &str, version: &str, events: &[Event]) {
        for e in events {
            let base = |extra: Value| {
                let mut v = json!({"run_id": run_id, "procedure_id": procedure, "procedure_version": version,
                                   "node_id": e.node_id, "step_id": e.step_id});
                if let (Value::Object(b), Value::Object(x)) = (&mut v, extra) {
                    b.extend(x);
                }
                v
            };
            match e.event_type.as_str() {
                "run_failed" => {
                    let error = e.get("error").get("message").cloned().unwrap_or(Value::Null);
                    self.raise("run_failed", run_id, base(json!({"error": error})));
                }
                "sla_breached" => {
                    let subject = format!("{run_id}/{}", e.node_id.as_deref().unwrap_or_default());
                    let fields = json!({"elapsed_ms": e.get("elapsed_ms"), "limit_ms": e.get("limit_ms"),
                                        "on_breach": e.get("on_breach")});
                    self.raise("sla_breached", &subject, base(fields));
                }
                "step_error_notification" => {
                    let subject = format!(
                        "{run_id}/{}/{}",
                        e.node_id.as_deref().unwrap_or_default(),
                        e.step_id.as_deref().unwrap_or_default()
                    );
                    let fields = json!({"error": e.get("error"), "error_type": e.get("error_type"),
                                        "handler_action": e.get("handler_action")});
                    self.raise("step_error", &subject, base(fields));
                }
                _ => {}
            }
        }
    }
}

/// Whether an event of this type may raise an alert (the journal hands only those over).
pub fn wanted(event_type: &str) -> bool {
    matches!(event_type, "run_failed" | "sla_breached" | "step_error_notification")
}

/// Delivers alerts until `shutdown` (then what is queued), three attempts each (1 s, then 2 s apart).
pub async fn run_delivery(
    config: AlertConfig,
    mut alerts: mpsc::Receiver<Alert>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), "alerts: no HTTP client; alerts are not sent");
            return;
        }
    };
    loop {
        let alert = tokio::select! {
            a = alerts.recv() => a,
            _ = shutdown.changed() => {
                alerts.close();
                alerts.recv().await
            }
        };
        let Some(alert) = alert else { return };
        let outcome = deliver(&client, &config, &alert).await;
        metrics.alert(alert.event, outcome);
    }
}

async fn deliver(client: &reqwest::Client, config: &AlertConfig, alert: &Alert) -> &'static str {
    let body = alert.body.to_string();
    let mut pause = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        let mut req = client
            .post(&config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Ckp-Event", alert.event);
        if let Some(secret) = &config.secret {
            let t = chrono::Utc::now().timestamp();
            req = req.header("X-Ckp-Signature", crate::triggers::webhook::ckp_signature(secret, t, body.as_bytes()));
        }
        match req.body(body.clone()).send().await {
            Ok(r) if r.status().is_success() => return "sent",
            // A 4xx will not change on a retry.
            Ok(r) if r.status().is_client_error() => {
                tracing::warn!(status = r.status().as_u16(), event = alert.event, "alert refused by the webhook");
                return "failed";
            }
            Ok(r) => {
                tracing::warn!(status = r.status().as_u16(), event = alert.event, attempt, "alert delivery failed")
            }
            Err(e) => tracing::warn!(error = %ErrorChain(&e), event = alert.event, attempt, "alert delivery failed"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    "failed"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts(max_per_minute: u64) -> (Arc<Alerts>, mpsc::Receiver<Alert>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let config = AlertConfig {
            url: "http://127.0.0.1:9".into(),
            secret: None,
            dedupe: Duration::from_secs(60),
            max_per_minute,
        };
        let (a, rx) = Alerts::new(config, metrics.clone());
        (a, rx, metrics)
    }

    #[test]
    fn the_same_alert_is_raised_once_per_window_and_others_are_not_held_back() {
        let (a, mut rx, _) = alerts(100);
        a.raise("trigger_failed", "p/1/webhook", json!({"procedure_id": "p"}));
        a.raise("trigger_failed", "p/1/webhook", json!({"procedure_id": "p"}));
        a.raise("trigger_failed", "q/1/webhook", json!({"procedure_id": "q"}));
        a.raise("run_failed", "p/1/webhook", json!({}));
        let mut got = Vec::new();
        while let Ok(alert) = rx.try_recv() {
            got.push((alert.event, alert.body["procedure_id"].clone()));
            assert!(alert.body["alert_id"].is_string() && alert.body["occurred_at"].is_string());
        }
        assert_eq!(got, [("trigger_failed", json!("p")), ("trigger_failed", json!("q")), ("run_failed", Value::Null)]);
    }

    #[test]
    fn a_burst_is_cut_at_the_rate_limit() {
        let (a, mut rx, _) = alerts(2);
        for i in 0..5 {
            a.raise("run_failed", &format!("r{i}"), json!({"run_id": format!("r{i}")}));
        }
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 2);
    }
}
