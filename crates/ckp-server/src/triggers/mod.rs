//! Triggers: what starts runs without a caller of `POST /api/runs`. A registration (one per procedure version,
//! `ckp_store::TriggerStore`) is synced from the version's CKP `trigger` block ([`sync_version`], after every
//! import, update, status change and delete, and for all versions at startup and by `POST /api/triggers/sync`)
//! or written by an operator. Its settings are a [`TriggerConfig`], kept by the store as JSON.
//!
//! Every cause — a schedule's tick ([`scheduler`]), a webhook delivery ([`webhook`]), a file drop ([`files`]), a
//! broker message ([`events`]), a fire through the API — goes through [`fire::fire`], which records the cause under
//! a key unique per registration in the transaction that creates its run: a cause replayed by a retry, a crash or
//! another process starts nothing. The leader prunes old fires that dedupe nothing any more ([`prune`]).

pub mod events;
pub mod files;
pub mod fire;
pub mod prune;
pub mod scheduler;
pub mod webhook;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use ckp_store::{ProcedureFilter, ProcedureRecord, StoreError, TriggerRow, TriggerSync};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::app::AppState;

/// What a schedule does with a tick while earlier runs of the trigger have not ended (queued, running, waiting
/// at an approval or a timer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Start a run anyway (within `max_concurrent_runs`).
    #[default]
    Allow,
    /// Record the tick as skipped (`overlap`).
    Skip,
    /// Cancel the trigger's runs that have not ended, then start the tick's run.
    CancelOther,
    /// Keep one tick waiting while a run has not ended and start it when that run ends; when a later tick comes
    /// due meanwhile, the waiting one is recorded as skipped (`overlap`) and the later one waits instead. A waiting
    /// tick obeys the catch-up window like any other.
    BufferOne,
}

/// A registration's settings (the CKP block's fields, LangOrch's and ckp's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TriggerConfig {
    /// Cron: 5 fields, 6 with seconds first, or a macro (`@daily`, `@hourly`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Name of the secret holding the webhook's HMAC key (looked up like `{{secrets.NAME}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Name of the previous secret, also accepted while a key is rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_previous: Option<String>,
    /// `provider://target` of an event trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
    /// An event trigger's filter (`event_config.event_filter`: `subject`, `headers`, `payload`, or flat fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_filter: Option<Value>,
    /// The event types an event trigger accepts (`event_config.event_type`); empty accepts any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_type: Vec<String>,
    /// A file watch trigger's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_watch_path: Option<String>,
    /// A file watch trigger's glob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_watch_pattern: Option<String>,
    /// The changes a file watch fires for (default `created` and `modified`).
    #[serde(default = "files::default_events")]
    pub file_watch_event_types: Vec<files::FileEvent>,
    /// How long a file's size and modification time must stay the same before it fires, in milliseconds.
    #[serde(default = "files::default_settle_ms")]
    pub file_watch_settle_ms: u64,
    /// LangOrch's dedupe window (kept; ckp dedupes webhooks by `Idempotency-Key` and signature).
    #[serde(default)]
    pub dedupe_window_seconds: i64,
    /// The most runs of the trigger not yet ended; a fire over it is refused (webhooks: 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<i64>,
    /// A schedule's overlap policy.
    #[serde(default)]
    pub overlap: Overlap,
    /// Ticks missed longer ago than this (downtime) are recorded as skipped instead of fired.
    #[serde(default = "default_catchup")]
    pub catchup_window_seconds: i64,
    /// Each tick of a schedule fires up to this many seconds late, by an offset that is the same for a tick in
    /// every process (spreads schedules that share a time).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jitter_seconds: i64,
    /// Fires start the procedure's newest `active` version instead of the registration's own.
    #[serde(default)]
    pub follow_active: bool,
    /// A webhook's largest body.
    #[serde(default = "default_body")]
    pub max_body_bytes: i64,
    /// The addresses a webhook accepts deliveries from: IP addresses or CIDR ranges (`webhook_config.allowed_sources`
    /// in CKP); empty accepts any. An entry that reads as neither matches nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_sources: Vec<String>,
}

/// An `allowed_sources` entry as a range: a CIDR range, or one address as its own range.
fn source_range(entry: &str) -> Option<ipnet::IpNet> {
    let entry = entry.trim();
    entry.parse::<ipnet::IpNet>().ok().or_else(|| entry.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn default_catchup() -> i64 {
    60
}

fn default_body() -> i64 {
    1 << 20
}

/// The longest webhook body dedupe window (ten years).
pub const MAX_DEDUPE_WINDOW_SECS: i64 = 315_360_000;

/// The types a registration may have.
pub const TYPES: &[&str] = &["scheduled", "webhook", "event", "file_watch"];

impl TriggerConfig {
    /// The settings of a CKP `trigger` block (JSON, as the procedure record keeps it) and its type; None for a
    /// `manual` trigger or a block that does not read (the compiler refused it at import).
    pub fn from_block(block: &Value) -> Option<(String, TriggerConfig)> {
        let t: ckp_core::model::Trigger = serde_json::from_value(block.clone()).ok()?;
        let kind = t.trigger_type.clone().unwrap_or_else(|| "manual".into());
        if !TYPES.contains(&kind.as_str()) {
            return None;
        }
        let int = |k: &str| t.extra.get(k).and_then(Value::as_i64);
        let text = |k: &str| t.extra.get(k).and_then(Value::as_str).map(str::to_owned);
        let event = t.event_config.as_ref().and_then(|c| c.event_source.clone()).or_else(|| t.event_source.clone());
        let watch = t.file_watch_config.as_ref();
        let event_config = t.event_config.as_ref();
        let config = TriggerConfig {
            schedule: t.schedule.clone(),
            timezone: t.timezone.clone(),
            webhook_secret: t.webhook_secret.clone(),
            webhook_secret_previous: text("webhook_secret_previous"),
            event_source: event,
            event_filter: event_config.and_then(|c| c.event_filter.clone()).map(Value::Object),
            event_type: event_config.and_then(|c| c.event_type.clone()).unwrap_or_default(),
            file_watch_path: (kind == "file_watch").then(|| t.watch_path()).flatten(),
            file_watch_pattern: watch.and_then(|w| w.pattern.clone()),
            file_watch_event_types: files::events_of(watch),
            file_watch_settle_ms: files::settle_of(&t),
            dedupe_window_seconds: int("dedupe_window_seconds").unwrap_or(0),
            max_concurrent_runs: int("max_concurrent_runs"),
            overlap: t.extra.get("overlap").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default(),
            catchup_window_seconds: int("catchup_window_seconds").unwrap_or_else(default_catchup),
            jitter_seconds: int("jitter_seconds").unwrap_or(0),
            follow_active: t.extra.get("follow_active").and_then(Value::as_bool).unwrap_or(false),
            max_body_bytes: int("max_body_bytes").unwrap_or_else(default_body),
            allowed_sources: t
                .webhook_config
                .as_ref()
                .and_then(|w| w.allowed_sources.clone())
                .or_else(|| serde_json::from_value(t.extra.get("allowed_sources")?.clone()).ok())
                .unwrap_or_default(),
        };
        Some((kind, config))
    }

    /// The settings of a stored registration (defaults for what does not read).
    pub fn of(row: &TriggerRow) -> TriggerConfig {
        serde_json::from_str(&row.config).unwrap_or_default()
    }

    /// JSON text for the store.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether a webhook delivery from `peer` is accepted (`None`: the address is unknown, accepted only when no
    /// source is listed). IPv4 addresses seen as IPv6 (`::ffff:a.b.c.d`) match their IPv4 ranges.
    pub fn allows(&self, peer: Option<std::net::IpAddr>) -> bool {
        if self.allowed_sources.is_empty() {
            return true;
        }
        let Some(peer) = peer.map(|p| p.to_canonical()) else { return false };
        self.allowed_sources.iter().filter_map(|s| source_range(s)).any(|range| range.contains(&peer))
    }

    /// What is wrong with these settings for `kind`, in words for a 422.
    pub fn problem(&self, kind: &str) -> Option<String> {
        if !TYPES.contains(&kind) {
            return Some(format!("trigger_type must be one of {}", TYPES.join(", ")));
        }
        if !(0..=MAX_DEDUPE_WINDOW_SECS).contains(&self.dedupe_window_seconds) {
            return Some(format!("dedupe_window_seconds must be 0 to {MAX_DEDUPE_WINDOW_SECS}"));
        }
        if self.max_concurrent_runs.is_some_and(|n| n < 1) {
            return Some("max_concurrent_runs must be 1 or more".into());
        }
        if self.catchup_window_seconds < 0 {
            return Some("catchup_window_seconds must be 0 or more".into());
        }
        if !(0..=86_400).contains(&self.jitter_seconds) {
            return Some("jitter_seconds must be between 0 and 86400".into());
        }
        if !(1..=64 << 20).contains(&self.max_body_bytes) {
            return Some("max_body_bytes must be between 1 and 67108864".into());
        }
        if let Some(bad) = self.allowed_sources.iter().find(|s| source_range(s).is_none()) {
            return Some(format!("allowed_sources: '{bad}' is not an IP address or a CIDR range"));
        }
        match kind {
            "scheduled" => match &self.schedule {
                None => Some("a scheduled trigger needs a schedule".into()),
                Some(s) => Schedule::new(s, self.timezone.as_deref()).err(),
            },
            "webhook" if self.webhook_secret.as_deref().is_none_or(str::is_empty) => {
                Some("a webhook trigger needs webhook_secret (the name of the secret holding its key)".into())
            }
            "event" if self.event_source.as_deref().is_none_or(str::is_empty) => {
                Some("an event trigger needs event_source".into())
            }
            "event" => events::parse(self).err(),
            "file_watch" => files::problem(self),
            _ => None,
        }
    }
}

/// A cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

impl Schedule {
    /// Parses `expr` (5 or 6 fields, or a macro) and the IANA zone `tz` (UTC when None).
    pub fn new(expr: &str, tz: Option<&str>) -> Result<Schedule, String> {
        ckp_core::compile::check_cron(expr)
            .map_err(|e| format!("schedule `{expr}` is not a valid cron expression: {e}"))?;
        let cron = croner::Cron::from_str(expr.trim()).map_err(|e| format!("schedule `{expr}`: {e}"))?;
        let tz = match tz {
            None => chrono_tz::UTC,
            Some(name) => chrono_tz::Tz::from_str(name)
                .map_err(|_| format!("timezone `{name}` is not an IANA time zone (such as Europe/Paris)"))?,
        };
        Ok(Schedule { cron, tz })
    }

    /// The first tick strictly after `t`; None when there is none.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t.with_timezone(&self.tz), false).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The next `n` ticks after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n
            && let Some(next) = self.next_after(at)
        {
            out.push(next);
            at = next;
        }
        out
    }
}

/// Brings the registration of one version in line with its stored document and status (deleted: disabled).
pub async fn sync_version(
    state: &AppState,
    procedure_id: &str,
    version: &str,
) -> Result<Option<TriggerRow>, StoreError> {
    let record = state.store.get_procedure(procedure_id, Some(version)).await?.filter(|r| r.version == version);
    sync_record(state, procedure_id, version, record.as_ref()).await
}

/// What a version's record declares: its trigger's type and settings (None without a firing trigger), and why its
/// registration must not fire (deleted, or a status that does not run).
fn declared(record: Option<&ProcedureRecord>) -> (Option<(String, String)>, Option<&'static str>) {
    match record {
        None => (None, Some("deleted")),
        Some(r) => {
            let block = r.trigger_config.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok());
            let declared = block.as_ref().and_then(TriggerConfig::from_block).map(|(k, c)| (k, c.to_text()));
            (declared, (!r.status.is_runnable()).then_some("status"))
        }
    }
}

async fn sync_record(
    state: &AppState,
    procedure_id: &str,
    version: &str,
    record: Option<&ProcedureRecord>,
) -> Result<Option<TriggerRow>, StoreError> {
    let (declared, blocked) = declared(record);
    let sync = TriggerSync { procedure_id: procedure_id.to_owned(), version: version.to_owned(), declared, blocked };
    state.store.sync_trigger(sync).await
}

/// Syncs every stored version that declares a trigger or has a registration, and every registration whose version
/// is gone; the number of registrations after. Runs at every start: the listed records are used as they are (no
/// second read of each document), and a version with neither a trigger nor a registration costs nothing.
pub async fn sync_all(state: &AppState) -> Result<usize, StoreError> {
    let mut registered: std::collections::HashSet<(String, String)> =
        state.store.list_triggers().await?.into_iter().map(|t| (t.procedure_id, t.version)).collect();
    let mut n = 0;
    for r in state.store.list_procedures(ProcedureFilter::default()).await? {
        let key = (r.procedure_id.clone(), r.version.clone());
        let has_registration = registered.remove(&key);
        if !has_registration && declared(Some(&r)).0.is_none() {
            continue;
        }
        if sync_record(state, &r.procedure_id, &r.version, Some(&r)).await?.is_some() {
            n += 1;
        }
    }
    // Registrations left have no stored version any more.
    for (pid, ver) in registered {
        if sync_record(state, &pid, &ver, None).await?.is_some() {
            n += 1;
        }
    }
    Ok(n)
}
